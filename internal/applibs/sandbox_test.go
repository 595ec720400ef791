package applibs

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	sdk "github.com/rampart-iot/rampart/applibs"
	"github.com/rampart-iot/rampart/internal/board"
	"github.com/rampart-iot/rampart/internal/board/emulated"
	"github.com/rampart-iot/rampart/internal/sandbox"
)

func TestMain(m *testing.M) {
	sandbox.Init()
	code := m.Run()
	if appDir != "" {
		os.RemoveAll(appDir)
	}
	os.Exit(code)
}

var (
	appOnce sync.Once
	appDir  string
	appErr  error
)

const testUID = 61240

// sandboxed runs testdata/app MODE in a real sandbox with caps, served by a host on b, and
// returns its stdout as JSON lines on a channel.
func sandboxed(t *testing.T, b board.Board, caps, mode string) <-chan map[string]any {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: real sandboxes")
	}
	appOnce.Do(func() {
		if appDir, appErr = os.MkdirTemp("", "applibs-app-"); appErr != nil {
			return
		}
		gobin, err := exec.LookPath("go")
		if err != nil {
			gobin = "/usr/local/go/bin/go"
		}
		cmd := exec.Command(gobin, "build", "-o", filepath.Join(appDir, "bin", "app"), "./testdata/app")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			appErr = err
			t.Logf("%s", out)
		}
		_ = os.Chmod(appDir, 0o755)
	})
	if appErr != nil {
		t.Fatal(appErr)
	}
	dir, err := os.MkdirTemp("", "applibs-run-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	h, err := NewHost(HostConfig{Dir: dir, Board: b})
	if err != nil {
		t.Fatal(err)
	}
	sock, stop, err := h.Open(App{ComponentID: cid, Manifest: parse(t, caps), UID: testUID})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	pr, pw := io.Pipe()
	var stderr strings.Builder
	p, err := sandbox.Start(context.Background(), sandbox.Spec{
		Name: "applibs-" + mode, Root: appDir, Path: "/bin/app", Args: []string{mode},
		Env: []string{sdk.EnvSocket + "=" + SocketPath}, UID: testUID, GID: testUID,
		Sockets: []sandbox.Socket{{Source: sock, Target: SocketPath}},
		Limits:  sandbox.Limits{MemoryBytes: 128 << 20, Pids: 64},
		Stdout:  pw, Stderr: &stderr,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Stop() })
	go func() { p.Wait(); pw.Close() }()
	lines := make(chan map[string]any, 16)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				m = map[string]any{"raw": sc.Text()}
			}
			lines <- m
		}
	}()
	return lines
}

func next(t *testing.T, lines <-chan map[string]any) map[string]any {
	t.Helper()
	m, ok := <-lines
	if !ok {
		t.Fatal("the app ended without a report")
	}
	return m
}

func TestSandboxedLEDAndPermission(t *testing.T) {
	b := emulated.New(board.Options{})
	lines := sandboxed(t, b, `{"Gpio":["$LED_RED"]}`, "led")
	if m := next(t, lines); m["err"] != "" {
		t.Fatalf("setting the LED: %v", m)
	}
	if !b.State().LEDs[0].On {
		t.Fatal("the board shows LED_RED off")
	}
	m := next(t, lines)
	if m["permission"] != true || m["capability"] != "I2cMaster" || !strings.Contains(m["err"].(string), "I2cMaster") {
		t.Fatalf("reading the sensor without I2cMaster: %v", m)
	}
}

func TestSandboxedTemperature(t *testing.T) {
	lines := sandboxed(t, emulated.New(board.Options{}), `{"I2cMaster":["$TEMP_SENSOR_I2C"]}`, "temp")
	m := next(t, lines)
	c, ok := m["celsius"].(float64)
	if m["err"] != "" || !ok || c < 20 || c > 25 {
		t.Fatalf("temperature: %v", m)
	}
}

func TestSandboxedButton(t *testing.T) {
	b := emulated.New(board.Options{})
	lines := sandboxed(t, b, `{"Gpio":["$BUTTON_A"]}`, "button")
	if m := next(t, lines); m["ready"] != true {
		t.Fatalf("%v", m)
	}
	if err := b.Press("BUTTON_A"); err != nil {
		t.Fatal(err)
	}
	if m := next(t, lines); m["pressed"] != true {
		t.Fatalf("the app did not see the press: %v", m)
	}
}
