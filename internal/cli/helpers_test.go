package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// result is what one in-process run of the CLI printed and returned.
type result struct {
	out, err string
	code     int
}

// runner runs the CLI in-process with a fake environment and home directory.
type runner struct {
	env   map[string]string
	home  string
	stdin string
}

func newRunner(t *testing.T, env map[string]string) *runner {
	t.Helper()
	if env == nil {
		env = map[string]string{}
	}
	return &runner{env: env, home: t.TempDir()}
}

func (r *runner) run(t *testing.T, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), args, IO{
		In:      strings.NewReader(r.stdin),
		Out:     &out,
		Err:     &errb,
		Getenv:  func(k string) string { return r.env[k] },
		HomeDir: r.home,
	})
	return result{out: out.String(), err: errb.String(), code: code}
}

// oneErrorLine checks that stderr is exactly one "rampart: " line and returns it.
func (res result) oneErrorLine(t *testing.T) string {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(res.err, "\n"), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "rampart: ") || !strings.HasSuffix(res.err, "\n") {
		t.Fatalf("stderr = %q, want one line starting with \"rampart: \"", res.err)
	}
	return lines[0]
}
