package agentcli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampart-iot/rampart/enrollment"
)

func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), args, IO{Out: &out, Err: &errb})
	return code, out.String(), errb.String()
}

func TestEnrollWritesAClaimableRecord(t *testing.T) {
	state := t.TempDir()
	file := filepath.Join(t.TempDir(), "device.json")
	code, out, errs := run(t, "enroll", "--rot", "software", "--state", state, "--out", file)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := enrollment.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, rec.DeviceID) || !strings.Contains(out, "development only") {
		t.Errorf("output %q", out)
	}
	// Enrolling again from the same state gives the same device; to stdout with -.
	code, out, _ = run(t, "enroll", "--rot", "software", "--state", state, "--out", "-")
	if code != 0 {
		t.Fatal("second enroll failed")
	}
	again, err := enrollment.Parse([]byte(out))
	if err != nil || again.DeviceID != rec.DeviceID {
		t.Fatalf("re-enroll: %v %+v", err, again)
	}
}

func TestUsageAndErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"enroll", "--state", t.TempDir(), "--out", "x"}, 2, "--rot is required"},
		{[]string{"enroll", "--rot", "software", "--state", t.TempDir()}, 2, "--out is required"},
		{[]string{"enroll", "--bogus"}, 2, "unknown flag"},
		{[]string{"frobnicate"}, 2, "unknown command"},
		{[]string{"enroll", "--rot", "pluton", "--state", t.TempDir(), "--out", "-"}, 1, "unknown root of trust"},
		{[]string{"enroll", "--rot", "software", "--state", t.TempDir(), "--out", "/nonexistent/dir/x.json"}, 1, "x.json"},
	} {
		code, _, errs := run(t, c.args...)
		if code != c.code || !strings.Contains(errs, c.says) || strings.Count(errs, "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q; want exit %d saying %q", c.args, code, errs, c.code, c.says)
		}
	}
	if code, out, _ := run(t, "version"); code != 0 || !strings.HasPrefix(out, "rampart-agent ") {
		t.Errorf("version: %d %q", code, out)
	}
}
