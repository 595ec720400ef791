package console_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/imagepkg/imagepkgtest"
	"github.com/rampart-iot/rampart/internal/checkinclient"
	"github.com/rampart-iot/rampart/internal/server/servertest"
)

// TestDeploymentCrashFreeHours: a deployment's page shows its cohort's crash-free hours, from
// its devices' check-ins and crash reports.
func TestDeploymentCrashFreeHours(t *testing.T) {
	srv := servertest.Start(t)
	f := newFixture(t, srv)
	ctx := t.Context()
	pkg := imagepkgtest.Application(t, imagepkgtest.App{Name: "blink", Version: "1.0.0"})
	img, err := f.admin.AddImage(ctx, f.tenant, bytes.NewReader(pkg.Bytes), int64(len(pkg.Bytes)), nil)
	if err != nil {
		t.Fatal(err)
	}
	dep, err := f.admin.CreateDeployment(ctx, f.tenant, f.group.ID, v1.DeploymentCreate{ImageIDs: []string{img.ID}})
	if err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t, srv)
	b.login(srv.AdminToken)
	page := "/console/t/" + f.tenant + "/deployments/" + dep.ID
	if p := b.get(page); !strings.Contains(p.body, `id="crash-free">no device-hours recorded yet<`) {
		t.Fatalf("before any check-in:\n%s", p.body)
	}
	d := srv.AttestedDevice(t, f.admin, f.tenant, f.group.ID)
	dc := &checkinclient.Client{Server: srv.URL, RootCAs: d.RootCAs, CertDir: d.Dir}
	// Up for the last 30 minutes: one or two clock hours; a crash now marks one of them.
	if _, err := dc.CheckIn(ctx, v1.CheckIn{AgentVersion: "1.0.0", Images: []v1.InstalledImage{}, UptimeSeconds: 1800}); err != nil {
		t.Fatal(err)
	}
	if _, err := dc.UploadReports(ctx, v1.ReportBatch{Events: []v1.ReportEvent{{ID: "01950000-0000-7000-8000-0000000000c1",
		Type: v1.EventAppCrash, Time: time.Now().UTC(), ComponentID: img.ComponentID, ImageID: img.ID, Signal: 11}}}); err != nil {
		t.Fatal(err)
	}
	// The overview sums the groups' current deployments, and shows each group's.
	ov := b.get("/console/t/" + f.tenant + "/")
	if !strings.Contains(ov.body, `id="fleet-crash-free">Crash-free hours of the current deployments: <strong>`) {
		t.Fatalf("the overview lacks the fleet's crash-free hours:\n%s", ov.body)
	}
	p := b.get(page)
	if !strings.Contains(p.body, "with an application crash; 1 devices)") ||
		!(strings.Contains(p.body, "<strong>0.0%</strong> of 1 device-hours") || strings.Contains(p.body, "<strong>50.0%</strong> of 2 device-hours")) {
		t.Fatalf("after a check-in and a crash, the page shows:\n%s", p.body)
	}
}
