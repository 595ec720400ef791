// Package serverconfig reads the security service's configuration: a JSON file decoded strictly
// (unknown keys are errors), then environment variables, then command-line flags, each
// overriding the one before. Defaults are applied in one place (Default) and validation reports
// every problem at once (Validate).
package serverconfig

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-iot/rampart/internal/strictjson"
)

// MaxFileSize bounds the configuration file.
const MaxFileSize = 1 << 20

// Config is the server's configuration. The JSON names are the file's keys.
type Config struct {
	// Listen is the address of the HTTPS listener (API, health, metrics).
	Listen string `json:"listen"`
	// DataDir holds the SQLite database and generated files.
	DataDir string  `json:"data_dir"`
	Store   Store   `json:"store"`
	TLS     TLS     `json:"tls"`
	Log     Log     `json:"log"`
	Policy  Policy  `json:"policy"`
	CA      CA      `json:"ca"`
	Limits  Limits  `json:"limits"`
	Reports Reports `json:"reports"`
	// Webhooks configures the delivery of webhooks (docs/WEBHOOKS.md).
	Webhooks Webhooks `json:"webhooks"`
	// ShutdownTimeout bounds how long in-flight requests may finish after a stop signal.
	ShutdownTimeout Duration `json:"shutdown_timeout"`
}

// Store selects the storage backend.
type Store struct {
	Backend string `json:"backend"` // sqlite (default) or postgres
	DSN     string `json:"dsn"`     // sqlite: a file path (default DATA_DIR/rampart.db); postgres: a connection URL
}

// TLS names the server's certificate and key (PEM). Dev mode generates them when unset.
type TLS struct {
	CertFile string `json:"cert_file"`
	KeyFile  string `json:"key_file"`
}

// Log configures structured logging.
type Log struct {
	Level  string `json:"level"`  // debug, info, warn, error
	Format string `json:"format"` // text or json
}

// Policy holds service-wide rules.
type Policy struct {
	// AllowSoftwareRootOfTrust lets devices enrolled with the development-only software root
	// of trust be claimed. Defaults to false, and to true in dev mode.
	AllowSoftwareRootOfTrust *bool `json:"allow_software_root_of_trust"`
}

// Limits bound how often one client may call the unauthenticated device endpoints (attestation
// nonce and attestation), per client address. 0 turns the limit off.
type Limits struct {
	// DeviceRequestsPerSecond is the steady rate per client address (default 100: an
	// attestation takes two calls).
	DeviceRequestsPerSecond float64 `json:"device_requests_per_second"`
	// DeviceBurst is how many calls one address may make at once (default 1000). Devices
	// behind one NAT share an address: size it for the largest such site's reboot storm. The
	// key is the TCP peer address: behind a proxy that terminates TLS, raise or turn off the
	// limit and limit at the proxy.
	DeviceBurst int `json:"device_burst"`
	// ReportUploadsPerMinute is the steady rate of error-report uploads per device (keyed by
	// its certificate, so devices behind one NAT do not share it; default 6). A device over
	// it gets 429 with Retry-After and keeps its events queued. 0 turns the limit off.
	ReportUploadsPerMinute float64 `json:"report_uploads_per_minute"`
	// ReportBurst is how many uploads one device may make at once (default 20: a full queue
	// of 1000 events is four uploads).
	ReportBurst int `json:"report_burst"`
	// AuthFailuresPerMinute is the steady rate of failed API-token authentications allowed
	// per client address (default 10); AuthFailureBurst how many may fail at once (default
	// 20). An address past it gets 429 before any token is checked. 0 turns it off.
	AuthFailuresPerMinute float64 `json:"auth_failures_per_minute"`
	AuthFailureBurst      int     `json:"auth_failure_burst"`
}

