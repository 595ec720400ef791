package cloudbroker

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// probeArgv0 makes the test binary, started exactly as the broker is (same ids, namespaces,
// Landlock and seccomp), probe what a compromised broker could do instead of serving.
const probeArgv0 = "rampart-cloud-broker-probe"

// probeTargets are what a compromised broker would go for, as the monitor lays them out.
type probeTargets struct {
	Secret      string // a root-of-trust key: 0600 root in a 0700 directory
	WorldRead   string // a 0644 file in a 0755 directory (an image, a slot's file)
	WorldWrite  string // a 0777 directory (a slot or app directory with loose permissions)
	LocalAPI    string // the agent's local API socket, in the 0700 state directory
	OtherPort   string // a TCP listener on the device that is not the service
	ServicePort string // the service (must work: the broker's one job)
	FreePort    string // a free TCP port to listen on
	MonitorPID  int
}

func (p probeTargets) args() []string {
	return []string{p.Secret, p.WorldRead, p.WorldWrite, p.LocalAPI, p.OtherPort, p.ServicePort, strconv.Itoa(p.MonitorPID), p.FreePort}
}

// probeAll tries each attack and says what happened: "ok" or the error.
func probeAll(p probeTargets) map[string]string {
	out := map[string]string{}
	res := func(name string, err error) {
		if err == nil {
			out[name] = "ok"
		} else {
			out[name] = err.Error()
		}
	}
	_, err := os.ReadFile(p.Secret)
	res("read-secret", err)
	_, err = os.ReadFile(p.WorldRead)
	res("read-world-readable", err)
	res("write-world-writable", os.WriteFile(filepath.Join(p.WorldWrite, fmt.Sprintf("planted-%d", os.Getpid())), []byte("x"), 0o644))
	res("overwrite-world-readable", os.WriteFile(p.WorldRead, []byte("x"), 0o644))
	c, err := net.DialTimeout("unix", p.LocalAPI, 2*time.Second)
	if err == nil {
		c.Close()
	}
	res("connect-local-api", err)
	c, err = net.DialTimeout("tcp", p.OtherPort, 2*time.Second)
	if err == nil {
		c.Close()
	}
	res("connect-other-port", err)
	c, err = net.DialTimeout("tcp", p.ServicePort, 2*time.Second)
	if err == nil {
		c.Close()
	}
	res("connect-service", err)
	res("signal-monitor", syscall.Kill(p.MonitorPID, 0))
	res("exec-shell", func() error {
		proc, err := os.StartProcess("/bin/sh", []string{"sh", "-c", "true"}, &os.ProcAttr{Files: []*os.File{nil, nil, nil}})
		if err == nil {
			_, err = proc.Wait()
		}
		return err
	}())
	res("bind-port", func() error {
		l, err := net.Listen("tcp", p.FreePort)
		if err == nil {
			l.Close()
		}
		return err
	}())
	out["uid"] = strconv.Itoa(os.Getuid())
	var hdr = unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err == nil {
		out["effective-caps"] = fmt.Sprintf("%x", uint64(data[1].Effective)<<32|uint64(data[0].Effective))
	}
	nnp, _ := unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)
	out["no-new-privs"] = strconv.Itoa(nnp)
	sc, _ := unix.PrctlRetInt(unix.PR_GET_SECCOMP, 0, 0, 0, 0)
	out["seccomp-mode"] = strconv.Itoa(sc)
	return out
}

// probeKey tries to take the agent's TLS key: from the identity the process holds, and from
// the monitor's memory.
func probeKey(id *tls.Certificate, monitorPID int) map[string]string {
	out := map[string]string{}
	res := func(name string, err error) {
		if err == nil {
			out[name] = "ok"
		} else {
			out[name] = err.Error()
		}
	}
	_, err := x509.MarshalPKCS8PrivateKey(id.PrivateKey)
	res("export-key", err)
	res("read-monitor-memory", func() error {
		layout, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", monitorPID))
		if err != nil {
			return err
		}
		lo, _, _ := strings.Cut(string(layout), "-")
		at, err := strconv.ParseUint(lo, 16, 64)
		if err != nil {
			return err
		}
		mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", monitorPID))
		if err != nil {
			return err
		}
		defer mem.Close()
		_, err = mem.ReadAt(make([]byte, 16), int64(at))
		return err
	}())
	return out
}

