package cli

import (
	"strings"
	"testing"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/checkinclient"
)

// TestE2EDeviceShowCheckIn: `device show` prints what the device last reported: its images, OS
// slots, latest update and the updates an application defers.
func TestE2EDeviceShowCheckIn(t *testing.T) {
	e := startE2E(t)
	r := e.admin
	r.ok(t, "product", "create", "--name", "Lamp")
	var groups []v1.DeviceGroup
	r.json(t, &groups, "device-group", "list", "--product", "Lamp")
	admin := e.srv.Client(t, e.srv.AdminToken)
	d := e.srv.AttestedDevice(t, admin, e.srv.TenantID, groups[0].ID)
	dc := &checkinclient.Client{Server: e.srv.URL, RootCAs: d.RootCAs, CertDir: d.Dir}
	seen := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	in := v1.CheckIn{AgentVersion: "1.0.0",
		Images: []v1.InstalledImage{{ComponentID: "819255ff-8640-41fd-aea7-f85d34c491d5", ImageID: "0e6b2a4f-2f0c-4f77-9a43-7d0b7d0e1a11",
			Kind: "application", Version: "1.2.3", State: "crashed", LastError: "exit status 1"}},
		OS:       &v1.OSSlots{Active: "a", Booted: "a", CommittedVersion: "1.0.0"},
		Update:   &v1.UpdateStatus{State: "RolledBack", Version: "2.0.0", Phase: "health", Reason: "not released"},
		Deferred: []v1.DeferredUpdate{{UpdateType: "System", FirstSeen: seen, Until: seen.Add(10 * time.Hour)}}}
	if _, err := dc.CheckIn(t.Context(), in); err != nil {
		t.Fatal(err)
	}
	out := r.ok(t, "device", "show", d.ID)
	for _, want := range []string{"Last check-in", "application 1.2.3 crashed", "exit status 1", "active a, booted a, committed 1.0.0",
		"RolledBack 2.0.0 (health: not released)", "System until 2026-11-25T22:00:00Z"} {
		if !strings.Contains(out, want) {
			t.Errorf("device show lacks %q:\n%s", want, out)
		}
	}
}
