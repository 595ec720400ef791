package apprun

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	compA = "1689d8b2-c835-2e27-27ad-e894d6d15fa9"
	compB = "5e4b1b9c-2c0e-4d47-9a4c-7f3b1b8f1a20"
	compC = "819255ff-8640-41fd-aea7-f85d34c491d5"
)

func TestUIDAllocation(t *testing.T) {
	dir := t.TempDir()
	st, err := readState(statePath(dir))
	if err != nil {
		t.Fatal(err)
	}
	a, allocated, err := st.uid(compA, 500, 501)
	if err != nil || !allocated || a != 500 {
		t.Fatalf("first uid %d %v %v, want 500 allocated", a, allocated, err)
	}
	b, _, err := st.uid(compB, 500, 501)
	if err != nil || b != 501 {
		t.Fatalf("second uid %d %v, want 501", b, err)
	}
	if again, allocated, _ := st.uid(compA, 500, 501); again != a || allocated {
		t.Errorf("uid of %s again: %d (allocated %v), want %d kept", compA, again, allocated, a)
	}
	if _, _, err := st.uid(compC, 500, 501); !errors.Is(err, ErrUIDsExhausted) {
		t.Errorf("third uid in a range of two: %v, want ErrUIDsExhausted", err)
	}
	st.Apps[compA].Stopped = true
	if err := st.save(statePath(dir)); err != nil {
		t.Fatal(err)
	}
	back, err := readState(statePath(dir))
	if err != nil {
		t.Fatal(err)
	}
	if back.Apps[compA].UID != 500 || !back.Apps[compA].Stopped || back.Apps[compB].UID != 501 || back.Apps[compB].Stopped {
		t.Errorf("read back %+v %+v", back.Apps[compA], back.Apps[compB])
	}
	// A range that reaches the top of uint32 ends.
	top := &state{Format: stateFormat, Apps: map[string]*appState{compA: {UID: 1<<32 - 1}}}
	if _, _, err := top.uid(compB, 1<<32-1, 1<<32-1); !errors.Is(err, ErrUIDsExhausted) {
		t.Errorf("full range at the top: %v", err)
	}
}

func TestStateFileRejected(t *testing.T) {
	for name, doc := range map[string]string{
		"duplicate uid":  `{"format":1,"apps":{"` + compA + `":{"uid":7},"` + compB + `":{"uid":7}}}`,
		"zero uid":       `{"format":1,"apps":{"` + compA + `":{"uid":0}}}`,
		"bad component":  `{"format":1,"apps":{"not-a-uuid":{"uid":7}}}`,
		"upper case":     `{"format":1,"apps":{"` + strings.ToUpper(compA) + `":{"uid":7}}}`,
		"bad healthy":    `{"format":1,"apps":{"` + compA + `":{"uid":7,"healthy":"x"}}}`,
		"unknown key":    `{"format":1,"apps":{},"extra":1}`,
		"wrong format":   `{"format":2,"apps":{}}`,
		"negative uid":   `{"format":1,"apps":{"` + compA + `":{"uid":-1}}}`,
		"null app":       `{"format":1,"apps":{"` + compA + `":null}}`,
		"not an object":  `[]`,
		"trailing bytes": `{"format":1,"apps":{}} {}`,
	} {
		if _, err := parseState([]byte(doc)); err == nil {
			t.Errorf("%s: accepted %s", name, doc)
		}
	}
	if _, err := parseState(bytes.Repeat([]byte(" "), MaxStateSize+1)); err == nil {
		t.Errorf("an oversized state file was accepted")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, StateFile), []byte(`{"format":1,"apps":{"`+compA+`":{"uid":0}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Apps: fakeApps{}, StateDir: dir}); err == nil || !strings.Contains(err.Error(), StateFile) {
		t.Errorf("New over a bad state file: %v, want an error naming it", err)
	}
}

func TestConfigReportsEveryProblem(t *testing.T) {
	_, err := New(Config{UIDMin: 10, UIDMax: 5, BackoffMin: time.Second, BackoffMax: time.Millisecond, CrashLimit: -1, LogSize: -1})
	if err == nil {
		t.Fatal("a bad config was accepted")
	}
	for _, want := range []string{"Apps", "StateDir", "uid range", "backoff", "CrashLimit", "LogSize"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

func TestBackoff(t *testing.T) {
	lo, hi := time.Second, 10*time.Second
	for _, c := range []struct {
		n    int
		rnd  float64
		want time.Duration
	}{
		{1, 0, time.Second}, {2, 0, 2 * time.Second}, {3, 0, 4 * time.Second}, {4, 0, 8 * time.Second},
		{5, 0, 10 * time.Second}, {1000, 0, 10 * time.Second},
		{1, 0.999999, 500*time.Millisecond + 1*time.Microsecond}, {5, 0.5, 7500 * time.Millisecond},
	} {
		got := backoff(c.n, lo, hi, c.rnd)
		if got < c.want-time.Microsecond || got > c.want+time.Microsecond {
			t.Errorf("backoff(%d, rnd %v) = %v, want %v", c.n, c.rnd, got, c.want)
		}
	}
}

func TestRingKeepsTheLastBytes(t *testing.T) {
	r := newRing(8)
	if r.Bytes() != nil {
		t.Errorf("empty ring: %q", r.Bytes())
	}
	for _, w := range []string{"abc", "defg", "hij"} {
		if n, err := r.Write([]byte(w)); n != len(w) || err != nil {
			t.Fatalf("Write: %d %v", n, err)
		}
	}
	if got := string(r.Bytes()); got != "cdefghij" {
		t.Errorf("ring holds %q, want the last 8 bytes", got)
	}
	r.Write([]byte("0123456789"))
	if got := string(r.Bytes()); got != "23456789" {
		t.Errorf("ring holds %q after a long write", got)
	}
}

func TestSanitizeHostname(t *testing.T) {
	for in, want := range map[string]string{
		"Blink":                        "blink",
		"My App (v2)":                  "my-app-v2",
		"--x--":                        "x",
		"":                             "app",
		"日本":                           "app",
		strings.Repeat("a", 70):        strings.Repeat("a", 63),
		strings.Repeat("a", 62) + " b": strings.Repeat("a", 62),
	} {
		if got := sanitizeHostname(in); got != want {
			t.Errorf("sanitizeHostname(%q) = %q, want %q", in, got, want)
		}
	}
}
