package console

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"
)

// Cookie names. The __Host- prefix makes browsers insist on Secure, Path=/ and no Domain, so no
// other host and no plain-HTTP page can set or read them.
const (
	sessionCookie = "__Host-rampart_session"
	loginCookie   = "__Host-rampart_login" // the login form's CSRF token, before a session exists
)

// Session defaults.
const (
	DefaultSessionIdle = time.Hour
	DefaultSessionMax  = 12 * time.Hour
	DefaultMaxSessions = 10000
)

// session is one logged-in browser. The API token it was opened with is kept here, in memory
// only, so every request re-authenticates it: a revoked or expired token ends the session at
// once. Sessions do not survive a restart.
type session struct {
	token    string // the API token's secret; never sent back to the browser
	csrf     string // the per-session token every form must carry
	created  time.Time
	lastSeen time.Time
}

// sessions is the server-side session table: keyed by the SHA-256 of the session ID (the ID
// itself is only in the browser's cookie), bounded, with idle and absolute expiry.
type sessions struct {
	mu   sync.Mutex
	m    map[[32]byte]*session
	idle time.Duration
	max  time.Duration
	cap  int
	now  func() time.Time
	rand io.Reader
}

func newSessions(idle, max time.Duration, capacity int, now func() time.Time, rnd io.Reader) *sessions {
	return &sessions{m: map[[32]byte]*session{}, idle: idle, max: max, cap: capacity, now: now, rand: rnd}
}

// randomToken returns 32 random bytes, base64url.
func randomToken(rnd io.Reader) (string, error) {
	b := make([]byte, 32)
	if _, err := io.ReadFull(rnd, b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func (s *sessions) expired(ss *session, now time.Time) bool {
	return now.Sub(ss.lastSeen) >= s.idle || now.Sub(ss.created) >= s.max
}

// create opens a session for an authenticated token and returns its ID.
func (s *sessions) create(token string) (string, *session, error) {
	id, err := randomToken(s.rand)
	if err != nil {
		return "", nil, err
	}
	csrf, err := randomToken(s.rand)
	if err != nil {
		return "", nil, err
	}
	now := s.now()
	ss := &session{token: token, csrf: csrf, created: now, lastSeen: now}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) >= s.cap {
		s.sweepLocked(now)
	}
	if len(s.m) >= s.cap { // still full: drop the least recently used
		var oldest [32]byte
		var seen time.Time
		for k, v := range s.m {
			if seen.IsZero() || v.lastSeen.Before(seen) {
				oldest, seen = k, v.lastSeen
			}
		}
		delete(s.m, oldest)
	}
	s.m[sha256.Sum256([]byte(id))] = ss
	return id, ss, nil
}

// get returns the live session with this ID and marks it used, or nil.
func (s *sessions) get(id string) *session {
	if id == "" {
		return nil
	}
	key := sha256.Sum256([]byte(id))
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.m[key]
	if !ok {
		return nil
	}
	if s.expired(ss, now) {
		delete(s.m, key)
		return nil
	}
	ss.lastSeen = now
	return ss
}

// drop ends the session with this ID.
func (s *sessions) drop(id string) {
	key := sha256.Sum256([]byte(id))
	s.mu.Lock()
	delete(s.m, key)
	s.mu.Unlock()
}

func (s *sessions) sweepLocked(now time.Time) {
	for k, v := range s.m {
		if s.expired(v, now) {
			delete(s.m, k)
		}
	}
}

// len reports how many sessions are held, expired ones included until swept.
func (s *sessions) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

func setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode})
}

func cookieValue(r *http.Request, name string) string {
	c, err := r.Cookie(name)
	if err != nil {
		return ""
	}
	return c.Value
}

// errCSRF is a form without the session's CSRF token.
var errCSRF = errors.New("the form's CSRF token is missing or wrong; reload the page and try again")

// sameToken compares two tokens in constant time; an empty token never matches.
func sameToken(got, want string) bool {
	return got != "" && want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}
