package attestsvc_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/client"
	"github.com/rampart-iot/rampart/imagepkg/imagepkgtest"
	"github.com/rampart-iot/rampart/internal/attest"
	"github.com/rampart-iot/rampart/internal/attestclient"
	"github.com/rampart-iot/rampart/internal/server/servertest"
)

// TestPolicyChangesTakeEffectAtOnce: every change to what a device may attest to, or to the
// certificate it gets, holds from the next attestation on: a release registered, deleted,
// published to a feed or withdrawn, the group's feed and certificate lifetime changed. (More on
// withdrawal: TestWithdrawnReleaseOnlyForDevicesRunningIt.) It guards the service's cache of
// releases and groups (policy.go).
func TestPolicyChangesTakeEffectAtOnce(t *testing.T) {
	w := newWorld(t)
	runPolicyChanges(t, w, []*client.Client{w.admin}, func(d *device) []*attestclient.Client { return []*attestclient.Client{d.c} })
}

// TestPolicyChangesReachEveryReplica: the same changes, made through either of two replicas
// on one PostgreSQL database, hold at the next attestation through both. Each replica keeps
// its own cache, filled before each change.
func TestPolicyChangesReachEveryReplica(t *testing.T) {
	w := newWorld(t, servertest.Postgres())
	srv2 := servertest.Start(t, servertest.SameDatabase(w.srv), servertest.Clock(w.clk.Now))
	admin2 := srv2.Client(t, srv2.AdminToken)
	w.roots.AppendCertsFromPEM(srv2.CACertPEM)
	runPolicyChanges(t, w, []*client.Client{w.admin, admin2}, func(d *device) []*attestclient.Client {
		c2 := &attestclient.Client{RoT: d.c.RoT, Log: d.c.Log, PCRs: d.c.PCRs, Server: srv2.URL, RootCAs: w.roots,
			DeviceID: d.c.DeviceID, Dir: d.c.Dir}
		return []*attestclient.Client{d.c, c2}
	})
}

// runPolicyChanges makes each change through the admins in turn and checks every device's
// next attestation through each of the clients that via returns for it.
func runPolicyChanges(t *testing.T, w *world, admins []*client.Client, via func(*device) []*attestclient.Client) {
	ctx := context.Background()
	step := 0
	admin := func() *client.Client { step++; return admins[step%len(admins)] }
	d := w.newDevice(true)
	fresh := w.newDevice(true) // the same measurements; attests only once the release is withdrawn
	refused := func(d *device, what string) {
		t.Helper()
		for i, c := range via(d) {
			if _, err := c.Attest(ctx); reasonOf(t, err) != attest.ReasonMeasurementRefused {
				t.Fatalf("%s, through replica %d: want %s", what, i+1, attest.ReasonMeasurementRefused)
			}
		}
	}
	passes := func(what, release string) *attestclient.Result {
		t.Helper()
		var res *attestclient.Result
		for i, c := range via(d) {
			var err error
			res, err = c.Attest(ctx)
			if err != nil || res.OSRelease != release {
				t.Fatalf("%s, through replica %d: %+v %v, want a pass with release %s", what, i+1, res, err, release)
			}
		}
		return res
	}

	refused(d, "no release")
	rel := d.release(admin(), w.srv.TenantID, "1.0")
	passes("release registered", "1.0")
	if err := admin().DeleteOSRelease(ctx, w.srv.TenantID, rel.ID); err != nil {
		t.Fatal(err)
	}
	refused(d, "release deleted")

	// A release made from an OS image is for no group until published, and one published to
	// RetailEval only for groups that follow RetailEval.
	pkg := imagepkgtest.OSMeasured(t, "", "2.0.0", nil, d.log.Measurements(), nil)
	img, err := admin().AddImage(ctx, w.srv.TenantID, bytes.NewReader(pkg.Bytes), int64(len(pkg.Bytes)), nil)
	if err != nil {
		t.Fatal(err)
	}
	rels, err := admin().AllOSReleases(ctx, w.srv.TenantID)
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
	refused(d, "image release not published")
	if _, err := admin().PublishOSRelease(ctx, w.srv.TenantID, feedRel.ID, "RetailEval"); err != nil {
		t.Fatal(err)
	}
	refused(d, "published to RetailEval, group follows Retail")
	eval, retail := "RetailEval", "Retail"
	if _, err := admin().UpdateDeviceGroup(ctx, w.srv.TenantID, w.group, v1.DeviceGroupUpdate{OSFeed: &eval}); err != nil {
		t.Fatal(err)
	}
	passes("group follows RetailEval", "2.0.0")
	if _, err := admin().UpdateDeviceGroup(ctx, w.srv.TenantID, w.group, v1.DeviceGroupUpdate{OSFeed: &retail}); err != nil {
		t.Fatal(err)
	}
	refused(d, "group back on Retail")
	if _, err := admin().PublishOSRelease(ctx, w.srv.TenantID, feedRel.ID, "Retail"); err != nil {
		t.Fatal(err)
	}
	res := passes("published to Retail", "2.0.0")
	if got := res.NotAfter.Sub(w.clk.Now()); got < 23*time.Hour {
		t.Fatalf("default lifetime %s, want 24h", got)
	}
	secs := int64(600)
	if _, err := admin().UpdateDeviceGroup(ctx, w.srv.TenantID, w.group, v1.DeviceGroupUpdate{CertLifetimeSeconds: &secs}); err != nil {
		t.Fatal(err)
	}
	res = passes("group lifetime 10m", "2.0.0")
	if got := res.NotAfter.Sub(w.clk.Now()); got > 11*time.Minute || got < 9*time.Minute {
		t.Fatalf("lifetime %s after the group changed, want 10m", got)
	}

	// Withdrawn, the release stays for the device that runs it and is refused to one that
	// never attested with it; deleted, it is for no device.
	if _, err := admin().WithdrawOSRelease(ctx, w.srv.TenantID, feedRel.ID); err != nil {
		t.Fatal(err)
	}
	refused(fresh, "withdrawn, to a device that never ran it")
	passes("withdrawn, to the device that runs it", "2.0.0")
	if err := admin().DeleteOSRelease(ctx, w.srv.TenantID, feedRel.ID); err != nil {
		t.Fatal(err)
	}
	refused(d, "withdrawn release deleted")
}
