// The example applications, each tested as it would run on a device: built as a static binary
// from its directory, packed with its committed app_manifest.json by the real CLI (`rampart
// image-package pack-application --hardware-definitions hardware/emulated`), installed through
// appinstall and run by the agent's supervisor (apprun) in a real sandbox, with the real applibs
// server on the emulated board and, for the networked apps, the agent's network policy
// (netpolicy) in a test world of network namespaces. docs/EXAMPLES.md says what each shows.
package examples_test

import (
	"bytes"
	"context"
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
	"github.com/rampart-iot/rampart/internal/applibs"
	"github.com/rampart-iot/rampart/internal/apprun"
	"github.com/rampart-iot/rampart/internal/board"
	"github.com/rampart-iot/rampart/internal/board/emulated"
	"github.com/rampart-iot/rampart/internal/cli"
	"github.com/rampart-iot/rampart/internal/sandbox"
)

func TestMain(m *testing.M) {
	sandbox.Init() // in a sandbox's init this never returns
	code := m.Run()
	binMu.Lock()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	binMu.Unlock()
	os.Exit(code)
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the examples run in real sandboxes")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

var (
	binMu  sync.Mutex
	binDir string
	built  = map[string]string{}
)

// binary builds examples/NAME as a static binary (the sandbox has no C library), once.
func binary(t *testing.T, name string) string {
	t.Helper()
	binMu.Lock()
	defer binMu.Unlock()
	if p, ok := built[name]; ok {
		return p
	}
	if binDir == "" {
		d, err := os.MkdirTemp("", "rampart-examples-")
		must(t, err)
		binDir = d
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = "/usr/local/go/bin/go"
	}
	p := filepath.Join(binDir, name)
	cmd := exec.Command(gobin, "build", "-o", p, "./"+name)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building examples/%s: %v\n%s", name, err, out)
	}
	built[name] = p
	return p
}

// packageDir lays out examples/NAME as `make build` does in bin/examples/NAME: its committed
// app_manifest.json and its binary at bin/NAME, plus extra files (path in the image ->
// contents). What docs/EXAMPLES.md tells a developer to edit, the test edits, and nothing else:
// tenant, if not "", replaces DeviceAuthentication's placeholder with the tenant's ID; cmdArgs,
// if not nil, replaces CmdArgs (a shorter interval).
func packageDir(t *testing.T, name, tenant string, cmdArgs []string, extra map[string][]byte) string {
	t.Helper()
	dir := t.TempDir()
	must(t, os.Chmod(dir, 0o755))
	doc, err := os.ReadFile(filepath.Join(name, "app_manifest.json"))
	must(t, err)
	var m map[string]any
	must(t, json.Unmarshal(doc, &m))
	if cmdArgs != nil {
		m["CmdArgs"] = cmdArgs
	}
	if tenant != "" {
		caps := m["Capabilities"].(map[string]any)
		if caps["DeviceAuthentication"] == nil {
			t.Fatalf("examples/%s's manifest has no DeviceAuthentication", name)
		}
		caps["DeviceAuthentication"] = tenant
	}
	doc, err = json.MarshalIndent(m, "", "  ")
	must(t, err)
	files := map[string][]byte{"app_manifest.json": doc}
	exe, err := os.ReadFile(binary(t, name))
	must(t, err)
	files["bin/"+name] = exe
	for k, v := range extra {
		files[k] = v
	}
	for k, v := range files {
		p := filepath.Join(dir, k)
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		mode := os.FileMode(0o644)
		if strings.HasPrefix(k, "bin/") {
			mode = 0o755
		}
		must(t, os.WriteFile(p, v, mode))
	}
	return dir
}

// pack packs dir with the real CLI, as docs/EXAMPLES.md tells a developer to, signed with the
// development key, and returns the package file.
func pack(t *testing.T, dir string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), filepath.Base(dir)+".rampkg")
	var stdout, stderr bytes.Buffer
	code := cli.Run(t.Context(), []string{"image-package", "pack-application", "--package-directory", dir,
		"--hardware-definitions", filepath.Join("..", "hardware", "emulated"), "--version", "1.0.0", "--output-file", out},
		cli.IO{Out: &stdout, Err: &stderr, HomeDir: t.TempDir()})
	if code != 0 {
		t.Fatalf("rampart image-package pack-application: exit %d: %s", code, stderr.String())
	}
	return out
}

// The tests' uid range: apart from the default range and apprun's tests' range.
const (
	testUIDMin = 320000
	testUIDMax = 320999
)

// device is the agent's application stack over the emulated board: an installer, the applibs
// host and a supervisor.
type device struct {
	board *emulated.Board
	apps  *appinstall.Apps
	sup   *apprun.Supervisor
}

// newDevice installs the packages and runs a supervisor over them until the test ends. certs
// gives the apps their certificates (nil: none); network is the agent's network policy (nil:
// loopback only).
func newDevice(t *testing.T, certs applibs.Certificates, network apprun.Network, packages ...string) *device {
	t.Helper()
	root := t.TempDir()
	d := &device{board: emulated.New(board.Options{})}
	var err error
	d.apps, err = appinstall.Open(appinstall.Config{Dir: filepath.Join(root, "apps")})
	must(t, err)
	verify := appinstall.Signed(imagepkg.TrustedKeys(nil, true), 1)
	for _, p := range packages {
		_, err := d.apps.Install(t.Context(), p, verify, appinstall.Options{})
		must(t, err)
	}
	// A short directory: a Unix socket's path is at most 107 bytes.
	run, err := os.MkdirTemp("", "rx-")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(run) })
	host, err := applibs.NewHost(applibs.HostConfig{Dir: filepath.Join(run, "a"), Board: d.board, Certificates: certs})
	must(t, err)
	state := filepath.Join(root, "apprun")
	must(t, os.Mkdir(state, 0o700))
	cfg := apprun.Config{
		Apps: d.apps, StateDir: state, UIDMin: testUIDMin, UIDMax: testUIDMax, Applibs: host,
		BackoffMin: 50 * time.Millisecond, BackoffMax: 500 * time.Millisecond,
		Limits: sandbox.Limits{MemoryBytes: 128 << 20, Pids: 64},
	}
	if network != nil {
		cfg.Network = network
	}
	d.sup, err = apprun.New(cfg)
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.sup.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("the supervisor: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("the supervisor did not stop 30 s after its context ended")
		}
	})
	return d
}

// componentID reads examples/NAME's component ID from its manifest.
func componentID(t *testing.T, name string) string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join(name, "app_manifest.json"))
	must(t, err)
	var m struct{ ComponentId string }
	must(t, json.Unmarshal(doc, &m))
	return strings.ToLower(m.ComponentId)
}

// waitFor polls cond until it holds; the deadline only bounds a hang, nothing asserts on time.
// On failure it shows the app's log.
func (d *device) waitFor(t *testing.T, cid, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			st, _ := d.sup.Get(cid)
			t.Fatalf("timed out waiting until %s; app status %+v; its log:\n%s", what, st, d.sup.Log(cid))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// logHas reports whether the app's log holds text.
func (d *device) logHas(cid, text string) bool {
	return strings.Contains(string(d.sup.Log(cid)), text)
}

func (d *device) led(name string) bool {
	for _, l := range d.board.State().LEDs {
		if l.Name == name {
			return l.On
		}
	}
	panic(fmt.Sprintf("the board has no LED %s", name))
}
