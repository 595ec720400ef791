package imagepkg

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
	"time"

	"github.com/rampart-iot/rampart/manifest"
)

var update = flag.Bool("update", false, "rewrite the golden packages under testdata")

// Golden packages: built from fixed inputs with fixed keys, they must rebuild to the same bytes.
const (
	goldenPackage       = "testdata/application.rampkg"
	goldenCountersigned = "testdata/application-countersigned.rampkg"
)

// goldenManifest is the application manifest of the golden package.
const goldenManifest = `{
  "SchemaVersion": 1,
  "Name": "Blinky",
  "ComponentId": "2A4F1E0C-7B3D-4C59-9E8A-6D1F0B2C3E4A",
  "EntryPoint": "/bin/blinky",
  "CmdArgs": ["--interval", "500ms"],
  "Capabilities": {
    "AllowedConnections": ["telemetry.example.com"],
    "Gpio": [8, 9],
    "MutableStorage": { "SizeKB": 8 },
    "PowerControls": ["ForceReboot"]
  },
  "ApplicationType": "Default"
}`

// goldenTree is the golden package's payload: every kind of entry a payload may hold.
func goldenTree() fstest.MapFS {
	return fstest.MapFS{
		"app_manifest.json":     {Data: []byte(goldenManifest), Mode: 0o644},
		"bin":                   {Mode: fs.ModeDir | 0o755},
		"bin/blinky":            {Data: []byte("#!/bin/sh\nwhile :; do echo blink; sleep 1; done\n"), Mode: 0o755},
		"etc":                   {Mode: fs.ModeDir | 0o755},
		"etc/blinky.conf":       {Data: []byte("interval=500ms\n"), Mode: 0o640},
		"etc/current.conf":      {Data: []byte("blinky.conf"), Mode: fs.ModeSymlink | 0o777},
		"share":                 {Mode: fs.ModeDir | 0o555},
		"share/doc":             {Mode: fs.ModeDir | 0o755},
		"share/doc/README":      {Data: []byte("Blinky blinks.\n"), Mode: 0o444},
		"share/doc/empty":       {Data: nil, Mode: 0o600},
		"share/doc/bin-blinky":  {Data: []byte("../../bin/blinky"), Mode: fs.ModeSymlink | 0o777},
		"share/doc/deep-a-name": {Data: []byte("a file whose name sorts after the symlink\n"), Mode: 0o644},
	}
}

func readKey(t testing.TB, file string) *ecdsa.PrivateKey {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ParsePrivateKeyPEM(b)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func testKey(t testing.TB) *ecdsa.PrivateKey  { return readKey(t, "testdata/test-key.pem") }
func otherKey(t testing.TB) *ecdsa.PrivateKey { return readKey(t, "testdata/other-key.pem") }

// goldenMetadata is the golden package's metadata, for a payload described by p.
func goldenMetadata(t testing.TB, p Payload) *Metadata {
	t.Helper()
	m, err := manifest.Parse([]byte(goldenManifest))
	if err != nil {
		t.Fatal(err)
	}
	return &Metadata{
		Version:      MetadataVersion,
		ImageID:      "9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d",
		ComponentID:  m.ComponentId,
		Kind:         KindApplication,
		Name:         m.Name,
		ImageVersion: "1.4.2",
		CreatedAt:    time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Payload:      p,
		Manifest:     m,
	}
}

// buildGolden builds the golden package from its inputs.
func buildGolden(t testing.TB) []byte {
	t.Helper()
	var payload bytes.Buffer
	p, err := Pack(&payload, goldenTree())
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := Write(&out, goldenMetadata(t, p), &payload, testKey(t)); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func checkGolden(t *testing.T, file string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test -run TestGolden -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("rebuilding %s gives different bytes (%d, want %d); if the format changed on purpose, run go test -run TestGolden -update", file, len(got), len(want))
	}
}

// openAndVerify runs everything a device runs before it installs a package.
func openAndVerify(data []byte, trusted []crypto.PublicKey, threshold int) (*Package, *Verification, error) {
	p, err := Open(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, nil, err
	}
	v, err := p.Verify(trusted, threshold)
	if err != nil {
		return nil, nil, err
	}
	if err := p.VerifyPayload(); err != nil {
		return nil, nil, err
	}
	return p, v, nil
}

func TestGolden(t *testing.T) {
	got := buildGolden(t)
	checkGolden(t, goldenPackage, got)
	p, v, err := openAndVerify(got, []crypto.PublicKey{testKey(t).Public()}, 1)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := KeyID(testKey(t).Public())
	if len(v.KeyIDs) != 1 || v.KeyIDs[0] != id || v.DevelopmentOnly {
		t.Errorf("verification = %+v", v)
	}
	m := p.Metadata
	if m.Kind != KindApplication || m.ComponentID != "2a4f1e0c-7b3d-4c59-9e8a-6d1f0b2c3e4a" || m.ImageVersion != "1.4.2" ||
		m.Manifest.EntryPoint != "/bin/blinky" || m.Development {
		t.Errorf("metadata = %+v", m)
	}
	// The payload extracts to the tree it was packed from.
	dst := t.TempDir()
	if err := p.Extract(dst); err != nil {
		t.Fatal(err)
	}
	for name, f := range goldenTree() {
		st, err := os.Lstat(filepath.Join(dst, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode() != f.Mode {
			t.Errorf("%s: mode %v, want %v", name, st.Mode(), f.Mode)
		}
		switch {
		case f.Mode.IsRegular():
			b, _ := os.ReadFile(filepath.Join(dst, name))
			if !bytes.Equal(b, f.Data) {
				t.Errorf("%s: contents differ", name)
			}
		case f.Mode&fs.ModeSymlink != 0:
			target, _ := os.Readlink(filepath.Join(dst, name))
			if target != string(f.Data) {
				t.Errorf("%s: target %q, want %q", name, target, f.Data)
			}
		}
	}
}

// TestGoldenCountersigned adds a second signature to the golden package, as the service does
// on upload: the result is deterministic too, and verifies with a threshold of two.
func TestGoldenCountersigned(t *testing.T) {
	golden, err := os.ReadFile(goldenPackage)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Open(bytes.NewReader(golden), int64(len(golden)))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Sign(otherKey(t)); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := p.WriteTo(&out); err != nil {
		t.Fatal(err)
	}
	checkGolden(t, goldenCountersigned, out.Bytes())
	both := []crypto.PublicKey{testKey(t).Public(), otherKey(t).Public()}
	_, v, err := openAndVerify(out.Bytes(), both, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.KeyIDs) != 2 {
		t.Errorf("verification = %+v", v)
	}
	// Either key alone meets a threshold of one.
	for _, k := range both {
		if _, _, err := openAndVerify(out.Bytes(), []crypto.PublicKey{k}, 1); err != nil {
			t.Error(err)
		}
	}
	// Signing twice with one key is refused.
	if err := p.Sign(otherKey(t)); err == nil {
		t.Error("a second signature by the same key was accepted")
	}
	// An unknown key does not verify it.
	_, _, err = openAndVerify(out.Bytes(), []crypto.PublicKey{DevelopmentPublicKey()}, 1)
	if !errors.Is(err, ErrUntrusted) {
		t.Errorf("verified with an unrelated key: %v", err)
	}
}
