// Package servertest runs a real security service in-process for tests: dev mode, TLS on a
// loopback port, SQLite in a temporary directory (or PostgreSQL in a fresh schema), stopped when
// the test ends.
package servertest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/client"
	"github.com/rampart-iot/rampart/internal/server"
	"github.com/rampart-iot/rampart/internal/serverconfig"
	"github.com/rampart-iot/rampart/internal/store"
	"github.com/rampart-iot/rampart/internal/store/storetest"
)

// Server is a running service.
type Server struct {
	URL        string // https://127.0.0.1:PORT
	CACertFile string // PEM that verifies the server certificate
	CACertPEM  []byte
	AdminToken string // unscoped token of the service administrator "dev-admin", Administrator of tenant "dev"
	TenantID   string // the "dev" tenant
	DataDir    string
	Store      store.Store
	DSN        string // the PostgreSQL store's, "" on SQLite
	kekFile    string
}

type options struct {
	backend    string
	allowSW    *bool
	now        func() time.Time
	ekRoots    string
	requireEK  bool
	limits     *serverconfig.Limits
	reports    *serverconfig.Limits
	authFail   *serverconfig.Limits
	same       *Server
	webhookCAs string
}

// EKRoots makes the service check EK certificates against the PEM file, and, with require,
// refuse TPM devices that have none.
func EKRoots(pemFile string, require bool) Option {
	return func(o *options) { o.ekRoots, o.requireEK = pemFile, require }
}

// WebhookRoots makes webhook deliveries also trust the CA certificates of the PEM file
// (webhooks.ca_file): a test's own TLS receiver.
func WebhookRoots(pemFile string) Option { return func(o *options) { o.webhookCAs = pemFile } }

// DeviceLimits sets the per-address limit of the unauthenticated device endpoints (the
// default is serverconfig's).
func DeviceLimits(perSecond float64, burst int) Option {
	return func(o *options) {
		o.limits = &serverconfig.Limits{DeviceRequestsPerSecond: perSecond, DeviceBurst: burst}
	}
}

// AuthFailureLimits sets the per-address limit of failed API-token authentications (off
// unless a test asks).
func AuthFailureLimits(perMinute float64, burst int) Option {
	return func(o *options) {
		o.authFail = &serverconfig.Limits{AuthFailuresPerMinute: perMinute, AuthFailureBurst: burst}
	}
}

// ReportLimits sets the per-device limit of error-report uploads (off unless a test asks).
func ReportLimits(perMinute float64, burst int) Option {
	return func(o *options) {
		o.reports = &serverconfig.Limits{ReportUploadsPerMinute: perMinute, ReportBurst: burst}
	}
}

// Option changes how Start runs the service.
type Option func(*options)

// Postgres runs the service on PostgreSQL (see storetest.PostgresDSN) instead of SQLite.
func Postgres() Option { return func(o *options) { o.backend = "postgres" } }

// SameDatabase runs a second replica of a PostgreSQL service s: the same database and
// key-encryption key, its own data directory, listener and push hub.
func SameDatabase(s *Server) Option { return func(o *options) { o.backend, o.same = "postgres", s } }

// Backend runs the service on the named store backend ("sqlite" or "postgres").
func Backend(name string) Option { return func(o *options) { o.backend = name } }

// AllowSoftwareRootOfTrust overrides dev mode's policy (which allows it).
func AllowSoftwareRootOfTrust(v bool) Option { return func(o *options) { o.allowSW = &v } }

// Clock makes the service read time from now.
func Clock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// Start runs a dev-mode service until the test ends.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	o := options{backend: "sqlite"}
	for _, f := range opts {
		f(&o)
	}
	var st store.Store
	var dsn string
	switch {
	case o.same != nil:
		dsn = o.same.DSN
		st = storetest.Open(t, "postgres", dsn)
	case o.backend == "postgres":
		dsn = storetest.PostgresDSN(t)
		st = storetest.Open(t, "postgres", dsn)
	default:
		st = storetest.Open(t, "sqlite", storetest.SQLiteDSN(t))
	}
	cfg := serverconfig.Default(true)
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.Store.Backend, cfg.Store.DSN = o.backend, dsn
	if o.same != nil {
		cfg.CA.KeyEncryptionKeyFile = o.same.kekFile
	}
	cfg.Policy.AllowSoftwareRootOfTrust = o.allowSW
	cfg.CA.EKRootsFile, cfg.CA.RequireEKCertificate = o.ekRoots, o.requireEK
	cfg.Webhooks.CAFile = o.webhookCAs
	// Tests and benchmarks attest from one address far faster than a fleet behind one NAT:
	// no device limit unless a test asks for one.
	cfg.Limits = serverconfig.Limits{}
	if o.limits != nil {
		cfg.Limits = *o.limits
	}
	if o.reports != nil {
		cfg.Limits.ReportUploadsPerMinute, cfg.Limits.ReportBurst = o.reports.ReportUploadsPerMinute, o.reports.ReportBurst
	}
	if o.authFail != nil {
		cfg.Limits.AuthFailuresPerMinute, cfg.Limits.AuthFailureBurst = o.authFail.AuthFailuresPerMinute, o.authFail.AuthFailureBurst
	}

	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan server.Info, 1)
	done := make(chan error, 1)
	go func() {
		done <- server.Run(ctx, server.Options{Config: cfg, Dev: true, Store: st, Now: o.now,
			Ready: func(i server.Info) { ready <- i }})
	}()
	var info server.Info
	select {
	case info = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("server did not start: %v", err)
	case <-time.After(time.Minute):
		cancel()
		t.Fatal("server did not start within a minute")
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server stopped with an error: %v", err)
		}
	})
	pem, err := os.ReadFile(info.CACertFile)
	if err != nil {
		t.Fatal(err)
	}
	return &Server{URL: info.URL, CACertFile: info.CACertFile, CACertPEM: pem, AdminToken: info.AdminToken,
		TenantID: info.TenantID, DataDir: info.DataDir, Store: st, DSN: dsn, kekFile: kekFile(cfg)}
}

// kekFile is where the service keeps its key-encryption key.
func kekFile(cfg serverconfig.Config) string {
	if cfg.CA.KeyEncryptionKeyFile != "" {
		return cfg.CA.KeyEncryptionKeyFile
	}
	return filepath.Join(cfg.DataDir, "ca-kek")
}

// Client returns an API client for the service that authenticates with token.
func (s *Server) Client(t testing.TB, token string) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{Addr: s.URL, Token: token, CACertPEM: s.CACertPEM})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
