package storetest

import (
	"errors"
	"testing"

	"github.com/rampart-iot/rampart/internal/store"
)

// testPolicyGeneration checks that every write to a tenant's OS releases and device groups
// raises the tenant's policy generation and no other tenant's, that a refused or rolled-back
// write does not, and that GetDeviceByIDWithGeneration reads it with the device.
func testPolicyGeneration(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	gen := func(tenantID string) int64 {
		t.Helper()
		g, err := s.PolicyGeneration(ctx, tenantID)
		must(t, err)
		return g
	}
	_, err := s.PolicyGeneration(ctx, "tenant-x")
	isErr(t, err, store.ErrNotFound)

	// raises checks that write raises tenant a's generation and leaves b's alone.
	raises := func(what string, write func() error) {
		t.Helper()
		a, b := gen(w.a.ID), gen(w.b.ID)
		must(t, write())
		if got := gen(w.a.ID); got <= a {
			t.Fatalf("%s: tenant a's policy generation %d, was %d", what, got, a)
		}
		if got := gen(w.b.ID); got != b {
			t.Fatalf("%s: tenant b's policy generation changed from %d to %d", what, b, got)
		}
	}
	// keeps checks that write, which must fail with target, leaves a's generation alone.
	keeps := func(what string, target error, write func() error) {
		t.Helper()
		a := gen(w.a.ID)
		isErr(t, write(), target)
		if got := gen(w.a.ID); got != a {
			t.Fatalf("%s, refused: tenant a's policy generation changed from %d to %d", what, a, got)
		}
	}
	p := w.product(w.a.ID, "prod-1", "Thermostat")
	w.product(w.a.ID, "prod-2", "Sensor")
	g := newGroup(w.a.ID, p.ID, "group-1", "Field")
	raises("create device group", func() error { return s.CreateDeviceGroup(ctx, g) })
	g.OSFeed = store.OSFeedRetailEval
	raises("update device group", func() error { return s.UpdateDeviceGroup(ctx, g) })
	keeps("update a missing group", store.ErrNotFound, func() error {
		return s.UpdateDeviceGroup(ctx, newGroup(w.a.ID, p.ID, "group-x", "Lab"))
	})
	keeps("create a group whose name is taken", store.ErrConflict, func() error {
		return s.CreateDeviceGroup(ctx, newGroup(w.a.ID, p.ID, "group-2", "Field"))
	})
	raises("delete device group", func() error { return s.DeleteDeviceGroup(ctx, w.a.ID, g.ID) })
	keeps("delete a missing group", store.ErrNotFound, func() error { return s.DeleteDeviceGroup(ctx, w.a.ID, g.ID) })
	w.group(w.a.ID, "prod-2", "group-3", "Lab")
	raises("delete product with its groups", func() error { return s.DeleteProduct(ctx, w.a.ID, "prod-2") })

	r := newRelease(w.a.ID, "rel-1", "1.0.0")
	raises("create OS release", func() error { return s.CreateOSRelease(ctx, r) })
	keeps("create a release whose version is taken", store.ErrConflict, func() error {
		return s.CreateOSRelease(ctx, newRelease(w.a.ID, "rel-2", "1.0.0"))
	})
	for _, feed := range []store.OSFeed{store.OSFeedRetailEval, store.OSFeedRetail, store.FeedWithdrawn} {
		raises("set OS release feed "+string(feed), func() error { return s.SetOSReleaseFeed(ctx, w.a.ID, r.ID, feed) })
	}
	keeps("publish another tenant's release", store.ErrNotFound, func() error {
		return s.SetOSReleaseFeed(ctx, w.b.ID, r.ID, store.OSFeedRetail)
	})
	raises("delete OS release", func() error { return s.DeleteOSRelease(ctx, w.a.ID, r.ID) })
	keeps("delete a missing release", store.ErrNotFound, func() error { return s.DeleteOSRelease(ctx, w.a.ID, r.ID) })

	// A rolled-back transaction takes its raise with it.
	before := gen(w.a.ID)
	errStop := errors.New("stop")
	if err := s.Update(ctx, func(tx store.Tx) error {
		must(t, tx.CreateOSRelease(ctx, newRelease(w.a.ID, "rel-3", "3.0.0")))
		if got, err := tx.PolicyGeneration(ctx, w.a.ID); err != nil || got <= before {
			t.Errorf("inside the transaction: policy generation %d (%v), was %d", got, err, before)
		}
		return errStop
	}); !errors.Is(err, errStop) {
		t.Fatalf("Update: %v, want the transaction's own error", err)
	}
	if got := gen(w.a.ID); got != before {
		t.Fatalf("a rolled-back release changed the policy generation from %d to %d", before, got)
	}

	// The device and its tenant's generation, read together.
	d := w.claim(w.a.ID, "", 1)
	got, dgen, err := s.GetDeviceByIDWithGeneration(ctx, d.ID)
	must(t, err)
	eq(t, got, norm(d))
	if dgen != gen(w.a.ID) {
		t.Fatalf("GetDeviceByIDWithGeneration: generation %d, tenant's %d", dgen, gen(w.a.ID))
	}
	must(t, s.CreateOSRelease(ctx, newRelease(w.a.ID, "rel-4", "4.0.0")))
	if _, dgen2, err := s.GetDeviceByIDWithGeneration(ctx, d.ID); err != nil || dgen2 <= dgen {
		t.Fatalf("after a release: generation %d (%v), was %d", dgen2, err, dgen)
	}
	_, _, err = s.GetDeviceByIDWithGeneration(ctx, deviceIDOf(99))
	isErr(t, err, store.ErrNotFound)
}
