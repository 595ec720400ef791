// Package server runs the security service (`rampart server`): it opens the store, builds the
// management plane and the REST API, and serves them over TLS with health, readiness and
// Prometheus metrics endpoints until its context ends, then shuts down gracefully. In dev mode
// it also makes a throwaway tenant, an administrator token and its own TLS certificates.
package server

import (
	"context"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/atomicfile"
	"github.com/rampart-iot/rampart/internal/attestsvc"
	"github.com/rampart-iot/rampart/internal/blob"
	"github.com/rampart-iot/rampart/internal/ca"
	"github.com/rampart-iot/rampart/internal/checkin"
	"github.com/rampart-iot/rampart/internal/console"
	"github.com/rampart-iot/rampart/internal/devpki"
	"github.com/rampart-iot/rampart/internal/errorreport"
	"github.com/rampart-iot/rampart/internal/httpapi"
	"github.com/rampart-iot/rampart/internal/imagesign"
	"github.com/rampart-iot/rampart/internal/keyseal"
	"github.com/rampart-iot/rampart/internal/manage"
	"github.com/rampart-iot/rampart/internal/push"
	"github.com/rampart-iot/rampart/internal/ratelimit"
	"github.com/rampart-iot/rampart/internal/serverconfig"
	"github.com/rampart-iot/rampart/internal/store"
	"github.com/rampart-iot/rampart/internal/updatemeta"
	"github.com/rampart-iot/rampart/internal/webhook"

	// The built-in store backends.
	_ "github.com/rampart-iot/rampart/internal/store/postgres"
	_ "github.com/rampart-iot/rampart/internal/store/sqlite"
)

// Dev mode's bootstrap names and token lifetime.
const (
	DevUser     = "dev-admin"
	DevTenant   = "dev"
	DevTokenTTL = 7 * 24 * time.Hour
)

// Options configure Run.
type Options struct {
	Config serverconfig.Config // defaulted and validated by the caller
	Dev    bool
	Logger *slog.Logger     // default discards
	Now    func() time.Time // default time.Now
	Rand   io.Reader        // default crypto/rand
	// Store, if set, is used instead of opening Config.Store; Run does not close it.
	Store store.Store
	// Ready is called once the service is listening, with what a client needs to reach it.
	Ready func(Info)
	// Reload, if set, makes the service read its TLS certificate files again on each receive;
	// nil means on SIGHUP.
	Reload <-chan struct{}
}

// webhookRoots is the pool webhook receivers' certificates are verified with: the system's
// roots and those of webhooks.ca_file, or nil (the system's alone) without one.
func webhookRoots(file string) (*x509.CertPool, error) {
	if file == "" {
		return nil, nil
	}
	pemBytes, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("webhooks.ca_file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool() // no system roots on this machine: the file's alone
	}
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, fmt.Errorf("webhooks.ca_file %s holds no PEM certificate", file)
	}
	return pool, nil
}

// reloadOnSignal reads the TLS certificate again on each reload request (SIGHUP by default)
// until ctx ends.
func reloadOnSignal(ctx context.Context, reload <-chan struct{}, certs *certReloader, log *slog.Logger) {
	if reload == nil {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGHUP)
		defer signal.Stop(sig)
		ch := make(chan struct{})
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case <-sig:
					select {
					case ch <- struct{}{}:
					case <-ctx.Done():
						return
					}
				}
			}
		}()
		reload = ch
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-reload:
			if err := certs.reload(); err != nil {
				log.Error("TLS certificate not reloaded; still serving the previous one", "error", err)
				continue
			}
			log.Info("TLS certificate reloaded", "cert_file", certs.certFile)
		}
	}
}

// Info tells a client how to reach a running service.
type Info struct {
	URL        string // https://host:port
	Addr       string // the bound listener address
	DataDir    string
	CACertFile string // PEM that verifies the server certificate (dev mode)
	ConsoleURL string // the web console
	// Dev mode only: the service administrator's new token, and the dev tenant.
	AdminToken string
	TenantID   string
}

