// Package cloudbroker runs the agent's network-facing part, the cloud broker, as a separate,
// unprivileged and confined process, and gives the security monitor the HTTP transport that
// reaches the Rampart service through it.
//
// The monitor (root: the root of trust, the A/B slots, the app sandboxes) never opens a
// network connection. It speaks plain HTTP over a Unix socket that only it can reach; the
// broker, running as its own uid with no capabilities, no_new_privs, a Landlock domain that
// allows no file writes, no file reads but the resolver's and the trust roots', and TCP
// connections to the service's port and DNS only, and the apps' seccomp filter, terminates TLS
// towards the service and forwards each request. The network's first parser (TLS, HTTP) thus
// runs where a compromise gains nothing: the broker holds no key, cannot touch a slot, an app
// or the monitor, and can only answer the monitor's requests, whose answers the monitor
// verifies as it would a network attacker's (signed update metadata and packages,
// certificates that must certify the keys it sent).
//
// The broker holds no secret either. The monitor gives it the agent's current certificate
// chain after each attestation, not the 24-hour TLS key: the key stays in the monitor, and the
// broker's TLS client authentication asks the monitor for its one signature per handshake over
// a socket pair made at spawn (signer.go). The monitor signs only with the key of the identity
// it has handed over, only until that certificate's NotAfter, at most SignRate signatures a
// second (SignBurst at once), and counts them; after a refusal it answers that broker's next
// request only 1/SignRate later. A compromised broker can therefore impersonate the device only
// through the live monitor, at that rate, until it is restarted or the certificate expires; it
// cannot take the key elsewhere.
//
// The broker runs the monitor's own binary: Start opens it once (/proc/self/exe), and every
// restart executes that descriptor, so a binary replaced on disk (an update) never runs as the
// broker of the monitor that was started from the old one.
//
// Trust: the monitor trusts the broker for nothing but availability.
package cloudbroker

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/rampart-iot/rampart/internal/residency"
)

// argv0 marks a re-exec of the agent as the broker.
const argv0 = "rampart-cloud-broker"

// The broker's inherited descriptors.
const (
	configFD   = 3 // JSON childConfig, then EOF
	listenerFD = 4 // the Unix listener the monitor dials
	exeFD      = 5 // the binary, opened once by Start, executed through /proc/self/fd
	signerFD   = 6 // SOCK_SEQPACKET to the monitor's signer (signer.go)
)

// DefaultUser is the account the broker runs as when it exists; otherwise DefaultUID.
const DefaultUser = "rampart-cloud"

// DefaultUID is the broker's uid and gid when no DefaultUser account exists: just below the
// apps' range (apprun.DefaultUIDMin), reserved for the broker.
const DefaultUID = 99999

// testProcess, in Start's context under testProcessKey, replaces the broker's argv (tests run
// probes under the broker's exact confinement).
type testProcess struct {
	argv0 string
	args  []string
}

type testProcessKey struct{}

// Control paths on the broker's socket: not forwarded.
const (
	identityPath = "/.rampart-broker/identity"
	// NoIdentityHeader on a request asks the broker to present no client certificate
	// (attestation, which may run with an expired one).
	NoIdentityHeader = "Rampart-Broker-No-Identity"
)

// MaxIdentity bounds the identity document the broker accepts from the monitor.
const MaxIdentity = 64 << 10

// Config configures the broker.
type Config struct {
	Server  string // https://host:port, the only place the broker connects to
	RootPEM []byte // PEM trust roots for the service; nil means the system roots
	// SocketDir is a directory only the monitor can enter (it is made 0700); the socket lives
	// there.
	SocketDir string
	// UID and GID the broker runs as; zero means the DefaultUser account, else DefaultUID.
	// When the monitor is not root it cannot switch, and the broker runs with the monitor's
	// ids (still confined by Landlock and seccomp); the log says so.
	UID, GID uint32
	// Exe is the binary to run (default: the running one, /proc/self/exe, which must call Init
	// first). Start opens it once: every restart runs what it opened, whatever the path names
	// later.
	Exe string
	// Identity returns the agent's current certificate and key, or an error when it has none.
	// The key (an ECDSA P-256 crypto.Signer) stays in the monitor; the broker gets the chain.
	Identity func() (tls.Certificate, error)
	Logger   *slog.Logger
	// Now is the signer's clock: its rate limit, and the end of the certificate's validity
	// (default time.Now).
	Now func() time.Time
	// After is the signer's timer on the same clock: the pause after a refusal (default
	// time.After).
	After func(time.Duration) <-chan time.Time
}

