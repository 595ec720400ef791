package ca

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"slices"
	"testing"

	"github.com/rampart-iot/rampart/internal/store"
	"github.com/rampart-iot/rampart/internal/store/storetest"
)

func TestNewReportsEveryProblem(t *testing.T) {
	_, err := New(Config{KEK: make([]byte, 16)})
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("Store is required")) || !bytes.Contains([]byte(err.Error()), []byte("16 bytes; it must be 32")) {
		t.Fatalf("New: %v", err)
	}
}

func TestEnsureRootIsIdempotent(t *testing.T) {
	f := sqliteFixture(t)
	for range 3 {
		if err := f.authority(f.kek).EnsureRoot(f.ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(f.list("")); n != 1 {
		t.Fatalf("%d roots, want 1", n)
	}
}

func TestExportImportRoot(t *testing.T) {
	f := sqliteFixture(t)
	tid := f.tenant.ID
	f.ensure(tid)
	root := f.list("")[0]

	// A save that fails keeps the key in the store.
	boom := errors.New("disk full")
	if err := f.a.ExportRoot(f.ctx, func(_, _ []byte) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("ExportRoot with a failing save: %v", err)
	}
	if f.list("")[0].KeyOffline {
		t.Fatal("the key left the store although save failed")
	}

	var certPEM, keyPEM []byte
	if err := f.a.ExportRoot(f.ctx, func(c, k []byte) error {
		certPEM, keyPEM = bytes.Clone(c), bytes.Clone(k)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(certPEM, PEM(root.Cert)) {
		t.Error("exported certificate is not the root")
	}
	key, err := parseKeyPEM(keyPEM)
	if err != nil || !key.PublicKey.Equal(root.Cert.PublicKey) {
		t.Fatalf("exported key: %v", err)
	}
	if !f.list("")[0].KeyOffline {
		t.Fatal("root key still in the store")
	}
	var stored []store.CACertificate
	if stored, err = f.st.ListCACertificates(f.ctx, ""); err != nil || stored[0].KeyCiphertext != nil {
		t.Fatalf("stored root: %v, key ciphertext %d bytes", err, len(stored[0].KeyCiphertext))
	}
	wantErr(t, f.a.ExportRoot(f.ctx, func(_, _ []byte) error { return nil }), ErrRootOffline)

	// Offline: no new tenant CA, but existing ones keep signing, even past their rotation
	// point, and their bundles still hold the root.
	other := f.newTenant("Fabrikam")
	wantErr(t, f.a.EnsureTenant(f.ctx, other.ID, ""), ErrRootOffline)
	first := f.list(tid)[0]
	f.clk.Set(first.NotAfter.Add(-RotateBefore + day))
	wantErr(t, f.a.EnsureTenant(f.ctx, tid, ""), ErrRootOffline)
	// Called on every attestation, it answers from memory rather than take the write lock.
	cs := &countingStore{Store: f.st}
	replica, err := New(Config{Store: cs, KEK: f.kek, Now: f.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	for range 100 {
		wantErr(t, replica.EnsureTenant(f.ctx, tid, ""), ErrRootOffline)
	}
	if n := cs.updates.Load(); n != 0 {
		t.Errorf("100 EnsureTenant calls with the root offline ran %d store transactions", n)
	}
	if infos := f.list(tid); len(infos) != 1 || infos[0].Status != StatusActive {
		t.Fatalf("offline rotation changed the tenant's CAs: %v", statuses(infos))
	}
	iss := f.issue(tid, LeafRequest{})
	if !iss.Chain[0].Equal(first.Cert) || !iss.Chain[1].Equal(root.Cert) {
		t.Error("existing tenant CA stopped signing while the root was offline")
	}
	if b, err := f.a.Bundle(f.ctx, tid); err != nil || !b[len(b)-1].Equal(root.Cert) {
		t.Errorf("bundle while offline: %v", err)
	}
	if _, err := f.a.VerifyDevice(f.ctx, []*x509.Certificate{iss.Leaf}); err != nil {
		t.Error(err)
	}

	// Import: garbage, a key of no root, then the right key, in either PEM form.
	wantErr(t, f.a.ImportRoot(f.ctx, []byte("not PEM")), ErrInvalid)
	wantErr(t, f.a.ImportRoot(f.ctx, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.Cert.Raw})), ErrInvalid)
	stranger, _ := x509.MarshalPKCS8PrivateKey(newKey(t))
	wantErr(t, f.a.ImportRoot(f.ctx, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: stranger})), ErrKeyMismatch)
	sec1, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.a.ImportRoot(f.ctx, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})); err != nil {
		t.Fatal(err)
	}
	if err := f.a.ImportRoot(f.ctx, keyPEM); err != nil {
		t.Fatalf("importing twice: %v", err)
	}
	if f.list("")[0].KeyOffline {
		t.Fatal("root still offline after import")
	}
	f.ensure(other.ID)
	f.ensure(tid)
	if got := statuses(f.list(tid)); !slices.Equal(got, []Status{StatusActive, StatusInactive}) {
		t.Errorf("rotation after import: %v", got)
	}
	for _, id := range []string{other.ID, tid} {
		infos := f.list(id)
		if err := infos[len(infos)-1].Cert.CheckSignatureFrom(root.Cert); err != nil {
			t.Errorf("new CA of %s not signed by the imported root: %v", id, err)
		}
	}
}

