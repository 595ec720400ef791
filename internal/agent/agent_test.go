package agent_test

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/agent"
	"github.com/rampart-iot/rampart/internal/attest"
	"github.com/rampart-iot/rampart/internal/enroll"
	"github.com/rampart-iot/rampart/internal/measure"
	"github.com/rampart-iot/rampart/internal/rot/softrot"
	"github.com/rampart-iot/rampart/internal/server/servertest"
)

// waitFor polls the agent's status until cond holds (no wall-clock assertion: it only bounds
// how long the test waits before it gives up).
func waitFor(t *testing.T, dir string, what string, cond func(agent.Status) bool) agent.Status {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		st, err := agent.ReadStatus(dir)
		if err == nil && cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent never reached %s; last status %+v (%v)", what, st, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestAgentAttestsRenewsAndReportsFailures(t *testing.T) {
	srv := servertest.Start(t)
	admin := srv.Client(t, srv.AdminToken)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	state := t.TempDir()
	r, err := softrot.Open(state, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := enroll.Record(ctx, r, "test")
	body, _ := rec.Marshal()
	if _, _, err := admin.ClaimDevice(ctx, srv.TenantID, v1.DeviceClaim{Enrollment: body}); err != nil {
		t.Fatal(err)
	}
	osDir := filepath.Join(state, "os")
	_ = os.MkdirAll(osDir, 0o755)
	_ = os.WriteFile(filepath.Join(osDir, "VERSION"), []byte("1"), 0o644)
	exe, _ := os.Executable()
	in := measure.Inputs{PolicyFile: filepath.Join(state, "policy.json"), AgentBinary: exe, OSBundle: osDir}
	digests, err := measure.Digests(in)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for k, v := range digests {
		m[k] = hex.EncodeToString(v)
	}
	rel, err := admin.CreateOSRelease(ctx, srv.TenantID, v1.OSReleaseCreate{Version: "1.0", Measurements: m})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(srv.CACertPEM)
	trigger := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		done <- agent.Run(ctx, agent.Config{RoT: r, StateDir: state, Server: srv.URL, RootCAs: roots, Inputs: in,
			Trigger: trigger, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	}()

	st := waitFor(t, state, "attested", func(s agent.Status) bool { return s.State == agent.StateAttested })
	if st.DeviceID != rec.DeviceID || st.OSRelease != "1.0" || st.CertificateExpires.IsZero() || !st.RenewAfter.Before(st.CertificateExpires) {
		t.Fatalf("status %+v", st)
	}
	for _, f := range []string{"agent.crt", "agent.key", "chain.pem"} {
		if _, err := os.Stat(filepath.Join(state, "certs", f)); err != nil {
			t.Fatalf("missing %s: %v", f, err)
		}
	}
	first := st.LastSuccess

	// Told to, it attests again at once.
	trigger <- struct{}{}
	waitFor(t, state, "a second attestation", func(s agent.Status) bool { return s.LastSuccess.After(first) })

	// When the tenant withdraws the release, attestation fails with the verifier's reason and
	// the agent keeps retrying with backoff; the certificate it already holds stays in place.
	if err := admin.DeleteOSRelease(ctx, srv.TenantID, rel.ID); err != nil {
		t.Fatal(err)
	}
	trigger <- struct{}{}
	st = waitFor(t, state, "repeated failures", func(s agent.Status) bool { return s.State == agent.StateFailing && s.Failures >= 3 })
	if st.Reason != attest.ReasonMeasurementRefused || st.LastError == "" {
		t.Fatalf("failing status %+v", st)
	}
	if _, err := os.Stat(filepath.Join(state, "certs", "agent.crt")); err != nil {
		t.Fatal("a failed attestation removed the certificate")
	}
	// Put it back: the agent recovers by itself.
	if _, err := admin.CreateOSRelease(ctx, srv.TenantID, v1.OSReleaseCreate{Version: "1.0b", Measurements: m}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, state, "recovery", func(s agent.Status) bool { return s.State == agent.StateAttested && s.Failures == 0 })

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run returned %v", err)
	}
}
