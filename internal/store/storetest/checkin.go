package storetest

import (
	"fmt"
	"testing"

	"github.com/rampart-iot/rampart/internal/store"
)

func testDeviceReports(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	w.product(w.a.ID, "prod-1", "Thermostat")
	w.group(w.a.ID, "prod-1", "group-1", "Field")
	w.claim(w.a.ID, "group-1", 1)
	w.claim(w.b.ID, "", 2)

	_, err := s.GetDeviceReport(ctx, w.a.ID, deviceIDOf(1))
	isErr(t, err, store.ErrNotFound) // never checked in
	r1 := store.DeviceReport{TenantID: w.a.ID, DeviceID: deviceIDOf(1), Report: []byte(`{"images":[]}`), CheckedInAt: at(40)}
	must(t, s.PutDeviceReport(ctx, r1))
	got, err := s.GetDeviceReport(ctx, w.a.ID, deviceIDOf(1))
	must(t, err)
	r1.CheckedInAt = stored(r1.CheckedInAt)
	eq(t, got, r1)

	// A later report replaces the earlier one.
	r2 := store.DeviceReport{TenantID: w.a.ID, DeviceID: deviceIDOf(1), Report: []byte(`{"images":[{"x":1}]}`), CheckedInAt: at(41)}
	must(t, s.PutDeviceReport(ctx, r2))
	got, err = s.GetDeviceReport(ctx, w.a.ID, deviceIDOf(1))
	must(t, err)
	r2.CheckedInAt = stored(r2.CheckedInAt)
	eq(t, got, r2)

	// Another tenant's device, or one that does not exist: not found, nothing written.
	isErr(t, s.PutDeviceReport(ctx, store.DeviceReport{TenantID: w.a.ID, DeviceID: deviceIDOf(2), Report: []byte(`{}`)}), store.ErrNotFound)
	isErr(t, s.PutDeviceReport(ctx, store.DeviceReport{TenantID: w.a.ID, DeviceID: deviceIDOf(9), Report: []byte(`{}`)}), store.ErrNotFound)
	_, err = s.GetDeviceReport(ctx, w.b.ID, deviceIDOf(2))
	isErr(t, err, store.ErrNotFound)
	_, err = s.GetDeviceReport(ctx, w.b.ID, deviceIDOf(1)) // tenant b cannot read a's device
	isErr(t, err, store.ErrNotFound)
}

func newTUF(tenantID, repo, role string, version int64, expires int) store.TUFMetadata {
	return store.TUFMetadata{TenantID: tenantID, Repository: repo, Role: role, Version: version,
		Body: []byte(fmt.Sprintf(`{"signed":{"_type":%q,"version":%d}}`, role, version)), ExpiresAt: at(expires), CreatedAt: at(1)}
}

func storedTUF(m store.TUFMetadata) store.TUFMetadata {
	m.ExpiresAt, m.CreatedAt = stored(m.ExpiresAt), stored(m.CreatedAt)
	return m
}

func testTUFMetadata(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	dir := store.TUFDirectorPrefix + "group-1"
	rows := []store.TUFMetadata{
		newTUF(w.a.ID, store.TUFImages, store.TUFRoot, 1, 500),
		newTUF(w.a.ID, store.TUFImages, store.TUFRoot, 2, 600),
		newTUF(w.a.ID, store.TUFImages, store.TUFTimestamp, 7, 50),
		newTUF(w.a.ID, dir, store.TUFRoot, 1, 500),
		newTUF(w.b.ID, store.TUFImages, store.TUFRoot, 3, 500),
	}
	for _, m := range rows {
		must(t, s.PutTUFMetadata(ctx, m))
	}
	get := func(tenant, repo, role string, v int64) (store.TUFMetadata, error) {
		return s.GetTUFMetadata(ctx, tenant, repo, role, v)
	}
	m, err := get(w.a.ID, store.TUFImages, store.TUFRoot, 1)
	must(t, err)
	eq(t, m, storedTUF(rows[0]))
	m, err = get(w.a.ID, store.TUFImages, store.TUFRoot, 0) // newest
	must(t, err)
	eq(t, m, storedTUF(rows[1]))
	m, err = get(w.a.ID, dir, store.TUFRoot, 0)
	must(t, err)
	eq(t, m, storedTUF(rows[3]))
	m, err = get(w.b.ID, store.TUFImages, store.TUFRoot, 0)
	must(t, err)
	eq(t, m, storedTUF(rows[4]))

	for _, c := range []struct {
		tenant, repo, role string
		v                  int64
	}{
		{w.a.ID, store.TUFImages, store.TUFRoot, 3},
		{w.a.ID, store.TUFImages, store.TUFSnapshot, 0},
		{w.a.ID, store.TUFDirectorPrefix + "group-2", store.TUFRoot, 0},
		{w.b.ID, dir, store.TUFRoot, 0},
		{"tenant-x", store.TUFImages, store.TUFRoot, 0},
	} {
		_, err := get(c.tenant, c.repo, c.role, c.v)
		isErr(t, err, store.ErrNotFound)
	}

	// A version is never rewritten, and the first one stays.
	again := newTUF(w.a.ID, store.TUFImages, store.TUFRoot, 2, 900)
	again.Body = []byte(`{"other":true}`)
	isErr(t, s.PutTUFMetadata(ctx, again), store.ErrConflict)
	m, err = get(w.a.ID, store.TUFImages, store.TUFRoot, 2)
	must(t, err)
	eq(t, m, storedTUF(rows[1]))
	// A tenant that does not exist.
	isErr(t, s.PutTUFMetadata(ctx, newTUF("tenant-x", store.TUFImages, store.TUFRoot, 1, 5)), store.ErrNotFound)
}

func testListTUFExpiring(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	dir := store.TUFDirectorPrefix + "group-1"
	for _, m := range []store.TUFMetadata{
		newTUF(w.a.ID, store.TUFImages, store.TUFTimestamp, 1, 10), // superseded by version 2
		newTUF(w.a.ID, store.TUFImages, store.TUFTimestamp, 2, 60),
		newTUF(w.a.ID, dir, store.TUFTimestamp, 1, 30),
		newTUF(w.b.ID, store.TUFImages, store.TUFTimestamp, 4, 20),
		newTUF(w.b.ID, store.TUFImages, store.TUFTimestamp, 5, 200), // newest of b: not expiring
		newTUF(w.a.ID, store.TUFImages, store.TUFSnapshot, 1, 5),
	} {
		must(t, s.PutTUFMetadata(ctx, m))
	}
	list := func(role string, before, limit int) []string {
		t.Helper()
		got, err := s.ListTUFExpiring(ctx, role, at(before), limit)
		must(t, err)
		out := []string{}
		for _, m := range got {
			out = append(out, fmt.Sprintf("%s %s %d", m.TenantID, m.Repository, m.Version))
		}
		return out
	}
	eq(t, list(store.TUFTimestamp, 100, 10), []string{"tenant-a " + dir + " 1", "tenant-a images 2"})
	eq(t, list(store.TUFTimestamp, 100, 1), []string{"tenant-a " + dir + " 1"})
	eq(t, list(store.TUFTimestamp, 30, 10), []string{}) // expires_at must be before
	eq(t, list(store.TUFTimestamp, 1000, 10), []string{"tenant-a " + dir + " 1", "tenant-a images 2", "tenant-b images 5"})
	eq(t, list(store.TUFSnapshot, 100, 10), []string{"tenant-a images 1"})
	eq(t, list(store.TUFTargets, 100, 10), []string{})
}
