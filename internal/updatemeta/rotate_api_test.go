package updatemeta_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/client"
	"github.com/rampart-iot/rampart/imagepkg/imagepkgtest"
	"github.com/rampart-iot/rampart/internal/checkinclient"
	"github.com/rampart-iot/rampart/internal/server/servertest"
	"github.com/rampart-iot/rampart/internal/tufclient"
)

// TestRotateRootThroughTheAPI: a real service and an attested device whose TUF client fetches
// over mutual TLS. The root is rotated through the REST API (with new online keys) while the
// device trusts root 1; the device follows to root 2 and gets the next deployment; the
// rotation is in the audit log.
func TestRotateRootThroughTheAPI(t *testing.T) {
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
	deploy := func(version string) string {
		t.Helper()
		pkg := imagepkgtest.Application(t, imagepkgtest.App{Name: "lamp", Version: version})
		img, err := admin.AddImage(ctx, srv.TenantID, bytes.NewReader(pkg.Bytes), int64(len(pkg.Bytes)), nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := admin.CreateDeployment(ctx, srv.TenantID, grp.ID, v1.DeploymentCreate{ImageIDs: []string{img.ID}}); err != nil {
			t.Fatal(err)
		}
		return img.ID
	}
	first := deploy("1.0.0")
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
	state := t.TempDir()
	tc, err := tufclient.New(tufclient.Config{Dir: state, Fetcher: dc, DirectorRoot: dirRoot, ImageRoot: imgRoot})
	if err != nil {
		t.Fatal(err)
	}
	got, err := tc.Refresh(ctx)
	if err != nil || len(got) != 1 || got[0].ImageID != first {
		t.Fatalf("before the rotation: %+v %v", got, err)
	}

	rot, err := admin.RotateUpdateRootKey(ctx, srv.TenantID, v1.UpdateRootRotate{OnlineKeys: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rot.Repositories) != 2 || rot.Repositories[1].RootVersion != 2 {
		t.Fatalf("rotation %+v", rot)
	}
	second := deploy("2.0.0")
	got, err = tc.Refresh(ctx)
	if err != nil || len(got) != 1 || got[0].ImageID != second {
		t.Fatalf("after the rotation: %+v %v", got, err)
	}
	// The targets are signed by the new online key, which only root 2 lists: the device
	// walked to root 2 of both repositories and stored it.
	for _, repo := range []string{"director", "image"} {
		b, err := os.ReadFile(filepath.Join(state, repo, "root.json"))
		if err != nil {
			t.Fatal(err)
		}
		var root struct {
			Signed struct {
				Version int `json:"version"`
			} `json:"signed"`
		}
		if err := json.Unmarshal(b, &root); err != nil || root.Signed.Version != 2 {
			t.Fatalf("the device's %s root: version %d, %v", repo, root.Signed.Version, err)
		}
	}
	entries, err := admin.AllAudit(ctx, srv.TenantID, client.AuditListOptions{Action: "update-key.manage"})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) == 0 || entries[0].Result != "success" || entries[0].Message != "rotated the update-metadata root key" {
		t.Fatalf("audit %+v", entries)
	}
}
