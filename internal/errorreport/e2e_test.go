package errorreport_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/client"
	"github.com/rampart-iot/rampart/imagepkg/imagepkgtest"
	"github.com/rampart-iot/rampart/internal/checkinclient"
	"github.com/rampart-iot/rampart/internal/cli"
	"github.com/rampart-iot/rampart/internal/errorreport"
	"github.com/rampart-iot/rampart/internal/eventqueue"
	"github.com/rampart-iot/rampart/internal/server/servertest"
	"github.com/rampart-iot/rampart/internal/store/storetest"
)

const (
	compA = "0a0a0a0a-1111-4222-8333-444444444444"
	imgA  = "0b0b0b0b-1111-4222-8333-444444444444"
	compB = "0c0c0c0c-1111-4222-8333-444444444444"
)

// current is the running test, for must (the end-to-end test is not parallel).
var current *testing.T

// must returns v, or fails the current test with err.
func must[T any](v T, err error) T {
	current.Helper()
	if err != nil {
		current.Fatal(err)
	}
	return v
}

// TestEndToEnd follows events from a device's queue to the tenant's buckets and download: a
// real service, an attested device uploading over mutual TLS, a retry after a lost reply, the
// CLI's download, another tenant that sees nothing, bad uploads refused naming the field, and
// retention.
func TestEndToEnd(t *testing.T) {
	for _, b := range []string{"sqlite", "postgres"} {
		t.Run(b, func(t *testing.T) {
			if b == "postgres" {
				storetest.SkipWithoutPostgres(t)
			}
			endToEnd(t, b)
		})
	}
}

