package serverconfig

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/internal/attest"
)

var backends = []string{"postgres", "sqlite"}

func write(t *testing.T, s string) string {
	p := filepath.Join(t.TempDir(), "rampart.json")
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadOverridesInOrder(t *testing.T) {
	cert := write(t, "x")
	c := Default(false)
	p := write(t, `{"listen":"0.0.0.0:9000","data_dir":"/srv/rampart","store":{"backend":"postgres","dsn":"postgres://db/x"},
		"tls":{"cert_file":"`+cert+`","key_file":"`+cert+`"},"log":{"level":"debug","format":"json"},
		"policy":{"allow_software_root_of_trust":true},"shutdown_timeout":"30s"}`)
	if err := LoadFile(&c, p); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"RAMPART_LISTEN": "127.0.0.1:9443", "RAMPART_LOG_LEVEL": "warn"}
	if err := ApplyEnv(&c, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if err := Validate(&c, backends, false); err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:9443" || c.Log.Level != "warn" || c.Log.Format != "json" || c.Store.DSN != "postgres://db/x" ||
		time.Duration(c.ShutdownTimeout) != 30*time.Second || c.Policy.AllowSoftwareRootOfTrust == nil || !*c.Policy.AllowSoftwareRootOfTrust {
		t.Fatalf("got %+v", c)
	}
}

func TestLoadFileReportsEveryUnknownKeyAndTypeError(t *testing.T) {
	c := Default(false)
	err := LoadFile(&c, write(t, `{"listn":":1","store":{"backnd":"x","dsn":5},"shutdown_timeout":"soon","log":{"lvl":"x"}}`))
	if err == nil {
		t.Fatal("want error")
	}
	for _, want := range []string{"listn", "store.backnd", "store.dsn", "shutdown_timeout", "log.lvl"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s: %v", want, err)
		}
	}
}

func TestLoadFileErrors(t *testing.T) {
	c := Default(false)
	if err := LoadFile(&c, filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("missing file accepted")
	}
	if err := LoadFile(&c, write(t, `{"listen":`)); err == nil {
		t.Error("truncated file accepted")
	}
	if err := LoadFile(&c, write(t, strings.Repeat(" ", MaxFileSize+1)+"{}")); err == nil || !strings.Contains(err.Error(), "larger") {
		t.Errorf("oversized file: %v", err)
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := Default(false)
	c.Listen = "nonsense"
	c.DataDir = "relative"
	c.Store.Backend = "mysql"
	c.TLS.CertFile = "/does/not/exist"
	c.Log.Level = "loud"
	c.Log.Format = "xml"
	c.ShutdownTimeout = 0
	err := Validate(&c, backends, false)
	e, ok := err.(*Error)
	if !ok {
		t.Fatalf("want *Error, got %v", err)
	}
	for _, want := range []string{"listen", "data_dir", "store.backend", "tls:", "tls.cert_file", "log.level", "log.format", "shutdown_timeout"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %s in %v", want, err)
		}
	}
	if len(e.Problems) < 8 {
		t.Errorf("only %d problems: %v", len(e.Problems), e.Problems)
	}
}

func TestValidateDevNeedsNoTLSOrDataDir(t *testing.T) {
	c := Default(true)
	if err := Validate(&c, backends, true); err != nil {
		t.Fatal(err)
	}
	c2 := Default(false)
	if err := Validate(&c2, backends, false); err == nil || !strings.Contains(err.Error(), "tls") {
		t.Fatalf("production without TLS accepted: %v", err)
	}
	c3 := Default(false)
	c3.Store.Backend = "postgres"
	if err := Validate(&c3, backends, true); err == nil || !strings.Contains(err.Error(), "store.dsn") {
		t.Fatalf("postgres without dsn accepted: %v", err)
	}
}

func TestApplyEnvErrors(t *testing.T) {
	c := Default(false)
	env := map[string]string{"RAMPART_ALLOW_SOFTWARE_ROOT_OF_TRUST": "maybe", "RAMPART_SHUTDOWN_TIMEOUT": "later"}
	err := ApplyEnv(&c, func(k string) string { return env[k] })
	if err == nil || !strings.Contains(err.Error(), "ALLOW_SOFTWARE") || !strings.Contains(err.Error(), "SHUTDOWN") {
		t.Fatalf("got %v", err)
	}
}

