package updatemeta

import (
	"fmt"
	"testing"

	"github.com/rampart-iot/rampart/internal/store"
)

// TestWithdrawnReleaseLeavesTheDirector: a group that follows Retail is offered the newest
// Retail release; once that release is withdrawn, its director offers the newest remaining one
// again, and a device that trusted the director's metadata before sees its versions go forward
// (no rollback error), only the listed image goes back.
func TestWithdrawnReleaseLeavesTheDirector(t *testing.T) {
	f := newFixture(t)
	f.group("g1")
	v5, v6 := f.image(store.ImageOS, "5.0.0"), f.image(store.ImageOS, "6.0.0")
	publish := func(rel string, img store.Image, feed store.OSFeed) {
		t.Helper()
		must(t, f.st.Update(f.ctx, func(tx store.Tx) error {
			if _, err := tx.GetOSRelease(f.ctx, tenant, rel); err != nil {
				if err := tx.CreateOSRelease(f.ctx, store.OSRelease{ID: rel, TenantID: tenant, Version: img.Version,
					Measurements: map[string]string{"os-bundle": img.PackageSHA256}, Feed: store.FeedUnpublished, ImageID: img.ID,
					CreatedBy: "u", CreatedAt: f.clock.now()}); err != nil {
					return err
				}
			}
			if err := tx.SetOSReleaseFeed(f.ctx, tenant, rel, feed); err != nil {
				return err
			}
			return f.svc.PublishDirector(f.ctx, tx, tenant, "g1")
		}))
	}
	publish("rel-5", v5, store.OSFeedRetail)
	dev := f.device("g1", "g1", f.clock.now)
	got, err := dev.Refresh(f.ctx)
	must(t, err)
	if fmt.Sprint(ids(got)) != fmt.Sprint([]string{v5.ID}) {
		t.Fatalf("targets %v, want 5.0.0", ids(got))
	}
	publish("rel-6", v6, store.OSFeedRetail)
	got, err = dev.Refresh(f.ctx)
	must(t, err)
	if fmt.Sprint(ids(got)) != fmt.Sprint([]string{v6.ID}) {
		t.Fatalf("targets %v, want 6.0.0", ids(got))
	}
	before, err := f.st.GetTUFMetadata(f.ctx, tenant, DirectorRepository("g1"), store.TUFTargets, 0)
	must(t, err)

	publish("rel-6", v6, store.FeedWithdrawn)
	got, err = dev.Refresh(f.ctx)
	must(t, err)
	if fmt.Sprint(ids(got)) != fmt.Sprint([]string{v5.ID}) {
		t.Fatalf("after withdrawing 6.0.0 the director offers %v, want 5.0.0 again", ids(got))
	}
	after, err := f.st.GetTUFMetadata(f.ctx, tenant, DirectorRepository("g1"), store.TUFTargets, 0)
	must(t, err)
	if after.Version <= before.Version {
		t.Fatalf("targets version %d after %d", after.Version, before.Version)
	}
	// Withdrawing the last one leaves the group with nothing to install.
	publish("rel-5", v5, store.FeedWithdrawn)
	got, err = dev.Refresh(f.ctx)
	must(t, err)
	if len(got) != 0 {
		t.Fatalf("with every release withdrawn the director offers %v", ids(got))
	}
}