// probeSignatures is what a compromised broker can still do: ask the monitor to sign. It asks
// n times and says how many it got.
func probeSignatures(id *tls.Certificate, n int) string {
	d := sha256.Sum256([]byte("anything"))
	signed := 0
	for range n {
		if _, err := id.PrivateKey.(crypto.Signer).Sign(nil, d[:], crypto.SHA256); err != nil {
			return fmt.Sprintf("signed %d of %d; then: %v", signed, n, err)
		}
		signed++
	}
	return fmt.Sprintf("signed %d of %d", signed, n)
}

// probeBody runs in the confined process: it serves as the broker does until the monitor has
// given it the agent's identity, then probes, logs the results and stops.
func probeBody(ctx context.Context, cfg childConfig, ln net.Listener, signer *signerConn, log *slog.Logger) error {
	px, err := newProxy(cfg, signer, log)
	if err != nil {
		return err
	}
	go func() { _ = (&http.Server{Handler: px, ReadHeaderTimeout: 10 * time.Second}).Serve(ln) }()
	var id *tls.Certificate
	for deadline := time.Now().Add(20 * time.Second); id == nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			return errors.New("the probe got no identity from the monitor")
		}
		px.mu.RLock()
		id = px.id
		px.mu.RUnlock()
	}
	a := os.Args[1:]
	pid, _ := strconv.Atoi(a[6])
	results := probeAll(probeTargets{Secret: a[0], WorldRead: a[1], WorldWrite: a[2], LocalAPI: a[3], OtherPort: a[4],
		ServicePort: a[5], MonitorPID: pid, FreePort: a[7]})
	maps.Copy(results, probeKey(id, pid))
	results["sign-via-monitor"] = probeSignatures(id, 3*SignBurst)
	for k, v := range results {
		log.Info("probe", "name", k, "result", v)
	}
	log.Info("probe done")
	<-ctx.Done() // the test stops it
	return nil
}

