package cli

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/imagepkg"
	"github.com/rampart-iot/rampart/internal/updatemeta"
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
	r.fails(t, "not one of the tenant's current root keys", "keys", "rotate-root", "--root-key", oldKey)
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

// TestE2EKeysThreshold takes the tenant from one root key to 2-of-3 keys held offline, then to
// 3-of-3 with two of them, against a real service: below the threshold, a key given twice and
// a foreign key change nothing; status shows the keys, the threshold and where each is held.
func TestE2EKeysThreshold(t *testing.T) {
	e := startE2E(t)
	r := e.admin
	app, hw := appTree(t)
	pkg := filepath.Join(t.TempDir(), "app.rampkg")
	r.ok(t, "image-package", "pack-application", "--package-directory", app, "--hardware-definitions", hw, "--output-file", pkg, "--version", "1.0.0")
	var img v1.Image
	r.json(t, &img, "image", "add", "--image-path", pkg)
	r.ok(t, "product", "create", "--name", "Lamp")
	r.ok(t, "deployment", "create", "--product", "Lamp", "--device-group", "Field Test", "--images", img.ID)

	dir := t.TempDir()
	keyDir := filepath.Join(dir, "ceremony-1")
	for _, bad := range [][]string{{"--new-keys", "3", "--threshold", "2", "--out", filepath.Join(dir, "one.pem")},
		{"--new-keys", "2", "--threshold", "3"}, {"--new-keys", "9"}, {"--threshold", "-1"}} {
		if res := r.run(t, append([]string{"keys", "rotate-root"}, bad...)...); res.code != 2 {
			t.Fatalf("rotate-root %v: %+v, want a usage error", bad, res)
		}
	}
	var rot v1.UpdateRootRotation
	r.json(t, &rot, "keys", "rotate-root", "--new-keys", "3", "--threshold", "2", "--out-dir", keyDir)
	if len(rot.NewKeyIDs) != 3 || rot.Threshold != 2 || rot.OldThreshold != 1 || len(rot.KeyPEMs) != 0 || rot.KeyPEM != "" ||
		len(rot.Repositories) != 2 || rot.Repositories[0].RootVersion != 2 {
		t.Fatalf("rotation to 2-of-3: %+v", rot)
	}
	var keyFiles []string
	for _, id := range rot.NewKeyIDs {
		name := filepath.Join(keyDir, "root-"+id+".pem")
		if st, err := os.Stat(name); err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("key file %s: %v %v", name, st, err)
		}
		keyFiles = append(keyFiles, name)
	}
	if ents, _ := os.ReadDir(keyDir); len(ents) != 3 {
		t.Fatalf("%s holds %d files", keyDir, len(ents))
	}
	r.fails(t, "not empty", "keys", "rotate-root", "--root-key", keyFiles[0], "--root-key", keyFiles[1], "--out-dir", keyDir)

	var st v1.UpdateRootStatus
	r.json(t, &st, "keys", "status")
	if st.Online || st.Threshold != 2 || len(st.Keys) != 3 || st.Keys[0].Online || st.Keys[0].TUFKeyID == "" {
		t.Fatalf("keys status after 2-of-3 offline: %+v", st)
	}
	if out := r.ok(t, "keys", "status"); !strings.Contains(out, "2 of 3 root keys") || !strings.Contains(out, "0 of 3 online: below the threshold") {
		t.Fatalf("keys status printed %q", out)
	}

	// Below the threshold nothing changes, and the error says how many keys were given and needed.
	r.fails(t, "1 of the tenant's 3 root keys given or online (0 online, 1 given), 2 needed", "keys", "rotate-root", "--root-key", keyFiles[0])
	r.fails(t, "1 of the tenant's 3 root keys given or online (0 online, 1 given), 2 needed", "keys", "rotate-root", "--root-key", keyFiles[1], "--root-key", keyFiles[1])
	foreign := filepath.Join(dir, "foreign.pem")
	fk, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(fk)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(foreign, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	// A file too large to be a key is refused before anything is sent.
	big := filepath.Join(dir, "big.pem")
	if err := os.WriteFile(big, make([]byte, maxKeyFile+1), 0o600); err != nil {
		t.Fatal(err)
	}
	r.fails(t, "not a key file", "keys", "rotate-root", "--root-key", big)
	r.fails(t, "not one of the tenant's current root keys", "keys", "rotate-root", "--root-key", keyFiles[0], "--root-key", foreign)
	r.json(t, &st, "keys", "status")
	if st.Repositories[0].RootVersion != 2 || st.Threshold != 2 || len(st.Keys) != 3 {
		t.Fatalf("a refused rotation changed the root: %+v", st)
	}

	// 2-of-3 → 3-of-3 with two of the keys; the new keys stay online.
	r.json(t, &rot, "keys", "rotate-root", "--root-key", keyFiles[2], "--root-key", keyFiles[0], "--new-keys", "3", "--threshold", "3")
	if rot.Threshold != 3 || rot.OldThreshold != 2 || len(rot.OldKeyIDs) != 3 || rot.Repositories[0].RootVersion != 3 {
		t.Fatalf("rotation to 3-of-3: %+v", rot)
	}
	r.fails(t, "revoked", "keys", "import-root", keyFiles[1])
	r.json(t, &st, "keys", "status")
	if !st.Online || st.Threshold != 3 || len(st.Keys) != 3 || !st.Keys[2].Online {
		t.Fatalf("keys status after 3-of-3 online: %+v", st)
	}
	// Export one of three: below the threshold, a new group waits for it.
	out := filepath.Join(dir, "root-3.pem")
	r.fails(t, "name the one", "keys", "export-root", "--out", out)
	r.ok(t, "keys", "export-root", "--key-id", st.Keys[1].KeyID, "--out", out)
	r.json(t, &st, "keys", "status")
	if st.Online || st.Keys[1].Online || !st.Keys[0].Online {
		t.Fatalf("keys status with one of three exported: %+v", st)
	}
	r.ok(t, "device-group", "create", "--product", "Lamp", "--name", "Lab")
	r.fails(t, "2 of the tenant's 3 root keys are online, 3 needed", "deployment", "create", "--product", "Lamp", "--device-group", "Lab", "--images", img.ID)
	r.ok(t, "keys", "import-root", out)
	r.ok(t, "deployment", "create", "--product", "Lamp", "--device-group", "Lab", "--images", img.ID)

	var audit []v1.AuditEntry
	r.json(t, &audit, "audit", "list", "--action", "update-key.manage")
	var thresholds []string
	for _, a := range audit {
		var d struct {
			Threshold    int `json:"threshold"`
			OldThreshold int `json:"old_threshold"`
		}
		if strings.Contains(a.Message, "rotated the update-metadata root keys") && a.Result == "success" && json.Unmarshal(a.Details, &d) == nil {
			thresholds = append(thresholds, fmt.Sprintf("%d->%d", d.OldThreshold, d.Threshold))
		}
	}
	if fmt.Sprint(thresholds) != "[2->3 1->2]" {
		t.Fatalf("audited rotations %v in %+v", thresholds, audit)
	}
}

