package servertest

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/client"
	"github.com/rampart-iot/rampart/internal/attestclient"
	"github.com/rampart-iot/rampart/internal/enroll"
	"github.com/rampart-iot/rampart/internal/eventlog"
	"github.com/rampart-iot/rampart/internal/measure"
	"github.com/rampart-iot/rampart/internal/rot"
	_ "github.com/rampart-iot/rampart/internal/rot/softrot" // the fixture's root of trust
)

// Device is a claimed device that has attested once, so it holds a certificate for mutual TLS.
type Device struct {
	ID      string
	Dir     string         // its state directory: the certificates attestation installed
	RootCAs *x509.CertPool // verifies the server
	Attest  *attestclient.Client
}

// AttestedDevice enrolls a device on the software root of trust (the server must allow it),
// claims it into the tenant's group ("" for none), registers the release it measures, and
// attests. admin must be able to claim and register releases.
func (s *Server) AttestedDevice(t testing.TB, admin *client.Client, tenant, group string) *Device {
	t.Helper()
	ctx := t.Context()
	dir := t.TempDir()
	r, err := rot.Open(ctx, "software", dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	rec, err := enroll.Record(ctx, r, "test")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := rec.Marshal()
	if _, _, err := admin.ClaimDevice(ctx, tenant, v1.DeviceClaim{Enrollment: body, DeviceGroupID: group}); err != nil {
		t.Fatal(err)
	}
	osFile := filepath.Join(dir, "os")
	if err := os.WriteFile(osFile, []byte("test OS"), 0o644); err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Executable()
	log, err := measure.Boot(ctx, r, eventlog.DefaultPCR, measure.Inputs{AgentBinary: exe, OSBundle: osFile}, filepath.Join(dir, "run", "log.json"))
	if err != nil {
		t.Fatal(err)
	}
	m := log.Measurements()
	if _, err := admin.CreateOSRelease(ctx, tenant, v1.OSReleaseCreate{Version: "1.0.0-" + m["os-bundle"][:8], Measurements: m}); err != nil && !client.HasCode(err, v1.CodeConflict) {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(s.CACertPEM)
	ac := &attestclient.Client{RoT: r, Log: log, PCRs: []int{eventlog.DefaultPCR}, Server: s.URL, RootCAs: roots, DeviceID: rec.DeviceID, Dir: dir}
	if _, err := ac.Attest(ctx); err != nil {
		t.Fatal(err)
	}
	return &Device{ID: rec.DeviceID, Dir: dir, RootCAs: roots, Attest: ac}
}
