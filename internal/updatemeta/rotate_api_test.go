package updatemeta_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
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

	// Root 3: three keys, two of which must sign, handed out offline. Root 4: three of three,
	// signed with two of root 3's keys given in the request. One key alone is refused.
	rot3, err := admin.RotateUpdateRootKey(ctx, srv.TenantID, v1.UpdateRootRotate{NewKeys: 3, Threshold: 2, Offline: true})
	if err != nil || len(rot3.KeyPEMs) != 3 || rot3.Threshold != 2 {
		t.Fatalf("rotation to 2-of-3: %+v %v", rot3, err)
	}
	_, err = admin.RotateUpdateRootKey(ctx, srv.TenantID, v1.UpdateRootRotate{KeyPEMs: rot3.KeyPEMs[:1], NewKeys: 3, Threshold: 3})
	if err == nil || !strings.Contains(err.Error(), "1 of the tenant's 3 root keys given or online (0 online, 1 given), 2 needed") {
		t.Fatalf("a rotation with 1 of 2 keys: %v", err)
	}
	rot4, err := admin.RotateUpdateRootKey(ctx, srv.TenantID, v1.UpdateRootRotate{KeyPEM: rot3.KeyPEMs[1], KeyPEMs: rot3.KeyPEMs[2:], NewKeys: 3, Threshold: 3})
	if err != nil || rot4.Repositories[0].RootVersion != 4 {
		t.Fatalf("rotation to 3-of-3: %+v %v", rot4, err)
	}
	third := deploy("3.0.0")
	got, err = tc.Refresh(ctx)
	if err != nil || len(got) != 1 || got[0].ImageID != third {
		t.Fatalf("after the threshold rotations: %+v %v", got, err)
	}
	for _, repo := range []string{"director", "image"} {
		b, err := os.ReadFile(filepath.Join(state, repo, "root.json"))
		if err != nil {
			t.Fatal(err)
		}
		var root struct {
			Signed struct {
				Version int `json:"version"`
				Roles   map[string]struct {
					KeyIDs    []string `json:"keyids"`
					Threshold int      `json:"threshold"`
				} `json:"roles"`
			} `json:"signed"`
		}
		if err := json.Unmarshal(b, &root); err != nil || root.Signed.Version != 4 || root.Signed.Roles["root"].Threshold != 3 ||
			len(root.Signed.Roles["root"].KeyIDs) != 3 {
			t.Fatalf("the device's %s root: %+v, %v", repo, root.Signed, err)
		}
	}
}
