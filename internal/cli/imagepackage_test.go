package cli

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampart-iot/rampart/imagepkg"
	"github.com/rampart-iot/rampart/internal/measure"
)

const testAppManifest = `{
  "SchemaVersion": 1,
  "Name": "Blinky",
  "ComponentId": "2A4F1E0C-7B3D-4C59-9E8A-6D1F0B2C3E4A",
  "EntryPoint": "/bin/blinky",
  "CmdArgs": [],
  "Capabilities": { "Gpio": [ "$SAMPLE_LED", 9 ], "WifiConfig": true }
}`

const testHardware = `{
  "Metadata": { "Type": "Azure Sphere Hardware Definition", "Version": 1 },
  "Peripherals": [
    { "Name": "CHIP_GPIO8", "Type": "Gpio", "MainCoreHeaderValue": "(8)", "AppManifestValue": 8 },
    { "Name": "SAMPLE_LED", "Type": "Gpio", "Mapping": "CHIP_GPIO8" }
  ]
}`

// writeTree writes files (path -> contents) under a new directory; paths under bin/ are
// executable.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if strings.HasPrefix(name, "bin/") {
			mode = 0o755
		}
		if err := os.WriteFile(p, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// appTree is an application directory and a hardware definitions directory for it.
func appTree(t *testing.T) (app, hw string) {
	t.Helper()
	app = writeTree(t, map[string]string{"app_manifest.json": testAppManifest, "bin/blinky": "#!/bin/sh\n"})
	hw = writeTree(t, map[string]string{"board.json": testHardware})
	return app, hw
}

// show runs image-package show -o json on file.
func showJSON(t *testing.T, r *runner, file string) packageView {
	t.Helper()
	res := r.run(t, "image-package", "show", file, "-o", "json")
	if res.code != 0 {
		t.Fatalf("show: %d %s", res.code, res.err)
	}
	var v packageView
	if err := json.Unmarshal([]byte(res.out), &v); err != nil {
		t.Fatalf("show -o json: %v\n%s", err, res.out)
	}
	return v
}

func TestImagePackagePackApplication(t *testing.T) {
	r := newRunner(t, nil)
	app, hw := appTree(t)
	out := filepath.Join(t.TempDir(), "blinky.rampkg")
	res := r.run(t, "image-package", "pack-application", "--package-directory", app, "--output-file", out,
		"--hardware-definitions", hw, "--version", "1.4.2")
	if res.code != 0 {
		t.Fatalf("pack-application: %d %s", res.code, res.err)
	}
	if !strings.Contains(res.err, "warning: the manifest asks for WifiConfig, which is valid but not enforced") {
		t.Errorf("no warning about WifiConfig: %q", res.err)
	}
	for _, want := range []string{"application", "Blinky", "1.4.2", "2a4f1e0c-7b3d-4c59-9e8a-6d1f0b2c3e4a", imagepkg.DevelopmentKeyID, "development key"} {
		if !strings.Contains(res.out, want) {
			t.Errorf("pack output has no %q:\n%s", want, res.out)
		}
	}
	v := showJSON(t, r, out)
	m := v.Metadata
	if m.Kind != imagepkg.KindApplication || m.ImageVersion != "1.4.2" || !m.Development || !v.PayloadVerified {
		t.Errorf("show: %+v", v)
	}
	if g := m.Manifest.Capabilities.Gpio; len(g) != 2 || g[0].Number != 8 || g[0].Name != "" || g[1].Number != 9 {
		t.Errorf("the packaged manifest's Gpio is %v; want $SAMPLE_LED resolved to 8", g)
	}
	if len(v.Signatures) != 1 || !v.Signatures[0].Development || v.Signatures[0].Verified != "valid" {
		t.Errorf("signatures: %+v", v.Signatures)
	}
	// The table form says the same.
	res = r.run(t, "image-package", "show", out)
	if res.code != 0 || !strings.Contains(res.out, "matches the metadata") || !strings.Contains(res.out, "Not enforced") {
		t.Errorf("show: %d %s %s", res.code, res.out, res.err)
	}
	// The package passes a device's checks in development mode only.
	f, _ := os.ReadFile(out)
	p, err := imagepkg.Open(strings.NewReader(string(f)), int64(len(f)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Verify(imagepkg.TrustedKeys(nil, true), 1); err != nil {
		t.Error(err)
	}
}

func TestImagePackageSigningKeyAndVersion(t *testing.T) {
	r := newRunner(t, nil)
	app, hw := appTree(t)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	keyFile := filepath.Join(t.TempDir(), "key.pem")
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	out := filepath.Join(t.TempDir(), "blinky.rampkg")
	res := r.run(t, "image-package", "pack-application", "--package-directory", app, "--output-file", out,
		"--hardware-definitions", hw, "--signing-key", keyFile)
	if res.code != 0 {
		t.Fatalf("pack-application: %d %s", res.code, res.err)
	}
	v := showJSON(t, r, out)
	id, _ := imagepkg.KeyID(key.Public())
	if v.Metadata.Development || len(v.Signatures) != 1 || v.Signatures[0].KeyID != id || v.Signatures[0].Verified != "not checked" {
		t.Errorf("show: %+v %+v", v.Metadata, v.Signatures)
	}
	// Without --version, the version is 0.0.<Unix time>: it increases with each pack.
	ver, err := imagepkg.ParseVersion(v.Metadata.ImageVersion)
	if err != nil || ver.Major != 0 || ver.Minor != 0 || ver.Patch < 1700000000 {
		t.Errorf("default version %q, %v", v.Metadata.ImageVersion, err)
	}
}

func TestImagePackagePackOS(t *testing.T) {
	r := newRunner(t, nil)
	dir := writeTree(t, map[string]string{"boot/kernel": "kernel", "etc/os-release": "ID=rampart\n", "bin/init": "#!/bin/sh\n"})
	if err := os.Symlink("bin/init", filepath.Join(dir, "init")); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "os.rampkg")
	res := r.run(t, "image-package", "pack-os", "--os-directory", dir, "--output-file", out, "--version", "2.0.0")
	if res.code != 0 {
		t.Fatalf("pack-os: %d %s", res.code, res.err)
	}
	v := showJSON(t, r, out)
	want, err := measure.TreeDigest(dir)
	if err != nil {
		t.Fatal(err)
	}
	if v.Metadata.Measurements[imagepkg.MeasurementOSBundle] != hex.EncodeToString(want) {
		t.Errorf("os-bundle measurement %s, want %x", v.Metadata.Measurements[imagepkg.MeasurementOSBundle], want)
	}
	if v.Metadata.Kind != imagepkg.KindOS || v.Metadata.ComponentID != imagepkg.OSComponentID || v.Metadata.ImageVersion != "2.0.0" || v.Metadata.SecurityVersion != 0 {
		t.Errorf("metadata %+v", v.Metadata)
	}
	// Installed, the bundle measures as recorded.
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	p, err := imagepkg.Open(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	if err := p.Extract(dst); err != nil {
		t.Fatal(err)
	}
	got, _ := measure.TreeDigest(dst)
	if hex.EncodeToString(got) != hex.EncodeToString(want) {
		t.Errorf("the installed bundle measures %x, not %x", got, want)
	}
	// Another component ID.
	res = r.run(t, "image-package", "pack-os", "--os-directory", dir, "--output-file", out, "--component-id", "5E6F7A8B-9C0D-4E1F-8A2B-3C4D5E6F7A8B")
	if res.code != 0 || showJSON(t, r, out).Metadata.ComponentID != "5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b" {
		t.Errorf("--component-id: %d %s", res.code, res.err)
	}
	// A security version.
	res = r.run(t, "image-package", "pack-os", "--os-directory", dir, "--output-file", out, "--security-version", "3")
	if res.code != 0 || showJSON(t, r, out).Metadata.SecurityVersion != 3 {
		t.Errorf("--security-version: %d %s", res.code, res.err)
	}
	if res = r.run(t, "image-package", "show", out); !strings.Contains(res.out, "Security version") {
		t.Errorf("show does not print the security version:\n%s", res.out)
	}
}

func TestImagePackageErrors(t *testing.T) {
	r := newRunner(t, nil)
	app, hw := appTree(t)
	tmp := t.TempDir()
	out := filepath.Join(tmp, "x.rampkg")
	bad := writeTree(t, map[string]string{"app_manifest.json": `{"SchemaVersion":2,"Name":"x","ComponentId":"nope","EntryPoint":"bin/x","CmdArgs":[],"Capabilities":{"Gpio":[true],"Camera":true}}`})
	noEntry := writeTree(t, map[string]string{"app_manifest.json": strings.Replace(testAppManifest, `"$SAMPLE_LED", `, "", 1)})
	notExec := writeTree(t, map[string]string{"app_manifest.json": strings.Replace(testAppManifest, `"$SAMPLE_LED", `, "", 1), "x/blinky": ""})
	os.MkdirAll(filepath.Join(notExec, "bin"), 0o755)
	os.WriteFile(filepath.Join(notExec, "bin/blinky"), nil, 0o644)
	keyFile := filepath.Join(tmp, "key.pem")
	os.WriteFile(keyFile, []byte("not a key"), 0o600)
	tampered := filepath.Join(tmp, "tampered.rampkg")
	if res := r.run(t, "image-package", "pack-application", "--package-directory", app, "--output-file", tampered, "--hardware-definitions", hw); res.code != 0 {
		t.Fatal(res.err)
	}
	b, _ := os.ReadFile(tampered)
	b[len(b)-1] ^= 1
	os.WriteFile(tampered, b, 0o644)

	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no directory", []string{"pack-application", "--output-file", out}, exitUsage, "missing flag --package-directory"},
		{"no output", []string{"pack-application", "--package-directory", app}, exitUsage, "missing flag --output-file"},
		{"output inside", []string{"pack-application", "--package-directory", app, "--output-file", filepath.Join(app, "x.rampkg")}, exitUsage, "outside --package-directory"},
		{"bad version", []string{"pack-application", "--package-directory", app, "--output-file", out, "--version", "1.2"}, exitUsage, "--version"},
		{"invalid manifest", []string{"pack-application", "--package-directory", bad, "--output-file", out}, exitError,
			"SchemaVersion: must be 1, not 2; ComponentId: must be a UUID"},
		{"unknown capability", []string{"pack-application", "--package-directory", bad, "--output-file", out}, exitError, "Capabilities.Camera: unknown field"},
		{"wrong type", []string{"pack-application", "--package-directory", bad, "--output-file", out}, exitError, "Capabilities.Gpio[0]: must be a number or a string, not a boolean"},
		{"no manifest", []string{"pack-application", "--package-directory", t.TempDir(), "--output-file", out}, exitError, "app_manifest.json"},
		{"unresolved name", []string{"pack-application", "--package-directory", app, "--output-file", out}, exitError,
			"Capabilities.Gpio[0]: $SAMPLE_LED is a hardware-definition name; give the hardware definitions"},
		{"undefined name", []string{"pack-application", "--package-directory", app, "--output-file", out, "--hardware-definitions", tmp}, exitError, "--hardware-definitions: no hardware definition"},
		{"no entry point", []string{"pack-application", "--package-directory", noEntry, "--output-file", out}, exitError, "EntryPoint /bin/blinky is not in"},
		{"entry point not executable", []string{"pack-application", "--package-directory", notExec, "--output-file", out}, exitError, "is not executable"},
		{"bad signing key", []string{"pack-application", "--package-directory", app, "--output-file", out, "--hardware-definitions", hw, "--signing-key", keyFile}, exitError, "--signing-key"},
		{"os no directory", []string{"pack-os", "--output-file", out}, exitUsage, "missing flag --os-directory"},
		{"os bad component", []string{"pack-os", "--os-directory", app, "--output-file", out, "--component-id", "os"}, exitUsage, "--component-id"},
		{"os security version", []string{"pack-os", "--os-directory", app, "--output-file", out, "--security-version", "1048577"}, exitUsage, "--security-version 1048577 is above"},
		{"os not a directory", []string{"pack-os", "--os-directory", filepath.Join(app, "app_manifest.json"), "--output-file", out}, exitError, "not a directory"},
		{"show nothing", []string{"show"}, exitUsage, "missing argument F"},
		{"show not a package", []string{"show", filepath.Join(app, "app_manifest.json")}, exitError, "magic: not an image package"},
		{"show tampered", []string{"show", tampered}, exitError, "payload: payload does not match the digest"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := r.run(t, append([]string{"image-package"}, tc.args...)...)
			if res.code != tc.code {
				t.Errorf("exit %d, want %d: %s", res.code, tc.code, res.err)
			}
			if line := res.oneErrorLine(t); !strings.Contains(line, tc.msg) {
				t.Errorf("error %q does not contain %q", line, tc.msg)
			}
		})
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a failed pack left its output file")
	}
	entries, _ := os.ReadDir(tmp)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("a failed pack left %s", e.Name())
		}
	}
}