// TestRootRotation: when the root can no longer sign a two-year tenant CA, EnsureRoot makes a
// new one; the old root stays in the bundles of the tenant CAs it signed until they expire.
func TestRootRotation(t *testing.T) {
	f := sqliteFixture(t)
	tid := f.tenant.ID
	root1 := f.list("")[0].Cert
	f.clk.Set(root1.NotAfter.Add(-TenantLifetime - 10*day))
	f.ensure(tid)
	caA := f.list(tid)[0]
	f.clk.Set(caA.NotAfter.Add(-RotateBefore))
	wantErr(t, f.a.EnsureTenant(f.ctx, tid, ""), ErrNoRoot)
	if err := f.a.EnsureRoot(f.ctx); err != nil {
		t.Fatal(err)
	}
	roots := f.list("")
	if got := statuses(roots); !slices.Equal(got, []Status{StatusInactive, StatusActive}) {
		t.Fatalf("roots %v", got)
	}
	root2 := roots[1].Cert
	f.ensure(tid)
	infos := f.list(tid)
	if len(infos) != 2 || infos[1].Cert.CheckSignatureFrom(root2) != nil {
		t.Fatal("successor not signed by the new root")
	}
	b, err := f.a.Bundle(f.ctx, tid)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 4 || !b[0].Equal(caA.Cert) || !b[1].Equal(infos[1].Cert) || !b[2].Equal(root1) || !b[3].Equal(root2) {
		t.Errorf("bundle %v", subjects(b))
	}
	f.clk.Set(infos[1].ActiveFrom)
	iss := f.issue(tid, LeafRequest{})
	if !iss.Chain[1].Equal(root2) {
		t.Error("chain does not end at the new root")
	}
	f.clk.Set(caA.NotAfter)
	if b, _ := f.a.Bundle(f.ctx, tid); len(b) != 2 || !b[1].Equal(root2) {
		t.Errorf("bundle after the old CA expired: %v", subjects(b))
	}
}

func subjects(certs []*x509.Certificate) []string {
	var out []string
	for _, c := range certs {
		out = append(out, c.Subject.String())
	}
	return out
}

func TestSealRoundTripAndTampering(t *testing.T) {
	f := sqliteFixture(t)
	key := newKey(t)
	cert := &x509.Certificate{PublicKey: &key.PublicKey}
	sealed, err := f.a.seal("ca-1", key)
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.a.unseal("ca-1", sealed, cert)
	if err != nil || !got.Equal(key) {
		t.Fatalf("round trip: %v", err)
	}
	for i := range sealed {
		bad := bytes.Clone(sealed)
		bad[i] ^= 0x01
		if _, err := f.a.unseal("ca-1", bad, cert); !errors.Is(err, ErrSealedKey) {
			t.Fatalf("byte %d flipped: %v", i, err)
		}
	}
	for _, bad := range [][]byte{nil, sealed[:20], sealed[:len(sealed)-1], append(bytes.Clone(sealed), 0)} {
		if _, err := f.a.unseal("ca-1", bad, cert); !errors.Is(err, ErrSealedKey) {
			t.Errorf("%d bytes: %v", len(bad), err)
		}
	}
	if _, err := f.a.unseal("ca-2", sealed, cert); !errors.Is(err, ErrSealedKey) {
		t.Errorf("sealed for another CA: %v", err)
	}
	if _, err := f.authority(bytes.Repeat([]byte{1}, 32)).unseal("ca-1", sealed, cert); !errors.Is(err, ErrSealedKey) {
		t.Errorf("another KEK: %v", err)
	}
	other := &x509.Certificate{PublicKey: &newKey(t).PublicKey}
	if _, err := f.a.unseal("ca-1", sealed, other); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("key of another certificate: %v", err)
	}
	again, _ := f.a.seal("ca-1", key)
	if bytes.Equal(again, sealed) {
		t.Error("sealing twice gave the same ciphertext")
	}
}

