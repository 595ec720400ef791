package agentcli

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/internal/agent"
	"github.com/rampart-iot/rampart/internal/rot"
	"github.com/rampart-iot/rampart/internal/server/servertest"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// TestDevModeEnrollsClaimsAndAttestsOnTheSimulator is the try-it path: `rampart-agent -dev`
// against a `rampart server -dev`.
func TestDevModeEnrollsClaimsAndAttestsOnTheSimulator(t *testing.T) {
	sim := false
	for _, b := range rot.Backends() {
		sim = sim || b == "tpm-sim"
	}
	if !sim {
		t.Skip("rampart-agent -dev uses the tpm-sim root of trust, which needs cgo and libssl-dev")
	}
	srv := servertest.Start(t)
	env := map[string]string{"RAMPART_ADDR": srv.URL, "RAMPART_TOKEN": srv.AdminToken, "RAMPART_CACERT": srv.CACertFile}
	state := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &lockedBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"-dev", "--state", state}, IO{Out: logs, Err: logs, Getenv: func(k string) string { return env[k] }})
	}()
	deadline := time.Now().Add(time.Minute)
	for {
		st, err := agent.ReadStatus(state)
		if err == nil && st.State == agent.StateAttested {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the dev device never attested: %+v %v\n%s", st, err, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	code, out, errs := run(t, "status", "--state", state, "-o", "json")
	if code != 0 {
		t.Fatalf("status: %s", errs)
	}
	var st agent.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	if st.RootOfTrust != "tpm" || st.CertificateExpires.Sub(st.LastSuccess) < 23*time.Hour || !strings.HasPrefix(st.OSRelease, "dev-") {
		t.Fatalf("status %+v", st)
	}
	// The service sees the device claimed into the dev tenant, attested.
	admin := srv.Client(t, srv.AdminToken)
	dev, err := admin.GetDevice(ctx, srv.TenantID, st.DeviceID)
	if err != nil || dev.LastAttestation == nil || dev.LastAttestation.Result != "pass" || !dev.AKActivated {
		t.Fatalf("device %+v %v", dev, err)
	}
	cancel()
	if c := <-done; c != 0 {
		t.Fatalf("exit %d: %s", c, logs.String())
	}
}

func TestRunNeedsAServer(t *testing.T) {
	code, _, errs := run(t, "run", "--rot", "software", "--state", t.TempDir())
	if code != 2 || !strings.Contains(errs, "--server") {
		t.Fatalf("%d %s", code, errs)
	}
	code, _, errs = run(t, "-dev", "--state", t.TempDir(), "--server", "https://127.0.0.1:1")
	if code != 2 || !strings.Contains(errs, "RAMPART_TOKEN") {
		t.Fatalf("%d %s", code, errs)
	}
	code, _, errs = run(t, "status", "--state", t.TempDir())
	if code != 1 || !strings.Contains(errs, "no agent status") {
		t.Fatalf("%d %s", code, errs)
	}
}
