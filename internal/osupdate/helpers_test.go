package osupdate_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/imagepkg"
	"github.com/rampart-iot/rampart/internal/bootctl"
	"github.com/rampart-iot/rampart/internal/measure"
	"github.com/rampart-iot/rampart/internal/osupdate"
)

// osBundle is an OS bundle built for a test: the image package, and what it must be.
type osBundle struct {
	version     string
	pkg         []byte
	sha256      string
	measurement string // the golden OS-bundle measurement: the tree digest of the slot
	security    uint64 // the package's security version
}

// makeBundle builds an OS image package for version, signed with the development key, whose
// tree holds a file of size pseudo-random bytes.
func makeBundle(t testing.TB, version string, size int) osBundle {
	t.Helper()
	return makeSecureBundle(t, version, size, 0)
}

// makeSecureBundle is makeBundle with a security version in the package's metadata.
func makeSecureBundle(t testing.TB, version string, size int, security uint64) osBundle {
	t.Helper()
	tree := t.TempDir()
	r := rand.New(rand.NewPCG(uint64(size), uint64(len(version))))
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte(r.Uint32())
	}
	must(t, os.MkdirAll(filepath.Join(tree, "etc"), 0o755))
	must(t, os.WriteFile(filepath.Join(tree, "etc", "os-release"), []byte("VERSION="+version+"\n"), 0o644))
	must(t, os.MkdirAll(filepath.Join(tree, "usr", "lib"), 0o755))
	must(t, os.WriteFile(filepath.Join(tree, "usr", "lib", "libos.so"), payload, 0o755))
	must(t, os.Symlink("usr/lib", filepath.Join(tree, "lib")))
	must(t, os.MkdirAll(filepath.Join(tree, "var"), 0o755))
	must(t, os.Mkdir(filepath.Join(tree, "var", "empty"), 0o555))
	sum, err := measure.TreeDigest(tree)
	must(t, err)
	b := osBundle{version: version, measurement: hex.EncodeToString(sum), security: security}

	var tarball bytes.Buffer
	meta := &imagepkg.Metadata{
		Version: imagepkg.MetadataVersion, ImageID: "6f1c2d4e-8a9b-4c3d-9e8f-0a1b2c3d4e5f", ComponentID: imagepkg.OSComponentID,
		Kind: imagepkg.KindOS, Name: "os", ImageVersion: version, CreatedAt: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC),
		Measurements: map[string]string{imagepkg.MeasurementOSBundle: b.measurement}, Development: true,
		SecurityVersion: security,
	}
	meta.Payload, err = imagepkg.PackDir(&tarball, tree)
	must(t, err)
	var pkg bytes.Buffer
	must(t, imagepkg.Write(&pkg, meta, &tarball, imagepkg.DevelopmentKey()))
	b.pkg = pkg.Bytes()
	s := sha256.Sum256(b.pkg)
	b.sha256 = hex.EncodeToString(s[:])
	return b
}

func (b osBundle) target(base string) *osupdate.Target {
	return &osupdate.Target{Version: b.version, SHA256: b.sha256, Size: int64(len(b.pkg)),
		URL: base + "/bundles/" + b.sha256, Measurement: b.measurement, SecurityVersion: b.security}
}

// fill is a write function for bootctl that unpacks b.
func (b osBundle) fill(dir string) error {
	p, err := imagepkg.Open(bytes.NewReader(b.pkg), int64(len(b.pkg)))
	if err != nil {
		return err
	}
	return p.Extract(dir)
}

// devVerifier verifies packages as a device in development mode does.
var devVerifier = osupdate.PackageVerifier{Trusted: imagepkg.TrustedKeys(nil, true)}

// bundleServer serves bundles by digest, with Range support, over TLS.
type bundleServer struct {
	*httptest.Server
	mu      sync.Mutex
	bundles map[string][]byte
	corrupt bool // flip a byte of everything served
}

func (s *bundleServer) add(b osBundle) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bundles[b.sha256] = b.pkg
}

func (s *bundleServer) setCorrupt(c bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.corrupt = c
}

func newBundleServer(t testing.TB, bs ...osBundle) *bundleServer {
	s := &bundleServer{bundles: map[string][]byte{}}
	for _, b := range bs {
		s.bundles[b.sha256] = b.pkg
	}
	s.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		body, ok := s.bundles[filepath.Base(r.URL.Path)]
		if ok && s.corrupt {
			body = bytes.Clone(body)
			body[len(body)/2] ^= 1
		}
		s.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, "bundle", time.Time{}, bytes.NewReader(body))
	}))
	t.Cleanup(s.Close)
	return s
}

// fakeClock advances only when waited on.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

// fileSink appends events as JSON lines to a file and syncs it: a durable queue in miniature.
type fileSink struct{ path string }

func (s fileSink) Report(_ context.Context, e osupdate.Event) error {
	f, err := os.OpenFile(s.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	b, _ := json.Marshal(e)
	if _, err := f.Write(append(b, '\n')); err != nil {
		return err
	}
	return f.Sync()
}

// readEvents reads a fileSink's events, keeping one per ID.
func readEvents(t testing.TB, path string) []osupdate.Event {
	es, err := eventsIn(path)
	must(t, err)
	return es
}

func eventsIn(path string) ([]osupdate.Event, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []osupdate.Event
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e osupdate.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			continue // a line cut by a power cut; the event is reported again
		}
		if !seen[e.ID] {
			seen[e.ID] = true
			out = append(out, e)
		}
	}
	return out, sc.Err()
}

// staticSource offers one target.
type staticSource struct{ t *osupdate.Target }

func (s *staticSource) Target(context.Context) (*osupdate.Target, error) { return s.t, nil }

// provision makes a device state directory with slot a holding b and an app data file, and
// returns the data file's path and contents.
func provision(t testing.TB, state string, b osBundle) (dataFile string, data []byte) {
	t.Helper()
	dataFile, data, err := provisionDevice(state, b)
	must(t, err)
	return dataFile, data
}

func provisionDevice(state string, b osBundle) (dataFile string, data []byte, err error) {
	d, err := bootctl.OpenDir(filepath.Join(state, "boot"))
	if err != nil {
		return "", nil, err
	}
	if err := d.Provision(context.Background(), bootctl.SlotInfo{Version: b.version, Digest: b.measurement}, b.fill); err != nil {
		return "", nil, err
	}
	dataFile = filepath.Join(state, "data", "app", "db")
	if err := os.MkdirAll(filepath.Dir(dataFile), 0o700); err != nil {
		return "", nil, err
	}
	data = []byte("app data that OS updates never touch\n")
	return dataFile, data, os.WriteFile(dataFile, data, 0o600)
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
