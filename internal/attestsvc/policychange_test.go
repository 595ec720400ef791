package attestsvc_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/imagepkg/imagepkgtest"
	"github.com/rampart-iot/rampart/internal/attest"
	"github.com/rampart-iot/rampart/internal/attestclient"
)

// TestPolicyChangesTakeEffectAtOnce: every change to what a device may attest to, or to the
// certificate it gets, holds from the next attestation on: a release registered, deleted,
// published to a feed, the group's feed and certificate lifetime changed. (Withdrawal:
// TestWithdrawnReleaseOnlyForDevicesRunningIt.) It guards any cache put in front of the store.
func TestPolicyChangesTakeEffectAtOnce(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	d := w.newDevice(true)
	refused := func(step string) {
		t.Helper()
		if _, err := d.c.Attest(ctx); reasonOf(t, err) != attest.ReasonMeasurementRefused {
			t.Fatalf("%s: want %s", step, attest.ReasonMeasurementRefused)
		}
	}
	passes := func(step, release string) *attestclient.Result {
		t.Helper()
		res, err := d.c.Attest(ctx)
		if err != nil || res.OSRelease != release {
			t.Fatalf("%s: %+v %v, want a pass with release %s", step, res, err, release)
		}
		return res
	}

	refused("no release")
	rel := d.release(w.admin, w.srv.TenantID, "1.0")
	passes("release registered", "1.0")
	if err := w.admin.DeleteOSRelease(ctx, w.srv.TenantID, rel.ID); err != nil {
		t.Fatal(err)
	}
	refused("release deleted")

	// A release made from an OS image is for no group until published, and one published to
	// RetailEval only for groups that follow RetailEval.
	pkg := imagepkgtest.OSMeasured(t, "", "2.0.0", nil, d.log.Measurements(), nil)
	img, err := w.admin.AddImage(ctx, w.srv.TenantID, bytes.NewReader(pkg.Bytes), int64(len(pkg.Bytes)), nil)
	if err != nil {
		t.Fatal(err)
	}
	rels, err := w.admin.AllOSReleases(ctx, w.srv.TenantID)
	if err != nil {
		t.Fatal(err)
	}
	var feedRel v1.OSRelease
	for _, r := range rels {
		if r.ImageID == img.ID {
			feedRel = r
		}
	}
	if feedRel.ID == "" {
		t.Fatalf("the OS image registered no release: %+v", rels)
	}
	refused("image release not published")
	if _, err := w.admin.PublishOSRelease(ctx, w.srv.TenantID, feedRel.ID, "RetailEval"); err != nil {
		t.Fatal(err)
	}
	refused("published to RetailEval, group follows Retail")
	eval, retail := "RetailEval", "Retail"
	if _, err := w.admin.UpdateDeviceGroup(ctx, w.srv.TenantID, w.group, v1.DeviceGroupUpdate{OSFeed: &eval}); err != nil {
		t.Fatal(err)
	}
	passes("group follows RetailEval", "2.0.0")
	if _, err := w.admin.UpdateDeviceGroup(ctx, w.srv.TenantID, w.group, v1.DeviceGroupUpdate{OSFeed: &retail}); err != nil {
		t.Fatal(err)
	}
	refused("group back on Retail")
	if _, err := w.admin.PublishOSRelease(ctx, w.srv.TenantID, feedRel.ID, "Retail"); err != nil {
		t.Fatal(err)
	}
	res := passes("published to Retail", "2.0.0")
	if got := res.NotAfter.Sub(w.clk.Now()); got < 23*time.Hour {
		t.Fatalf("default lifetime %s, want 24h", got)
	}
	secs := int64(600)
	if _, err := w.admin.UpdateDeviceGroup(ctx, w.srv.TenantID, w.group, v1.DeviceGroupUpdate{CertLifetimeSeconds: &secs}); err != nil {
		t.Fatal(err)
	}
	res = passes("group lifetime 10m", "2.0.0")
	if got := res.NotAfter.Sub(w.clk.Now()); got > 11*time.Minute || got < 9*time.Minute {
		t.Fatalf("lifetime %s after the group changed, want 10m", got)
	}
}