// TestE2EKeysDetached rotates the root twice with keys that never reach the service: holders
// make their keys (root-keygen), the operator prepares (root-prepare), each holder signs
// (root-sign), and rotate-root --unsigned --signature publishes; below a threshold of the
// current or the new keys, with a forged signature, or from stale prepared roots nothing
// changes.
func TestE2EKeysDetached(t *testing.T) {
	e := startE2E(t)
	r := e.admin
	app, hw := appTree(t)
	pkg := filepath.Join(t.TempDir(), "app.rampkg")
	r.ok(t, "image-package", "pack-application", "--package-directory", app, "--hardware-definitions", hw, "--output-file", pkg, "--version", "1.0.0")
	var img v1.Image
	r.json(t, &img, "image", "add", "--image-path", pkg)
	r.ok(t, "product", "create", "--name", "Lamp")
	r.ok(t, "deployment", "create", "--product", "Lamp", "--device-group", "Field Test", "--images", img.ID)

	dir := t.TempDir()
	holder := func(name string) (key, pub string) {
		key, pub = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".pub")
		r.ok(t, "keys", "root-keygen", "--out", key, "--public-out", pub)
		if st, err := os.Stat(key); err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", key, st, err)
		}
		return key, pub
	}
	var expect []string // the documented way: --expect-public-key for each new key, --expect-threshold
	sign := func(unsigned, key, name string) string {
		out := filepath.Join(dir, name)
		if o := r.ok(t, append([]string{"keys", "root-sign", "--unsigned", unsigned, "--key", key, "--out", out}, expect...)...); !strings.Contains(o, "director/") || strings.Contains(o, "warning") {
			t.Fatalf("root-sign printed %q", o)
		}
		return out
	}
	h1, p1 := holder("h1")
	h2, p2 := holder("h2")
	h3, p3 := holder("h3")
	u1 := filepath.Join(dir, "u1.json")
	r.ok(t, "keys", "root-prepare", "--public-key", p1, "--public-key", p2, "--public-key", p3, "--threshold", "2", "--out", u1)
	expect = []string{"--expect-public-key", p1, "--expect-public-key", p2, "--expect-public-key", p3, "--expect-threshold", "2"}
	s1, s3 := sign(u1, h1, "s1.json"), sign(u1, h3, "s3.json")
	// The service's one current key is online and signs for the old root; one new key is not enough.
	r.fails(t, "1 of its 3 new keys (2 needed)", "keys", "rotate-root", "--unsigned", u1, "--signature", s1)
	if res := r.run(t, "keys", "rotate-root", "--unsigned", u1); res.code != 2 {
		t.Fatalf("--unsigned without --signature: %+v", res)
	}
	var st0 v1.UpdateRootStatus
	r.json(t, &st0, "keys", "status")
	var rot v1.UpdateRootRotation
	r.json(t, &rot, "keys", "rotate-root", "--unsigned", u1, "--signature", s1, "--signature", s3)
	if rot.Threshold != 2 || len(rot.NewKeyIDs) != 3 || len(rot.Repositories) != 2 || rot.Repositories[1].RootVersion != 2 || len(rot.KeyPEMs) != 0 {
		t.Fatalf("detached rotation: %+v", rot)
	}
	var st v1.UpdateRootStatus
	r.json(t, &st, "keys", "status")
	if st.Online || st.Threshold != 2 || len(st.Keys) != 3 || st.Keys[0].Online || st.Keys[1].Online || st.Keys[2].Online {
		t.Fatalf("status after the detached rotation: %+v", st)
	}
	r.fails(t, "prepare again", "keys", "rotate-root", "--unsigned", u1, "--signature", s1, "--signature", s3)

	// 2-of-3 → 3-of-3: the current holders sign as well as the new ones.
	n1, q1 := holder("n1")
	n2, q2 := holder("n2")
	n3, q3 := holder("n3")
	u2 := filepath.Join(dir, "u2.json")
	r.ok(t, "keys", "root-prepare", "--public-key", q1, "--public-key", q2, "--public-key", q3, "--threshold", "3", "--out", u2)
	expect = []string{"--expect-public-key", q1, "--expect-public-key", q2, "--expect-public-key", q3, "--expect-threshold", "3"}
	newSigs := []string{"--signature", sign(u2, n1, "t1.json"), "--signature", sign(u2, n2, "t2.json"), "--signature", sign(u2, n3, "t3.json")}
	old1, old2 := sign(u2, h1, "o1.json"), sign(u2, h2, "o2.json")
	r.fails(t, "1 of the current 3 root keys (2 needed)", append([]string{"keys", "rotate-root", "--unsigned", u2, "--signature", old1}, newSigs...)...)
	// A forged signature: one hex digit changed.
	b, err := os.ReadFile(old2)
	if err != nil {
		t.Fatal(err)
	}
	var sigs v1.RootSignatures
	if err := json.Unmarshal(b, &sigs); err != nil {
		t.Fatal(err)
	}
	d := []byte(sigs.Signatures[0].Sig)
	if d[20] == '0' {
		d[20] = '1'
	} else {
		d[20] = '0'
	}
	sigs.Signatures[0].Sig = string(d)
	forged := filepath.Join(dir, "forged.json")
	b, _ = json.Marshal(sigs)
	if err := os.WriteFile(forged, b, 0o644); err != nil {
		t.Fatal(err)
	}
	r.fails(t, "does not verify", append([]string{"keys", "rotate-root", "--unsigned", u2, "--signature", old1, "--signature", forged}, newSigs...)...)
	r.json(t, &st, "keys", "status")
	if st.Threshold != 2 || st.Repositories[0].RootVersion != 2 {
		t.Fatalf("a refused rotation changed the root: %+v", st)
	}
	r.json(t, &rot, append([]string{"keys", "rotate-root", "--unsigned", u2, "--signature", old1, "--signature", old2}, newSigs...)...)
	if rot.Threshold != 3 || rot.OldThreshold != 2 || rot.Repositories[0].RootVersion != 3 {
		t.Fatalf("second detached rotation: %+v", rot)
	}
	r.fails(t, "revoked", "keys", "import-root", h1)
	r.ok(t, "keys", "import-root", n1) // a new key can be brought online like any other

	// Both prepares and both completions are audited: the new keys and threshold prepared, and
	// which keys signed for the old and the new threshold.
	keyID := func(pub string) string {
		b, err := os.ReadFile(pub)
		if err != nil {
			t.Fatal(err)
		}
		k, err := updatemeta.ParsePublicKey(b)
		if err != nil {
			t.Fatal(err)
		}
		id, err := imagepkg.KeyID(k)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	ids := func(pubs ...string) string {
		var out []string
		for _, p := range pubs {
			out = append(out, keyID(p))
		}
		slices.Sort(out)
		return fmt.Sprint(out)
	}
	var audit []v1.AuditEntry
	r.json(t, &audit, "audit", "list", "--action", "update-key.manage")
	var prepared, completed []string
	for _, a := range audit {
		var d struct {
			NewKeyIDs []string `json:"new_key_ids"`
			Threshold int      `json:"threshold"`
			OldBy     []string `json:"old_signer_key_ids"`
			NewBy     []string `json:"new_signer_key_ids"`
		}
		if a.Result != "success" || json.Unmarshal(a.Details, &d) != nil {
			continue
		}
		slices.Sort(d.NewKeyIDs)
		switch {
		case strings.HasPrefix(a.Message, "prepared an update-metadata root rotation"):
			prepared = append(prepared, fmt.Sprintf("%v %d", d.NewKeyIDs, d.Threshold))
		case strings.Contains(a.Message, "with detached signatures"):
			completed = append(completed, fmt.Sprintf("%v %v", d.OldBy, d.NewBy))
		}
	}
	if want := []string{ids(q1, q2, q3) + " 3", ids(p1, p2, p3) + " 2"}; fmt.Sprint(prepared) != fmt.Sprint(want) {
		t.Errorf("audited prepares %v, want %v", prepared, want)
	}
	if want := []string{ids(p1, p2) + " " + ids(q1, q2, q3), fmt.Sprint([]string{st0.Keys[0].KeyID}) + " " + ids(p1, p3)}; fmt.Sprint(completed) != fmt.Sprint(want) {
		t.Errorf("audited completions %v, want %v", completed, want)
	}
}