// Broker is a running cloud broker, restarted when it dies.
type Broker struct {
	cfg     Config
	log     *slog.Logger
	sock    string
	ln      *net.UnixListener
	lnFile  *os.File
	exe     *os.File // the binary every spawn executes, opened once
	withID  *http.Transport
	keys    *keyServer
	refresh sync.Mutex // one handover at a time
	cancel  context.CancelFunc
	done    chan struct{}
	mu      sync.Mutex
	pid     int
	started chan struct{} // closed after the first start
	argv0   string        // argv[0] of the broker process (tests: a probe instead of the broker)
	args    []string      // further arguments (tests)
}

// UIDFor resolves the broker's ids from a flag value: "" for the default, a user name, or
// UID[:GID].
func UIDFor(spec string) (uid, gid uint32, err error) {
	switch u, lerr := user.Lookup(spec); {
	case spec == "":
		if u, err := user.Lookup(DefaultUser); err == nil {
			uid, gid, err = parseIDs(u.Uid, u.Gid)
			if err != nil {
				return 0, 0, fmt.Errorf("cloud broker user %s: %w", DefaultUser, err)
			}
		} else {
			uid, gid = DefaultUID, DefaultUID
		}
	case lerr == nil:
		if uid, gid, err = parseIDs(u.Uid, u.Gid); err != nil {
			return 0, 0, fmt.Errorf("cloud broker user %q: %w", spec, err)
		}
	default:
		us, gs, ok := cut(spec)
		if !ok {
			gs = us
		}
		if uid, gid, err = parseIDs(us, gs); err != nil {
			return 0, 0, fmt.Errorf("cloud broker user %q: not an account and not UID[:GID]", spec)
		}
	}
	if uid == 0 || gid == 0 {
		return 0, 0, fmt.Errorf("cloud broker user %q: the broker never runs as root", spec)
	}
	return uid, gid, nil
}

func cut(s string) (string, string, bool) {
	for i := range s {
		if s[i] == ':' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func parseIDs(u, g string) (uint32, uint32, error) {
	uid, err := strconv.ParseUint(u, 10, 32)
	if err != nil {
		return 0, 0, err
	}
	gid, err := strconv.ParseUint(g, 10, 32)
	if err != nil {
		return 0, 0, err
	}
	return uint32(uid), uint32(gid), nil
}

// Start starts the broker and keeps it running until ctx ends or Close.
func Start(ctx context.Context, cfg Config) (*Broker, error) {
	u, err := url.Parse(cfg.Server)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("cloud broker: the service address %q is not an https:// URL", cfg.Server)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.After == nil {
		cfg.After = time.After
	}
	if cfg.UID == 0 && cfg.GID == 0 {
		if cfg.UID, cfg.GID, err = UIDFor(""); err != nil {
			return nil, err
		}
	}
	if cfg.Exe == "" {
		cfg.Exe = "/proc/self/exe"
	}
	if err := os.MkdirAll(cfg.SocketDir, 0o700); err != nil {
		return nil, fmt.Errorf("cloud broker: %w", err)
	}
	if err := os.Chmod(cfg.SocketDir, 0o700); err != nil {
		return nil, fmt.Errorf("cloud broker: %w", err)
	}
	sock := filepath.Join(cfg.SocketDir, "broker.sock")
	if len(sock) >= 108 {
		return nil, fmt.Errorf("cloud broker: the socket path %s is longer than a Unix socket address allows (107 bytes)", sock)
	}
	// The binary, opened once: the broker's uid may not be able to reach its path (a test
	// binary lives in a 0700 directory), and an update may replace the file at the path while
	// this monitor runs; every spawn executes this descriptor.
	exe, err := os.Open(cfg.Exe)
	if err != nil {
		return nil, fmt.Errorf("cloud broker: opening the agent's binary: %w", err)
	}
	_ = os.Remove(sock)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		exe.Close()
		return nil, fmt.Errorf("cloud broker: %w", err)
	}
	ln.SetUnlinkOnClose(true)
	lnFile, err := ln.File()
	if err != nil {
		exe.Close()
		ln.Close()
		return nil, fmt.Errorf("cloud broker: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	b := &Broker{cfg: cfg, log: cfg.Logger, sock: sock, ln: ln, lnFile: lnFile, exe: exe, cancel: cancel, done: make(chan struct{}),
		started: make(chan struct{}), argv0: argv0, keys: newKeyServer(cfg.Logger, cfg.Now, cfg.After)}
	if o, ok := ctx.Value(testProcessKey{}).(testProcess); ok {
		b.argv0, b.args = o.argv0, o.args
	}
	b.withID = b.newTransport()
	go b.supervise(ctx)
	select {
	case <-b.started:
	case <-ctx.Done():
	}
	if err := b.Refresh(ctx); err != nil {
		b.log.Debug("cloud broker: no identity to give yet", "error", err)
	}
	return b, nil
}

func (b *Broker) newTransport() *http.Transport {
	return &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", b.sock)
		},
		DisableCompression:  true, // the service's bytes pass through untouched
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     90 * time.Second,
	}
}

