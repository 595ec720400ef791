package console

import (
	"crypto/rand"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/internal/store"
	"github.com/rampart-iot/rampart/internal/store/storetest"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *fakeClock                   { return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

// table returns sessions kept in a real SQLite store, with the user "user-alice".
func table(t *testing.T, c *fakeClock) (*sessions, store.Store) {
	t.Helper()
	st := storetest.Open(t, "sqlite", storetest.SQLiteDSN(t))
	if err := st.CreateUser(t.Context(), store.User{ID: "user-alice", Name: "alice", CreatedAt: c.t}); err != nil {
		t.Fatal(err)
	}
	return &sessions{st: st, idle: time.Hour, max: 4 * time.Hour, now: c.now, rand: rand.Reader}, st
}

func mustGet(t *testing.T, s *sessions, id string) *session {
	t.Helper()
	ss, err := s.get(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return ss
}

func TestSessionIdleAndAbsoluteExpiry(t *testing.T) {
	c := newClock()
	s, st := table(t, c)
	ctx := t.Context()
	id, ss, err := s.create(ctx, "user-alice", "tok-1")
	if err != nil {
		t.Fatal(err)
	}
	if ss.csrf == "" || ss.csrf == id || len(id) < 40 {
		t.Fatalf("session ID %q, CSRF %q", id, ss.csrf)
	}
	// Only the ID's hash is stored.
	row, err := st.GetConsoleSession(ctx, hashID(id))
	if err != nil || row.UserID != "user-alice" || row.TokenID != "tok-1" || row.CSRF != ss.csrf || string(row.IDHash) == id {
		t.Fatalf("stored session %+v, %v", row, err)
	}
	if got := mustGet(t, s, id); got == nil || got.csrf != ss.csrf || got.tokenID != "tok-1" {
		t.Fatalf("a new session is not found: %+v", got)
	}
	if mustGet(t, s, id+"x") != nil || mustGet(t, s, "") != nil {
		t.Fatal("a wrong ID finds a session")
	}
	// Used every 59 minutes, it lives until its absolute limit.
	for range 4 {
		c.advance(59 * time.Minute)
		if mustGet(t, s, id) == nil {
			t.Fatalf("session ended while in use at %v", c.t)
		}
	}
	c.advance(5 * time.Minute) // 4h01m after creation
	if mustGet(t, s, id) != nil {
		t.Fatal("session outlived its absolute limit")
	}
	if _, err := st.GetConsoleSession(ctx, hashID(id)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("an expired session stays in the store: %v", err)
	}
	// Idle for an hour, it ends.
	id, _, _ = s.create(ctx, "user-alice", "")
	c.advance(time.Hour)
	if mustGet(t, s, id) != nil {
		t.Fatal("session outlived its idle limit")
	}
}

// TestSessionTouchIsThrottled: a session's last use is written at most once a minute, and the
// idle limit still holds to within that minute.
func TestSessionTouchIsThrottled(t *testing.T) {
	c := newClock()
	s, st := table(t, c)
	ctx := t.Context()
	id, _, _ := s.create(ctx, "user-alice", "")
	c.advance(30 * time.Second)
	mustGet(t, s, id)
	if row, _ := st.GetConsoleSession(ctx, hashID(id)); !row.LastSeenAt.Equal(newClock().t) {
		t.Fatalf("last seen written after 30 s: %v", row.LastSeenAt)
	}
	c.advance(31 * time.Second)
	mustGet(t, s, id)
	if row, _ := st.GetConsoleSession(ctx, hashID(id)); !row.LastSeenAt.Equal(c.t) {
		t.Fatalf("last seen not written after 61 s: %v", row.LastSeenAt)
	}
}

// TestLoginSweepsExpiredSessions: creating a session deletes expired ones, so the table does
// not grow with abandoned sessions.
func TestLoginSweepsExpiredSessions(t *testing.T) {
	c := newClock()
	s, st := table(t, c)
	ctx := t.Context()
	var old []string
	for range 3 {
		id, _, err := s.create(ctx, "user-alice", "")
		if err != nil {
			t.Fatal(err)
		}
		old = append(old, id)
	}
	c.advance(2 * time.Hour)
	id, _, err := s.create(ctx, "user-alice", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range old {
		if _, err := st.GetConsoleSession(ctx, hashID(o)); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("an idle session was not swept: %v", err)
		}
	}
	if mustGet(t, s, id) == nil {
		t.Fatal("the new session was swept")
	}
	if err := s.drop(ctx, id); err != nil {
		t.Fatal(err)
	}
	if mustGet(t, s, id) != nil {
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