// Webhooks configures webhook delivery.
type Webhooks struct {
	// AllowHTTPLoopback accepts http:// webhook URLs to loopback hosts (localhost, 127.0.0.1,
	// ::1), for a receiver on the same machine; dev mode allows them anyway. Off by default:
	// webhooks use https.
	AllowHTTPLoopback bool `json:"allow_http_loopback"`
	// MaxAttempts is how many times a delivery is tried before it is marked failed (default
	// 8, 1 to 20); retries back off exponentially from 10 seconds to at most an hour.
	MaxAttempts int `json:"max_attempts"`
	// CAFile names a PEM file of CA certificates that webhook receivers' certificates may
	// chain to besides the system's roots: receivers on an organization's own PKI. Empty: the
	// system's roots only.
	CAFile string `json:"ca_file"`
	// DenyPrivateNetworks refuses at dial time, besides link-local and metadata addresses,
	// loopback, private (RFC 1918, unique-local fc00::/7), shared (100.64.0.0/10) and the
	// other non-public address ranges, so a tenant's webhook cannot reach the service's own
	// network; -dev's http to loopback is then refused too. Off by default (receivers on
	// private networks work); recommended when tenants are not all trusted.
	DenyPrivateNetworks bool `json:"deny_private_networks"`
}

// Reports configures error reports.
type Reports struct {
	// RetentionDays is how long error reports are kept (default 90, 1 to 3650).
	RetentionDays int `json:"retention_days"`
}

// CA configures the certificate authorities and what the attestation verifier trusts.
type CA struct {
	// KeyEncryptionKeyFile holds the 32-byte key that seals every CA private key in the store
	// (default DATA_DIR/ca-kek, created on first start with mode 0600). Losing it loses the CAs.
	KeyEncryptionKeyFile string `json:"key_encryption_key_file"`
	// EKRootsFile is a PEM bundle of TPM vendor CAs; EK certificates must chain to one.
	// Unset: EK certificates are not checked.
	EKRootsFile string `json:"ek_roots_file"`
	// RequireEKCertificate refuses TPM devices whose enrollment carried no EK certificate.
	RequireEKCertificate bool `json:"require_ek_certificate"`
	// OSReleasesFile registers OS releases (golden measurements) at start, as
	// `rampart os-release add` does: {"releases": [{"tenant", "version", "description",
	// "measurements": {...}}]}. Releases already registered with the same measurements are kept.
	OSReleasesFile string `json:"os_releases_file"`
	// FirmwarePCRs are the PCRs a device that sends its UEFI firmware event log must quote
	// besides the security monitor's (unset: all of firmwarePCRs). Each must be one of those:
	// PCR 10 is IMA's and PCR 14 the monitor's, neither explained by the firmware's log.
	FirmwarePCRs []int `json:"firmware_pcrs"`
}

// firmwarePCRs are the PCRs the firmware's event log explains (attest.FirmwarePCRs, which a
// test holds this to).
var firmwarePCRs = []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13}

// Duration is a time.Duration written as a Go duration string ("10s").
type Duration time.Duration

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New(`a duration must be a string such as "10s"`)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q", s)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes a duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// Default returns the defaults; dev selects development mode's.
func Default(dev bool) Config {
	c := Config{
		Listen:  ":8443",
		DataDir: "/var/lib/rampart",
		Store:   Store{Backend: "sqlite"},
		Log:     Log{Level: "info", Format: "text"},
		Limits: Limits{DeviceRequestsPerSecond: 100, DeviceBurst: 1000, ReportUploadsPerMinute: 6, ReportBurst: 20,
			AuthFailuresPerMinute: 10, AuthFailureBurst: 20},
		Webhooks:        Webhooks{MaxAttempts: 8},
		Reports:         Reports{RetentionDays: 90},
		ShutdownTimeout: Duration(10 * time.Second),
	}
	if dev {
		c.Listen = "127.0.0.1:8443"
		c.DataDir = "" // a fresh temporary directory unless one is given
	}
	return c
}