func endToEnd(t *testing.T, backend string) {
	current = t
	ctx := t.Context()
	srv := servertest.Start(t, servertest.AllowSoftwareRootOfTrust(true), servertest.Backend(backend))
	admin := srv.Client(t, srv.AdminToken)
	prod := must(admin.CreateProduct(ctx, srv.TenantID, v1.ProductCreate{Name: "Thermostat"}))
	grp := must(admin.CreateDeviceGroup(ctx, srv.TenantID, prod.ID, v1.DeviceGroupCreate{Name: "Field"}))
	img := must(admin.AddImage(ctx, srv.TenantID, bytes.NewReader(imagepkgtest.Application(t, imagepkgtest.App{Name: "blinky", Version: "1.0.0"}).Bytes), -1, nil))
	dep := must(admin.CreateDeployment(ctx, srv.TenantID, grp.ID, v1.DeploymentCreate{ImageIDs: []string{img.ID}}))
	d := srv.AttestedDevice(t, admin, srv.TenantID, grp.ID)
	dc := &checkinclient.Client{Server: srv.URL, RootCAs: d.RootCAs, CertDir: d.Dir}

	// The device's queue holds six events; a seventh made it drop the oldest.
	q := must(eventqueue.Open(eventqueue.Config{Dir: filepath.Join(t.TempDir(), "events"), Max: 6}))
	defer q.Close()
	three := 3
	for _, e := range []v1.ReportEvent{
		{Type: v1.EventAppCrash, ComponentID: compA, ImageID: imgA, Signal: 11, Message: "dropped"},
		{Type: v1.EventAppCrash, ComponentID: compA, ImageID: imgA, Signal: 11},
		{Type: v1.EventAppCrash, ComponentID: compA, ImageID: imgA, Signal: 11},
		{Type: v1.EventAppCrash, ComponentID: compA, ImageID: imgA, Signal: 11},
		{Type: v1.EventAppExit, ComponentID: compB, ExitCode: &three},
		{Type: v1.EventAppOOM, ComponentID: compB},
		{Type: v1.EventUpdateFailed, Phase: "verify", Reason: "digest-mismatch", ImageID: img.ID},
	} {
		must(q.Add(e))
	}

	// The first upload is stored but its reply is lost: the device does not acknowledge.
	batch, dropped := q.Peek(v1.MaxReportEvents)
	res := must(dc.UploadReports(ctx, v1.ReportBatch{Events: batch, Dropped: dropped}))
	if res.Accepted != 6 || res.Duplicates != 0 || dropped != 1 {
		t.Fatalf("first upload: %+v (dropped %d)", res, dropped)
	}
	// The retry sends the same events: nothing is stored twice.
	var results []v1.ReportResult
	n := must(q.Flush(ctx, func(ctx context.Context, b v1.ReportBatch) error {
		r, err := dc.UploadReports(ctx, b)
		results = append(results, r)
		return err
	}))
	if n != 6 || len(results) != 1 || results[0].Accepted != 0 || results[0].Duplicates != 6 || q.Len() != 0 {
		t.Fatalf("retry: sent %d, results %+v, %d left", n, results, q.Len())
	}

	// The tenant sees six events with the device's place in the fleet.
	reports := must(admin.AllErrorReports(ctx, srv.TenantID, client.ErrorReportListOptions{}))
	if len(reports) != 6 {
		t.Fatalf("%d reports, want 6: %+v", len(reports), reports)
	}
	for _, r := range reports {
		if r.DeviceID != d.ID || r.DeviceGroupID != grp.ID || r.ProductID != prod.ID || r.DeploymentID != dep.ID {
			t.Fatalf("report %+v: want device %s, group %s, product %s, deployment %s", r, d.ID, grp.ID, prod.ID, dep.ID)
		}
	}
	crashes := must(admin.AllErrorReports(ctx, srv.TenantID, client.ErrorReportListOptions{ErrorReportFilter: client.ErrorReportFilter{Type: v1.EventAppCrash}}))
	if len(crashes) != 3 {
		t.Fatalf("%d crashes, want 3", len(crashes))
	}

	// Buckets: the crash bucket first, with its count; the drop is counted.
	bs := must(admin.ErrorBuckets(ctx, srv.TenantID, client.ErrorReportFilter{ProductID: prod.ID}, 0))
	if len(bs.Items) != 4 || bs.Dropped != 1 || bs.Truncated {
		t.Fatalf("buckets %+v", bs)
	}
	top := bs.Items[0]
	if top.Type != v1.EventAppCrash || top.ComponentID != compA || top.ImageID != imgA || top.Signal != 11 || top.Count != 3 ||
		top.Devices != 1 || top.Class != v1.EventClassApplication || top.FirstSeen.After(top.LastSeen) {
		t.Fatalf("top bucket %+v", top)
	}

	// The download, through the client and through the CLI, with Azure Sphere's columns.
	var buf bytes.Buffer
	must(admin.DownloadErrorReports(ctx, srv.TenantID, client.ErrorReportFilter{}, "", &buf))
	rows := must(csv.NewReader(bytes.NewReader(buf.Bytes())).ReadAll())
	if len(rows) != 5 || strings.Join(rows[0], ",") != "Device ID,Event Type,Event Class,Event Count,Description,Start Time,End Time" {
		t.Fatalf("CSV:\n%s", buf.String())
	}
	if r := rows[1]; r[0] != d.ID || r[1] != "Unplanned" || r[2] != "Application" || r[3] != "3" ||
		r[4] != "AppCrash (signal=11; component_id="+compA+"; image_id="+imgA+")" {
		t.Fatalf("first row %q", r)
	}
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, srv.CACertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		env := map[string]string{"RAMPART_ADDR": srv.URL, "RAMPART_TOKEN": srv.AdminToken, "RAMPART_CACERT": caFile, "RAMPART_TENANT": srv.TenantID}
		code := cli.Run(ctx, args, cli.IO{In: strings.NewReader(""), Out: &out, Err: &errOut, Getenv: func(k string) string { return env[k] }, HomeDir: dir})
		if code != 0 {
			t.Fatalf("rampart %s: exit %d: %s", strings.Join(args, " "), code, errOut.String())
		}
		return out.String()
	}
	csvFile := filepath.Join(dir, "F.csv")
	run("error-report", "download", "--output-file", csvFile)
	if got := must(os.ReadFile(csvFile)); !bytes.Equal(got, buf.Bytes()) {
		t.Fatalf("the CLI's CSV differs:\n%s\nwant\n%s", got, buf.Bytes())
	}
	jsonFile := filepath.Join(dir, "F.json")
	run("error-report", "download", "--output-file", jsonFile, "--format", "json", "--device-group", grp.ID, "--type", "AppCrash")
	var dl v1.ErrorReportDownload
	if err := json.Unmarshal(must(os.ReadFile(jsonFile)), &dl); err != nil || len(dl.Rows) != 1 || dl.Rows[0].EventCount != 3 {
		t.Fatalf("JSON download %+v: %v", dl, err)
	}
	var listed []v1.ErrorReport
	if err := json.Unmarshal([]byte(run("error-report", "list", "--product", "Thermostat", "-o", "json")), &listed); err != nil || len(listed) != 6 {
		t.Fatalf("CLI list: %d reports, %v", len(listed), err)
	}
	if out := run("error-report", "buckets"); !strings.Contains(out, "1 events were dropped") || !strings.Contains(out, compA) {
		t.Fatalf("CLI buckets:\n%s", out)
	}

	// Another tenant: its device may reuse an event ID; neither tenant sees the other's.
	other := must(admin.CreateTenant(ctx, v1.TenantCreate{Name: "Elsewhere"}))
	oprod := must(admin.CreateProduct(ctx, other.ID, v1.ProductCreate{Name: "Doorbell"}))
	ogrp := must(admin.CreateDeviceGroup(ctx, other.ID, oprod.ID, v1.DeviceGroupCreate{Name: "Field"}))
	od := srv.AttestedDevice(t, admin, other.ID, ogrp.ID)
	odc := &checkinclient.Client{Server: srv.URL, RootCAs: od.RootCAs, CertDir: od.Dir}
	reused := v1.ReportEvent{ID: reports[0].ID, Type: v1.EventWatchdogReset, Time: time.Now()}
	if r := must(odc.UploadReports(ctx, v1.ReportBatch{Events: []v1.ReportEvent{reused}})); r.Accepted != 1 {
		t.Fatalf("other tenant's upload: %+v", r)
	}
	if got := must(admin.AllErrorReports(ctx, srv.TenantID, client.ErrorReportListOptions{})); len(got) != 6 {
		t.Fatalf("tenant A now has %d reports", len(got))
	}
	ob := must(admin.ErrorBuckets(ctx, other.ID, client.ErrorReportFilter{}, 0))
	if len(ob.Items) != 1 || ob.Items[0].Type != v1.EventWatchdogReset || ob.Dropped != 0 {
		t.Fatalf("tenant B's buckets %+v", ob)
	}
	must(admin.AddRole(ctx, other.ID, v1.RoleAdd{User: "bob", Role: "Reader"}))
	tok := must(admin.CreateUserToken(ctx, other.ID, "bob", v1.TokenCreate{}))
	bob := srv.Client(t, tok.Secret)
	if got := must(bob.AllErrorReports(ctx, other.ID, client.ErrorReportListOptions{})); len(got) != 1 || got[0].DeviceID != od.ID {
		t.Fatalf("bob sees %+v", got)
	}
	for _, err := range []error{
		func() error {
			_, err := bob.ListErrorReports(ctx, srv.TenantID, client.ErrorReportListOptions{})
			return err
		}(),
		func() error { _, err := bob.ErrorBuckets(ctx, srv.TenantID, client.ErrorReportFilter{}, 0); return err }(),
		func() error {
			_, err := bob.DownloadErrorReports(ctx, srv.TenantID, client.ErrorReportFilter{}, "csv", &bytes.Buffer{})
			return err
		}(),
	} {
		if !client.HasCode(err, v1.CodeNotFound) {
			t.Errorf("bob reading tenant A: %v, want not_found", err)
		}
	}
	// Filtering tenant A's reports by tenant B's device or group finds nothing.
	if got := must(admin.AllErrorReports(ctx, srv.TenantID, client.ErrorReportListOptions{ErrorReportFilter: client.ErrorReportFilter{DeviceID: od.ID}})); len(got) != 0 {
		t.Fatalf("tenant A lists tenant B's device's reports: %+v", got)
	}

	// Bad uploads are refused whole, naming the field, and store nothing.
	bad := []struct {
		name  string
		b     v1.ReportBatch
		field string
	}{
		{"unknown type", v1.ReportBatch{Events: []v1.ReportEvent{{ID: "01950000-0000-7000-8000-0000000000aa", Type: "Meltdown", Time: time.Now()}}}, "events[0].type"},
		{"crash without component", v1.ReportBatch{Events: []v1.ReportEvent{{ID: "01950000-0000-7000-8000-0000000000ab", Type: v1.EventAppCrash, Signal: 9, Time: time.Now()}}}, "events[0].component_id"},
		{"too many", v1.ReportBatch{Events: make([]v1.ReportEvent, v1.MaxReportEvents+1)}, "events"},
		{"negative dropped", v1.ReportBatch{Events: []v1.ReportEvent{}, Dropped: -1}, "dropped"},
	}
	for _, c := range bad {
		_, err := dc.UploadReports(ctx, c.b)
		var ce *checkinclient.Error
		if !errors.As(err, &ce) || ce.Status != http.StatusUnprocessableEntity || ce.Code != v1.CodeValidation ||
			!strings.Contains(ce.Message, c.field+":") || !ce.Permanent() {
			t.Errorf("%s: %v, want 422 naming %s", c.name, err, c.field)
		}
	}
	// An oversized body is refused before it is read.
	huge := `{"events":[],"dropped":0,"x":"` + strings.Repeat("x", v1.MaxReportBody) + `"}`
	req := must(http.NewRequestWithContext(ctx, "POST", srv.URL+"/v1/device/reports", strings.NewReader(huge)))
	req.Header.Set("Content-Type", "application/json")
	resp := must(dc.HTTPClient().Do(req))
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized upload: %d, want 413", resp.StatusCode)
	}
	if got := must(admin.AllErrorReports(ctx, srv.TenantID, client.ErrorReportListOptions{})); len(got) != 6 {
		t.Fatalf("bad uploads stored something: %d reports", len(got))
	}

	// Retention: once reports are older than the retention, the janitor's cleanup deletes them.
	if n := must(errorreport.Cleanup(ctx, srv.Store, time.Now().Add(91*24*time.Hour), 0)); n != 7 {
		t.Fatalf("cleanup deleted %d reports, want 7", n)
	}
	if got := must(admin.AllErrorReports(ctx, srv.TenantID, client.ErrorReportListOptions{})); len(got) != 0 {
		t.Fatalf("%d reports left after cleanup", len(got))
	}
}