func layOut(t *testing.T, servicePort string) probeTargets {
	t.Helper()
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	state := filepath.Join(root, "state")
	must(os.Mkdir(state, 0o700))
	must(os.WriteFile(filepath.Join(state, "tpm-key"), []byte("secret"), 0o600))
	open := filepath.Join(root, "open")
	must(os.Mkdir(open, 0o755))
	must(os.WriteFile(filepath.Join(open, "slot-a.img"), []byte("image"), 0o644))
	loose := filepath.Join(root, "loose")
	must(os.Mkdir(loose, 0o777))
	must(os.Chmod(loose, 0o777))
	must(os.Chmod(root, 0o755))
	ln, err := net.Listen("unix", filepath.Join(state, "agent.sock"))
	must(err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	other, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	t.Cleanup(func() { other.Close() })
	go func() {
		for {
			c, err := other.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	free, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	freePort := free.Addr().String()
	free.Close()
	return probeTargets{FreePort: freePort, Secret: filepath.Join(state, "tpm-key"), WorldRead: filepath.Join(open, "slot-a.img"), WorldWrite: loose,
		LocalAPI: filepath.Join(state, "agent.sock"), OtherPort: other.Addr().String(), ServicePort: servicePort, MonitorPID: os.Getpid()}
}

// TestCompromisedBrokerGainsNothing runs the attacks a compromised broker would try, first
// in the test process itself (as root, unconfined: each must work, or the probe proves
// nothing), then in a process started exactly as the broker is, after the monitor has given
// it the agent's identity: each must fail, except reaching the service. Among them: exporting
// the identity's key (the unconfined run holds the monitor's, the broker a signer with no key)
// and reading the monitor's memory. What it can still do, ask the monitor to sign, stops at
// the rate limit.
func TestCompromisedBrokerGainsNothing(t *testing.T) {
	needRoot(t)
	srv := newService(t, newPKI(t))
	servicePort := strings.TrimPrefix(srv.URL, "https://")
	targets := layOut(t, servicePort)

	p := newPKI(t)
	identity := p.client("device-1", time.Now().Add(time.Hour))
	base := probeAll(targets)
	maps.Copy(base, probeKey(&identity, targets.MonitorPID))
	for _, k := range []string{"read-secret", "read-world-readable", "write-world-writable", "overwrite-world-readable",
		"connect-local-api", "connect-other-port", "connect-service", "signal-monitor", "exec-shell", "bind-port",
		"export-key", "read-monitor-memory"} {
		if base[k] != "ok" {
			t.Fatalf("unconfined, %s failed (%s): the probe proves nothing", k, base[k])
		}
	}

	logs := &logBuf{}
	ctx := context.WithValue(t.Context(), testProcessKey{}, testProcess{argv0: probeArgv0, args: targets.args()})
	// The signer's clock stands still: the rate limit grants exactly the burst.
	clock := newFakeClock()
	b, err := Start(ctx, Config{Server: srv.URL, SocketDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(logs, nil)), Now: clock.now, After: clock.after,
		Identity: func() (tls.Certificate, error) { return identity, nil }})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(logs.String(), "probe done") {
		if time.Now().After(deadline) {
			t.Fatalf("the probe did not finish:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	stats := b.Signatures()
	b.Close()
	got := map[string]string{}
	for _, line := range strings.Split(logs.String(), "\n") {
		_, rest, ok := strings.Cut(line, " name=")
		if !ok {
			continue
		}
		name, result, _ := strings.Cut(rest, " result=")
		got[name] = strings.Trim(result, `"\`) // quoted by the broker's log, then the monitor's
	}
	t.Logf("confined broker: %v", got)
	for _, k := range []string{"read-secret", "read-world-readable", "write-world-writable", "overwrite-world-readable",
		"connect-local-api", "connect-other-port", "signal-monitor", "exec-shell", "bind-port", "export-key", "read-monitor-memory"} {
		if r, ok := got[k]; !ok || r == "ok" {
			t.Errorf("a compromised broker could %s (%q)", k, r)
		}
	}
	if got["connect-service"] != "ok" {
		t.Errorf("the confined broker cannot reach the service: %s", got["connect-service"])
	}
	if got["uid"] != strconv.Itoa(DefaultUID) || got["effective-caps"] != "0" || got["no-new-privs"] != "1" || got["seccomp-mode"] != "2" {
		t.Errorf("identity and filters: uid %s (want %d), effective capabilities %s, no_new_privs %s, seccomp mode %s (want 0, 1, 2)",
			got["uid"], DefaultUID, got["effective-caps"], got["no-new-privs"], got["seccomp-mode"])
	}
	// Landlock, not only the uid, stops reads and writes the file modes allow.
	for _, k := range []string{"read-world-readable", "write-world-writable", "connect-other-port", "exec-shell"} {
		if !strings.Contains(got[k], "permission denied") {
			t.Errorf("%s: %q, want a permission error from Landlock", k, got[k])
		}
	}
	// And seccomp stops what Landlock does not (binding a port, on this kernel).
	if !strings.Contains(got["bind-port"], "bind: operation not permitted") {
		t.Errorf("bind-port: %q, want EPERM from seccomp", got["bind-port"])
	}
	// The identity it was given holds no key (its signer is the monitor's), and the monitor's
	// memory is out of reach.
	if !strings.Contains(got["export-key"], "unknown key type while marshaling PKCS#8: *cloudbroker.remoteSigner") {
		t.Errorf("export-key: %q, want no key to export", got["export-key"])
	}
	if !strings.Contains(got["read-monitor-memory"], "permission denied") {
		t.Errorf("read-monitor-memory: %q, want a permission error", got["read-monitor-memory"])
	}
	// What it can still do: have the monitor sign, at its rate; here, with the clock stopped,
	// the burst and nothing more.
	want := fmt.Sprintf("signed %d of %d; then: the monitor refused to sign: rate limit", SignBurst, 3*SignBurst)
	if !strings.HasPrefix(got["sign-via-monitor"], want) {
		t.Errorf("sign-via-monitor: %q, want %q", got["sign-via-monitor"], want)
	}
	if stats != (SignStats{Signed: SignBurst, Limited: 1}) {
		t.Errorf("the monitor's count: %+v, want %d signed and 1 refused by the rate limit", stats, SignBurst)
	}
	if !strings.Contains(logs.String(), "refused to sign: rate limit") {
		t.Errorf("the rate limit's refusal was not logged:\n%s", logs.String())
	}
}