// Run serves until ctx ends.
func Run(ctx context.Context, opts Options) error {
	cfg := opts.Config
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	rnd := opts.Rand
	if rnd == nil {
		rnd = rand.Reader
	}

	if cfg.DataDir == "" && opts.Dev {
		dir, err := os.MkdirTemp("", "rampart-dev-")
		if err != nil {
			return fmt.Errorf("dev mode data directory: %w", err)
		}
		defer os.RemoveAll(dir)
		cfg.DataDir = dir
		log.Info("dev mode: using a throwaway data directory", "dir", dir)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}

	st := opts.Store
	if st == nil {
		var err error
		if st, err = OpenStore(ctx, cfg); err != nil {
			return err
		}
		defer st.Close()
	}

	allowSoftware := opts.Dev
	if cfg.Policy.AllowSoftwareRootOfTrust != nil {
		allowSoftware = *cfg.Policy.AllowSoftwareRootOfTrust
	}
	authority, kek, err := OpenCA(cfg, st, now, rnd)
	if err != nil {
		return err
	}
	sealer, err := keyseal.New(kek, rnd)
	if err != nil {
		return err
	}
	blobs, err := blob.Open(ctx, "dir", filepath.Join(cfg.DataDir, "blobs"))
	if err != nil {
		return fmt.Errorf("blob store: %w", err)
	}
	defer blobs.Close()
	spool := filepath.Join(cfg.DataDir, "spool")
	if err := os.MkdirAll(spool, 0o700); err != nil {
		return err
	}
	nonceKey, err := hkdf.Key(sha256.New, kek, nil, "rampart attestation nonce v1", 32)
	if err != nil {
		return err
	}
	if err := authority.EnsureRoot(ctx); err != nil {
		return fmt.Errorf("service root CA: %w", err)
	}
	var ekRoots *x509.CertPool
	if cfg.CA.EKRootsFile != "" {
		pemBytes, err := os.ReadFile(cfg.CA.EKRootsFile)
		if err != nil {
			return err
		}
		ekRoots = x509.NewCertPool()
		if !ekRoots.AppendCertsFromPEM(pemBytes) {
			return fmt.Errorf("ca.ek_roots_file %s holds no PEM certificate", cfg.CA.EKRootsFile)
		}
	}
	hookSeal, err := webhook.NewSealer(kek, rnd)
	if err != nil {
		return err
	}
	hookRoots, err := webhookRoots(cfg.Webhooks.CAFile)
	if err != nil {
		return err
	}
	hub := &push.Hub{}
	notify, err := startNotifier(ctx, cfg, hub, log, rnd)
	if err != nil {
		return err
	}
	meta := updatemeta.New(updatemeta.Config{Sealer: sealer, Now: now, Rand: rnd})
	m := manage.New(manage.Config{Store: st, CA: authority, Notify: notify, WebhookSecrets: hookSeal, Metadata: meta, Policy: manage.Policy{AllowSoftwareRootOfTrust: allowSoftware, AllowLoopbackHTTPWebhooks: (opts.Dev || cfg.Webhooks.AllowHTTPLoopback) && !cfg.Webhooks.DenyPrivateNetworks},
		Blobs: blobs, ImageSigner: imagesign.New(st, sealer, now, rnd), SpoolDir: spool,
		Now: now, Rand: rnd, Logger: log})

	info := Info{DataDir: cfg.DataDir}
	if opts.Dev {
		res, err := m.Bootstrap(ctx, manage.Bootstrap{UserName: DevUser, TenantName: DevTenant, TokenTTL: DevTokenTTL})
		if err != nil {
			return fmt.Errorf("dev mode bootstrap: %w", err)
		}
		info.AdminToken, info.TenantID = res.Token.Secret, res.Tenant.ID
	}
	if cfg.CA.OSReleasesFile != "" {
		n, err := registerReleases(ctx, m, cfg.CA.OSReleasesFile)
		if err != nil {
			return err
		}
		log.Info("registered OS releases from the configuration", "file", cfg.CA.OSReleasesFile, "new", n)
	}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", cfg.Listen, err)
	}
	defer ln.Close()
	info.Addr = ln.Addr().String()
	host, port, _ := net.SplitHostPort(info.Addr)
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	info.URL = "https://" + net.JoinHostPort(host, port)

	certFile, keyFile := cfg.TLS.CertFile, cfg.TLS.KeyFile
	if certFile == "" && opts.Dev {
		hosts := []string{"localhost", "127.0.0.1", "::1"}
		if host != "127.0.0.1" {
			hosts = append(hosts, host)
		}
		files, err := devpki.Ensure(filepath.Join(cfg.DataDir, "tls"), hosts, now(), rnd)
		if err != nil {
			return err
		}
		certFile, keyFile, info.CACertFile = files.ServerCert, files.ServerKey, files.CACert
	}
	certs, err := newCertReloader(certFile, keyFile)
	if err != nil {
		return err
	}
	go reloadOnSignal(ctx, opts.Reload, certs, log)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	att, err := attestsvc.New(attestsvc.Config{Store: st, CA: authority, NonceKey: nonceKey, Now: now, Rand: rnd, Logger: log, Registry: reg,
		Policy: attestsvc.Policy{AllowSoftwareRootOfTrust: allowSoftware, EKRoots: ekRoots, RequireEKCertificate: cfg.CA.RequireEKCertificate,
			FirmwarePCRs: cfg.CA.FirmwarePCRs}})
	if err != nil {
		return err
	}
	api, err := httpapi.New(httpapi.Config{Manager: m, Attest: att, Packages: blobs, Logger: log, Registry: reg, Now: now,
		CheckIn: checkin.New(checkin.Config{Store: st, Now: now}), Push: hub,
		DeviceLimit:      ratelimit.New(cfg.Limits.DeviceRequestsPerSecond, cfg.Limits.DeviceBurst, 0, now),
		ReportLimit:      ratelimit.New(cfg.Limits.ReportUploadsPerMinute/60, cfg.Limits.ReportBurst, 0, now),
		AuthFailureLimit: ratelimit.New(cfg.Limits.AuthFailuresPerMinute/60, cfg.Limits.AuthFailureBurst, 0, now)})
	if err != nil {
		return err
	}
	con, err := console.New(console.Config{Manager: m, Sessions: st, Logger: log, Now: now, Rand: rnd})
	if err != nil {
		return err
	}
	info.ConsoleURL = info.URL + console.Prefix
	rootsDue := prometheus.NewGauge(prometheus.GaugeOpts{Name: "rampart_update_roots_due_offline",
		Help: "Update-metadata roots inside their renewal window whose tenant has fewer than a threshold of root keys online: renew them with 'rampart keys rotate-root --root-key FILE ...' (a threshold of the root keys) before they expire, or devices stop taking updates."})
	reg.MustRegister(rootsDue)
	jan := &janitor{log: log, st: st, att: att, authority: authority, meta: meta, mgr: m, now: now,
		retention: time.Duration(cfg.Reports.RetentionDays) * 24 * time.Hour, blobs: &blobGC{blobs: blobs, st: st},
		rootsDue: rootsDue, rootWarned: map[[2]string]time.Time{}}
	go jan.run(ctx)
	hooks, err := webhook.NewWorker(webhook.Config{Store: st, Secrets: hookSeal, AllowLoopbackHTTP: (opts.Dev || cfg.Webhooks.AllowHTTPLoopback) && !cfg.Webhooks.DenyPrivateNetworks,
		DenyPrivateNetworks: cfg.Webhooks.DenyPrivateNetworks, MaxAttempts: cfg.Webhooks.MaxAttempts, RootCAs: hookRoots, Now: now, Rand: rnd, Logger: log})
	if err != nil {
		return err
	}
	go hooks.Run(ctx)
	var stopping atomic.Bool
	mux := http.NewServeMux()
	mux.Handle("/v1/", api)
	mux.Handle(console.Prefix, con)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeHealth(w, http.StatusOK, v1.Health{Status: "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		h := v1.Health{Status: "ok", Checks: map[string]string{"store": "ok"}}
		status := http.StatusOK
		if stopping.Load() {
			h.Status, status = "shutting down", http.StatusServiceUnavailable
		}
		pctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := st.Ping(pctx); err != nil {
			h.Status, h.Checks["store"], status = "unavailable", err.Error(), http.StatusServiceUnavailable
		}
		writeHealth(w, status, h)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))

	srv := &http.Server{
		Handler: accessLog(log, mux),
		// Devices present their certificates on mutual TLS; the device routes verify them against
		// their tenant's CA, so the handshake only asks.
		TLSConfig:         &tls.Config{GetCertificate: certs.getCertificate, MinVersion: tls.VersionTLS12, ClientAuth: tls.RequestClientCert},
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute,
		WriteTimeout:      2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.ServeTLS(ln, "", "") }()
	log.Info("rampart server listening", "url", info.URL, "store", cfg.Store.Backend, "dev", opts.Dev)
	if opts.Dev {
		log.Info("dev mode: the web console takes the admin token (RAMPART_TOKEN) at login", "console", info.ConsoleURL)
	}
	if opts.Ready != nil {
		opts.Ready(info)
	}

	select {
	case err := <-serveErr:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	stopping.Store(true)
	log.Info("shutting down", "timeout", time.Duration(cfg.ShutdownTimeout))
	sctx, cancel := context.WithTimeout(context.Background(), time.Duration(cfg.ShutdownTimeout))
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutting down: %w", err)
	}
	if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("stopped")
	return nil
}

