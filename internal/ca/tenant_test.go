package ca

import (
	"context"
	"crypto/x509"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/internal/store"
	"github.com/rampart-iot/rampart/internal/store/storetest"
)

func TestTenantCAShape(t *testing.T) {
	f := sqliteFixture(t)
	f.ensure(f.tenant.ID)
	infos := f.list(f.tenant.ID)
	if len(infos) != 1 {
		t.Fatalf("got %d CAs, want 1", len(infos))
	}
	in := infos[0]
	c := in.Cert
	if !c.IsCA || c.MaxPathLen != 0 || !c.MaxPathLenZero || c.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
		t.Errorf("CA constraints: IsCA %v MaxPathLen %d zero %v KeyUsage %v", c.IsCA, c.MaxPathLen, c.MaxPathLenZero, c.KeyUsage)
	}
	if got, want := c.Subject.CommonName, "Rampart CA Contoso"; got != want {
		t.Errorf("CN %q, want %q", got, want)
	}
	if !slices.Equal(c.Subject.OrganizationalUnit, []string{"tenant " + f.tenant.ID}) || c.Subject.SerialNumber != in.ID {
		t.Errorf("subject %v does not name tenant %s and CA %s", c.Subject, f.tenant.ID, in.ID)
	}
	if !slices.Equal(c.PermittedURIDomains, []string{f.tenant.ID}) || !c.PermittedDNSDomainsCritical {
		t.Errorf("name constraints %v (critical %v), want the tenant's trust domain", c.PermittedURIDomains, c.PermittedDNSDomainsCritical)
	}
	if c.PublicKeyAlgorithm.String() != "ECDSA" || c.SignatureAlgorithm.String() != "ECDSA-SHA256" {
		t.Errorf("algorithms %v / %v", c.PublicKeyAlgorithm, c.SignatureAlgorithm)
	}
	roots := f.list("")
	if len(roots) != 1 || roots[0].Status != StatusActive || roots[0].KeyOffline {
		t.Fatalf("roots %+v", roots)
	}
	if err := c.CheckSignatureFrom(roots[0].Cert); err != nil {
		t.Errorf("tenant CA not signed by the root: %v", err)
	}
	if !c.NotBefore.Equal(t0.Add(-ClockSkew)) || !c.NotAfter.Equal(t0.Add(TenantLifetime)) || !in.ActiveFrom.Equal(t0) {
		t.Errorf("validity %v..%v active from %v", c.NotBefore, c.NotAfter, in.ActiveFrom)
	}
	if r := roots[0].Cert; !r.NotAfter.Equal(t0.Add(RootLifetime)) || r.CheckSignatureFrom(r) != nil {
		t.Errorf("root valid until %v, self-signed: %v", r.NotAfter, r.CheckSignatureFrom(r))
	}
	if len(in.ThumbprintSHA1) != 40 || in.ThumbprintSHA1 != upperHexSHA1(c.Raw) {
		t.Errorf("thumbprint %q", in.ThumbprintSHA1)
	}
}

