package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
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

	v1 "github.com/rampart-iot/rampart/api/v1"
	sdk "github.com/rampart-iot/rampart/applibs"
	"github.com/rampart-iot/rampart/internal/agent"
	"github.com/rampart-iot/rampart/internal/applibs"
	"github.com/rampart-iot/rampart/internal/board"
	"github.com/rampart-iot/rampart/internal/board/emulated"
	"github.com/rampart-iot/rampart/internal/measure"
	"github.com/rampart-iot/rampart/internal/sandbox"
	"github.com/rampart-iot/rampart/internal/server/servertest"
	"github.com/rampart-iot/rampart/manifest"
	"golang.org/x/sys/unix"
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
	monitor, broker, err := agentIdleRSS(t, agentBin)
	if err != nil {
		fmt.Printf("%-48s %s\n", "rampart-agent idle resident memory", "not measured: "+err.Error())
		return
	}
	fmt.Printf("%-48s %10.1f MB   %-36s %10.1f MB\n", "rampart-agent idle memory (PSS): monitor + broker", float64(monitor+broker)/1e6, "goal", 10.0)
	fmt.Printf("%-48s %10.1f MB, %.1f MB\n", "  of which monitor, broker", float64(monitor)/1e6, float64(broker)/1e6)
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

// agentIdleRSS runs the real agent binary as an enrolled, claimed and attested device with
// the emulated board and boot control, lets it settle, and reads the resident memory of the
// monitor and of the cloud broker it started.
func agentIdleRSS(t *testing.T, bin string) (monitor, broker int64, err error) {
	ctx := t.Context()
	srv := servertest.Start(t, servertest.AllowSoftwareRootOfTrust(true))
	admin := srv.Client(t, srv.AdminToken)
	state := t.TempDir()
	shipped := filepath.Join(state, "os", "active")
	if err := os.MkdirAll(shipped, 0o755); err != nil {
		return 0, 0, err
	}
	if err := os.WriteFile(filepath.Join(shipped, "VERSION"), []byte("os 1\n"), 0o644); err != nil {
		return 0, 0, err
	}
	rec := filepath.Join(t.TempDir(), "device.json")
	if b, err := exec.Command(bin, "enroll", "--rot", "software", "--state", state, "--out", rec).CombinedOutput(); err != nil {
		return 0, 0, fmt.Errorf("enroll: %v: %s", err, b)
	}
	recJSON, err := os.ReadFile(rec)
	if err != nil {
		return 0, 0, err
	}
	if _, _, err := admin.ClaimDevice(ctx, srv.TenantID, v1.DeviceClaim{Enrollment: recJSON}); err != nil {
		return 0, 0, err
	}
	dig, err := measure.Digests(measure.Inputs{AgentBinary: bin, PolicyFile: filepath.Join(state, "policy.json"), OSBundle: shipped})
	if err != nil {
		return 0, 0, err
	}
	ms := map[string]string{}
	for k, v := range dig {
		ms[k] = hex.EncodeToString(v)
	}
	if _, err := admin.CreateOSRelease(ctx, srv.TenantID, v1.OSReleaseCreate{Version: "1.0.0", Measurements: ms}); err != nil {
		return 0, 0, err
	}
	// The agent's pages come from storage, as on a device after boot: the compiler's freshly
	// written page cache can hold 2 MB folios the kernel maps whole, which inflates the figure
	// by an amount that depends on the machine's history.
	if err := dropPageCache(bin); err != nil {
		return 0, 0, err
	}
	var log bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "run", "--rot", "software", "--state", state, "--server", srv.URL, "--cacert", srv.CACertFile,
		"--board", "emulated", "--boot-control", "dir", "--development")
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	defer func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() }()
	deadline := time.Now().Add(time.Minute)
	for {
		if st, err := agent.ReadStatus(state); err == nil && st.State == agent.StateAttested {
			if d, err := admin.GetDevice(ctx, srv.TenantID, st.DeviceID); err == nil && d.Status != nil {
				break
			}
		}
		if time.Now().After(deadline) {
			return 0, 0, fmt.Errorf("the agent did not attest and check in within a minute")
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(3 * time.Second) // idle: attested, checked in, waiting
	pid := cmd.Process.Pid
	if monitor, err = rss(pid); err != nil {
		return 0, 0, err
	}
	var children []string
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		children = append(children, strings.Fields(string(b))...)
	}
	for _, c := range children {
		n, _ := strconv.Atoi(c)
		if cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", n)); strings.HasPrefix(string(cmdline), "rampart-cloud-broker") {
			if broker, err = rss(n); err != nil {
				return 0, 0, err
			}
		}
	}
	if broker == 0 {
		return 0, 0, fmt.Errorf("no cloud broker process under the agent")
	}
	return monitor, broker, nil
}

// rss reads a process's proportional set size in bytes (/proc/PID/smaps_rollup "Pss"): its
// private pages plus its share of pages it shares, such as the binary's text, which the
// monitor and the broker (the same executable) share. Summed over both, it is the pair's
// real footprint; RSS would count the shared text twice. With RAMPART_BENCH_SMAPS set it
// prints the rollup, the thread count and the biggest mappings.
func rss(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, err
	}
	if os.Getenv("RAMPART_BENCH_SMAPS") != "" {
		fmt.Printf("smaps_rollup of %d:\n%s", pid, b)
		if err := printMappings(pid, 8); err != nil {
			return 0, err
		}
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Pss:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no Pss for pid %d", pid)
}

// printMappings prints a process's thread count and its n biggest mappings by PSS
// (/proc/PID/smaps), with their resident, private dirty and shared sizes in kB.
func printMappings(pid, n int) error {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "Threads:") {
			fmt.Printf("%s\n", strings.Join(strings.Fields(line), " "))
		}
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return err
	}
	type mapping struct {
		name   string
		fields map[string]int64
	}
	var maps []mapping
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":"):
			name := f[0] + " " + f[1] + " [anon]"
			if len(f) >= 6 {
				name = f[0] + " " + f[1] + " " + f[5]
			}
			maps = append(maps, mapping{name: name, fields: map[string]int64{}})
		case len(f) == 3 && f[2] == "kB" && len(maps) > 0:
			v, _ := strconv.ParseInt(f[1], 10, 64)
			maps[len(maps)-1].fields[strings.TrimSuffix(f[0], ":")] = v
		}
	}
	slices.SortFunc(maps, func(a, b mapping) int { return int(b.fields["Pss"] - a.fields["Pss"]) })
	fmt.Printf("%8s %8s %8s %8s %8s  mapping\n", "Pss", "Rss", "PrivDrty", "Shared", "Size")
	for _, m := range maps[:min(n, len(maps))] {
		f := m.fields
		fmt.Printf("%8d %8d %8d %8d %8d  %s\n", f["Pss"], f["Rss"], f["Private_Dirty"], f["Shared_Clean"]+f["Shared_Dirty"], f["Size"], m.name)
	}
	return nil
}

// dropPageCache writes a file's pages back and drops them from the page cache, so that the
// next reader reads it from storage.
func dropPageCache(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", path, err)
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		return fmt.Errorf("dropping %s from the page cache: %w", path, err)
	}
	return nil
}