// janitor does the service's periodic work, every minute until ctx ends: it deletes expired
// attestation nonces, makes sure a service root outlives the tenant CAs it must sign, renews
// update metadata before it expires, advances rollouts, deletes error reports past their
// retention, and deletes unreferenced image packages (blobGC).
type janitor struct {
	log       *slog.Logger
	st        store.Store
	att       *attestsvc.Service
	authority *ca.Authority
	meta      *updatemeta.Service
	mgr       *manage.Manager // advances rollouts
	now       func() time.Time
	retention time.Duration
	blobs     *blobGC
	// rootsDue counts the roots RenewRoots could not renew (fewer than a threshold of their root keys online); rootWarned
	// is when each was last logged, so that the warning comes daily, not every tick.
	rootsDue   prometheus.Gauge
	rootWarned map[[2]string]time.Time
}

func (j *janitor) run(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			j.tick(ctx)
		}
	}
}

// renewRoots renews the roots nearing expiry a threshold of whose root keys is online, and warns, once a day each,
// of those whose tenant has fewer than a threshold of root keys online.
func (j *janitor) renewRoots(ctx context.Context) {
	n, offline, err := j.meta.RenewRoots(ctx, j.st, 1000)
	if err != nil {
		j.log.Error("renewing update-metadata roots", "error", err)
	}
	if n > 0 {
		j.log.Info("renewed update-metadata roots before they expire", "repositories", n)
	}
	j.rootsDue.Set(float64(len(offline)))
	now := j.now()
	for _, r := range offline {
		k := [2]string{r.TenantID, r.Repository}
		if last, ok := j.rootWarned[k]; ok && now.Sub(last) < 24*time.Hour {
			continue
		}
		j.rootWarned[k] = now
		j.log.Warn("an update-metadata root expires soon and fewer than a threshold of its root keys are online: renew it with 'rampart keys rotate-root --root-key FILE ...' (a threshold of the root keys), or devices stop taking updates when it expires",
			"tenant", r.TenantID, "repository", r.Repository, "root_version", r.Version, "expires", r.Expires)
	}
}

