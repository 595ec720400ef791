package updatemeta

import (
	"fmt"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/internal/store"
	"github.com/rampart-iot/rampart/internal/tufrepo"
)

// TestRootsRenewBeforeTheyExpire: a root with less than a quarter of its lifetime left is
// re-signed with the same keys when the root key is online, and a device that trusted the old
// root follows it and keeps working past the old root's expiry. With the key offline the root
// is reported instead, and nothing changes.
func TestRootsRenewBeforeTheyExpire(t *testing.T) {
	f := newFixture(t)
	f.group("g1")
	a := f.image(store.ImageApplication, "1.0.0")
	must(t, f.deploy("g1", a))
	dev := f.device("g1", "g1", f.clock.now)
	if _, err := dev.Refresh(f.ctx); err != nil {
		t.Fatal(err)
	}
	status := func() RootStatus {
		t.Helper()
		rs, err := f.svc.RootStatus(f.ctx, f.st, tenant)
		must(t, err)
		return rs
	}
	before := status()
	if !before.Online || len(before.Keys) != 1 || before.Threshold != 1 || len(before.Repositories) != 2 || before.RenewBefore != tufrepo.DefaultRootLifetime/RootRenewFraction {
		t.Fatalf("status %+v", before)
	}
	oldRoot := f.rootKey()

	// Early in its life nothing is due.
	n, offline, err := f.svc.RenewRoots(f.ctx, f.st, 100)
	if err != nil || n != 0 || len(offline) != 0 {
		t.Fatalf("RenewRoots on fresh roots: %d %v %v", n, offline, err)
	}

	// Inside the window, both repositories' roots are renewed with the same key.
	f.clock.add(tufrepo.DefaultRootLifetime - tufrepo.DefaultRootLifetime/RootRenewFraction + time.Hour)
	n, offline, err = f.svc.RenewRoots(f.ctx, f.st, 100)
	if err != nil || n != 2 || len(offline) != 0 {
		t.Fatalf("RenewRoots inside the window: %d %v %v", n, offline, err)
	}
	after := status()
	for _, r := range after.Repositories {
		if r.Version != 2 || !r.Expires.After(f.clock.now().Add(tufrepo.DefaultRootLifetime-time.Hour)) {
			t.Fatalf("renewed root %+v", r)
		}
	}
	if !f.rootKey().Equal(oldRoot) || fmt.Sprint(after.Keys) != fmt.Sprint(before.Keys) {
		t.Fatal("renewal changed the root key")
	}
	// The device follows root 2 and still works after root 1 would have expired. The renewal
	// test above advanced the clock past the online metadata's lifetimes too: renew those as
	// the janitor does.
	f.clock.add(tufrepo.DefaultRootLifetime / RootRenewFraction)
	if _, err := f.svc.RenewAll(f.ctx, f.st, 100); err != nil {
		t.Fatal(err)
	}
	if _, err := dev.Refresh(f.ctx); err != nil {
		t.Fatalf("a device after the first root's expiry: %v", err)
	}

	// With the key offline the next window finds nothing to renew with, and says so.
	must(t, f.st.Update(f.ctx, func(tx store.Tx) error {
		_, err := f.svc.ExportRoot(f.ctx, tx, tenant, "")
		return err
	}))
	f.clock.add(tufrepo.DefaultRootLifetime - tufrepo.DefaultRootLifetime/RootRenewFraction)
	n, offline, err = f.svc.RenewRoots(f.ctx, f.st, 100)
	if err != nil || n != 0 || len(offline) != 2 || offline[0].TenantID != tenant || offline[0].Version != 2 {
		t.Fatalf("RenewRoots with the key offline: %d %+v %v", n, offline, err)
	}
	if st := status(); st.Online || st.Repositories[0].Version != 2 {
		t.Fatalf("status with the key offline %+v", st)
	}
}