// TestRotationSchedule follows one tenant CA through its life and its successor's birth,
// activation and takeover, as Azure Sphere's tenant CA rotates.
func TestRotationSchedule(t *testing.T) {
	f := sqliteFixture(t)
	tid := f.tenant.ID
	f.ensure(tid)
	first := f.list(tid)[0]
	if first.Status != StatusActive {
		t.Fatalf("first CA is %s, want Active at once", first.Status)
	}
	root := f.list("")[0].Cert
	signer := func() string {
		t.Helper()
		iss := f.issue(tid, LeafRequest{})
		for _, in := range f.list(tid) {
			if in.Cert.Equal(iss.Chain[0]) {
				return in.ID
			}
		}
		t.Fatal("leaf signed by an unknown CA")
		return ""
	}
	bundle := func() []string {
		t.Helper()
		b, err := f.a.Bundle(f.ctx, tid)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, c := range b {
			out = append(out, c.Subject.SerialNumber)
		}
		return out
	}

	rotateAt := first.NotAfter.Add(-RotateBefore)
	f.clk.Set(rotateAt.Add(-time.Second))
	f.ensure(tid)
	if n := len(f.list(tid)); n != 1 {
		t.Fatalf("a second before the rotation point: %d CAs, want 1", n)
	}

	f.clk.Set(rotateAt)
	f.ensure(tid)
	infos := f.list(tid)
	if got := statuses(infos); !slices.Equal(got, []Status{StatusActive, StatusInactive}) {
		t.Fatalf("at the rotation point: %v, want [Active Inactive]", got)
	}
	next := infos[1]
	if !next.ActiveFrom.Equal(rotateAt.Add(ActivateAfter)) || !next.NotAfter.Equal(rotateAt.Add(TenantLifetime)) {
		t.Errorf("successor active from %v until %v", next.ActiveFrom, next.NotAfter)
	}
	if id := signer(); id != first.ID {
		t.Errorf("during the overlap the waiting successor signed")
	}
	if got, want := bundle(), []string{first.ID, next.ID, root.Subject.SerialNumber}; !slices.Equal(got, want) {
		t.Errorf("bundle %v, want %v", got, want)
	}

	f.clk.Set(next.ActiveFrom.Add(-time.Hour))
	f.ensure(tid)
	lastOfFirst := f.issue(tid, LeafRequest{})
	if !lastOfFirst.Chain[0].Equal(first.Cert) {
		t.Fatal("an hour before activation the successor signed")
	}

	f.clk.Set(next.ActiveFrom)
	f.ensure(tid)
	if got := statuses(f.list(tid)); !slices.Equal(got, []Status{StatusInactive, StatusActive}) {
		t.Fatalf("at activation: %v, want [Inactive Active]", got)
	}
	if n := len(f.list(tid)); n != 2 {
		t.Fatalf("%d CAs after activation, want 2", n)
	}
	if id := signer(); id != next.ID {
		t.Error("after activation the old CA signed")
	}
	if got, want := bundle(), []string{first.ID, next.ID, root.Subject.SerialNumber}; !slices.Equal(got, want) {
		t.Errorf("bundle %v, want %v", got, want)
	}
	if _, err := f.a.VerifyDevice(f.ctx, []*x509.Certificate{lastOfFirst.Leaf}); err != nil {
		t.Errorf("a leaf of the old, still valid CA: %v", err)
	}

	f.clk.Set(first.NotAfter)
	f.ensure(tid)
	if got := statuses(f.list(tid)); !slices.Equal(got, []Status{StatusExpired, StatusActive}) {
		t.Fatalf("after the old CA expired: %v, want [Expired Active]", got)
	}
	if got, want := bundle(), []string{next.ID, root.Subject.SerialNumber}; !slices.Equal(got, want) {
		t.Errorf("bundle %v, want %v", got, want)
	}
}

// TestRotationDayByDay runs the service for six years, a day at a time, and checks the
// schedule's invariants every day.
func TestRotationDayByDay(t *testing.T) {
	if testing.Short() {
		t.Skip("six simulated years")
	}
	f := sqliteFixture(t)
	tid := f.tenant.ID
	created := map[string]time.Time{}
	for d := 0; d <= 6*365; d++ {
		now := t0.Add(time.Duration(d) * day)
		f.clk.Set(now)
		f.ensure(tid)
		infos := f.list(tid)
		var active *Info
		usable := 0
		for i := range infos {
			in := &infos[i]
			if _, ok := created[in.ID]; !ok {
				created[in.ID] = now
				if i > 0 {
					prev := infos[i-1]
					if !now.Equal(prev.NotAfter.Add(-RotateBefore)) {
						t.Fatalf("day %d: successor made %v before its predecessor expires, want %v", d, prev.NotAfter.Sub(now), RotateBefore)
					}
					if !in.ActiveFrom.Equal(now.Add(ActivateAfter)) {
						t.Fatalf("day %d: successor active from %v, want %v", d, in.ActiveFrom, now.Add(ActivateAfter))
					}
				}
			}
			switch in.Status {
			case StatusActive:
				if active != nil {
					t.Fatalf("day %d: two active CAs", d)
				}
				active = in
				usable++
			case StatusInactive:
				usable++
			}
		}
		if active == nil {
			t.Fatalf("day %d: no active CA: %v", d, statuses(infos))
		}
		if usable > 2 {
			t.Fatalf("day %d: %d valid CAs", d, usable)
		}
		b, err := f.a.Bundle(f.ctx, tid)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != usable+1 {
			t.Fatalf("day %d: bundle of %d, want %d CAs and the root", d, len(b), usable)
		}
		iss := f.issue(tid, LeafRequest{})
		if !iss.Chain[0].Equal(active.Cert) {
			t.Fatalf("day %d: leaf not signed by the active CA", d)
		}
		if _, err := f.a.VerifyDevice(f.ctx, []*x509.Certificate{iss.Leaf}); err != nil {
			t.Fatalf("day %d: %v", d, err)
		}
	}
	// 6 years: the first CA, then one every 640 days.
	if n := len(created); n != 4 {
		t.Errorf("%d CAs in six years, want 4", n)
	}
}