func (j *janitor) tick(ctx context.Context) {
	if n, err := j.att.Cleanup(ctx); err != nil {
		j.log.Warn("deleting expired nonces", "error", err)
	} else if n > 0 {
		j.log.Debug("deleted expired nonces", "count", n)
	}
	if err := j.authority.EnsureRoot(ctx); err != nil {
		j.log.Error("service root CA", "error", err)
	}
	if n, err := j.meta.RenewAll(ctx, j.st, 1000); err != nil {
		j.log.Error("renewing update metadata", "error", err)
	} else if n > 0 {
		j.log.Info("renewed update metadata", "repositories", n)
	}
	j.renewRoots(ctx)
	if n, err := j.mgr.AdvanceRollouts(ctx); err != nil {
		j.log.Error("advancing rollouts", "error", err)
	} else if n > 0 {
		j.log.Info("advanced rollouts", "rollouts", n)
	}
	if n, err := errorreport.Cleanup(ctx, j.st, j.now(), j.retention); err != nil {
		j.log.Error("deleting old error reports", "error", err)
	} else if n > 0 {
		j.log.Info("deleted error reports past their retention", "count", n)
	}
	if n, err := j.blobs.collect(ctx, j.now()); err != nil {
		j.log.Error("collecting unreferenced blobs", "error", err)
	} else if n > 0 {
		j.log.Info("deleted image packages no image refers to", "count", n)
	}
}

