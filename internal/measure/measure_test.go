package measure_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampart-iot/rampart/internal/eventlog"
	"github.com/rampart-iot/rampart/internal/measure"
	"github.com/rampart-iot/rampart/internal/rot/softrot"
)

func inputs(t *testing.T) measure.Inputs {
	dir := t.TempDir()
	osDir := filepath.Join(dir, "os")
	must(t, os.MkdirAll(filepath.Join(osDir, "lib"), 0o755))
	must(t, os.WriteFile(filepath.Join(osDir, "VERSION"), []byte("1\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(osDir, "lib", "x.so"), []byte("code"), 0o755))
	must(t, os.Symlink("lib/x.so", filepath.Join(osDir, "x")))
	agent := filepath.Join(dir, "agent")
	must(t, os.WriteFile(agent, []byte("agent binary"), 0o755))
	return measure.Inputs{PolicyFile: filepath.Join(dir, "policy.json"), AgentBinary: agent, OSBundle: osDir}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestBootExtendsAndLogsThenReuses(t *testing.T) {
	ctx := context.Background()
	in := inputs(t)
	state := t.TempDir()
	r, err := softrot.Open(state, rand.Reader)
	must(t, err)
	logPath := filepath.Join(state, "run", "m.json")
	log, err := measure.Boot(ctx, r, eventlog.DefaultPCR, in, logPath)
	must(t, err)
	pcrs, _ := r.ReadPCRs(ctx, []int{eventlog.DefaultPCR})
	if !bytes.Equal(log.Replay(nil)[eventlog.DefaultPCR], pcrs[eventlog.DefaultPCR]) {
		t.Fatal("log does not replay to the PCR")
	}
	policy := sha256.Sum256(measure.DefaultPolicy)
	m := log.Measurements()
	if len(m) != 3 || m["policy"] == "" || m["agent"] == "" || m["os-bundle"] == "" {
		t.Fatalf("measurements %v", m)
	}
	if got := log.Records[0]; got.Content.Name != "policy" || got.Digests[0].Digest != hexOf(policy[:]) {
		t.Fatalf("policy measured first with the default policy's digest: %+v", got)
	}
	// A second start in the same boot reuses the log and extends nothing.
	again, err := measure.Boot(ctx, r, eventlog.DefaultPCR, in, logPath)
	must(t, err)
	pcrs2, _ := r.ReadPCRs(ctx, []int{eventlog.DefaultPCR})
	if !bytes.Equal(pcrs[eventlog.DefaultPCR], pcrs2[eventlog.DefaultPCR]) || len(again.Records) != 3 {
		t.Fatal("second start extended again")
	}
	// A lost or foreign log is refused rather than measured on top of.
	must(t, os.Remove(logPath))
	if _, err := measure.Boot(ctx, r, eventlog.DefaultPCR, in, logPath); err == nil || !strings.Contains(err.Error(), "restart the device") {
		t.Fatalf("lost log: %v", err)
	}
	must(t, r.Extend(ctx, eventlog.DefaultPCR, make([]byte, 32)))
	other, _ := eventlog.New().Marshal()
	must(t, os.WriteFile(logPath, other, 0o600))
	if _, err := measure.Boot(ctx, r, eventlog.DefaultPCR, in, logPath); err == nil {
		t.Fatal("a log that does not account for the PCR was accepted")
	}
}

func hexOf(b []byte) string {
	const h = "0123456789abcdef"
	out := make([]byte, 2*len(b))
	for i, c := range b {
		out[2*i], out[2*i+1] = h[c>>4], h[c&15]
	}
	return string(out)
}

func TestDigestsChangeWithWhatTheyMeasure(t *testing.T) {
	in := inputs(t)
	base, err := measure.Digests(in)
	must(t, err)
	changes := map[string]func(){
		"policy":    func() { must(t, os.WriteFile(in.PolicyFile, []byte(`{"version":1}`), 0o644)) },
		"agent":     func() { must(t, os.WriteFile(in.AgentBinary, []byte("patched"), 0o755)) },
		"os-bundle": func() { must(t, os.WriteFile(filepath.Join(in.OSBundle, "lib", "x.so"), []byte("evil"), 0o755)) },
	}
	for name, change := range changes {
		change()
		now, err := measure.Digests(in)
		must(t, err)
		for k := range base {
			if (k == name) == bytes.Equal(base[k], now[k]) {
				t.Errorf("after changing %s, %s changed=%v", name, k, !bytes.Equal(base[k], now[k]))
			}
		}
		base = now
	}
	// Mode bits, renames and symlink targets are part of the tree digest.
	tree := func() []byte { d, err := measure.TreeDigest(in.OSBundle); must(t, err); return d }
	d0 := tree()
	must(t, os.Chmod(filepath.Join(in.OSBundle, "VERSION"), 0o600))
	d1 := tree()
	must(t, os.Rename(filepath.Join(in.OSBundle, "VERSION"), filepath.Join(in.OSBundle, "VERSION2")))
	d2 := tree()
	must(t, os.Remove(filepath.Join(in.OSBundle, "x")))
	must(t, os.Symlink("VERSION2", filepath.Join(in.OSBundle, "x")))
	d3 := tree()
	if bytes.Equal(d0, d1) || bytes.Equal(d1, d2) || bytes.Equal(d2, d3) {
		t.Fatal("tree digest ignores modes, names or link targets")
	}
	if _, err := measure.Digests(measure.Inputs{AgentBinary: "/nonexistent", OSBundle: in.OSBundle}); err == nil {
		t.Fatal("missing agent binary accepted")
	}
}
