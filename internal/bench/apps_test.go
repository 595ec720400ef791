package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	sdk "github.com/rampart-iot/rampart/applibs"
	"github.com/rampart-iot/rampart/internal/applibs"
	"github.com/rampart-iot/rampart/internal/board"
	"github.com/rampart-iot/rampart/internal/board/emulated"
	"github.com/rampart-iot/rampart/internal/sandbox"
	"github.com/rampart-iot/rampart/manifest"
)

// TestMain lets this test binary serve as the sandbox's setup process for the cold-start
// figure.
func TestMain(m *testing.M) {
	sandbox.Init()
	os.Exit(m.Run())
}

// printAppFigures prints issue 5's device figures: app cold start in its sandbox beside a
// bare fork/exec of the same binary, an applibs call beside a bare HTTP round trip on a Unix
// socket, the agent's idle resident memory and its stripped binary size beside the goals.
func printAppFigures(t *testing.T) {
	if os.Geteuid() != 0 {
		fmt.Printf("%-48s %s\n", "app figures", "not measured: sandboxes need root")
		return
	}
	bin := goBuild(t, "./testdata/readyapp", true)
	sandboxed, bare := coldStart(t, bin)
	fmt.Printf("%-48s %10.1f ms   %-36s %10.1f ms %6.1fx\n", "app cold start in its sandbox (median of 10)", millis(sandboxed),
		"bare fork/exec of the same binary", millis(bare), float64(sandboxed)/float64(bare))
	call, round := applibsLatency(t)
	fmt.Printf("%-48s %10.0f µs   %-36s %10.0f µs %6.1fx\n", "applibs call (gpio/get, median of 2000)", us(call),
		"bare HTTP round trip, Unix socket", us(round), float64(call)/float64(round))
	// The device build, as the Makefile's bin/device/rampart-agent: no cgo (no tpm-sim), stripped.
	agentBin := goBuild(t, "../../cmd/rampart-agent", true, "-trimpath", "-ldflags=-s -w")
	fi, err := os.Stat(agentBin)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("%-48s %10.1f MB   %-36s %10.1f MB\n", "rampart-agent binary, device build", float64(fi.Size())/1e6, "goal", 20.0)
	printMemoryFigures(t, agentBin)
}

func millis(d time.Duration) float64 { return float64(d) / 1e6 }
func us(d time.Duration) float64     { return float64(d) / 1e3 }

// goBuild builds pkg into a temporary file.
func goBuild(t *testing.T, pkg string, static bool, flags ...string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), filepath.Base(pkg))
	cmd := exec.Command("go", append(append([]string{"build", "-o", out}, flags...), pkg)...)
	cmd.Env = os.Environ()
	if static {
		cmd.Env = append(cmd.Env, "CGO_ENABLED=0")
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", pkg, err, b)
	}
	return out
}

func medianDuration(ds []time.Duration) time.Duration {
	slices.Sort(ds)
	return ds[len(ds)/2]
}

// readyWriter signals when "ready" has been written.
type readyWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	once sync.Once
	c    chan struct{}
}

func (w *readyWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Contains(w.buf.String(), "ready") {
		w.once.Do(func() { close(w.c) })
	}
	return len(p), nil
}

// coldStart: from the start call to the app's first line, in a full sandbox (own uid,
// namespaces, read-only image, seccomp, Landlock, cgroups) and as a bare child process.
func coldStart(t *testing.T, bin string) (sandboxed, bare time.Duration) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "app"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	var sb, bb []time.Duration
	for i := range 10 {
		w := &readyWriter{c: make(chan struct{})}
		start := time.Now()
		p, err := sandbox.Start(t.Context(), sandbox.Spec{Name: "bench-" + strconv.Itoa(i), Root: root, Path: "/bin/app",
			UID: 330000, GID: 330000, Hostname: "bench", Stdout: w, Stderr: w}, nil)
		if err != nil {
			t.Fatalf("sandbox: %v", err)
		}
		select {
		case <-w.c:
		case <-time.After(30 * time.Second):
			t.Fatalf("the sandboxed app did not start: %s", w.buf.String())
		}
		sb = append(sb, time.Since(start))
		p.Stop()

		start = time.Now()
		cmd := exec.Command(bin)
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if _, err := bufio.NewReader(out).ReadString('\n'); err != nil {
			t.Fatal(err)
		}
		bb = append(bb, time.Since(start))
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	return medianDuration(sb), medianDuration(bb)
}

// applibsLatency: one SDK call through the agent's per-app server (decode, permission check,
// the emulated board), beside a bare HTTP request to an empty handler over a Unix socket.
func applibsLatency(t *testing.T) (call, round time.Duration) {
	dir, err := os.MkdirTemp("", "bench-applibs-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	h, err := applibs.NewHost(applibs.HostConfig{Dir: dir, Board: emulated.New(board.Options{})})
	if err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Parse([]byte(`{"SchemaVersion":1,"Name":"b","ComponentId":"3f2504e0-4f89-41d3-9a0c-0305e82c3301","EntryPoint":"/bin/app","CmdArgs":[],"Capabilities":{"Gpio":[12]},"ApplicationType":"Default"}`))
	if err != nil {
		t.Fatal(err)
	}
	sock, stop, err := h.Open(applibs.App{ComponentID: "3f2504e0-4f89-41d3-9a0c-0305e82c3301", Manifest: m})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	c := sdk.DialPath(sock)
	g := c.GPIO(12)
	if err := g.OpenAsInput(); err != nil {
		t.Fatal(err)
	}
	const n = 2000
	var calls []time.Duration
	for range n {
		start := time.Now()
		if _, err := g.Get(); err != nil {
			t.Fatal(err)
		}
		calls = append(calls, time.Since(start))
	}
	bareSock := filepath.Join(dir, "bare.sock")
	ln, err := net.Listen("unix", bareSock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("{}\n"))
	})}
	go srv.Serve(ln)
	defer srv.Close()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", bareSock)
	}}}
	var rounds []time.Duration
	for range n {
		start := time.Now()
		resp, err := hc.Post("http://bare/v1/x", "application/json", strings.NewReader(`{"gpio":12}`))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		rounds = append(rounds, time.Since(start))
	}
	return medianDuration(calls), medianDuration(rounds)
}
