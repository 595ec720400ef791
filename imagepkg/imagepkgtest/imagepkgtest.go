// Package imagepkgtest builds image packages for tests: applications from a few files and a
// manifest, and OS bundles with their golden measurement, signed with the development key
// unless a key is given.
package imagepkgtest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/imagepkg"
	"github.com/rampart-iot/rampart/internal/measure"
	"github.com/rampart-iot/rampart/manifest"
)

// App describes an application image. Files maps paths in the image to contents; an entry
// point "bin/app" is made executable.
type App struct {
	ComponentID string // "" for a new random one
	Name        string
	Version     string
	EntryPoint  string // default "/bin/app"
	CmdArgs     []string
	// Capabilities is the manifest's Capabilities object as JSON, default "{}".
	Capabilities string
	Files        map[string]string
	Key          *ecdsa.PrivateKey // default: the development key
}

// Built is a built package and what it is.
type Built struct {
	Bytes       []byte
	ImageID     string
	ComponentID string
	Version     string
}

// File writes the package into dir and returns its path.
func (b Built) File(t testing.TB, dir string) string {
	t.Helper()
	p := filepath.Join(dir, b.ImageID+".rampkg")
	if err := os.WriteFile(p, b.Bytes, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// NewUUID returns a random UUID.
func NewUUID(t testing.TB) string {
	t.Helper()
	id, err := imagepkg.NewUUID(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// Application builds an application package.
func Application(t testing.TB, a App) Built {
	t.Helper()
	if a.ComponentID == "" {
		a.ComponentID = NewUUID(t)
	}
	if a.EntryPoint == "" {
		a.EntryPoint = "/bin/app"
	}
	if a.Capabilities == "" {
		a.Capabilities = "{}"
	}
	dir := t.TempDir()
	args, err := json.Marshal(append([]string{}, a.CmdArgs...))
	if err != nil {
		t.Fatal(err)
	}
	doc := fmt.Sprintf(`{"SchemaVersion":1,"Name":%q,"ComponentId":%q,"EntryPoint":%q,"CmdArgs":%s,"Capabilities":%s,"ApplicationType":"Default"}`,
		a.Name, a.ComponentID, a.EntryPoint, args, a.Capabilities)
	files := map[string]string{"app_manifest.json": doc}
	if len(a.Files) == 0 {
		files["bin/app"] = "#!/bin/sh\necho " + a.Name + " " + a.Version + "\n"
	}
	for k, v := range a.Files {
		files[k] = v
	}
	write(t, dir, files)
	m, err := manifest.ReadFile(filepath.Join(dir, "app_manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	meta := &imagepkg.Metadata{Version: imagepkg.MetadataVersion, ComponentID: m.ComponentId, Kind: imagepkg.KindApplication,
		Name: a.Name, ImageVersion: a.Version, CreatedAt: time.Now().UTC().Truncate(time.Second), Manifest: m}
	return build(t, meta, dir, a.Key)
}

// OS builds an OS bundle package of the given files, with its golden OS-bundle measurement
// (measure.TreeDigest of the files), as `rampart image-package pack-os` does.
func OS(t testing.TB, componentID, version string, files map[string]string, key *ecdsa.PrivateKey) Built {
	t.Helper()
	return OSMeasured(t, componentID, version, files, nil, key)
}

// OSMeasured is OS with more golden measurements (such as "agent" and "policy", which make the
// service register the image as an OS release).
func OSMeasured(t testing.TB, componentID, version string, files, measurements map[string]string, key *ecdsa.PrivateKey) Built {
	t.Helper()
	return OSSecure(t, componentID, version, files, measurements, key, 0)
}

// OSSecure is OSMeasured with a security version, as pack-os --security-version makes.
func OSSecure(t testing.TB, componentID, version string, files, measurements map[string]string, key *ecdsa.PrivateKey, security uint64) Built {
	t.Helper()
	if componentID == "" {
		componentID = NewUUID(t)
	}
	dir := t.TempDir()
	write(t, dir, files)
	digest, err := measure.TreeDigest(dir)
	if err != nil {
		t.Fatal(err)
	}
	ms := map[string]string{imagepkg.MeasurementOSBundle: hex.EncodeToString(digest)}
	for k, v := range measurements {
		ms[k] = v
	}
	meta := &imagepkg.Metadata{Version: imagepkg.MetadataVersion, ComponentID: componentID, Kind: imagepkg.KindOS,
		Name: "os", ImageVersion: version, CreatedAt: time.Now().UTC().Truncate(time.Second), Measurements: ms,
		SecurityVersion: security}
	return build(t, meta, dir, key)
}

func write(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if filepath.Dir(name) == "bin" {
			mode = 0o755
		}
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
	}
}

func build(t testing.TB, meta *imagepkg.Metadata, dir string, key *ecdsa.PrivateKey) Built {
	t.Helper()
	if key == nil {
		key = imagepkg.DevelopmentKey()
		meta.Development = true
	}
	var err error
	if meta.ImageID, err = imagepkg.NewUUID(rand.Reader); err != nil {
		t.Fatal(err)
	}
	var payload, out bytes.Buffer
	if meta.Payload, err = imagepkg.PackDir(&payload, dir); err != nil {
		t.Fatal(err)
	}
	if err := imagepkg.Write(&out, meta, &payload, key); err != nil {
		t.Fatal(err)
	}
	return Built{Bytes: out.Bytes(), ImageID: meta.ImageID, ComponentID: meta.ComponentID, Version: meta.ImageVersion}
}
