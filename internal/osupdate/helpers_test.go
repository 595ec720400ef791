package osupdate_test

import (
	"archive/tar"
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

	"github.com/rampart-iot/rampart/internal/bootctl"
	"github.com/rampart-iot/rampart/internal/measure"
	"github.com/rampart-iot/rampart/internal/osupdate"
)

// osBundle is an OS bundle built for a test: the tar file, and what it must be.
type osBundle struct {
	version     string
	tar         []byte
	sha256      string
	measurement string // the tree digest of the unpacked slot
}

// makeBundle builds an OS bundle for version whose payload has size pseudo-random bytes.
func makeBundle(t testing.TB, version string, size int) osBundle {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	r := rand.New(rand.NewPCG(uint64(size), uint64(len(version))))
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = byte(r.Uint32())
	}
	entries := []struct {
		h    tar.Header
		body []byte
	}{
		{tar.Header{Typeflag: tar.TypeDir, Name: "./", Mode: 0o755}, nil},
		{tar.Header{Typeflag: tar.TypeDir, Name: "etc/", Mode: 0o755}, nil},
		{tar.Header{Typeflag: tar.TypeReg, Name: "etc/os-release", Mode: 0o644}, []byte("VERSION=" + version + "\n")},
		{tar.Header{Typeflag: tar.TypeDir, Name: "usr/lib/", Mode: 0o755}, nil},
		{tar.Header{Typeflag: tar.TypeReg, Name: "usr/lib/libos.so", Mode: 0o755}, payload},
		{tar.Header{Typeflag: tar.TypeSymlink, Name: "lib", Linkname: "usr/lib"}, nil},
		{tar.Header{Typeflag: tar.TypeDir, Name: "var/empty/", Mode: 0o555}, nil},
	}
	for _, e := range entries {
		e.h.Size = int64(len(e.body))
		if err := tw.WriteHeader(&e.h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	b := osBundle{version: version, tar: buf.Bytes()}
	sum := sha256.Sum256(b.tar)
	b.sha256 = hex.EncodeToString(sum[:])
	// The measurement is what the real unpacker produces.
	dir := t.TempDir()
	file := filepath.Join(dir, "bundle")
	must(t, os.WriteFile(file, b.tar, 0o600))
	tree := filepath.Join(dir, "tree")
	must(t, os.Mkdir(tree, 0o755))
	must(t, osupdate.Untar(context.Background(), file, tree))
	m, err := measure.TreeDigest(tree)
	must(t, err)
	b.measurement = hex.EncodeToString(m)
	// Leave the tree removable.
	must(t, os.Chmod(filepath.Join(tree, "var", "empty"), 0o755))
	return b
}

func (b osBundle) target(base string) *osupdate.Target {
	return &osupdate.Target{Version: b.version, SHA256: b.sha256, Size: int64(len(b.tar)),
		URL: base + "/bundles/" + b.sha256, Measurement: b.measurement}
}

// fill is a write function for bootctl that unpacks b.
func (b osBundle) fill(dir string) error {
	f, err := os.CreateTemp("", "bundle")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b.tar); err != nil {
		return err
	}
	f.Close()
	return osupdate.Untar(context.Background(), f.Name(), dir)
}

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
	s.bundles[b.sha256] = b.tar
}

func (s *bundleServer) setCorrupt(c bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.corrupt = c
}

func newBundleServer(t testing.TB, bs ...osBundle) *bundleServer {
	s := &bundleServer{bundles: map[string][]byte{}}
	for _, b := range bs {
		s.bundles[b.sha256] = b.tar
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