// OpenCA opens the certificate authorities of a store with the configured key-encryption key,
// creating the key on first use.
// It also returns the key-encryption key, from which other service secrets are derived.
func OpenCA(cfg serverconfig.Config, st store.Store, now func() time.Time, rnd io.Reader) (*ca.Authority, []byte, error) {
	kekFile := cfg.CA.KeyEncryptionKeyFile
	if kekFile == "" {
		kekFile = filepath.Join(cfg.DataDir, "ca-kek")
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	kek, err := loadKEK(kekFile, rnd)
	if err != nil {
		return nil, nil, err
	}
	a, err := ca.New(ca.Config{Store: st, KEK: kek, Now: now, Rand: rnd})
	return a, kek, err
}

// loadKEK reads the CA key-encryption key, creating it (32 random bytes, mode 0600) if the file
// does not exist.
func loadKEK(path string, rnd io.Reader) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		b = make([]byte, 32)
		if _, err := io.ReadFull(rnd, b); err != nil {
			return nil, err
		}
		if err := atomicfile.WriteFile(path, b, 0o600); err != nil {
			return nil, fmt.Errorf("creating the CA key-encryption key: %w", err)
		}
		return b, nil
	}
	if err != nil {
		return nil, fmt.Errorf("CA key-encryption key: %w", err)
	}
	if len(b) != 32 {
		return nil, fmt.Errorf("CA key-encryption key %s is %d bytes; it must be 32", path, len(b))
	}
	return b, nil
}

// OpenStore opens the configured store; SQLite defaults to rampart.db in the data directory.
func OpenStore(ctx context.Context, cfg serverconfig.Config) (store.Store, error) {
	dsn := cfg.Store.DSN
	if cfg.Store.Backend == "sqlite" && dsn == "" {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("data directory: %w", err)
		}
		dsn = filepath.Join(cfg.DataDir, "rampart.db")
	}
	st, err := store.Open(ctx, cfg.Store.Backend, dsn)
	if err != nil {
		return nil, fmt.Errorf("opening the %s store: %w", cfg.Store.Backend, err)
	}
	return st, nil
}

func writeHealth(w http.ResponseWriter, status int, h v1.Health) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	b, _ := json.Marshal(h)
	_, _ = w.Write(append(b, '\n'))
}

// accessLog logs each request once it is served.
func accessLog(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		level := slog.LevelInfo
		if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" || r.URL.Path == "/metrics" {
			level = slog.LevelDebug
		}
		log.Log(r.Context(), level, "request", "method", r.Method, "path", r.URL.Path, "status", sw.status,
			"duration", time.Since(start), "remote", r.RemoteAddr)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

// Unwrap lets http.ResponseController reach the connection (flushing, deadlines).
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}
