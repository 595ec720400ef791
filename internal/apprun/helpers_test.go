package apprun_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/imagepkg"
	"github.com/rampart-iot/rampart/internal/appinstall"
	"github.com/rampart-iot/rampart/internal/apprun"
	"github.com/rampart-iot/rampart/internal/sandbox"
	"github.com/rampart-iot/rampart/manifest"
)

func TestMain(m *testing.M) {
	sandbox.Init() // in a sandbox's init this never returns
	code := m.Run()
	if appDir != "" {
		os.RemoveAll(appDir)
	}
	os.Exit(code)
}

var (
	appOnce sync.Once
	appDir  string
	appBin  string
	appErr  error
)

// needRoot skips tests that run real sandboxes when not root.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the supervisor runs real sandboxes")
	}
}

// testApp builds testdata/app as a static binary, once.
func testApp(t *testing.T) []byte {
	t.Helper()
	appOnce.Do(func() {
		appDir, appErr = os.MkdirTemp("", "apprun-testapp-")
		if appErr != nil {
			return
		}
		appBin = filepath.Join(appDir, "app")
		gobin, err := exec.LookPath("go")
		if err != nil {
			gobin = "/usr/local/go/bin/go"
		}
		cmd := exec.Command(gobin, "build", "-o", appBin, "./testdata/app")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			appErr = fmt.Errorf("building the test app: %v\n%s", err, out)
		}
	})
	if appErr != nil {
		t.Fatal(appErr)
	}
	b, err := os.ReadFile(appBin)
	must(t, err)
	return b
}

// newUUID returns a random lower-case UUID (version 4).
func newUUID(t *testing.T) string {
	var b [16]byte
	_, err := rand.Read(b[:])
	must(t, err)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// device is an application store and a supervisor state directory, as on a device.
type device struct {
	apps     *appinstall.Apps
	stateDir string
	events   *recorder
}

func newDevice(t *testing.T) *device {
	t.Helper()
	root := t.TempDir()
	apps, err := appinstall.Open(appinstall.Config{Dir: filepath.Join(root, "apps")})
	must(t, err)
	state := filepath.Join(root, "apprun")
	must(t, os.Mkdir(state, 0o700))
	return &device{apps: apps, stateDir: state, events: &recorder{}}
}

// image describes a test application image.
type image struct {
	component, name, version string
	args                     []string
	storageKB                int      // MutableStorage.SizeKB, 0 for none
	hosts                    []string // AllowedConnections
}

// install packs img as the agent receives it (a development-signed image package of the test
// app) and installs it through appinstall, as the agent does. It returns the image ID.
func (d *device) install(t *testing.T, img image) string {
	t.Helper()
	tree := t.TempDir()
	must(t, os.Mkdir(filepath.Join(tree, "bin"), 0o755))
	must(t, os.WriteFile(filepath.Join(tree, "bin", "app"), testApp(t), 0o755))
	caps := map[string]any{}
	if img.storageKB > 0 {
		caps["MutableStorage"] = map[string]int{"SizeKB": img.storageKB}
	}
	if img.hosts != nil {
		caps["AllowedConnections"] = img.hosts
	}
	args := img.args
	if args == nil {
		args = []string{}
	}
	doc, err := json.Marshal(map[string]any{"SchemaVersion": 1, "Name": img.name, "ComponentId": img.component,
		"EntryPoint": "/bin/app", "CmdArgs": args, "Capabilities": caps})
	must(t, err)
	m, err := manifest.Parse(doc)
	must(t, err)
	id := newUUID(t)
	meta := &imagepkg.Metadata{
		Version: imagepkg.MetadataVersion, ImageID: id, ComponentID: img.component,
		Kind: imagepkg.KindApplication, Name: img.name, ImageVersion: img.version,
		CreatedAt: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), Development: true, Manifest: m,
	}
	var tarball, pkg bytes.Buffer
	meta.Payload, err = imagepkg.PackDir(&tarball, tree)
	must(t, err)
	must(t, imagepkg.Write(&pkg, meta, &tarball, imagepkg.DevelopmentKey()))
	file := filepath.Join(t.TempDir(), img.name+"-"+img.version+".rampkg")
	must(t, os.WriteFile(file, pkg.Bytes(), 0o600))
	verify := appinstall.Signed(imagepkg.TrustedKeys(nil, true), 1)
	in, err := d.apps.Install(t.Context(), file, verify, appinstall.Options{})
	must(t, err)
	if in.Current.ID != id {
		t.Fatalf("installed %s, current is %s", id, in.Current.ID)
	}
	return id
}

// The tests' uid range: apart from the default range, which other packages' tests (the agent's
// end-to-end test) use at the same time, so that counting a uid's processes counts only ours.
const (
	testUIDMin = 310000
	testUIDMax = 319999
)

// supervisor makes a supervisor over d with fast backoff and fixed jitter.
func (d *device) supervisor(t *testing.T, mods ...func(*apprun.Config)) *apprun.Supervisor {
	t.Helper()
	cfg := apprun.Config{
		UIDMin:     testUIDMin,
		UIDMax:     testUIDMax,
		Apps:       d.apps,
		StateDir:   d.stateDir,
		Events:     d.events.add,
		BackoffMin: 20 * time.Millisecond,
		BackoffMax: 160 * time.Millisecond,
		Rand:       func() float64 { return 0.5 },
		Limits:     sandbox.Limits{MemoryBytes: 128 << 20, Pids: 64},
	}
	for _, m := range mods {
		m(&cfg)
	}
	s, err := apprun.New(cfg)
	must(t, err)
	return s
}

// run runs s until the returned stop is called (or the test ends); stop returns Run's error
// once Run has returned.
func run(t *testing.T, s *apprun.Supervisor) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				err = fmt.Errorf("Run did not return 30 s after its context ended")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// waitFor polls cond until it holds, failing the test after a generous deadline. The deadline
// only bounds a hang; no test asserts on how long anything took.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second) // generous: a loaded CI machine makes storage images slowly
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// status returns the component's status, failing if there is none.
func status(t *testing.T, s *apprun.Supervisor, cid string) apprun.AppStatus {
	t.Helper()
	st, ok := s.Get(cid)
	if !ok {
		t.Fatalf("no status for %s; list: %+v", cid, s.List())
	}
	return st
}

// logHas reports whether the application's log holds text.
func logHas(s *apprun.Supervisor, cid, text string) bool {
	return strings.Contains(string(s.Log(cid)), text)
}

// alive reports whether a host process exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(f) > 0 && f[0] != "Z"
}

// recorder keeps the supervisor's events.
type recorder struct {
	mu     sync.Mutex
	events []apprun.Event
}

func (r *recorder) add(ev apprun.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
}

// of returns the events of kind about component cid.
func (r *recorder) of(kind apprun.EventKind, cid string) []apprun.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []apprun.Event
	for _, ev := range r.events {
		if ev.Kind == kind && ev.ComponentID == cid {
			out = append(out, ev)
		}
	}
	return out
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
