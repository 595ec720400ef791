package swtpmtest

import (
	"fmt"
	"strings"
	"testing"
)

// recordingTB notes how a test ended instead of ending it.
type recordingTB struct {
	testing.TB
	fatal, skip string
}

func (r *recordingTB) Helper()                   {}
func (r *recordingTB) Fatalf(f string, a ...any) { r.fatal = fmt.Sprintf(f, a...) }
func (r *recordingTB) Skip(a ...any)             { r.skip = fmt.Sprint(a...) }

func TestRequireWithoutSWTPM(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv(RequireEnv, "")
	r := &recordingTB{TB: t}
	Require(r)
	if r.fatal != "" || !strings.Contains(r.skip, "apt-get install swtpm swtpm-tools") {
		t.Fatalf("without swtpm: skip %q, fatal %q", r.skip, r.fatal)
	}
	t.Setenv(RequireEnv, "1")
	r = &recordingTB{TB: t}
	Require(r)
	if r.skip != "" || !strings.Contains(r.fatal, RequireEnv+"=1") {
		t.Fatalf("without swtpm, required: skip %q, fatal %q", r.skip, r.fatal)
	}
}

func TestStart(t *testing.T) {
	s := StartWith(t, Options{})
	if !strings.HasPrefix(s.Spec, "swtpm:unix:") || len(s.LocalCA) != 2 {
		t.Fatalf("spec %q, %d CA certificates", s.Spec, len(s.LocalCA))
	}
	if err := s.LocalCA[1].CheckSignatureFrom(s.LocalCA[0]); err != nil {
		t.Fatalf("the local CA's intermediate is not signed by its root: %v", err)
	}
	if !strings.Contains(s.Setup, "0x1c00002") {
		t.Errorf("swtpm_setup did not report the RSA EK certificate's NV index:\n%s", s.Setup)
	}
}
