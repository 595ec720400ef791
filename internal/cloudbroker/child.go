package cloudbroker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/landlock-lsm/go-landlock/landlock"

	"github.com/rampart-iot/rampart/internal/sandbox"
)

// childConfig is what the monitor sends the broker on configFD.
type childConfig struct {
	Server  string `json:"server"`
	RootPEM string `json:"root_pem,omitempty"`
}

// resolverFiles are what the pure-Go resolver and the time package read.
var resolverFiles = []string{"/etc/resolv.conf", "/etc/hosts", "/etc/nsswitch.conf", "/etc/localtime"}

// systemRootDirs hold the system's trust roots, read only when no roots are configured.
var systemRootDirs = []string{"/etc/ssl", "/etc/pki", "/etc/ca-certificates", "/usr/share/ca-certificates",
	"/usr/local/share/ca-certificates"}

func isBroker() bool { return len(os.Args) > 0 && os.Args[0] == argv0 }

// Init must be called first in the main function of every binary that starts the broker (the
// agent) and of test binaries that do. In an ordinary process it returns at once; in the
// broker it confines the process, serves, and never returns.
func Init() { initWith(serve) }

// initWith runs body in the confined broker process.
func initWith(body func(ctx context.Context, cfg childConfig, ln net.Listener, signer *signerConn, log *slog.Logger) error) {
	if !isBroker() {
		return
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{} // the monitor's log stamps the line
		}
		return a
	}}))
	err := func() error {
		_ = syscall.Close(exeFD)
		cfg, ln, signer, err := readConfig()
		if err != nil {
			return err
		}
		if err := confine(cfg); err != nil {
			return fmt.Errorf("confining the broker: %w", err)
		}
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		defer stop()
		return body(ctx, cfg, ln, signer, log)
	}()
	if err != nil {
		log.Error("stopped", "error", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func readConfig() (childConfig, net.Listener, *signerConn, error) {
	var cfg childConfig
	f := os.NewFile(configFD, "config")
	dec := json.NewDecoder(io.LimitReader(f, 1<<20))
	dec.DisallowUnknownFields()
	err := dec.Decode(&cfg)
	f.Close()
	if err != nil {
		return cfg, nil, nil, fmt.Errorf("reading the configuration: %w", err)
	}
	lf := os.NewFile(listenerFD, "listener")
	ln, err := net.FileListener(lf)
	lf.Close()
	if err != nil {
		return cfg, nil, nil, fmt.Errorf("the inherited listener: %w", err)
	}
	sf := os.NewFile(signerFD, "signer")
	signer, err := newSignerConn(sf)
	sf.Close()
	if err != nil {
		ln.Close()
		return cfg, nil, nil, fmt.Errorf("the monitor's signer: %w", err)
	}
	return cfg, ln, signer, nil
}

// serverPort is the TCP port of the service's URL.
func serverPort(server string) (uint16, error) {
	u, err := url.Parse(server)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return 0, fmt.Errorf("the service address %q is not an https:// URL", server)
	}
	p := u.Port()
	if p == "" {
		return 443, nil
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("the service address %q has a bad port", server)
	}
	return uint16(n), nil
}

// confine restricts the broker, on every thread: Landlock lets it read the resolver's files
// (and the system's trust roots when none are configured), write nothing, execute nothing,
// connect over TCP only to the service's port and to DNS, and signal no process outside
// itself; then the apps' seccomp filter, with bind and listen refused, and no_new_privs.
func confine(cfg childConfig) error {
	port, err := serverPort(cfg.Server)
	if err != nil {
		return err
	}
	rules := []landlock.Rule{
		landlock.ROFiles(resolverFiles...).IgnoreIfMissing(),
		landlock.ConnectTCP(port),
		landlock.ConnectTCP(53),
	}
	if cfg.RootPEM == "" {
		rules = append(rules, landlock.RODirs(systemRootDirs...).IgnoreIfMissing())
	}
	if err := landlock.V7.BestEffort().Restrict(rules...); err != nil {
		return fmt.Errorf("landlock: %w", err)
	}
	// It connects and accepts on the listener it inherited; it never binds or listens (which
	// Landlock's TCP bind right does not stop on every kernel).
	return sandbox.ConfineProcess("bind", "listen")
}

// proxy is the broker's HTTP handler: it forwards every request to the service over TLS, with
// the agent's certificate unless asked not to, and takes the certificate from the monitor on
// the control path. The certificate's private key is a remoteSigner: the monitor signs.
type proxy struct {
	server  *url.URL
	log     *slog.Logger
	signer  *signerConn
	mu      sync.RWMutex
	id      *tls.Certificate
	withID  *http.Transport
	without *http.Transport
	fwd     *httputil.ReverseProxy
}

func newProxy(cfg childConfig, signer *signerConn, log *slog.Logger) (*proxy, error) {
	u, err := url.Parse(cfg.Server)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("the service address %q is not an https:// URL", cfg.Server)
	}
	var roots *x509.CertPool
	if cfg.RootPEM != "" {
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM([]byte(cfg.RootPEM)) {
			return nil, errors.New("the configured trust roots hold no PEM certificate")
		}
	}
	p := &proxy{server: u, log: log, signer: signer}
	mk := func(getCert func(*tls.CertificateRequestInfo) (*tls.Certificate, error)) *http.Transport {
		return &http.Transport{
			Proxy:                 nil,
			TLSClientConfig:       &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12, GetClientCertificate: getCert},
			TLSHandshakeTimeout:   15 * time.Second,
			ResponseHeaderTimeout: 60 * time.Second,
			IdleConnTimeout:       90 * time.Second,
			MaxIdleConnsPerHost:   4,
			DisableCompression:    true,
		}
	}
	p.withID = mk(func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		p.mu.RLock()
		defer p.mu.RUnlock()
		if p.id == nil {
			return &tls.Certificate{}, nil // none yet: the service answers 401
		}
		return p.id, nil
	})
	p.without = mk(func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &tls.Certificate{}, nil })
	p.fwd = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.Out.Host = u.Host
			if r.In.Header.Get(NoIdentityHeader) != "" {
				r.Out.Header.Del(NoIdentityHeader)
				r.Out = r.Out.WithContext(context.WithValue(r.Out.Context(), noIdentityKey{}, true))
			}
		},
		Transport:     transportSwitch{p},
		FlushInterval: -1, // the push channel's events pass at once
		ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			log.Warn("forwarding failed", "path", r.URL.Path, "error", err)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadGateway)
			b, _ := json.Marshal(map[string]any{"error": map[string]string{"code": "unreachable",
				"message": "the cloud broker could not reach the Rampart service: " + err.Error()}})
			_, _ = w.Write(b)
		},
	}
	return p, nil
}