// supervise runs the broker, restarting it with backoff when it dies.
func (b *Broker) supervise(ctx context.Context) {
	defer close(b.done)
	wait := 500 * time.Millisecond
	for n := 0; ; n++ {
		cmd, stopSigner, err := b.spawn(ctx)
		if n == 0 {
			close(b.started)
		}
		if err != nil {
			b.log.Error("cloud broker: cannot start", "error", err)
		} else {
			startedAt := time.Now()
			if n > 0 {
				go func() { _ = b.Refresh(ctx) }() // a restarted broker has no identity yet
			}
			exit := make(chan error, 1)
			go func() { exit <- cmd.Wait() }()
			select {
			case <-ctx.Done():
				_ = cmd.Process.Kill()
				<-exit
				stopSigner()
				return
			case err := <-exit:
				stopSigner()
				b.log.Warn("cloud broker: exited; restarting", "error", err)
				if time.Since(startedAt) > time.Minute {
					wait = 500 * time.Millisecond
				}
			}
		}
		t := time.NewTimer(wait/2 + rand.N(wait/2+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(2*wait, 30*time.Second)
	}
}

// spawn starts one broker process, and serves its signing requests on the monitor's end of
// their socket pair; the returned func stops that, once the process has exited.
func (b *Broker) spawn(ctx context.Context) (*exec.Cmd, func(), error) {
	mine, theirs, err := signerPair()
	if err != nil {
		return nil, nil, fmt.Errorf("the signer's socket pair: %w", err)
	}
	defer theirs.Close()
	cmd, err := b.spawnWith(theirs)
	if err != nil {
		mine.Close()
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	go b.keys.serve(ctx, mine)
	return cmd, func() { cancel(); mine.Close() }, nil
}

// signerPair makes the signer's SOCK_SEQPACKET socket pair: the monitor's end, and the
// broker's.
func signerPair() (*net.UnixConn, *os.File, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	mf := os.NewFile(uintptr(fds[0]), "signer")
	theirs := os.NewFile(uintptr(fds[1]), "signer-broker")
	c, err := net.FileConn(mf)
	mf.Close()
	if err != nil {
		theirs.Close()
		return nil, nil, err
	}
	return c.(*net.UnixConn), theirs, nil
}

// spawnWith starts one broker process with signer as its signerFD.
func (b *Broker) spawnWith(signer *os.File) (*exec.Cmd, error) {
	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer cfgR.Close()
	cfg := childConfig{Server: b.cfg.Server, RootPEM: string(b.cfg.RootPEM)}
	env := []string{"GODEBUG=netdns=go"}
	if v, ok := os.LookupEnv(residency.Off); ok { // the broker reads its binary as the monitor does
		env = append(env, residency.Off+"="+v)
	}
	cmd := &exec.Cmd{Path: fmt.Sprintf("/proc/self/fd/%d", exeFD), Args: append([]string{b.argv0}, b.args...), Env: env,
		ExtraFiles:  []*os.File{cfgR, b.lnFile, b.exe, signer},
		SysProcAttr: &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setsid: true}}
	if os.Geteuid() == 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: b.cfg.UID, Gid: b.cfg.GID, Groups: []uint32{}}
		// Its own IPC namespace: no System V object of the device. (Not a PID namespace: with
		// the host's /proc, Landlock's all-threads restriction would signal the wrong tids;
		// the uid and Landlock's signal scope keep it from other processes.)
		cmd.SysProcAttr.Cloneflags = syscall.CLONE_NEWIPC
	} else {
		b.log.Warn("cloud broker: the agent is not root, so the broker keeps its uid; it is still confined by Landlock and seccomp",
			"uid", os.Geteuid())
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		cfgW.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		cfgW.Close()
		return nil, fmt.Errorf("starting %s: %w", b.cfg.Exe, err)
	}
	b.mu.Lock()
	b.pid = cmd.Process.Pid
	b.mu.Unlock()
	go b.relayLog(stderr)
	err = json.NewEncoder(cfgW).Encode(cfg)
	cfgW.Close()
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("configuring the broker: %w", err)
	}
	b.log.Info("cloud broker: started", "pid", cmd.Process.Pid, "uid", b.cfg.UID, "gid", b.cfg.GID)
	return cmd, nil
}