// TestE2EKeysRotateRootKeyFilesNeverPrinted: rotate-root refuses, before asking the service,
// to take keys offline into a place it cannot write (nothing rotates); and when a key file
// still cannot be written after the rotation, the key goes to root-KEYID.pem in the current
// directory, mode 0600, and no key material is printed on either stream.
func TestE2EKeysRotateRootKeyFilesNeverPrinted(t *testing.T) {
	e := startE2E(t)
	r := e.admin
	app, hw := appTree(t)
	pkg := filepath.Join(t.TempDir(), "app.rampkg")
	r.ok(t, "image-package", "pack-application", "--package-directory", app, "--hardware-definitions", hw, "--output-file", pkg, "--version", "1.0.0")
	r.ok(t, "image", "add", "--image-path", pkg)

	dir := t.TempDir()
	notDir := filepath.Join(dir, "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	r.fails(t, "cannot write key files", "keys", "rotate-root", "--out", filepath.Join(notDir, "k.pem"))
	r.fails(t, "file", "keys", "rotate-root", "--new-keys", "2", "--out-dir", filepath.Join(notDir, "keys"))
	var st v1.UpdateRootStatus
	r.json(t, &st, "keys", "status")
	if !st.Online || len(st.Keys) != 1 || st.Repositories[0].RootVersion != 1 {
		t.Fatalf("a refused rotate-root rotated: %+v", st)
	}

	// The key directory is writable when checked; writing the key files into it then fails.
	keyDir := filepath.Join(dir, "ceremony")
	cwd := filepath.Join(dir, "cwd")
	if err := os.Mkdir(cwd, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Chdir(cwd)
	orig := writeKeyFile
	t.Cleanup(func() { writeKeyFile = orig })
	writeKeyFile = func(name string, data []byte, perm os.FileMode) error {
		if strings.HasPrefix(name, keyDir) {
			return fmt.Errorf("writing %s: disk full", name)
		}
		return orig(name, data, perm)
	}
	res := r.run(t, "keys", "rotate-root", "--new-keys", "2", "--threshold", "2", "--out-dir", keyDir)
	if res.code != 0 || strings.Contains(res.out+res.err, "PRIVATE KEY") {
		t.Fatalf("rotate-root with the key directory failing: %+v", res)
	}
	r.json(t, &st, "keys", "status")
	if st.Online || len(st.Keys) != 2 || st.Threshold != 2 {
		t.Fatalf("after the rotation: %+v", st)
	}
	for _, k := range st.Keys {
		name := "root-" + k.KeyID + ".pem"
		if fi, err := os.Stat(filepath.Join(cwd, name)); err != nil || fi.Mode().Perm() != 0o600 || !strings.Contains(res.out, name) {
			t.Fatalf("fallback key file %s: %v %v; printed %q", name, fi, err, res.out)
		}
	}
	// The fallback keys are the root keys: they sign the next rotation.
	var args []string
	for _, k := range st.Keys {
		args = append(args, "--root-key", filepath.Join(cwd, "root-"+k.KeyID+".pem"))
	}
	r.ok(t, append([]string{"keys", "rotate-root"}, args...)...)
	// Nowhere to write: the error says so and still prints no key.
	writeKeyFile = func(name string, _ []byte, _ os.FileMode) error { return fmt.Errorf("writing %s: disk full", name) }
	res = r.run(t, "keys", "rotate-root", "--out-dir", filepath.Join(dir, "ceremony-2"))
	if res.code != 1 || !strings.Contains(res.err, "could not be written anywhere") || strings.Contains(res.out+res.err, "PRIVATE KEY") {
		t.Fatalf("rotate-root with every write failing: %+v", res)
	}
}
