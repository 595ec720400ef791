package updatemeta_test

import (
	"bytes"
	"strings"
	"testing"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/imagepkg/imagepkgtest"
	"github.com/rampart-iot/rampart/internal/checkinclient"
	"github.com/rampart-iot/rampart/internal/server/servertest"
	"github.com/rampart-iot/rampart/internal/tufclient"
)

// TestWithdrawThroughTheAPI: a group follows Retail; releases 5 and 6 are published and the
// device's TUF client (over mutual TLS) is offered 6; 6 is withdrawn through the REST API and
// the same client is offered 5 again, with no error.
func TestWithdrawThroughTheAPI(t *testing.T) {
	ctx := t.Context()
	srv := servertest.Start(t)
	admin := srv.Client(t, srv.AdminToken)
	prod, err := admin.CreateProduct(ctx, srv.TenantID, v1.ProductCreate{Name: "Lamp", NoDefaultDeviceGroups: true})
	if err != nil {
		t.Fatal(err)
	}
	grp, err := admin.CreateDeviceGroup(ctx, srv.TenantID, prod.ID, v1.DeviceGroupCreate{Name: "Field"})
	if err != nil {
		t.Fatal(err)
	}
	sum := strings.Repeat("ab", 32)
	release := func(version string) (imageID, releaseID string) {
		t.Helper()
		pkg := imagepkgtest.OSMeasured(t, "", version, map[string]string{"VERSION": version}, map[string]string{"agent": sum, "policy": sum}, nil)
		img, err := admin.AddImage(ctx, srv.TenantID, bytes.NewReader(pkg.Bytes), int64(len(pkg.Bytes)), nil)
		if err != nil {
			t.Fatal(err)
		}
		rels, err := admin.AllOSReleases(ctx, srv.TenantID)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rels {
			if r.ImageID == img.ID {
				if _, err := admin.PublishOSRelease(ctx, srv.TenantID, r.ID, "Retail"); err != nil {
					t.Fatal(err)
				}
				return img.ID, r.ID
			}
		}
		t.Fatalf("OS image %s made no release", img.ID)
		return "", ""
	}
	img5, _ := release("5.0.0")
	d := srv.AttestedDevice(t, admin, srv.TenantID, grp.ID)
	dc := &checkinclient.Client{Server: srv.URL, RootCAs: d.RootCAs, CertDir: d.Dir}
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
	offered := func(step string) string {
		t.Helper()
		got, err := tc.Refresh(ctx)
		if err != nil || len(got) != 1 {
			t.Fatalf("%s: %+v %v", step, got, err)
		}
		return got[0].ImageID
	}
	if got := offered("5 published"); got != img5 {
		t.Fatalf("offered %s, want 5.0.0 (%s)", got, img5)
	}
	img6, rel6 := release("6.0.0")
	if got := offered("6 published"); got != img6 {
		t.Fatalf("offered %s, want 6.0.0 (%s)", got, img6)
	}
	if _, err := admin.WithdrawOSRelease(ctx, srv.TenantID, rel6); err != nil {
		t.Fatal(err)
	}
	if got := offered("6 withdrawn"); got != img5 {
		t.Fatalf("offered %s after the withdrawal, want 5.0.0 (%s) again", got, img5)
	}
}