// relayLog copies the broker's log lines into the monitor's log.
func (b *Broker) relayLog(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 4096)
	for sc.Scan() {
		b.log.Info("cloud broker: " + sc.Text())
	}
}

// PID is the running broker's process ID (tests kill it).
func (b *Broker) PID() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.pid
}

// Transport returns the transport that reaches the service through the broker with the
// agent's certificate.
func (b *Broker) Transport() http.RoundTripper { return &roundTripper{b: b} }

// TransportWithoutIdentity returns the transport for attestation: no client certificate.
func (b *Broker) TransportWithoutIdentity() http.RoundTripper {
	return &roundTripper{b: b, noIdentity: true}
}

// CloseIdleConnections drops kept-alive connections to the broker.
func (b *Broker) CloseIdleConnections() { b.withID.CloseIdleConnections() }

type roundTripper struct {
	b          *Broker
	noIdentity bool
}

func (rt *roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "https" {
		return nil, fmt.Errorf("cloud broker: %s is not an https:// URL", req.URL.Redacted())
	}
	r := req.Clone(req.Context())
	u := *req.URL
	u.Scheme = "http"
	r.URL = &u
	r.Header.Del(NoIdentityHeader)
	if rt.noIdentity {
		r.Header.Set(NoIdentityHeader, "1")
	}
	return rt.b.withID.RoundTrip(r)
}

// Refresh gives the broker the agent's current certificate chain, and makes the monitor sign
// its handshakes with the certificate's key: after each attestation, and by itself after a
// restart. The key stays in the monitor: from the moment the chain is sent, the monitor signs
// with the new key as well as with the previous one (handshakes in flight), and once the
// broker has taken the chain, with the new one only. Should the handover fail, both stay
// usable until the next one.
func (b *Broker) Refresh(ctx context.Context) error {
	if b.cfg.Identity == nil {
		return errors.New("no identity source")
	}
	b.refresh.Lock()
	defer b.refresh.Unlock()
	cert, err := b.cfg.Identity()
	if err != nil {
		return err
	}
	key, err := newHeldKey(cert)
	if err != nil {
		return fmt.Errorf("cloud broker: %w", err)
	}
	doc, err := encodeIdentity(cert.Certificate)
	if err != nil {
		return err
	}
	b.keys.offer(key)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "PUT", "http://broker"+identityPath, bytes.NewReader(doc))
	if err != nil {
		return err
	}
	resp, err := b.withID.RoundTrip(req)
	if err != nil {
		return fmt.Errorf("cloud broker: giving it the certificate: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("cloud broker: refused the certificate: HTTP %d %s", resp.StatusCode, bytes.TrimSpace(msg))
	}
	b.keys.commit(key)
	return nil
}

// Signatures counts the monitor's answers to the broker's signing requests, since Start.
func (b *Broker) Signatures() SignStats { return b.keys.snapshot() }

// Close stops the broker.
func (b *Broker) Close() error {
	b.cancel()
	<-b.done
	b.withID.CloseIdleConnections()
	b.lnFile.Close()
	b.exe.Close()
	return b.ln.Close()
}

// identityDoc carries the agent's certificate chain from the monitor to the broker; never a
// key.
type identityDoc struct {
	Chain [][]byte `json:"chain"` // DER, leaf first
}

// maxChain bounds the chain's length.
const maxChain = 8

func encodeIdentity(chain [][]byte) ([]byte, error) {
	if len(chain) == 0 || len(chain) > maxChain {
		return nil, fmt.Errorf("cloud broker: %d certificates, want 1 to %d", len(chain), maxChain)
	}
	return json.Marshal(identityDoc{Chain: chain})
}

// decodeIdentity parses the monitor's identity document into a certificate without a private
// key (the broker's signer supplies it). A document that carries a key is refused: the key
// never leaves the monitor.
func decodeIdentity(b []byte) (*tls.Certificate, error) {
	var d struct {
		identityDoc
		Key json.RawMessage `json:"key"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	if dec.More() {
		return nil, errors.New("identity: data after the document")
	}
	if d.Key != nil {
		return nil, errors.New("identity: the document carries a private key; the broker takes none")
	}
	if len(d.Chain) == 0 || len(d.Chain) > maxChain {
		return nil, fmt.Errorf("identity: %d certificates, want 1 to %d", len(d.Chain), maxChain)
	}
	leaf, err := x509.ParseCertificate(d.Chain[0])
	if err != nil {
		return nil, fmt.Errorf("identity: leaf certificate: %w", err)
	}
	if err := checkP256(leaf.PublicKey); err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	return &tls.Certificate{Certificate: d.Chain, Leaf: leaf, SupportedSignatureAlgorithms: clientSignatureSchemes}, nil
}