func TestValidateReportLimitAndWebhooks(t *testing.T) {
	c := Default(true)
	if c.Limits.ReportUploadsPerMinute != 6 || c.Limits.ReportBurst != 20 || c.Webhooks.MaxAttempts != 8 || c.Webhooks.AllowHTTPLoopback || c.Webhooks.DenyPrivateNetworks {
		t.Fatalf("defaults: %+v %+v", c.Limits, c.Webhooks)
	}
	if c.Limits.AuthFailuresPerMinute != 10 || c.Limits.AuthFailureBurst != 20 {
		t.Fatalf("auth failure defaults: %+v", c.Limits)
	}
	c.Limits.ReportUploadsPerMinute = -1
	c.Limits.ReportBurst = -1
	c.Limits.AuthFailuresPerMinute = -1
	c.Limits.AuthFailureBurst = -1
	c.Webhooks.MaxAttempts = 21
	err := Validate(&c, backends, true)
	for _, want := range []string{"limits.report_uploads_per_minute", "limits.report_burst", "limits.auth_failures_per_minute",
		"limits.auth_failure_burst", "webhooks.max_attempts"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %s in %v", want, err)
		}
	}
	if err := LoadFile(&c, write(t, `{"webhooks":{"allow_http_loopback":true,"max_attempts":3,"retries":1}}`)); err == nil || !strings.Contains(err.Error(), "retries") {
		t.Errorf("unknown webhooks key: %v", err)
	}
	d := Default(true)
	if err := LoadFile(&d, write(t, `{"webhooks":{"deny_private_networks":true}}`)); err != nil || !d.Webhooks.DenyPrivateNetworks {
		t.Fatalf("deny_private_networks: %v, %+v", err, d.Webhooks)
	}
	if err := Validate(&d, backends, true); err != nil && strings.Contains(err.Error(), "webhooks") {
		t.Errorf("deny_private_networks alone: %v", err)
	}
	d.Webhooks.AllowHTTPLoopback = true
	if err := Validate(&d, backends, true); err == nil || !strings.Contains(err.Error(), "webhooks.allow_http_loopback: cannot be set with webhooks.deny_private_networks") {
		t.Errorf("allow_http_loopback with deny_private_networks: %v", err)
	}
}

func TestValidateFirmwarePCRs(t *testing.T) {
	if !slices.Equal(firmwarePCRs, attest.FirmwarePCRs) {
		t.Fatalf("firmwarePCRs %v differ from attest.FirmwarePCRs %v", firmwarePCRs, attest.FirmwarePCRs)
	}
	c := Default(true)
	if err := LoadFile(&c, write(t, `{"ca":{"firmware_pcrs":[0,2,4,7]}}`)); err != nil {
		t.Fatal(err)
	}
	if err := Validate(&c, backends, true); err != nil || !slices.Equal(c.CA.FirmwarePCRs, []int{0, 2, 4, 7}) {
		t.Fatalf("firmware_pcrs [0,2,4,7]: %v, %v", c.CA.FirmwarePCRs, err)
	}
	for doc, want := range map[string]string{
		`[0,10]`:  "PCR 10 is not one",
		`[14]`:    "PCR 14 is not one",
		`[-1]`:    "PCR -1 is not one",
		`[4,4]`:   "PCR 4 appears twice",
		`[]`:      "ca.firmware_pcrs: empty",
		`["4"]`:   "ca.firmware_pcrs",
		`[0,1,2]`: "",
	} {
		c := Default(true)
		err := LoadFile(&c, write(t, `{"ca":{"firmware_pcrs":`+doc+`}}`))
		if err == nil {
			err = Validate(&c, backends, true)
		}
		if want == "" && err != nil || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("firmware_pcrs %s: got %v, want %q", doc, err, want)
		}
	}
}
