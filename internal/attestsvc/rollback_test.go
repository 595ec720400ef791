package attestsvc_test

import (
	"context"
	"strings"
	"testing"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/imagepkg/imagepkgtest"
	"github.com/rampart-iot/rampart/internal/attest"
	"github.com/rampart-iot/rampart/internal/checkinclient"
)

// TestRolledBackOSRefused: a release's security version comes from its image's signed
// metadata; a device that reported committing a higher security version at check-in (its
// anti-rollback counter) no longer attests with that release, as a device whose disk was put
// back to an older signed OS would. Another device with the same measurements still does, and
// a lower report never lowers the counter.
func TestRolledBackOSRefused(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	dev := w.newDevice(true)
	other := w.newDevice(true)
	pkg := imagepkgtest.OSSecure(t, "", "7.0.0", nil, dev.log.Measurements(), nil, 1)
	rel := w.publishRelease(pkg)
	if rel.SecurityVersion != 1 {
		t.Fatalf("the OS image's release: %+v", rel)
	}
	if res, err := dev.c.Attest(ctx); err != nil || res.OSRelease != "7.0.0" {
		t.Fatalf("attesting at security version 1 with counter 0: %+v %v", res, err)
	}
	checkIn := func(counter uint64) {
		t.Helper()
		c := &checkinclient.Client{Server: w.srv.URL, RootCAs: w.roots, CertDir: dev.dir}
		if _, err := c.CheckIn(ctx, v1.CheckIn{AgentVersion: "test", Images: []v1.InstalledImage{}, OS: &v1.OSSlots{Active: "a", Booted: "a",
			CommittedVersion: "7.0.0", SecurityCounter: counter}}); err != nil {
			t.Fatal(err)
		}
	}
	counter := func() uint64 {
		t.Helper()
		d, err := w.admin.GetDevice(ctx, w.srv.TenantID, dev.rec.DeviceID)
		if err != nil {
			t.Fatal(err)
		}
		return d.SecurityCounter
	}
	checkIn(1)
	if c := counter(); c != 1 {
		t.Fatalf("after reporting counter 1 the service holds %d", c)
	}
	if _, err := dev.c.Attest(ctx); err != nil {
		t.Fatalf("attesting at security version 1 with counter 1: %v", err)
	}
	checkIn(2) // it committed a release with security version 2, then its disk was put back
	_, err := dev.c.Attest(ctx)
	if r := reasonOf(t, err); r != attest.ReasonRolledBack || !strings.Contains(err.Error(), "security version 1, but it had committed security version 2") {
		t.Fatalf("a device back on an older release: %s: %v", r, err)
	}
	checkIn(0) // what a device reports cannot lower it
	if c := counter(); c != 2 {
		t.Fatalf("a report of 0 moved the counter to %d", c)
	}
	if _, err := other.c.Attest(ctx); err != nil {
		t.Fatalf("another device on the same release: %v", err)
	}
}
