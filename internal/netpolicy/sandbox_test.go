package netpolicy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rampart-iot/rampart/internal/sandbox"
	"github.com/rampart-iot/rampart/manifest"
)

func TestMain(m *testing.M) {
	sandbox.Init() // in a sandbox's init this never returns
	os.Exit(m.Run())
}

// lineBuffer collects an app's output and hands over its first line.
type lineBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	first chan string
	once  sync.Once
}

func (b *lineBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if line, _, ok := strings.Cut(b.buf.String(), "\n"); ok {
		b.once.Do(func() { b.first <- line })
	}
	return len(p), nil
}

// buildApp builds testdata/app as a static binary into an image directory.
func buildApp(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	must(t, os.Chmod(root, 0o755))
	must(t, os.Mkdir(filepath.Join(root, "bin"), 0o755))
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = "/usr/local/go/bin/go"
	}
	cmd := exec.Command(gobin, "build", "-o", filepath.Join(root, "bin", "app"), "./testdata/app")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the test app: %v\n%s", err, out)
	}
	must(t, os.Chmod(filepath.Join(root, "bin", "app"), 0o755))
	return root
}

// TestSandboxedApp: a real application in a real sandbox, its network set up through
// sandbox.Spec.ConfigureNetwork, resolves and reaches the allowed name with Go's own resolver
// (the image has no resolv.conf: the default, 127.0.0.1:53, is the agent's answerer), and
// fails to reach the other name, the other server's IP, a DNS server of its own and a raw
// socket; from the host, its declared server port answers and another one it listens on is
// refused. When it has exited, teardown leaves no link.
func TestSandboxedApp(t *testing.T) {
	w := newWorld(t)
	m := newManager(t, w, Config{})
	caps := manifest.Capabilities{AllowedConnections: []string{"allowed.test"}, AllowedTcpServerPorts: []int{7000}}
	name := fmt.Sprintf("netpolicy-test-%d", os.Getpid())
	var teardown func() error
	out := &lineBuffer{first: make(chan string, 1)}
	spec := sandbox.Spec{
		Name: name,
		Root: buildApp(t),
		Path: "/bin/app",
		Args: []string{
			fmt.Sprintf("allowed.test:%d", serverPort),
			fmt.Sprintf("denied.test:%d", serverPort),
			netip.AddrPortFrom(deniedIP, serverPort).String(),
			netip.AddrPortFrom(dnsIP, 53).String(),
			"7000", "7001",
		},
		UID: 61240, GID: 61240,
		Limits: sandbox.Limits{MemoryBytes: 256 << 20, Pids: 64},
		Stdout: out, Stderr: out,
		ConfigureNetwork: func(ctx context.Context, ns string) (err error) {
			teardown, err = m.Setup(ctx, ns, name, caps)
			return err
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p, err := sandbox.Start(ctx, spec, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var line string
	select {
	case line = <-out.first:
	case <-p.Done():
		exit := p.Wait()
		out.mu.Lock()
		defer out.mu.Unlock()
		t.Fatalf("the app exited: %v\n%s", exit, out.buf.String())
	}
	var res map[string]string
	if err := json.Unmarshal([]byte(line), &res); err != nil {
		t.Fatalf("%v: %q", err, line)
	}
	t.Logf("app: %s", line)
	if res["allowedByName"] != allowedIP.String() {
		t.Errorf("allowed.test by name: %s", res["allowedByName"])
	}
	for _, k := range []string{"deniedByName", "deniedByIP", "ownDNS", "raw"} {
		if !strings.HasPrefix(res[k], "error: ") {
			t.Errorf("%s: %s; want an error", k, res[k])
		}
	}
	if !strings.Contains(res["deniedByName"], "no such host") {
		t.Errorf("denied.test: %s; want no such host (NXDOMAIN from the agent)", res["deniedByName"])
	}
	if !strings.Contains(res["raw"], "operation not permitted") {
		t.Errorf("raw socket: %s; want EPERM (no CAP_NET_RAW)", res["raw"])
	}
	if peers := w.servers[deniedIP].seen(); len(peers) != 0 {
		t.Errorf("the denied server saw %v", peers)
	}
	if n := w.dns53.count(); n != 0 {
		t.Errorf("the foreign DNS server received %d queries", n)
	}
	link, ok := m.LinkOf(name)
	if !ok {
		t.Fatal("no link for the app")
	}
	if got, err := dialFrom(w.host, netip.AddrPortFrom(link.AppAddr, 7000)); err != nil || got != "app:7000" {
		t.Errorf("inbound 7000 (declared): %q %v", got, err)
	}
	if got, err := dialFrom(w.host, netip.AddrPortFrom(link.AppAddr, 7001)); err == nil {
		t.Errorf("inbound 7001 (not declared, the app listens): connected, read %q", got)
	}

	exit := p.Stop()
	out.mu.Lock()
	t.Logf("exit: %+v\n%s", exit, out.buf.String())
	out.mu.Unlock()
	must(t, teardown())
	if _, err := handle(t, w.host).LinkByName(link.Host); err == nil {
		t.Errorf("%s still there after teardown", link.Host)
	}
}
