package appinstall_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/imagepkg"
	"github.com/rampart-iot/rampart/internal/appinstall"
	"github.com/rampart-iot/rampart/manifest"
)

const (
	compA = "1689d8b2-c835-2e27-27ad-e894d6d15fa9"
	compB = "5e4b1b9c-2c0e-4d47-9a4c-7f3b1b8f1a20"
)

// app describes a test application image.
type app struct {
	name, component, image, version string
	kind                            imagepkg.Kind
	caps                            string // the manifest's Capabilities object
	size                            int    // bytes of lib/blob.bin
}

// built is a packed image: the package and the tree it holds, as an installed image must look.
type built struct {
	app
	pkg  []byte
	tree map[string]string
}

// imageID makes a deterministic image ID from a label.
func imageID(label string) string {
	s := sha256.Sum256([]byte(label))
	h := hex.EncodeToString(s[:16])
	return h[:8] + "-" + h[8:12] + "-4" + h[13:16] + "-8" + h[17:20] + "-" + h[20:32]
}

// pack builds a development-signed image package of a.
func pack(t testing.TB, a app) built {
	t.Helper()
	if a.kind == "" {
		a.kind = imagepkg.KindApplication
	}
	if a.component == "" {
		a.component = compA
	}
	if a.name == "" {
		a.name = "blink"
	}
	if a.image == "" {
		a.image = imageID(a.component + a.version + a.name)
	}
	if a.caps == "" {
		a.caps = `{"Gpio": [8], "MutableStorage": {"SizeKB": 64}}`
	}
	if a.size == 0 {
		a.size = 50_000
	}
	tree := t.TempDir()
	r := rand.New(rand.NewPCG(uint64(a.size), uint64(len(a.version)+len(a.name))))
	blob := make([]byte, a.size)
	for i := range blob {
		blob[i] = byte(r.Uint32())
	}
	must(t, os.MkdirAll(filepath.Join(tree, "bin"), 0o755))
	must(t, os.WriteFile(filepath.Join(tree, "bin", "app"), []byte("#!/bin/sh\necho "+a.name+" "+a.version+"\n"), 0o755))
	must(t, os.MkdirAll(filepath.Join(tree, "lib", "deep", "er"), 0o755))
	must(t, os.WriteFile(filepath.Join(tree, "lib", "blob.bin"), blob, 0o644))
	must(t, os.WriteFile(filepath.Join(tree, "lib", "deep", "er", "version"), []byte(a.version), 0o600))
	must(t, os.Symlink("lib/blob.bin", filepath.Join(tree, "blob")))
	for i := range 5 {
		must(t, os.WriteFile(filepath.Join(tree, "lib", fmt.Sprintf("small-%d", i)), bytes.Repeat([]byte{byte(i)}, 3000*i+1), 0o644))
	}
	meta := &imagepkg.Metadata{
		Version: imagepkg.MetadataVersion, ImageID: a.image, ComponentID: a.component, Kind: a.kind,
		Name: a.name, ImageVersion: a.version, CreatedAt: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC),
		Development: true,
	}
	switch a.kind {
	case imagepkg.KindApplication:
		m, err := manifest.Parse([]byte(fmt.Sprintf(`{"SchemaVersion": 1, "Name": %q, "ComponentId": %q,
			"EntryPoint": "/bin/app", "CmdArgs": [], "Capabilities": %s}`, a.name, a.component, a.caps)))
		must(t, err)
		meta.Manifest = m
	case imagepkg.KindOS:
		meta.Measurements = map[string]string{imagepkg.MeasurementOSBundle: strings.Repeat("ab", 32)}
	}
	var tarball, pkg bytes.Buffer
	var err error
	meta.Payload, err = imagepkg.PackDir(&tarball, tree)
	must(t, err)
	must(t, imagepkg.Write(&pkg, meta, &tarball, imagepkg.DevelopmentKey()))
	return built{app: a, pkg: pkg.Bytes(), tree: sealedTree(t, tree)}
}

// file writes b's package to a file.
func (b built) file(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), b.name+"-"+b.version+".rampkg")
	must(t, os.WriteFile(p, b.pkg, 0o600))
	return p
}

// describe lists a tree: every path with its type, permissions and contents.
func describe(dir string) (map[string]string, error) {
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			out[rel] = "symlink " + target
			return err
		case d.IsDir():
			out[rel] = fmt.Sprintf("dir %o", fi.Mode().Perm())
		default:
			b, err := os.ReadFile(p)
			s := sha256.Sum256(b)
			out[rel] = fmt.Sprintf("file %o %x", fi.Mode().Perm(), s[:8])
			return err
		}
		return nil
	})
	return out, err
}

// sealedTree is what the tree at dir looks like once installed: read-only.
func sealedTree(t testing.TB, dir string) map[string]string {
	t.Helper()
	d, err := describe(dir)
	must(t, err)
	for k, v := range d {
		switch {
		case strings.HasPrefix(v, "dir "):
			d[k] = "dir 555"
		case strings.HasPrefix(v, "file "):
			f := strings.Fields(v)
			mode := "444"
			if strings.ContainsAny(f[1][len(f[1])-1:], "1357") {
				mode = "555"
			}
			d[k] = "file " + mode + " " + f[2]
		}
	}
	return d
}

// sameTree returns an error if the tree at dir is not want.
func sameTree(dir string, want map[string]string) error {
	got, err := describe(dir)
	if err != nil {
		return err
	}
	var diffs []string
	for k, v := range want {
		if got[k] != v {
			diffs = append(diffs, fmt.Sprintf("%s: %q, want %q", k, got[k], v))
		}
	}
	for k, v := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: %q, not expected", k, v))
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		return fmt.Errorf("tree %s differs: %s", dir, strings.Join(diffs, "; "))
	}
	return nil
}

// snapshot describes a whole store directory, the state file's bytes included.
func snapshot(t testing.TB, dir string) string {
	t.Helper()
	d, err := describe(dir)
	must(t, err)
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s %s\n", k, d[k])
	}
	st, _ := os.ReadFile(filepath.Join(dir, appinstall.StateFile))
	b.Write(st)
	return b.String()
}

var devVerify = appinstall.Signed(imagepkg.TrustedKeys(nil, true), 1)

func open(t testing.TB, dir string) *appinstall.Apps {
	t.Helper()
	a, err := appinstall.Open(appinstall.Config{Dir: dir})
	must(t, err)
	return a
}

func install(t testing.TB, a *appinstall.Apps, b built, origin appinstall.Origin) appinstall.Installed {
	t.Helper()
	in, err := a.Install(t.Context(), b.file(t), devVerify, appinstall.Options{Origin: origin})
	must(t, err)
	return in
}

// current checks that the component's current image is b, complete.
func current(t testing.TB, a *appinstall.Apps, b built) {
	t.Helper()
	in, ok := a.Get(b.component)
	if !ok || in.Current.ID != b.image || in.Current.Version != b.version {
		t.Fatalf("current of %s is %+v (%v), want %s %s", b.component, in.Current, ok, b.version, b.image)
	}
	dir, ok := a.Path(b.image)
	if !ok {
		t.Fatalf("no path for current image %s", b.image)
	}
	must(t, sameTree(dir, b.tree))
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

type bytesBuffer = bytes.Buffer

func bytesReaderAt(b []byte) *bytes.Reader { return bytes.NewReader(b) }

// productionKeys is a tenant's image-signing key, which the test packages are not signed with.
func productionKeys(t testing.TB) []crypto.PublicKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), crand.Reader)
	must(t, err)
	return []crypto.PublicKey{&k.PublicKey}
}
