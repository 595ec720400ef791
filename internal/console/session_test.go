package console

import (
	"crypto/rand"
	"net/url"
	"strings"
	"testing"
	"time"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *fakeClock                   { return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }
func table(c *fakeClock, capacity int) *sessions {
	return newSessions(time.Hour, 4*time.Hour, capacity, c.now, rand.Reader)
}

func TestSessionIdleAndAbsoluteExpiry(t *testing.T) {
	c := newClock()
	s := table(c, 10)
	id, ss, err := s.create("rpt_token")
	if err != nil {
		t.Fatal(err)
	}
	if ss.csrf == "" || ss.csrf == id || len(id) < 40 {
		t.Fatalf("session ID %q, CSRF %q", id, ss.csrf)
	}
	if got := s.get(id); got != ss {
		t.Fatal("a new session is not found")
	}
	if s.get(id+"x") != nil || s.get("") != nil {
		t.Fatal("a wrong ID finds a session")
	}
	// Used every 59 minutes, it lives until its absolute limit.
	for range 4 {
		c.advance(59 * time.Minute)
		if s.get(id) == nil {
			t.Fatalf("session ended while in use at %v", c.t)
		}
	}
	c.advance(5 * time.Minute) // 4h01m after creation
	if s.get(id) != nil {
		t.Fatal("session outlived its absolute limit")
	}
	if s.len() != 0 {
		t.Fatal("an expired session stays in the table")
	}
	// Idle for an hour, it ends.
	id, _, _ = s.create("rpt_token")
	c.advance(time.Hour)
	if s.get(id) != nil {
		t.Fatal("session outlived its idle limit")
	}
}

func TestSessionTableIsBounded(t *testing.T) {
	c := newClock()
	s := table(c, 3)
	var ids []string
	for i := range 3 {
		id, _, err := s.create("rpt_token")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
		c.advance(time.Duration(i+1) * time.Minute)
	}
	s.get(ids[0]) // the oldest is now the most recently used
	c.advance(time.Minute)
	id4, _, _ := s.create("rpt_token")
	if s.len() != 3 {
		t.Fatalf("table holds %d sessions, want 3", s.len())
	}
	if s.get(ids[1]) != nil {
		t.Error("the least recently used session was kept")
	}
	for _, id := range []string{ids[0], ids[2], id4} {
		if s.get(id) == nil {
			t.Error("a recently used session was dropped")
		}
	}
	s.drop(id4)
	if s.get(id4) != nil {
		t.Error("a dropped session is still found")
	}
}

func TestSameToken(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{{"abc", "abc", true}, {"abc", "abd", false}, {"", "", false}, {"abc", "", false}, {"", "abc", false}, {"ab", "abc", false}} {
		if got := sameToken(c.a, c.b); got != c.want {
			t.Errorf("sameToken(%q, %q) = %v", c.a, c.b, got)
		}
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{
		"":                            "/console/",
		"/console/t/x/devices?q=ab":   "/console/t/x/devices?q=ab",
		"https://evil.example/":       "/console/",
		"//evil.example/console/":     "/console/",
		"/v1/tenants":                 "/console/",
		"/console/\\evil":             "/console/",
		"javascript:alert(1)":         "/console/",
		"/console/../v1/":             "/console/",
		"https://user@host/console/x": "/console/",
		"/console%2f2":                "/console/", // decodes under the console, but the browser goes to /console%2f2
	} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzSafeNext(f *testing.F) {
	for _, s := range []string{"/console/", "//x", "https://x/console/", "/console/t/a?b=c", "/console/\\x", "/console/%2f%2fx"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, next string) {
		got := safeNext(next)
		u, err := url.Parse(got)
		if err != nil || u.Host != "" || u.Scheme != "" || !strings.HasPrefix(got, Prefix) || strings.HasPrefix(got, "//") || strings.Contains(u.Path, "..") {
			t.Fatalf("safeNext(%q) = %q leaves the console", next, got)
		}
	})
}