// LoadFile overlays the JSON file at path on c.
func LoadFile(c *Config, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	defer f.Close()
	buf, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	if len(buf) > MaxFileSize {
		return fmt.Errorf("config file %s is larger than %d bytes", path, MaxFileSize)
	}
	if err := strictjson.Decode(buf, c); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}

// Env lists the environment variables that override the file, and what each sets.
var Env = []struct {
	Name string
	Set  func(c *Config, v string) error
}{
	{"RAMPART_LISTEN", func(c *Config, v string) error { c.Listen = v; return nil }},
	{"RAMPART_DATA_DIR", func(c *Config, v string) error { c.DataDir = v; return nil }},
	{"RAMPART_STORE_BACKEND", func(c *Config, v string) error { c.Store.Backend = v; return nil }},
	{"RAMPART_STORE_DSN", func(c *Config, v string) error { c.Store.DSN = v; return nil }},
	{"RAMPART_TLS_CERT_FILE", func(c *Config, v string) error { c.TLS.CertFile = v; return nil }},
	{"RAMPART_TLS_KEY_FILE", func(c *Config, v string) error { c.TLS.KeyFile = v; return nil }},
	{"RAMPART_LOG_LEVEL", func(c *Config, v string) error { c.Log.Level = v; return nil }},
	{"RAMPART_LOG_FORMAT", func(c *Config, v string) error { c.Log.Format = v; return nil }},
	{"RAMPART_ALLOW_SOFTWARE_ROOT_OF_TRUST", func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("RAMPART_ALLOW_SOFTWARE_ROOT_OF_TRUST must be true or false, not %q", v)
		}
		c.Policy.AllowSoftwareRootOfTrust = &b
		return nil
	}},
	{"RAMPART_CA_KEK_FILE", func(c *Config, v string) error { c.CA.KeyEncryptionKeyFile = v; return nil }},
	{"RAMPART_EK_ROOTS_FILE", func(c *Config, v string) error { c.CA.EKRootsFile = v; return nil }},
	{"RAMPART_OS_RELEASES_FILE", func(c *Config, v string) error { c.CA.OSReleasesFile = v; return nil }},
	{"RAMPART_SHUTDOWN_TIMEOUT", func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("RAMPART_SHUTDOWN_TIMEOUT: invalid duration %q", v)
		}
		c.ShutdownTimeout = Duration(d)
		return nil
	}},
}

