package errorreport_test

import (
	"bytes"
	"testing"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/imagepkg/imagepkgtest"
	"github.com/rampart-iot/rampart/internal/checkinclient"
	"github.com/rampart-iot/rampart/internal/server/servertest"
)

// TestCrashFreeHours: a deployment's crash-free hours come from its devices' check-ins (their
// uptime covers the hours they were up) and their crash reports (an hour with a crash is not
// crash-free), through a real service, over mutual TLS; a new deployment starts its own cohort.
func TestCrashFreeHours(t *testing.T) {
	current = t
	ctx := t.Context()
	srv := servertest.Start(t, servertest.AllowSoftwareRootOfTrust(true))
	admin := srv.Client(t, srv.AdminToken)
	prod := must(admin.CreateProduct(ctx, srv.TenantID, v1.ProductCreate{Name: "Thermostat"}))
	grp := must(admin.CreateDeviceGroup(ctx, srv.TenantID, prod.ID, v1.DeviceGroupCreate{Name: "Field"}))
	img := must(admin.AddImage(ctx, srv.TenantID, bytes.NewReader(imagepkgtest.Application(t, imagepkgtest.App{Name: "blinky", Version: "1.0.0"}).Bytes), -1, nil))
	dep := must(admin.CreateDeployment(ctx, srv.TenantID, grp.ID, v1.DeploymentCreate{ImageIDs: []string{img.ID}}))
	health := func(id string) v1.DeploymentHealth {
		t.Helper()
		d := must(admin.GetDeployment(ctx, srv.TenantID, id))
		if d.Health == nil {
			t.Fatal("no health in the deployment")
		}
		return *d.Health
	}
	if h := health(dep.ID); h.DeviceHours != 0 || h.CrashFreeHoursPercent != nil {
		t.Fatalf("before any check-in: %+v", h)
	}

	// Two devices: one up for 90 minutes (2 or 3 clock hours), one for 10 minutes (1 or 2).
	var clients []*checkinclient.Client
	for _, up := range []int64{90 * 60, 10 * 60} {
		d := srv.AttestedDevice(t, admin, srv.TenantID, grp.ID)
		c := &checkinclient.Client{Server: srv.URL, RootCAs: d.RootCAs, CertDir: d.Dir}
		must(c.CheckIn(ctx, v1.CheckIn{AgentVersion: "1.0.0", Images: []v1.InstalledImage{}, UptimeSeconds: up}))
		clients = append(clients, c)
	}
	h := health(dep.ID)
	if h.Devices != 2 || h.DeviceHours < 3 || h.DeviceHours > 5 || h.CrashedHours != 0 || h.CrashFreeHoursPercent == nil || *h.CrashFreeHoursPercent != 100 {
		t.Fatalf("after the check-ins: %+v", h)
	}
	// The first device crashes twice in this hour and once in an earlier hour it was up.
	now := time.Now().UTC()
	must(clients[0].UploadReports(ctx, v1.ReportBatch{Events: []v1.ReportEvent{
		{ID: "01950000-0000-7000-8000-0000000000a1", Type: v1.EventAppCrash, Time: now, ComponentID: compA, ImageID: imgA, Signal: 11},
		{ID: "01950000-0000-7000-8000-0000000000a2", Type: v1.EventAppOOM, Time: now, ComponentID: compA, ImageID: imgA},
		{ID: "01950000-0000-7000-8000-0000000000a3", Type: v1.EventAppCrash, Time: now.Add(-time.Hour), ComponentID: compA, ImageID: imgA, Signal: 6},
		{ID: "01950000-0000-7000-8000-0000000000a4", Type: v1.EventAppExit, Time: now, ComponentID: compA, ImageID: imgA, ExitCode: new(int)},
	}}))
	h2 := health(dep.ID)
	want := 100 * float64(h2.DeviceHours-2) / float64(h2.DeviceHours)
	// (An hour boundary passing between the check-in and the upload adds the new hour.)
	if h2.CrashedHours != 2 || h2.DeviceHours < h.DeviceHours || h2.DeviceHours > h.DeviceHours+1 || *h2.CrashFreeHoursPercent != want {
		t.Fatalf("after the crashes: %+v (before %+v), want 2 crashed hours of the same %d", h2, h, h.DeviceHours)
	}

	// A new deployment: the devices' next hours are its cohort's.
	dep2 := must(admin.CreateDeployment(ctx, srv.TenantID, grp.ID, v1.DeploymentCreate{ImageIDs: []string{img.ID}}))
	must(clients[1].CheckIn(ctx, v1.CheckIn{AgentVersion: "1.0.0", Images: []v1.InstalledImage{}, UptimeSeconds: 11 * 60}))
	if h := health(dep2.ID); h.Devices != 1 || h.DeviceHours < 1 || *h.CrashFreeHoursPercent != 100 {
		t.Fatalf("the new deployment's cohort: %+v", h)
	}
}
