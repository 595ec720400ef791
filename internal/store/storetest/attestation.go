package storetest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/internal/store"
)

// uuid7 returns the n-th of a run of UUIDv7-shaped IDs that sort in the order of n.
func uuid7(n int) string { return fmt.Sprintf("01975f3a-0000-7000-8000-%012d", n) }

// hashOf returns the SHA-256 of s, as nonces are stored.
func hashOf(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// device reads a device of a tenant, failing the test on error.
func (w *world) device(tenantID, id string) store.Device {
	w.t.Helper()
	d, err := w.s.GetDevice(w.ctx, tenantID, id)
	must(w.t, err)
	return d
}

func newAttestation(tenantID, deviceID string, n int, result string) store.Attestation {
	a := store.Attestation{
		ID: uuid7(n), TenantID: tenantID, DeviceID: deviceID, Time: at(100 + n), Result: result,
		Message: fmt.Sprintf("attestation %d", n), Measurements: fmt.Sprintf(`{"agent":"%02x"}`, n),
	}
	if result == store.AttestationPass {
		a.OSReleaseID = "rel-1"
		a.CertificateSerial = fmt.Sprintf("%04x", n)
		a.CertificateExpires = a.Time.Add(24 * time.Hour)
	} else {
		a.Reason = "measurement-mismatch"
	}
	return a
}

func testGetDeviceByID(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	p := w.product(w.a.ID, "prod-1", "Thermostat")
	g := w.group(w.a.ID, p.ID, "group-1", "Field")
	da := w.claim(w.a.ID, g.ID, 1)
	da.ProductID = p.ID
	db := w.claim(w.b.ID, "", 2)
	for _, d := range []store.Device{da, db} {
		got, err := s.GetDeviceByID(ctx, d.ID)
		must(t, err)
		eq(t, got, norm(d))
	}
	_, err := s.GetDeviceByID(ctx, deviceIDOf(99))
	isErr(t, err, store.ErrNotFound)
	_, err = s.GetDeviceByID(ctx, "")
	isErr(t, err, store.ErrNotFound)
}

// testClaimIgnoresAttestationFields checks that a claim writes none of the fields attestation
// keeps, and that a claim again does not reset them.
func testClaimIgnoresAttestationFields(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	d := newDevice(w.a.ID, "", 1)
	d.Disabled, d.AKActivated, d.LastAttestation = true, at(1), at(2)
	d.LastResult, d.LastReason, d.LastMessage = store.AttestationFail, "forged", "forged"
	d.CertificateExpires = at(3)
	got, claimed, err := s.ClaimDevice(ctx, d)
	must(t, err)
	if !claimed {
		t.Fatal("a new device was not claimed")
	}
	want := norm(newDevice(w.a.ID, "", 1))
	eq(t, got, want)
	eq(t, w.device(w.a.ID, d.ID), want)

	must(t, s.SetDeviceAKActivated(ctx, d.ID, at(40)))
	must(t, s.RecordAttestation(ctx, newAttestation(w.a.ID, d.ID, 1, store.AttestationPass)))
	attested := w.device(w.a.ID, d.ID)
	again := newDevice(w.a.ID, "", 1)
	got, claimed, err = s.ClaimDevice(ctx, again)
	must(t, err)
	if claimed {
		t.Error("claimed = true for a device the tenant had claimed")
	}
	eq(t, got, attested)
	eq(t, w.device(w.a.ID, d.ID), attested)
}

func testSetDeviceDisabled(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	d := w.claim(w.a.ID, "", 1)
	db := w.claim(w.b.ID, "", 2)

	must(t, s.SetDeviceDisabled(ctx, w.a.ID, d.ID, true, at(40)))
	want := d
	want.Disabled, want.UpdatedAt = true, at(40)
	eq(t, w.device(w.a.ID, d.ID), norm(want))
	got, err := s.GetDeviceByID(ctx, d.ID)
	must(t, err)
	eq(t, got, norm(want))
	p, err := s.ListDevices(ctx, w.a.ID, store.DeviceFilter{}, store.ListOptions{})
	must(t, err)
	eq(t, p.Items, []store.Device{norm(want)})

	must(t, s.SetDeviceDisabled(ctx, w.a.ID, d.ID, true, at(41))) // again: not an error
	want.UpdatedAt = at(41)
	eq(t, w.device(w.a.ID, d.ID), norm(want))

	isErr(t, s.SetDeviceDisabled(ctx, w.b.ID, d.ID, false, at(50)), store.ErrNotFound) // another tenant's
	isErr(t, s.SetDeviceDisabled(ctx, w.a.ID, db.ID, true, at(50)), store.ErrNotFound)
	isErr(t, s.SetDeviceDisabled(ctx, w.a.ID, deviceIDOf(99), true, at(50)), store.ErrNotFound)
	isErr(t, s.SetDeviceDisabled(ctx, "tenant-x", d.ID, false, at(50)), store.ErrNotFound)
	eq(t, w.device(w.a.ID, d.ID), norm(want))
	eq(t, w.device(w.b.ID, db.ID), norm(db))

	must(t, s.SetDeviceDisabled(ctx, w.a.ID, d.ID, false, at(42)))
	want.Disabled, want.UpdatedAt = false, at(42)
	eq(t, w.device(w.a.ID, d.ID), norm(want))
}

func testSetDeviceAKActivated(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	d := w.claim(w.a.ID, "", 1)
	db := w.claim(w.b.ID, "", 2)

	must(t, s.SetDeviceAKActivated(ctx, d.ID, at(50)))
	want := d
	want.AKActivated = at(50) // and UpdatedAt is untouched
	eq(t, w.device(w.a.ID, d.ID), norm(want))
	must(t, s.SetDeviceAKActivated(ctx, d.ID, at(60))) // keeps the first time
	must(t, s.SetDeviceAKActivated(ctx, d.ID, at(10)))
	eq(t, w.device(w.a.ID, d.ID), norm(want))
	eq(t, w.device(w.b.ID, db.ID), norm(db))

	isErr(t, s.SetDeviceAKActivated(ctx, deviceIDOf(99), at(50)), store.ErrNotFound)
	_, err := s.GetDeviceByID(ctx, deviceIDOf(99))
	isErr(t, err, store.ErrNotFound)

	// Any tenant's device: the device-facing service knows no tenant.
	must(t, s.SetDeviceAKActivated(ctx, db.ID, at(70)))
	db.AKActivated = at(70)
	eq(t, w.device(w.b.ID, db.ID), norm(db))
}

func testRecordAttestation(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	d := w.claim(w.a.ID, "", 1)
	d2 := w.claim(w.a.ID, "", 2)
	db := w.claim(w.b.ID, "", 3)

	// check records a and checks the device then holds want.
	want := d
	check := func(a store.Attestation) {
		t.Helper()
		must(t, s.RecordAttestation(ctx, a))
		want.LastAttestation, want.LastResult, want.LastReason, want.LastMessage = a.Time, a.Result, a.Reason, a.Message
		if !a.CertificateExpires.IsZero() {
			want.CertificateExpires = a.CertificateExpires
		}
		eq(t, w.device(w.a.ID, d.ID), norm(want))
	}
	a1 := newAttestation(w.a.ID, d.ID, 1, store.AttestationPass)
	check(a1)
	eq(t, want.CertificateExpires, a1.CertificateExpires)
	a2 := newAttestation(w.a.ID, d.ID, 2, store.AttestationFail) // keeps a1's certificate expiry
	check(a2)
	eq(t, want.CertificateExpires, a1.CertificateExpires)
	eq(t, want.LastResult, store.AttestationFail)
	a3 := newAttestation(w.a.ID, d.ID, 3, store.AttestationPass)
	a3.Measurements = "" // may be empty
	check(a3)
	eq(t, want.CertificateExpires, a3.CertificateExpires)
	a4 := newAttestation(w.a.ID, d.ID, 4, store.AttestationFail)
	a4.CertificateExpires = at(500) // not zero: written, whatever the result
	check(a4)
	a5 := newAttestation(w.a.ID, d.ID, 5, store.AttestationPass)
	a5.Reason, a5.Message = "", "" // the latest fields are overwritten even when empty
	a5.CertificateExpires = time.Time{}
	check(a5)
	eq(t, want.LastReason, "")
	eq(t, want.CertificateExpires, a4.CertificateExpires)

	history := norm([]store.Attestation{a5, a4, a3, a2, a1})
	p, err := s.ListAttestations(ctx, w.a.ID, d.ID, store.ListOptions{})
	must(t, err)
	eq(t, p.Items, history)
	eq(t, p.Next, "")

	// Nothing is written by an attestation that fails.
	dup := newAttestation(w.a.ID, d2.ID, 1, store.AttestationPass) // IDs are global
	isErr(t, s.RecordAttestation(ctx, dup), store.ErrConflict)
	for _, bad := range []store.Attestation{
		newAttestation(w.b.ID, d.ID, 10, store.AttestationPass), // another tenant's device
		newAttestation(w.a.ID, db.ID, 11, store.AttestationPass),
		newAttestation(w.a.ID, deviceIDOf(99), 12, store.AttestationPass),
		newAttestation("tenant-x", d.ID, 13, store.AttestationPass),
	} {
		isErr(t, s.RecordAttestation(ctx, bad), store.ErrNotFound)
	}
	eq(t, w.device(w.a.ID, d.ID), norm(want))
	eq(t, w.device(w.a.ID, d2.ID), norm(d2))
	eq(t, w.device(w.b.ID, db.ID), norm(db))
	p, err = s.ListAttestations(ctx, w.a.ID, d.ID, store.ListOptions{})
	must(t, err)
	eq(t, p.Items, history)
	for _, dev := range []store.Device{d2, db} {
		p, err = s.ListAttestations(ctx, dev.TenantID, dev.ID, store.ListOptions{})
		must(t, err)
		eq(t, p.Items, []store.Attestation{})
		eq(t, p.Next, "")
	}
}

func testListAttestations(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	d1 := w.claim(w.a.ID, "", 1)
	d2 := w.claim(w.a.ID, "", 2)
	db := w.claim(w.b.ID, "", 3)
	var want1, want2 []string
	must(t, s.Update(ctx, func(tx store.Tx) error {
		for i := range 25 {
			d := []store.Device{d1, d2}[i%2]
			result := []string{store.AttestationPass, store.AttestationFail}[i%3%2]
			a := newAttestation(w.a.ID, d.ID, i, result)
			a.Time = at(200 - i%7) // the order is the IDs', whatever the times
			if err := tx.RecordAttestation(ctx, a); err != nil {
				return err
			}
			if d.ID == d1.ID {
				want1 = append([]string{uuid7(i)}, want1...)
			} else {
				want2 = append([]string{uuid7(i)}, want2...)
			}
		}
		return tx.RecordAttestation(ctx, newAttestation(w.b.ID, db.ID, 100, store.AttestationPass))
	}))
	list := func(tenantID, deviceID string) func(store.ListOptions) (store.Page[store.Attestation], error) {
		return func(opt store.ListOptions) (store.Page[store.Attestation], error) {
			return s.ListAttestations(ctx, tenantID, deviceID, opt)
		}
	}
	for _, limit := range []int{1, 4, 12, 13, 14, 100} {
		eq(t, pageAll(t, limit, list(w.a.ID, d1.ID), attestationID), want1)
		eq(t, pageAll(t, limit, list(w.a.ID, d2.ID), attestationID), want2)
	}
	eq(t, pageAll(t, 1, list(w.b.ID, db.ID), attestationID), []string{uuid7(100)})
	p, err := s.ListAttestations(ctx, w.a.ID, d1.ID, store.ListOptions{Limit: 2, After: uuid7(20)})
	must(t, err)
	eq(t, keys(p.Items, attestationID), []string{uuid7(18), uuid7(16)})
	if p.Next != uuid7(16) {
		t.Errorf("Next = %q, want the last ID of the page", p.Next)
	}

	for _, tc := range []struct{ tenant, device string }{
		{w.b.ID, d1.ID}, // another tenant's device
		{w.a.ID, db.ID},
		{w.a.ID, deviceIDOf(99)},
		{"tenant-x", d1.ID},
	} {
		_, err := s.ListAttestations(ctx, tc.tenant, tc.device, store.ListOptions{})
		isErr(t, err, store.ErrNotFound)
	}
}

// testAttestationHistoryOutlivesGroups checks that deleting a device's group and product, or
// the OS release an attestation names, keeps the device's history and latest fields.
func testAttestationHistoryOutlivesGroups(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	p := w.product(w.a.ID, "prod-1", "Thermostat")
	g := w.group(w.a.ID, p.ID, "group-1", "Field")
	w.group(w.a.ID, p.ID, "group-2", "Lab")
	d := w.claim(w.a.ID, g.ID, 1)
	must(t, s.CreateOSRelease(ctx, newRelease(w.a.ID, "rel-1", "1.0.0")))
	a1 := newAttestation(w.a.ID, d.ID, 1, store.AttestationPass)
	a2 := newAttestation(w.a.ID, d.ID, 2, store.AttestationFail)
	must(t, s.RecordAttestation(ctx, a1))
	must(t, s.RecordAttestation(ctx, a2))
	before := w.device(w.a.ID, d.ID)

	must(t, s.DeleteOSRelease(ctx, w.a.ID, "rel-1"))
	must(t, s.DeleteDeviceGroup(ctx, w.a.ID, "group-2"))
	must(t, s.SetDeviceGroup(ctx, w.a.ID, d.ID, "", at(300)))
	must(t, s.DeleteProduct(ctx, w.a.ID, p.ID))

	after := w.device(w.a.ID, d.ID)
	before.DeviceGroupID, before.ProductID, before.UpdatedAt = "", "", stored(at(300))
	eq(t, after, before)
	pg, err := s.ListAttestations(ctx, w.a.ID, d.ID, store.ListOptions{})
	must(t, err)
	eq(t, pg.Items, norm([]store.Attestation{a2, a1}))
	eq(t, pg.Items[1].OSReleaseID, "rel-1")
}

func testNonces(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	d := w.claim(w.a.ID, "", 1)
	d2 := w.claim(w.a.ID, "", 2)
	db := w.claim(w.b.ID, "", 3)

	n1 := store.Nonce{Hash: hashOf("n1"), DeviceID: d.ID, TenantID: w.a.ID, CreatedAt: at(60), ExpiresAt: at(65)}
	n2 := store.Nonce{Hash: hashOf("n2"), DeviceID: d.ID, TenantID: w.a.ID, CreatedAt: at(61), ExpiresAt: at(66)}
	expired := store.Nonce{Hash: hashOf("n4"), DeviceID: d2.ID, TenantID: w.a.ID, CreatedAt: at(-20), ExpiresAt: at(-10)}
	other := store.Nonce{Hash: hashOf("n5"), DeviceID: db.ID, TenantID: w.b.ID, CreatedAt: at(60), ExpiresAt: at(65)}
	for _, n := range []store.Nonce{n1, n2, expired, other} {
		must(t, s.CreateNonce(ctx, n))
	}

	// A nonce is stored once: storing its hash again is a conflict, for any device or tenant
	// (this is what makes a nonce single-use), and an expired one is no exception.
	for _, n := range []store.Nonce{n1, n2, expired, other} {
		isErr(t, s.CreateNonce(ctx, n), store.ErrConflict)
	}
	dup := other
	dup.DeviceID, dup.TenantID, dup.Hash = d2.ID, w.a.ID, n2.Hash
	isErr(t, s.CreateNonce(ctx, dup), store.ErrConflict)
	for _, bad := range []store.Nonce{
		{Hash: hashOf("x1"), DeviceID: d.ID, TenantID: w.b.ID, ExpiresAt: at(65)}, // another tenant's device
		{Hash: hashOf("x2"), DeviceID: db.ID, TenantID: w.a.ID, ExpiresAt: at(65)},
		{Hash: hashOf("x3"), DeviceID: deviceIDOf(99), TenantID: w.a.ID, ExpiresAt: at(65)},
		{Hash: hashOf("x4"), DeviceID: d.ID, TenantID: "tenant-x", ExpiresAt: at(65)},
	} {
		isErr(t, s.CreateNonce(ctx, bad), store.ErrNotFound)
	}
	for _, bad := range []store.Nonce{
		{Hash: hashOf("x5"), DeviceID: d.ID, TenantID: w.a.ID},                // no expiry
		{Hash: nil, DeviceID: d.ID, TenantID: w.a.ID, ExpiresAt: at(65)},      // no hash
		{Hash: []byte{}, DeviceID: d.ID, TenantID: w.a.ID, ExpiresAt: at(65)}, // no hash
	} {
		if err := s.CreateNonce(ctx, bad); err == nil {
			t.Errorf("created nonce %+v", bad)
		}
	}
	// The refused nonces were not stored: their hashes are free.
	for _, h := range []string{"x1", "x2", "x3", "x4", "x5"} {
		must(t, s.CreateNonce(ctx, store.Nonce{Hash: hashOf(h), DeviceID: d.ID, TenantID: w.a.ID, ExpiresAt: at(65)}))
	}
}

func testDeleteExpiredNonces(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	d := w.claim(w.a.ID, "", 1)
	db := w.claim(w.b.ID, "", 2)
	nonce := func(n int, dev store.Device, expires time.Time) store.Nonce {
		return store.Nonce{Hash: hashOf(fmt.Sprint("nonce ", n)), DeviceID: dev.ID, TenantID: dev.TenantID,
			CreatedAt: at(0), ExpiresAt: expires}
	}
	ns := []store.Nonce{
		nonce(0, d, at(100)),
		nonce(1, db, at(100).Add(-time.Microsecond)),
		nonce(2, d, at(101)),
		nonce(3, db, at(102)),
		nonce(4, d, at(102).Add(time.Microsecond)),
		nonce(5, d, at(103)),
	}
	for _, n := range ns {
		must(t, s.CreateNonce(ctx, n))
	}
	for _, tc := range []struct {
		before time.Time
		want   int
	}{
		{at(0), 0},
		{at(100).Add(-time.Microsecond), 0},
		{at(100), 1},       // nonce 1, of any tenant
		{at(100), 0},       // again: nothing left to delete
		{at(102), 2},       // nonces 0 and 2; 3 expires at, not before
		{at(102).UTC(), 0}, // in any time zone
		{at(102).Add(time.Microsecond), 1},
		{time.Time{}, 0},
	} {
		n, err := s.DeleteExpiredNonces(ctx, tc.before)
		must(t, err)
		if n != tc.want {
			t.Errorf("DeleteExpiredNonces(%v) = %d, want %d", tc.before, n, tc.want)
		}
	}
	// Storing a nonce again conflicts while it is kept and succeeds once it was deleted.
	for i, n := range ns {
		err := s.CreateNonce(ctx, n)
		if i >= 4 {
			isErr(t, err, store.ErrConflict)
		} else {
			must(t, err)
		}
	}
}

// testConcurrentCreateNonce: of concurrent stores of one nonce (an attestation and its
// replay), exactly one succeeds; the others conflict.
func testConcurrentCreateNonce(t *testing.T, s store.Store) {
	w := newWorld(t, s)
	d := w.claim(w.a.ID, "", 1)
	for round := range 5 {
		n := store.Nonce{Hash: hashOf(fmt.Sprint("race ", round)), DeviceID: d.ID, TenantID: w.a.ID,
			CreatedAt: at(0), ExpiresAt: at(5)}
		const goroutines = 8
		errs := concurrently(t, goroutines, func(ctx context.Context, i int) error {
			return s.CreateNonce(ctx, n)
		})
		winners := 0
		for i, err := range errs {
			switch {
			case err == nil:
				winners++
			case !errors.Is(err, store.ErrConflict):
				t.Errorf("round %d, goroutine %d: got %v, want nil or ErrConflict", round, i, err)
			}
		}
		if winners != 1 {
			t.Fatalf("round %d: the nonce was stored %d times, want once", round, winners)
		}
	}
}

func newRelease(tenantID, id, version string) store.OSRelease {
	return store.OSRelease{ID: id, TenantID: tenantID, Version: version, Description: "release " + version,
		Measurements: map[string]string{
			"os-bundle": fmt.Sprintf("%x", hashOf("os "+version)),
			"agent":     fmt.Sprintf("%x", hashOf("agent "+version)),
			"policy":    fmt.Sprintf("%x", hashOf("policy "+version)),
		},
		CreatedBy: "user-alice", CreatedAt: at(50)}
}

func testOSReleases(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	r1 := newRelease(w.a.ID, "rel-1", "1.0.0")
	r2 := newRelease(w.a.ID, "rel-2", "V2")
	r2.Measurements = nil
	r3 := newRelease(w.a.ID, "rel-3", "v2") // versions are not case-folded
	r3.Measurements = map[string]string{}
	r4 := newRelease(w.b.ID, "rel-4", "1.0.0") // versions are unique per tenant only
	r4.Measurements = map[string]string{"os-bundle": "00", `quote "and" \ slash`: "ünïcode"}
	r4.SecurityVersion = 1 << 20
	r2.SecurityVersion = 3
	for _, r := range []store.OSRelease{r3, r1, r4, r2} {
		must(t, s.CreateOSRelease(ctx, r))
	}
	for _, r := range []store.OSRelease{r1, r2, r3, r4} {
		got, err := s.GetOSRelease(ctx, r.TenantID, r.ID)
		must(t, err)
		eq(t, got, norm(r))
	}
	got, err := s.GetOSRelease(ctx, w.a.ID, r1.ID)
	must(t, err)
	eq(t, got.Measurements, r1.Measurements)

	_, err = s.GetOSRelease(ctx, w.b.ID, r1.ID) // another tenant's
	isErr(t, err, store.ErrNotFound)
	_, err = s.GetOSRelease(ctx, w.a.ID, "rel-x")
	isErr(t, err, store.ErrNotFound)

	isErr(t, s.CreateOSRelease(ctx, newRelease(w.a.ID, "rel-5", "1.0.0")), store.ErrConflict)
	isErr(t, s.CreateOSRelease(ctx, newRelease(w.b.ID, r1.ID, "3.0")), store.ErrConflict) // IDs are global
	isErr(t, s.CreateOSRelease(ctx, newRelease("tenant-x", "rel-6", "3.0")), store.ErrNotFound)
	for _, id := range []string{"rel-5", "rel-6"} {
		for _, tenant := range []string{w.a.ID, w.b.ID, "tenant-x"} {
			_, err := s.GetOSRelease(ctx, tenant, id)
			isErr(t, err, store.ErrNotFound)
		}
	}

	p, err := s.ListOSReleases(ctx, w.a.ID, store.ListOptions{})
	must(t, err)
	eq(t, p.Items, norm([]store.OSRelease{r1, r2, r3}))
	eq(t, p.Next, "")
	list := func(tenant string) func(store.ListOptions) (store.Page[store.OSRelease], error) {
		return func(opt store.ListOptions) (store.Page[store.OSRelease], error) {
			return s.ListOSReleases(ctx, tenant, opt)
		}
	}
	for _, limit := range []int{1, 2, 3, 4} {
		eq(t, pageAll(t, limit, list(w.a.ID), releaseID), []string{r1.ID, r2.ID, r3.ID})
	}
	eq(t, pageAll(t, 1, list(w.b.ID), releaseID), []string{r4.ID})
	eq(t, pageAll(t, 1, list("tenant-x"), releaseID), []string{})

	isErr(t, s.DeleteOSRelease(ctx, w.b.ID, r1.ID), store.ErrNotFound) // another tenant's
	isErr(t, s.DeleteOSRelease(ctx, w.a.ID, "rel-x"), store.ErrNotFound)
	must(t, s.DeleteOSRelease(ctx, w.a.ID, r1.ID))
	_, err = s.GetOSRelease(ctx, w.a.ID, r1.ID)
	isErr(t, err, store.ErrNotFound)
	isErr(t, s.DeleteOSRelease(ctx, w.a.ID, r1.ID), store.ErrNotFound)
	eq(t, pageAll(t, 1, list(w.a.ID), releaseID), []string{r2.ID, r3.ID})
	got, err = s.GetOSRelease(ctx, w.b.ID, r4.ID)
	must(t, err)
	eq(t, got, norm(r4))
	// Its version and ID are free again.
	must(t, s.CreateOSRelease(ctx, newRelease(w.a.ID, r1.ID, "1.0.0")))
}

func testCACertificates(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	ca := func(tenantID, id string, created int) store.CACertificate {
		return store.CACertificate{ID: id, TenantID: tenantID,
			CertDER: []byte("cert " + id), KeyCiphertext: []byte("sealed key of " + id),
			NotBefore: at(created), NotAfter: at(created).Add(10 * 365 * 24 * time.Hour),
			ActiveFrom: at(created), CreatedAt: at(created)}
	}
	root1 := ca("", "ca-root-1", 0)
	root2 := ca("", "ca-root-0", 5) // a successor, made early: activated later, its key offline
	root2.ActiveFrom, root2.KeyCiphertext = at(1000), nil
	a1 := ca(w.a.ID, "ca-a-1", 3)
	a2 := ca(w.a.ID, "ca-a-2", 1) // older than a1, though its ID sorts after
	a0 := ca(w.a.ID, "ca-a-0", 3) // as old as a1: the ID decides
	a0.RevokedAt, a0.CertDER = at(4), []byte{}
	aZero := ca(w.a.ID, "ca-a-9", 0)
	aZero.CreatedAt = time.Time{} // a zero time sorts first
	b1 := ca(w.b.ID, "ca-b-1", 2)
	for _, c := range []store.CACertificate{a1, root2, b1, a2, root1, a0, aZero} {
		must(t, s.CreateCACertificate(ctx, c))
	}

	for _, tc := range []struct {
		tenant string
		want   []store.CACertificate
	}{
		{"", []store.CACertificate{root1, root2}},
		{w.a.ID, []store.CACertificate{aZero, a2, a0, a1}},
		{w.b.ID, []store.CACertificate{b1}},
		{"tenant-x", []store.CACertificate{}},
	} {
		got, err := s.ListCACertificates(ctx, tc.tenant)
		must(t, err)
		eq(t, got, norm(tc.want))
	}
	got, err := s.ListCACertificates(ctx, "")
	must(t, err)
	if got[0].TenantID != "" || got[1].KeyCiphertext != nil {
		t.Errorf("root certificates came back as %+v", got)
	}

	// IDs are unique across tenants and the root.
	isErr(t, s.CreateCACertificate(ctx, ca(w.a.ID, root1.ID, 9)), store.ErrConflict)
	isErr(t, s.CreateCACertificate(ctx, ca("", a1.ID, 9)), store.ErrConflict)
	isErr(t, s.CreateCACertificate(ctx, ca(w.b.ID, a1.ID, 9)), store.ErrConflict)
	isErr(t, s.CreateCACertificate(ctx, ca(w.a.ID, a1.ID, 9)), store.ErrConflict)
	isErr(t, s.CreateCACertificate(ctx, ca("tenant-x", "ca-x-1", 9)), store.ErrNotFound)
	for _, tc := range []struct {
		tenant string
		want   []string
	}{
		{"", []string{root1.ID, root2.ID}},
		{w.a.ID, []string{aZero.ID, a2.ID, a0.ID, a1.ID}},
		{w.b.ID, []string{b1.ID}},
		{"tenant-x", []string{}},
	} {
		got, err := s.ListCACertificates(ctx, tc.tenant)
		must(t, err)
		eq(t, keys(got, caID), tc.want)
	}
}

func testUpdateCACertificate(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	root := store.CACertificate{ID: "ca-root", CertDER: []byte("root"), KeyCiphertext: []byte("root key"),
		NotBefore: at(0), NotAfter: at(1000), ActiveFrom: at(0), CreatedAt: at(0)}
	next := store.CACertificate{ID: "ca-root-next", CertDER: []byte("next"),
		NotBefore: at(10), NotAfter: at(2000), ActiveFrom: at(900), CreatedAt: at(10)}
	ta := store.CACertificate{ID: "ca-a", TenantID: w.a.ID, CertDER: []byte("a"), KeyCiphertext: []byte("a key"),
		NotBefore: at(1), NotAfter: at(500), ActiveFrom: at(1), CreatedAt: at(1)}
	for _, c := range []store.CACertificate{root, next, ta} {
		must(t, s.CreateCACertificate(ctx, c))
	}
	list := func(tenantID string) []store.CACertificate {
		t.Helper()
		got, err := s.ListCACertificates(ctx, tenantID)
		must(t, err)
		return got
	}

	// The successor's key comes online and it activates early; only the three fields change.
	upd := next
	upd.KeyCiphertext, upd.ActiveFrom = []byte("next key"), at(800)
	upd.CertDER, upd.NotBefore, upd.NotAfter, upd.CreatedAt = []byte("ignored"), at(99), at(99), at(99)
	must(t, s.UpdateCACertificate(ctx, upd))
	next.KeyCiphertext, next.ActiveFrom = upd.KeyCiphertext, upd.ActiveFrom
	eq(t, list(""), norm([]store.CACertificate{root, next}))

	// The old root is revoked and its key dropped.
	upd = root
	upd.KeyCiphertext, upd.RevokedAt = nil, at(850)
	must(t, s.UpdateCACertificate(ctx, upd))
	root.KeyCiphertext, root.RevokedAt = nil, at(850)
	eq(t, list(""), norm([]store.CACertificate{root, next}))
	if got := list("")[0]; got.KeyCiphertext != nil {
		t.Errorf("dropped key came back as %#v", got.KeyCiphertext)
	}
	upd.KeyCiphertext = []byte{} // empty is nil too
	must(t, s.UpdateCACertificate(ctx, upd))
	eq(t, list(""), norm([]store.CACertificate{root, next}))

	// Fields are written as given: a zero RevokedAt un-revokes.
	upd = ta
	upd.RevokedAt, upd.ActiveFrom = at(600), time.Time{}
	must(t, s.UpdateCACertificate(ctx, upd))
	ta.RevokedAt, ta.ActiveFrom = at(600), time.Time{}
	eq(t, list(w.a.ID), norm([]store.CACertificate{ta}))
	upd.RevokedAt = time.Time{}
	must(t, s.UpdateCACertificate(ctx, upd))
	ta.RevokedAt = time.Time{}
	eq(t, list(w.a.ID), norm([]store.CACertificate{ta}))

	// A certificate is found by its ID and its tenant ("" for the root).
	for _, bad := range []store.CACertificate{
		{ID: ta.ID, TenantID: w.b.ID, KeyCiphertext: []byte("stolen")},
		{ID: ta.ID, TenantID: "", KeyCiphertext: []byte("stolen")},
		{ID: root.ID, TenantID: w.a.ID, KeyCiphertext: []byte("stolen")},
		{ID: "ca-x", TenantID: "", KeyCiphertext: []byte("stolen")},
		{ID: "ca-x", TenantID: w.a.ID, KeyCiphertext: []byte("stolen")},
	} {
		isErr(t, s.UpdateCACertificate(ctx, bad), store.ErrNotFound)
	}
	eq(t, list(""), norm([]store.CACertificate{root, next}))
	eq(t, list(w.a.ID), norm([]store.CACertificate{ta}))
	eq(t, list(w.b.ID), []store.CACertificate{})
}

func testDeviceGroupCertLifetime(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	p := w.product(w.a.ID, "prod-1", "Thermostat")
	g1 := w.group(w.a.ID, p.ID, "group-1", "Field") // 0: the service default
	g2 := newGroup(w.a.ID, p.ID, "group-2", "Lab")
	g2.CertLifetime = 72 * time.Hour
	must(t, s.CreateDeviceGroup(ctx, g2))
	check := func(gs ...store.DeviceGroup) {
		t.Helper()
		for _, g := range gs {
			got, err := s.GetDeviceGroup(ctx, w.a.ID, g.ID)
			must(t, err)
			eq(t, got, norm(g))
		}
		pg, err := s.ListDeviceGroups(ctx, w.a.ID, store.DeviceGroupFilter{}, store.ListOptions{})
		must(t, err)
		eq(t, pg.Items, norm(gs))
	}
	check(g1, g2)
	eq(t, g1.CertLifetime, 0)

	g1.CertLifetime, g1.UpdatedAt = 90*time.Minute, at(100)
	must(t, s.UpdateDeviceGroup(ctx, g1))
	g2.CertLifetime, g2.UpdatedAt = 0, at(101)
	must(t, s.UpdateDeviceGroup(ctx, g2))
	check(g1, g2)

	// Whole seconds are stored.
	g1.CertLifetime = time.Hour + 999*time.Millisecond
	must(t, s.UpdateDeviceGroup(ctx, g1))
	g1.CertLifetime = time.Hour
	check(g1, g2)
}

// testUpdateRollsBackAttestation checks that the attestation methods write nothing when the
// transaction around them fails.
func testUpdateRollsBackAttestation(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	d := w.claim(w.a.ID, "", 1)
	n := store.Nonce{Hash: hashOf("kept"), DeviceID: d.ID, TenantID: w.a.ID, ExpiresAt: at(10)}
	must(t, s.CreateNonce(ctx, n))
	errStop := errors.New("stop")
	err := s.Update(ctx, func(tx store.Tx) error {
		for _, err := range []error{
			tx.SetDeviceDisabled(ctx, w.a.ID, d.ID, true, at(40)),
			tx.SetDeviceAKActivated(ctx, d.ID, at(41)),
			tx.RecordAttestation(ctx, newAttestation(w.a.ID, d.ID, 1, store.AttestationPass)),
			tx.CreateNonce(ctx, store.Nonce{Hash: hashOf("new"), DeviceID: d.ID, TenantID: w.a.ID, ExpiresAt: at(10)}),
			tx.CreateOSRelease(ctx, newRelease(w.a.ID, "rel-1", "1.0")),
			tx.CreateCACertificate(ctx, store.CACertificate{ID: "ca-1", CreatedAt: at(0)}),
		} {
			if err != nil {
				return err
			}
		}
		if deleted, err := tx.DeleteExpiredNonces(ctx, at(11)); err != nil || deleted != 2 {
			return fmt.Errorf("deleting the nonces in the transaction: %d, %w", deleted, err)
		}
		// The transaction sees its own writes.
		got, err := tx.GetDeviceByID(ctx, d.ID)
		if err != nil {
			return err
		}
		if !got.Disabled || got.LastResult != store.AttestationPass {
			return fmt.Errorf("the transaction does not see its writes: %+v", got)
		}
		return errStop
	})
	if !errors.Is(err, errStop) {
		t.Fatalf("Update returned %v, want the function's error", err)
	}
	eq(t, w.device(w.a.ID, d.ID), norm(d))
	p, err := s.ListAttestations(ctx, w.a.ID, d.ID, store.ListOptions{})
	must(t, err)
	eq(t, p.Items, []store.Attestation{})
	rs, err := s.ListOSReleases(ctx, w.a.ID, store.ListOptions{})
	must(t, err)
	eq(t, rs.Items, []store.OSRelease{})
	cs, err := s.ListCACertificates(ctx, "")
	must(t, err)
	eq(t, cs, []store.CACertificate{})
	isErr(t, s.CreateNonce(ctx, n), store.ErrConflict)                                                                 // the deleted nonce is back
	must(t, s.CreateNonce(ctx, store.Nonce{Hash: hashOf("new"), DeviceID: d.ID, TenantID: w.a.ID, ExpiresAt: at(10)})) // the new one is not
}

func testRaiseDeviceSecurityCounter(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	d := w.claim(w.a.ID, "", 1)
	db := w.claim(w.b.ID, "", 2)
	eq(t, w.device(w.a.ID, d.ID).SecurityCounter, uint64(0))

	must(t, s.RaiseDeviceSecurityCounter(ctx, w.a.ID, d.ID, 3))
	want := d
	want.SecurityCounter = 3
	eq(t, w.device(w.a.ID, d.ID), norm(want)) // UpdatedAt untouched
	got, err := s.GetDeviceByID(ctx, d.ID)
	must(t, err)
	eq(t, got.SecurityCounter, uint64(3))

	must(t, s.RaiseDeviceSecurityCounter(ctx, w.a.ID, d.ID, 2)) // lower: nothing, no error
	must(t, s.RaiseDeviceSecurityCounter(ctx, w.a.ID, d.ID, 3)) // the same: nothing, no error
	eq(t, w.device(w.a.ID, d.ID), norm(want))
	must(t, s.RaiseDeviceSecurityCounter(ctx, w.a.ID, d.ID, 1<<20))
	want.SecurityCounter = 1 << 20
	eq(t, w.device(w.a.ID, d.ID), norm(want))

	isErr(t, s.RaiseDeviceSecurityCounter(ctx, w.b.ID, d.ID, 9), store.ErrNotFound) // another tenant's
	isErr(t, s.RaiseDeviceSecurityCounter(ctx, w.a.ID, deviceIDOf(99), 9), store.ErrNotFound)
	if err := s.RaiseDeviceSecurityCounter(ctx, w.a.ID, d.ID, 1<<63); err == nil {
		t.Fatal("a counter above the largest SQL integer was accepted")
	}
	eq(t, w.device(w.a.ID, d.ID), norm(want))
	eq(t, w.device(w.b.ID, db.ID), norm(db))
	// In a transaction too.
	must(t, s.Update(ctx, func(tx store.Tx) error { return tx.RaiseDeviceSecurityCounter(ctx, w.b.ID, db.ID, 5) }))
	eq(t, w.device(w.b.ID, db.ID).SecurityCounter, uint64(5))
}