// ApplyEnv overlays the environment on c.
func ApplyEnv(c *Config, getenv func(string) string) error {
	var errs []string
	for _, e := range Env {
		if v := getenv(e.Name); v != "" {
			if err := e.Set(c, v); err != nil {
				errs = append(errs, err.Error())
			}
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// Validate checks c, which must have had its defaults applied, and reports every problem at
// once. backends lists the registered store backends; dev relaxes what dev mode provides
// itself (TLS files, data directory).
func Validate(c *Config, backends []string, dev bool) error {
	var probs []string
	add := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }
	if _, port, err := net.SplitHostPort(c.Listen); err != nil {
		add("listen: %q is not host:port", c.Listen)
	} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		add("listen: bad port %q", port)
	}
	if c.DataDir == "" && !dev {
		add("data_dir: is required")
	} else if c.DataDir != "" && !filepath.IsAbs(c.DataDir) {
		add("data_dir: %q must be an absolute path", c.DataDir)
	}
	known := false
	for _, b := range backends {
		known = known || b == c.Store.Backend
	}
	if !known {
		add("store.backend: %q is not one of %s", c.Store.Backend, strings.Join(backends, ", "))
	}
	if c.Store.Backend == "postgres" && c.Store.DSN == "" {
		add("store.dsn: is required for the postgres backend")
	}
	if c.Limits.DeviceRequestsPerSecond < 0 {
		add("limits.device_requests_per_second: %v must not be negative (0 turns the limit off)", c.Limits.DeviceRequestsPerSecond)
	}
	if c.Reports.RetentionDays < 1 || c.Reports.RetentionDays > 3650 {
		add("reports.retention_days: %d is outside 1 to 3650", c.Reports.RetentionDays)
	}
	if c.Limits.DeviceBurst < 0 || c.Limits.DeviceBurst > 1_000_000 {
		add("limits.device_burst: %d is outside 0 to 1000000", c.Limits.DeviceBurst)
	}
	if c.Limits.ReportUploadsPerMinute < 0 {
		add("limits.report_uploads_per_minute: %v must not be negative (0 turns the limit off)", c.Limits.ReportUploadsPerMinute)
	}
	if c.Limits.ReportBurst < 0 || c.Limits.ReportBurst > 1_000_000 {
		add("limits.report_burst: %d is outside 0 to 1000000", c.Limits.ReportBurst)
	}
	if c.Limits.AuthFailuresPerMinute < 0 {
		add("limits.auth_failures_per_minute: %v must not be negative (0 turns the limit off)", c.Limits.AuthFailuresPerMinute)
	}
	if c.Limits.AuthFailureBurst < 0 || c.Limits.AuthFailureBurst > 1_000_000 {
		add("limits.auth_failure_burst: %d is outside 0 to 1000000", c.Limits.AuthFailureBurst)
	}
	if c.Webhooks.DenyPrivateNetworks && c.Webhooks.AllowHTTPLoopback {
		add("webhooks.allow_http_loopback: cannot be set with webhooks.deny_private_networks, which refuses loopback")
	}
	if c.Webhooks.MaxAttempts < 1 || c.Webhooks.MaxAttempts > 20 {
		add("webhooks.max_attempts: %d is outside 1 to 20", c.Webhooks.MaxAttempts)
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		add("tls: cert_file and key_file must be set together")
	}
	if c.TLS.CertFile == "" && !dev {
		add("tls: cert_file and key_file are required (the service always serves TLS; dev mode generates its own)")
	}
	for _, f := range []struct{ key, path string }{{"tls.cert_file", c.TLS.CertFile}, {"tls.key_file", c.TLS.KeyFile}} {
		if f.path != "" {
			if _, err := os.Stat(f.path); err != nil {
				add("%s: %v", f.key, err)
			}
		}
	}
	if c.CA.EKRootsFile != "" {
		if _, err := os.Stat(c.CA.EKRootsFile); err != nil {
			add("ca.ek_roots_file: %v", err)
		}
	}
	if c.CA.OSReleasesFile != "" {
		if _, err := os.Stat(c.CA.OSReleasesFile); err != nil {
			add("ca.os_releases_file: %v", err)
		}
	}
	if c.CA.FirmwarePCRs != nil && len(c.CA.FirmwarePCRs) == 0 {
		add("ca.firmware_pcrs: empty; leave it unset for the default, %v", firmwarePCRs)
	}
	seen := map[int]bool{}
	for _, p := range c.CA.FirmwarePCRs {
		switch {
		case !slices.Contains(firmwarePCRs, p):
			add("ca.firmware_pcrs: PCR %d is not one the firmware's event log explains (%v)", p, firmwarePCRs)
		case seen[p]:
			add("ca.firmware_pcrs: PCR %d appears twice", p)
		}
		seen[p] = true
	}
	if c.CA.RequireEKCertificate && c.CA.EKRootsFile == "" {
		add("ca.require_ek_certificate: needs ca.ek_roots_file to check the certificates against")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		add("log.level: %q is not debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		add("log.format: %q is not text or json", c.Log.Format)
	}
	if d := time.Duration(c.ShutdownTimeout); d < time.Second || d > 5*time.Minute {
		add("shutdown_timeout: %s is not between 1s and 5m", d)
	}
	if len(probs) > 0 {
		return &Error{Problems: probs}
	}
	return nil
}

// Error lists every configuration problem.
type Error struct {
	Problems []string
}

func (e *Error) Error() string {
	return "invalid configuration: " + strings.Join(e.Problems, "; ")
}
