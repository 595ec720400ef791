package attestsvc_test

import (
	"bytes"
	"context"
	"testing"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/imagepkg/imagepkgtest"
	"github.com/rampart-iot/rampart/internal/attest"
)

// TestWithdrawnReleaseOnlyForDevicesRunningIt: a feed release that is withdrawn stays
// acceptable to a device that already attested with it (it cannot go back to an older OS),
// and is refused to a device that never did (a trial boot of it, or a new device), which
// then rolls back. Publishing it again undoes the withdrawal.
func TestWithdrawnReleaseOnlyForDevicesRunningIt(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	running := w.newDevice(true)
	fresh := w.newDevice(true) // the same OS, agent and policy: the same measurements
	pkg := imagepkgtest.OSMeasured(t, "", "7.0.0", nil, running.log.Measurements(), nil)
	rel := w.publishRelease(pkg)
	if res, err := running.c.Attest(ctx); err != nil || res.OSRelease != "7.0.0" {
		t.Fatalf("attesting to a published release: %+v %v", res, err)
	}

	out, err := w.admin.WithdrawOSRelease(ctx, w.srv.TenantID, rel.ID)
	if err != nil || out.Feed != "Withdrawn" {
		t.Fatalf("withdraw: %+v %v", out, err)
	}
	if _, err := w.admin.WithdrawOSRelease(ctx, w.srv.TenantID, rel.ID); err == nil {
		t.Fatal("withdrawing a withdrawn release passed")
	}
	if res, err := running.c.Attest(ctx); err != nil || res.OSRelease != "7.0.0" {
		t.Fatalf("a device already running the withdrawn release: %+v %v", res, err)
	}
	_, err = fresh.c.Attest(ctx)
	if r := reasonOf(t, err); r != attest.ReasonMeasurementRefused {
		t.Fatalf("a device that never ran the withdrawn release: %s", r)
	}
	// Published again, it is for everyone.
	if _, err := w.admin.PublishOSRelease(ctx, w.srv.TenantID, rel.ID, "Retail"); err != nil {
		t.Fatal(err)
	}
	if _, err := fresh.c.Attest(ctx); err != nil {
		t.Fatalf("after publishing again: %v", err)
	}
}

// publishRelease uploads an OS image package, finds the release its upload registered, and
// publishes it to Retail.
func (w *world) publishRelease(pkg imagepkgtest.Built) v1.OSRelease {
	t := w.t
	t.Helper()
	ctx := context.Background()
	img, err := w.admin.AddImage(ctx, w.srv.TenantID, bytes.NewReader(pkg.Bytes), int64(len(pkg.Bytes)), nil)
	if err != nil {
		t.Fatal(err)
	}
	rels, err := w.admin.AllOSReleases(ctx, w.srv.TenantID)
	if err != nil {
		t.Fatal(err)
	}
	var rel v1.OSRelease
	for _, r := range rels {
		if r.ImageID == img.ID {
			rel = r
		}
	}
	if rel.ID == "" {
		t.Fatalf("the OS image registered no release: %+v", rels)
	}
	if _, err := w.admin.PublishOSRelease(ctx, w.srv.TenantID, rel.ID, "Retail"); err != nil {
		t.Fatal(err)
	}
	return rel
}