// transportSwitch picks the transport the request asked for: one pool per identity, so a
// connection made without the certificate is never reused with it, or the reverse.
type transportSwitch struct{ p *proxy }

// noIdentityKey marks, in a forwarded request's context, that it goes without the certificate.
type noIdentityKey struct{}

func (t transportSwitch) RoundTrip(r *http.Request) (*http.Response, error) {
	if none, _ := r.Context().Value(noIdentityKey{}).(bool); none {
		return t.p.without.RoundTrip(r)
	}
	return t.p.withID.RoundTrip(r)
}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == identityPath {
		p.setIdentity(w, r)
		return
	}
	if r.Host != p.server.Host {
		http.Error(w, "the cloud broker only reaches "+p.server.Host, http.StatusMisdirectedRequest)
		return
	}
	p.fwd.ServeHTTP(w, r)
}

func (p *proxy) setIdentity(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPut {
		http.Error(w, "PUT only", http.StatusMethodNotAllowed)
		return
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, MaxIdentity+1))
	if err == nil && len(b) > MaxIdentity {
		err = fmt.Errorf("identity larger than %d bytes", MaxIdentity)
	}
	var id *tls.Certificate
	if err == nil {
		id, err = decodeIdentity(b)
	}
	if err == nil {
		id.PrivateKey, err = newRemoteSigner(p.signer, id.Leaf.PublicKey)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	p.mu.Lock()
	p.id = id
	p.mu.Unlock()
	// Connections made with the previous certificate go, so the next request shows this one.
	p.withID.CloseIdleConnections()
	p.log.Info("took the agent's certificate", "not_after", id.Leaf.NotAfter.UTC().Format(time.RFC3339))
	w.WriteHeader(http.StatusNoContent)
}

// serve runs the proxy on the inherited listener until ctx ends.
func serve(ctx context.Context, cfg childConfig, ln net.Listener, signer *signerConn, log *slog.Logger) error {
	p, err := newProxy(cfg, signer, log)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: p, ReadHeaderTimeout: 30 * time.Second, MaxHeaderBytes: 64 << 10,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Info("serving", "service", cfg.Server, "uid", os.Getuid())
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
