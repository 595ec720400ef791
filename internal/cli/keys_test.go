package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/rampart-iot/rampart/api/v1"
)

// TestE2EKeysRotateRoot rotates the update-metadata root key online, then offline (the
// exported key passed in, the new key taken out at once), and checks the old keys are dead
// and every rotation is audited.
func TestE2EKeysRotateRoot(t *testing.T) {
	e := startE2E(t)
	r := e.admin
	app, hw := appTree(t)
	pkg := filepath.Join(t.TempDir(), "app.rampkg")
	r.ok(t, "image-package", "pack-application", "--package-directory", app, "--hardware-definitions", hw, "--output-file", pkg, "--version", "1.0.0")
	var img v1.Image
	r.json(t, &img, "image", "add", "--image-path", pkg)
	r.ok(t, "product", "create", "--name", "Lamp")
	r.ok(t, "deployment", "create", "--product", "Lamp", "--device-group", "Field Test", "--images", img.ID)

	var st v1.UpdateRootStatus
	r.json(t, &st, "keys", "status")
	if !st.Online || st.KeyID == "" || len(st.Repositories) != 2 || st.Repositories[0].RootVersion != 1 || st.Repositories[0].Due ||
		st.RenewBeforeSeconds != 365*24*3600/4 {
		t.Fatalf("keys status: %+v", st)
	}
	if out := r.ok(t, "keys", "status"); !strings.Contains(out, "online: the service renews roots itself") || !strings.Contains(out, "director/") {
		t.Fatalf("keys status printed %q", out)
	}
	var rot v1.UpdateRootRotation
	r.json(t, &rot, "keys", "rotate-root", "--online-keys")
	if len(rot.Repositories) != 2 || rot.Repositories[0].Repository != "images" || rot.Repositories[0].RootVersion != 2 ||
		rot.Repositories[1].RootVersion != 2 || rot.KeyPEM != "" || rot.NewKeyID == rot.OldKeyID {
		t.Fatalf("online rotation: %+v", rot)
	}

	// Offline: export, rotate with the exported key, take the new one out at once.
	dir := t.TempDir()
	oldKey, newKey := filepath.Join(dir, "root-1.pem"), filepath.Join(dir, "root-2.pem")
	r.ok(t, "keys", "export-root", "--out", oldKey)
	r.fails(t, "offline", "keys", "rotate-root")
	out := r.ok(t, "keys", "rotate-root", "--root-key", oldKey, "--out", newKey)
	if !strings.Contains(out, "director/") || !strings.Contains(out, newKey) {
		t.Fatalf("rotate-root printed %q", out)
	}
	if st, err := os.Stat(newKey); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("new key file: %v %v", st, err)
	}
	r.json(t, &st, "keys", "status")
	if st.Online || st.KeyID != rot2ID(t, r) || st.Repositories[0].RootVersion != 3 {
		t.Fatalf("keys status with the key offline: %+v", st)
	}
	r.fails(t, "exists", "keys", "rotate-root", "--root-key", newKey, "--out", newKey)
	r.fails(t, "not the tenant's current root key", "keys", "rotate-root", "--root-key", oldKey)
	r.fails(t, "revoked", "keys", "import-root", oldKey)
	// The new key is offline: a new group waits for it, and it comes back.
	r.ok(t, "device-group", "create", "--product", "Lamp", "--name", "Lab")
	r.fails(t, "import-root", "deployment", "create", "--product", "Lamp", "--device-group", "Lab", "--images", img.ID)
	r.ok(t, "keys", "import-root", newKey)
	r.ok(t, "deployment", "create", "--product", "Lamp", "--device-group", "Lab", "--images", img.ID)

	var audit []v1.AuditEntry
	r.json(t, &audit, "audit", "list", "--action", "update-key.manage")
	rotations := 0
	for _, a := range audit {
		if strings.Contains(a.Message, "rotated the update-metadata root key") && a.Result == "success" {
			rotations++
		}
	}
	if rotations != 2 {
		t.Fatalf("audited rotations: %d in %+v", rotations, audit)
	}
}

// rot2ID is the key ID of the newest root key, as the audit log of the last rotation names it.
func rot2ID(t *testing.T, r *runner) string {
	t.Helper()
	var audit []v1.AuditEntry
	r.json(t, &audit, "audit", "list", "--action", "update-key.manage")
	for _, a := range audit {
		var d struct {
			NewKeyID string `json:"new_key_id"`
		}
		if strings.Contains(a.Message, "rotated") && json.Unmarshal(a.Details, &d) == nil && d.NewKeyID != "" {
			return d.NewKeyID // newest first
		}
	}
	t.Fatal("no rotation in the audit log")
	return ""
}