// TestEnsureTenantConcurrent races replicas, each with its own Authority, on one store: they
// make exactly one first CA, and exactly one successor.
func TestEnsureTenantConcurrent(t *testing.T) {
	for _, b := range []struct {
		name string
		open func(*testing.T) store.Store
	}{{"sqlite", storetest.OpenSQLite}, {"postgres", storetest.OpenPostgres}} {
		t.Run(b.name, func(t *testing.T) {
			f := newFixture(t, b.open(t))
			replicas := make([]*Authority, 8)
			for i := range replicas {
				replicas[i] = f.authority(f.kek)
			}
			race := func() {
				t.Helper()
				var wg sync.WaitGroup
				start := make(chan struct{})
				errs := make([]error, len(replicas))
				for i, r := range replicas {
					wg.Go(func() {
						<-start
						errs[i] = r.EnsureTenant(context.Background(), f.tenant.ID, "")
					})
				}
				close(start)
				wg.Wait()
				for _, err := range errs {
					if err != nil {
						t.Fatal(err)
					}
				}
			}
			race()
			infos := f.list(f.tenant.ID)
			if len(infos) != 1 {
				t.Fatalf("%d CAs, want 1", len(infos))
			}
			f.clk.Set(infos[0].NotAfter.Add(-RotateBefore + time.Hour))
			race()
			if got := statuses(f.list(f.tenant.ID)); !slices.Equal(got, []Status{StatusActive, StatusInactive}) {
				t.Fatalf("after the rotation race: %v, want [Active Inactive]", got)
			}
			for _, r := range replicas {
				if _, err := r.Issue(f.ctx, f.tenant.ID, LeafRequest{PublicKey: &newKey(t).PublicKey, DeviceID: newDeviceID()}); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestRevoke(t *testing.T) {
	f := sqliteFixture(t)
	tid := f.tenant.ID
	f.ensure(tid)
	first := f.list(tid)[0]
	leaf := f.issue(tid, LeafRequest{}).Leaf

	wantErr(t, f.a.Revoke(f.ctx, tid, "no-such-ca"), store.ErrNotFound)
	wantErr(t, f.a.Revoke(f.ctx, "", first.ID), ErrInvalid)
	other := f.newTenant("Fabrikam")
	wantErr(t, f.a.Revoke(f.ctx, other.ID, first.ID), store.ErrNotFound)

	f.clk.Advance(time.Minute)
	if err := f.a.Revoke(f.ctx, tid, first.ID); err != nil {
		t.Fatal(err)
	}
	revokedAt := f.list(tid)[0].RevokedAt
	f.clk.Advance(time.Minute)
	if err := f.a.Revoke(f.ctx, tid, first.ID); err != nil {
		t.Fatal(err)
	}
	infos := f.list(tid)
	if infos[0].Status != StatusRevoked || !infos[0].RevokedAt.Equal(revokedAt) || !infos[0].KeyOffline {
		t.Fatalf("after revoking twice: %+v (first revoked at %v)", infos[0], revokedAt)
	}
	if _, err := f.a.Issue(f.ctx, tid, LeafRequest{PublicKey: &newKey(t).PublicKey, DeviceID: newDeviceID()}); !errors.Is(err, ErrNoCA) {
		t.Fatalf("Issue with the only CA revoked: %v, want ErrNoCA", err)
	}
	if _, err := f.a.Bundle(f.ctx, tid); !errors.Is(err, ErrNoCA) {
		t.Fatalf("Bundle with the only CA revoked: %v, want ErrNoCA", err)
	}
	if _, err := f.a.VerifyDevice(f.ctx, []*x509.Certificate{leaf}); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("a leaf of a revoked CA: %v, want ErrUntrusted", err)
	}

	// EnsureTenant replaces a revoked CA at once.
	f.ensure(tid)
	if got := statuses(f.list(tid)); !slices.Equal(got, []Status{StatusRevoked, StatusActive}) {
		t.Fatalf("after EnsureTenant: %v", got)
	}

	// Revoking the active CA while a successor waits activates the successor at once.
	second := f.list(tid)[1]
	f.clk.Set(second.NotAfter.Add(-RotateBefore))
	f.ensure(tid)
	if got := statuses(f.list(tid)); !slices.Equal(got, []Status{StatusRevoked, StatusActive, StatusInactive}) {
		t.Fatalf("at rotation: %v", got)
	}
	if err := f.a.Revoke(f.ctx, tid, second.ID); err != nil {
		t.Fatal(err)
	}
	f.ensure(tid)
	infos = f.list(tid)
	if got := statuses(infos); !slices.Equal(got, []Status{StatusRevoked, StatusRevoked, StatusActive}) {
		t.Fatalf("after revoking the active CA during the overlap: %v", got)
	}
	if !infos[2].ActiveFrom.Equal(f.clk.Now()) {
		t.Errorf("waiting successor activated at %v, want now", infos[2].ActiveFrom)
	}
}

// TestReplicaSeesChanges: a replica learns of another's changes within RefreshInterval,
// and at once when it has no active CA.
func TestReplicaSeesChanges(t *testing.T) {
	f := sqliteFixture(t)
	tid := f.tenant.ID
	other := f.authority(f.kek)
	req := func() LeafRequest { return LeafRequest{PublicKey: &newKey(t).PublicKey, DeviceID: newDeviceID()} }

	if _, err := other.Issue(f.ctx, tid, req()); !errors.Is(err, ErrNoCA) {
		t.Fatalf("before EnsureTenant: %v, want ErrNoCA", err)
	}
	f.ensure(tid)
	iss, err := other.Issue(f.ctx, tid, req()) // no active CA in memory: reads the store
	if err != nil {
		t.Fatal(err)
	}
	first := f.list(tid)[0]
	if err := f.a.Revoke(f.ctx, tid, first.ID); err != nil {
		t.Fatal(err)
	}
	f.ensure(tid)
	// Within RefreshInterval the other replica may still use what it read.
	if iss2, err := other.Issue(f.ctx, tid, req()); err != nil || !iss2.Chain[0].Equal(iss.Chain[0]) {
		t.Logf("replica already switched (allowed): %v", err)
	}
	f.clk.Advance(RefreshInterval)
	iss3, err := other.Issue(f.ctx, tid, req())
	if err != nil {
		t.Fatal(err)
	}
	if iss3.Chain[0].Equal(first.Cert) {
		t.Fatal("the replica signed with a revoked CA after RefreshInterval")
	}
	if _, err := other.VerifyDevice(f.ctx, []*x509.Certificate{iss.Leaf}); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("the replica accepted a leaf of a revoked CA after RefreshInterval: %v", err)
	}
}

func TestPlan(t *testing.T) {
	ca := func(created time.Time, activeIn time.Duration, revoked bool) store.CACertificate {
		r := store.CACertificate{NotBefore: created.Add(-ClockSkew), NotAfter: created.Add(TenantLifetime), ActiveFrom: created.Add(activeIn)}
		if revoked {
			r.RevokedAt = created.Add(time.Hour)
		}
		return r
	}
	end := t0.Add(TenantLifetime)
	for _, tc := range []struct {
		name       string
		recs       []store.CACertificate
		now        time.Time
		activate   int
		create     bool
		activeFrom time.Time
	}{
		{"none", nil, t0, -1, true, t0},
		{"fresh", []store.CACertificate{ca(t0, 0, false)}, t0.Add(day), -1, false, time.Time{}},
		{"due", []store.CACertificate{ca(t0, 0, false)}, end.Add(-RotateBefore), -1, true, end.Add(-RotateBefore + ActivateAfter)},
		{"late: active no later than the predecessor expires", []store.CACertificate{ca(t0, 0, false)}, end.Add(-day), -1, true, end},
		{"expired", []store.CACertificate{ca(t0, 0, false)}, end, -1, true, end},
		{"revoked", []store.CACertificate{ca(t0, 0, true)}, t0.Add(day), -1, true, t0.Add(day)},
		{"successor waits", []store.CACertificate{ca(t0, 0, false), ca(end.Add(-RotateBefore), ActivateAfter, false)}, end.Add(-RotateBefore + day), -1, false, time.Time{}},
		{"active revoked, successor waits", []store.CACertificate{ca(t0, 0, true), ca(end.Add(-RotateBefore), ActivateAfter, false)}, end.Add(-RotateBefore + day), 1, false, time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := plan(tc.recs, tc.now)
			if p.activate != tc.activate || p.create != tc.create || !p.activeFrom.Equal(tc.activeFrom) {
				t.Errorf("plan = %+v, want activate %d create %v from %v", p, tc.activate, tc.create, tc.activeFrom)
			}
		})
	}
}