// TestStoredKeyTampering alters sealed keys in the real store and opens them with a fresh
// Authority, and with one that holds the wrong KEK.
func TestStoredKeyTampering(t *testing.T) {
	f := sqliteFixture(t)
	tid := f.tenant.ID
	f.ensure(tid)
	other := f.newTenant("Fabrikam")
	f.ensure(other.ID)
	req := func() LeafRequest { return LeafRequest{PublicKey: &newKey(t).PublicKey, DeviceID: newDeviceID()} }
	leaf := f.issue(tid, req()).Leaf

	// Wrong KEK: nothing can be signed, but certificates can still be read and checked.
	wrong := f.authority(bytes.Repeat([]byte{7}, 32))
	if _, err := wrong.Issue(f.ctx, tid, req()); !errors.Is(err, ErrSealedKey) {
		t.Errorf("Issue with the wrong KEK: %v", err)
	}
	if err := wrong.EnsureTenant(f.ctx, f.newTenant("Third").ID, ""); !errors.Is(err, ErrSealedKey) {
		t.Errorf("EnsureTenant with the wrong KEK: %v", err)
	}
	if _, err := wrong.Bundle(f.ctx, tid); err != nil {
		t.Errorf("Bundle with the wrong KEK: %v", err)
	}
	if _, err := wrong.VerifyDevice(f.ctx, []*x509.Certificate{leaf}); err != nil {
		t.Errorf("VerifyDevice with the wrong KEK: %v", err)
	}

	a, b := caRecord(t, f.st, tid), caRecord(t, f.st, other.ID)
	for _, tc := range []struct {
		name   string
		sealed []byte
	}{
		{"a flipped bit", flip(a.KeyCiphertext, len(a.KeyCiphertext)/2)},
		{"another CA's sealed key", b.KeyCiphertext},
		{"truncated", a.KeyCiphertext[:len(a.KeyCiphertext)-4]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := a
			r.KeyCiphertext = tc.sealed
			if err := f.st.UpdateCACertificate(f.ctx, r); err != nil {
				t.Fatal(err)
			}
			if _, err := f.authority(f.kek).Issue(f.ctx, tid, req()); !errors.Is(err, ErrSealedKey) {
				t.Errorf("Issue: %v, want ErrSealedKey", err)
			}
		})
	}
	if err := f.st.UpdateCACertificate(f.ctx, a); err != nil {
		t.Fatal(err)
	}
	if _, err := f.authority(f.kek).Issue(f.ctx, tid, req()); err != nil {
		t.Errorf("after restoring the key: %v", err)
	}
}

func caRecord(t *testing.T, st store.Store, tenantID string) store.CACertificate {
	t.Helper()
	recs, err := st.ListCACertificates(t.Context(), tenantID)
	if err != nil || len(recs) != 1 {
		t.Fatalf("%d CAs, %v", len(recs), err)
	}
	return recs[0]
}

func flip(b []byte, i int) []byte {
	b = bytes.Clone(b)
	b[i] ^= 0x80
	return b
}

// TestPostgresStore runs the core of the CA on PostgreSQL.
func TestPostgresStore(t *testing.T) {
	f := newFixture(t, storetest.OpenPostgres(t))
	tid := f.tenant.ID
	f.ensure(tid)
	iss := f.issue(tid, LeafRequest{Measurements: []byte("{}")})
	if _, err := f.a.VerifyDevice(f.ctx, []*x509.Certificate{iss.Leaf}); err != nil {
		t.Fatal(err)
	}
	f.clk.Advance(TenantLifetime - RotateBefore)
	f.ensure(tid)
	if got := statuses(f.list(tid)); !slices.Equal(got, []Status{StatusActive, StatusInactive}) {
		t.Fatalf("%v", got)
	}
	var keyPEM []byte
	if err := f.a.ExportRoot(f.ctx, func(_, k []byte) error { keyPEM = bytes.Clone(k); return nil }); err != nil {
		t.Fatal(err)
	}
	wantErr(t, f.a.EnsureTenant(f.ctx, f.newTenant("Other").ID, ""), ErrRootOffline)
	if err := f.a.ImportRoot(f.ctx, keyPEM); err != nil {
		t.Fatal(err)
	}
}
