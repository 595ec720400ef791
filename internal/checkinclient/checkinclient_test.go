package checkinclient_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/client"
	"github.com/rampart-iot/rampart/imagepkg"
	"github.com/rampart-iot/rampart/imagepkg/imagepkgtest"
	"github.com/rampart-iot/rampart/internal/checkinclient"
	"github.com/rampart-iot/rampart/internal/server/servertest"
	"github.com/rampart-iot/rampart/internal/tufclient"
)

// device is an attested device in group and a check-in client for it.
func device(t *testing.T, srv *servertest.Server, admin *client.Client, tenant, group string) (*checkinclient.Client, string) {
	t.Helper()
	d := srv.AttestedDevice(t, admin, tenant, group)
	return &checkinclient.Client{Server: srv.URL, RootCAs: d.RootCAs, CertDir: d.Dir}, d.ID
}

// refresh verifies the device's metadata from scratch (first roots fetched over mutual TLS).
func refresh(t *testing.T, dc *checkinclient.Client) []tufclient.Target {
	t.Helper()
	ctx := t.Context()
	dirRoot, err := dc.InitialRoot(ctx, tufclient.Director)
	if err != nil {
		t.Fatal(err)
	}
	imgRoot, err := dc.InitialRoot(ctx, tufclient.Image)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := tufclient.New(tufclient.Config{Dir: t.TempDir(), Fetcher: dc, DirectorRoot: dirRoot, ImageRoot: imgRoot})
	if err != nil {
		t.Fatal(err)
	}
	targets, err := tc.Refresh(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return targets
}

func TestCheckInPushAndDownload(t *testing.T) {
	ctx := t.Context()
	srv := servertest.Start(t, servertest.AllowSoftwareRootOfTrust(true))
	admin := srv.Client(t, srv.AdminToken)
	prod, err := admin.CreateProduct(ctx, srv.TenantID, v1.ProductCreate{Name: "Thermostat"})
	if err != nil {
		t.Fatal(err)
	}
	grp, err := admin.CreateDeviceGroup(ctx, srv.TenantID, prod.ID, v1.DeviceGroupCreate{Name: "Field", CheckInIntervalSeconds: 600})
	if err != nil {
		t.Fatal(err)
	}
	dc, devID := device(t, srv, admin, srv.TenantID, grp.ID)

	// Before the device checks in, its status is absent.
	d, err := admin.GetDevice(ctx, srv.TenantID, devID)
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != nil {
		t.Fatalf("a device that never checked in has a status: %+v", d.Status)
	}

	// The push channel: the first event asks for a check-in.
	events := make(chan v1.DeviceEvent, 8)
	sctx, stop := context.WithCancel(ctx)
	streamDone := make(chan error, 1)
	go func() {
		streamDone <- dc.Events(sctx, func(e v1.DeviceEvent) error { events <- e; return nil })
	}()
	next := func() v1.DeviceEvent {
		t.Helper()
		select {
		case e := <-events:
			return e
		case err := <-streamDone:
			t.Fatalf("the push channel ended: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatal("no push event within 30 s")
		}
		return v1.DeviceEvent{}
	}
	if e := next(); e.Type != "check-in" {
		t.Fatalf("first event %+v, want check-in", e)
	}

	report := v1.CheckIn{AgentVersion: "1.2.3", Images: []v1.InstalledImage{}, OS: &v1.OSSlots{Active: "a", Booted: "a",
		CommittedVersion: "1.0.0", Slots: []v1.OSSlot{{Name: "a", Version: "1.0.0", Digest: strings.Repeat("ab", 32)}}}}
	res, err := dc.CheckIn(ctx, report)
	if err != nil {
		t.Fatal(err)
	}
	if res.DeviceGroupID != grp.ID || res.DeploymentID != "" || res.IntervalSeconds != 600 || res.DirectorPath != "" || res.ImagesPath == "" {
		t.Fatalf("check-in result %+v", res)
	}

	// A deployment wakes the device over the push channel and shows at its next check-in.
	img, err := admin.AddImage(ctx, srv.TenantID, bytes.NewReader(imagepkgtest.Application(t, imagepkgtest.App{Name: "blinky", Version: "1.0.0"}).Bytes), -1, nil)
	if err != nil {
		t.Fatal(err)
	}
	dep, err := admin.CreateDeployment(ctx, srv.TenantID, grp.ID, v1.DeploymentCreate{ImageIDs: []string{img.ID}})
	if err != nil {
		t.Fatal(err)
	}
	if e := next(); e.Type != "deployment" || e.DeploymentID != dep.ID {
		t.Fatalf("event %+v, want deployment %s", e, dep.ID)
	}
	report.Images = []v1.InstalledImage{{ComponentID: img.ComponentID, ImageID: img.ID, Kind: "application", Version: "1.0.0",
		State: "running", Restarts: 2, LastError: "exit status 1"}}
	if res, err = dc.CheckIn(ctx, report); err != nil {
		t.Fatal(err)
	}
	if res.DeploymentID != dep.ID || res.DirectorPath == "" || len(res.ImageSigningKeys) != 1 {
		t.Fatalf("check-in after the deployment: %+v", res)
	}
	// The signed metadata says exactly that: the director and the image repository agree.
	targets := refresh(t, dc)
	if len(targets) != 1 || targets[0].ImageID != img.ID || targets[0].SHA256 != img.PackageSHA256 ||
		targets[0].Length != img.PackageSize || targets[0].Version != "1.0.0" {
		t.Fatalf("verified targets %+v, want image %s", targets, img.ID)
	}
	d, err = admin.GetDevice(ctx, srv.TenantID, devID)
	if err != nil {
		t.Fatal(err)
	}
	if d.Status == nil || d.Status.CheckedInAt.IsZero() || d.Status.Report.AgentVersion != "1.2.3" ||
		len(d.Status.Report.Images) != 1 || d.Status.Report.Images[0].ImageID != img.ID || d.Status.Report.Images[0].Restarts != 2 ||
		d.Status.Report.OS == nil || d.Status.Report.OS.CommittedVersion != "1.0.0" {
		t.Fatalf("device status %+v", d.Status)
	}

	// Moving the device to another group ends its channel, so it reconnects into the new group.
	other, err := admin.CreateDeviceGroup(ctx, srv.TenantID, prod.ID, v1.DeviceGroupCreate{Name: "Lab"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.UpdateDevice(ctx, srv.TenantID, devID, v1.DeviceUpdate{DeviceGroupID: &other.ID}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-streamDone:
		if err == nil {
			t.Fatal("the stream ended without an error")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("moving the device did not end its push channel")
	}
	stop()

	// The device downloads its tenant's package: the same bytes the admin gets, with Range.
	var want bytes.Buffer
	if _, err := admin.DownloadImage(ctx, srv.TenantID, img.ID, &want, nil); err != nil {
		t.Fatal(err)
	}
	get := func(url, rng string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		resp, err := dc.HTTPClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	if code, b := get(dc.PackageURL(img.ID), ""); code != 200 || !bytes.Equal(b, want.Bytes()) {
		t.Fatalf("device download: HTTP %d, %d bytes (want %d)", code, len(b), want.Len())
	}
	if code, b := get(dc.PackageURL(img.ID), "bytes=10-"); code != 206 || !bytes.Equal(b, want.Bytes()[10:]) {
		t.Fatalf("ranged device download: HTTP %d, %d bytes", code, len(b))
	}
	missing, _ := imagepkg.NewUUID(rand.Reader)
	if code, _ := get(dc.PackageURL(missing), ""); code != 404 {
		t.Fatalf("an unknown image: HTTP %d, want 404", code)
	}
}

func TestCheckInRefusesBadReportsAndStrangers(t *testing.T) {
	ctx := t.Context()
	srv := servertest.Start(t, servertest.AllowSoftwareRootOfTrust(true))
	admin := srv.Client(t, srv.AdminToken)
	dc, devID := device(t, srv, admin, srv.TenantID, "")

	res, err := dc.CheckIn(ctx, v1.CheckIn{AgentVersion: "1", Images: []v1.InstalledImage{}})
	if err != nil {
		t.Fatal(err)
	}
	if res.DeviceGroupID != "" || res.DirectorPath != "" || res.IntervalSeconds != 3600 {
		t.Fatalf("a device in no group: %+v", res)
	}
	good, err := admin.GetDevice(ctx, srv.TenantID, devID)
	if err != nil || good.Status == nil {
		t.Fatalf("status after a good check-in: %+v, %v", good, err)
	}

	long := strings.Repeat("x", v1.MaxCheckInText+1)
	many := make([]v1.InstalledImage, v1.MaxCheckInImages+1)
	for _, c := range []struct {
		name  string
		in    v1.CheckIn
		field string
	}{
		{"no agent version", v1.CheckIn{Images: []v1.InstalledImage{}}, "agent_version"},
		{"no image list", v1.CheckIn{AgentVersion: "1"}, "images"},
		{"too many images", v1.CheckIn{AgentVersion: "1", Images: many}, "images"},
		{"bad component", v1.CheckIn{AgentVersion: "1", Images: []v1.InstalledImage{{ComponentID: "x", ImageID: "x", Kind: "application", Version: "1.0.0", State: "running"}}}, "images[0].component_id"},
		{"bad state", v1.CheckIn{AgentVersion: "1", Images: []v1.InstalledImage{{ComponentID: "819255ff-8640-41fd-aea7-f85d34c491d5", ImageID: "819255ff-8640-41fd-aea7-f85d34c491d6", Kind: "application", Version: "1.0.0", State: "dancing"}}}, "images[0].state"},
		{"long error", v1.CheckIn{AgentVersion: "1", Images: []v1.InstalledImage{{ComponentID: "819255ff-8640-41fd-aea7-f85d34c491d5", ImageID: "819255ff-8640-41fd-aea7-f85d34c491d6", Kind: "application", Version: "1.0.0", State: "failed", LastError: long}}}, "images[0].last_error"},
		{"bad slot", v1.CheckIn{AgentVersion: "1", Images: []v1.InstalledImage{}, OS: &v1.OSSlots{Active: "c", Booted: "a"}}, "os.active"},
		{"bad version", v1.CheckIn{AgentVersion: "1", Images: []v1.InstalledImage{}, Update: &v1.UpdateStatus{State: "Failed", Version: "one"}}, "update.version"},
	} {
		_, err := dc.CheckIn(ctx, c.in)
		var ce *checkinclient.Error
		if !errors.As(err, &ce) || ce.Status != 422 || !strings.Contains(ce.Message, c.field) {
			t.Errorf("%s: got %v, want 422 naming %s", c.name, err, c.field)
		}
	}
	// Nothing was half-applied: the stored report is still the good one.
	after, err := admin.GetDevice(ctx, srv.TenantID, devID)
	if err != nil || after.Status == nil || !after.Status.CheckedInAt.Equal(good.Status.CheckedInAt) {
		t.Fatalf("a refused report changed the status: %+v, %v", after.Status, err)
	}

	// Without the device's certificate, nothing.
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(srv.CACertPEM)
	stranger := &checkinclient.Client{Server: srv.URL, RootCAs: roots, CertDir: t.TempDir()}
	if _, err := stranger.CheckIn(ctx, v1.CheckIn{AgentVersion: "1", Images: []v1.InstalledImage{}}); err == nil {
		t.Fatal("a check-in without a device certificate passed")
	}
	// An admin token is not a device identity.
	if _, err := admin.GetDevice(ctx, srv.TenantID, devID); err != nil {
		t.Fatal(err)
	}
}
