package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/rampart-iot/rampart/api/v1"
)

// TestE2EImageAddAndDeploy packs an application, uploads it, downloads it back, and deploys it
// to a group, then deploys a second version, as a user would.
func TestE2EImageAddAndDeploy(t *testing.T) {
	e := startE2E(t)
	r := e.admin
	app, hw := appTree(t)
	pkgs := t.TempDir()
	for _, v := range []string{"1.0.0", "1.1.0"} {
		if res := r.run(t, "image-package", "pack-application", "--package-directory", app, "--hardware-definitions", hw,
			"--output-file", filepath.Join(pkgs, v+".rampkg"), "--version", v); res.code != 0 {
			t.Fatalf("pack %s: %s", v, res.err)
		}
	}
	var img1, img2 v1.Image
	r.json(t, &img1, "image", "add", "--image-path", filepath.Join(pkgs, "1.0.0.rampkg"))
	r.json(t, &img2, "image", "add", "--image-path", filepath.Join(pkgs, "1.1.0.rampkg"))
	if img1.Version != "1.0.0" || img1.ComponentID != img2.ComponentID || img1.ID == "" {
		t.Fatalf("images %+v %+v", img1, img2)
	}
	var imgs []v1.Image
	r.json(t, &imgs, "image", "list")
	if len(imgs) != 2 {
		t.Fatalf("list: %+v", imgs)
	}
	out := filepath.Join(t.TempDir(), "down.rampkg")
	r.ok(t, "image", "download", "--image-id", img1.ID, "--output-file", out)
	st, err := os.Stat(out)
	if err != nil || st.Size() != img1.PackageSize {
		t.Fatalf("downloaded %v %v, want %d bytes", st, err, img1.PackageSize)
	}
	// The downloaded package shows two signatures: the development key's and the tenant's.
	if res := r.run(t, "image-package", "show", out); res.code != 0 || strings.Count(res.out, "Signature ") < 2 {
		t.Fatalf("show: %d %s %s", res.code, res.out, res.err)
	}

	r.ok(t, "product", "create", "--name", "Lamp")
	var d1, d2 v1.Deployment
	r.json(t, &d1, "deployment", "create", "--product", "Lamp", "--device-group", "Field Test", "--images", img1.ID)
	r.json(t, &d2, "deployment", "create", "--device-group", "Field Test", "--product", "Lamp", "--images", img2.ID)
	var hist []v1.Deployment
	r.json(t, &hist, "deployment", "list", "--product", "Lamp", "--device-group", "Field Test")
	if len(hist) != 2 || hist[0].ID != d2.ID || !hist[0].Current || hist[1].Current {
		t.Fatalf("history %+v", hist)
	}
	// The update-metadata root key goes offline: a new group's first deployment then waits for
	// it; the existing group goes on.
	keyFile := filepath.Join(t.TempDir(), "root.pem")
	r.ok(t, "keys", "export-root", "--out", keyFile)
	if st, err := os.Stat(keyFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", st, err)
	}
	r.fails(t, "exists", "keys", "export-root", "--out", keyFile)
	r.fails(t, "offline", "keys", "export-root", "--out", keyFile+".again")
	r.ok(t, "device-group", "create", "--product", "Lamp", "--name", "Lab")
	r.fails(t, "import-root", "deployment", "create", "--product", "Lamp", "--device-group", "Lab", "--images", img1.ID)
	r.ok(t, "deployment", "create", "--product", "Lamp", "--device-group", "Field Test", "--images", img1.ID)
	r.ok(t, "keys", "import-root", keyFile)
	r.fails(t, "already online", "keys", "import-root", keyFile)
	r.ok(t, "deployment", "create", "--product", "Lamp", "--device-group", "Lab", "--images", img1.ID)

	// A Reader sees them and can upload nothing.
	r.ok(t, "role", "add", "--user", "reed", "--role", "Reader")
	var tok v1.Token
	r.json(t, &tok, "token", "create", "--user", "reed")
	reader := e.as(t, tok.Secret)
	reader.ok(t, "deployment", "show", d1.ID)
	res := reader.run(t, "image", "add", "--image-path", filepath.Join(pkgs, "1.0.0.rampkg"))
	if res.code != 1 || !strings.Contains(res.err, "forbidden") {
		t.Fatalf("reader upload: %d %s", res.code, res.err)
	}
}
