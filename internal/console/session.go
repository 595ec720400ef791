package console

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/rampart-iot/rampart/internal/store"
)

// Cookie names. The __Host- prefix makes browsers insist on Secure, Path=/ and no Domain, so no
// other host and no plain-HTTP page can set or read them.
const (
	sessionCookie = "__Host-rampart_session"
	loginCookie   = "__Host-rampart_login" // the login form's CSRF token, before a session exists
)

// Session defaults and bounds.
const (
	DefaultSessionIdle = time.Hour
	DefaultSessionMax  = 12 * time.Hour
	// touchEvery is how stale a session's last-seen time may get before a request writes it:
	// the idle limit is kept to within this, without a write on every page.
	touchEvery = time.Minute
	// sweepBatch bounds the expired sessions one login deletes.
	sweepBatch = 100
)

// session is one logged-in browser, as the store keeps it: the user, and the API token it was
// opened with ("" for a password login), never the token's secret. Every request rebuilds the
// principal from them (manage.SessionPrincipal), so a revoked or expired token, or a deleted
// user, ends the session at once.
type session struct {
	idHash  []byte
	userID  string
	tokenID string
	csrf    string // the per-session token every form must carry
	created time.Time
	seen    time.Time
	expires time.Time
}

// sessions are the console's sessions, in the store so that every replica serves them and
// they survive a restart: keyed by the SHA-256 of the session ID (the ID itself is only in the
// browser's cookie), with idle and absolute expiry.
type sessions struct {
	st   store.ConsoleTx
	idle time.Duration
	max  time.Duration
	now  func() time.Time
	rand io.Reader
}

// randomToken returns 32 random bytes, base64url.
func randomToken(rnd io.Reader) (string, error) {
	b := make([]byte, 32)
	if _, err := io.ReadFull(rnd, b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func hashID(id string) []byte {
	h := sha256.Sum256([]byte(id))
	return h[:]
}

func (s *sessions) expired(ss *session, now time.Time) bool {
	return now.Sub(ss.seen) >= s.idle || !now.Before(ss.expires)
}

// create opens a session for an authenticated user (and the token it logged in with, if any)
// and returns its ID. It first deletes a batch of expired sessions, so the table is cleaned
// as it is used.
func (s *sessions) create(ctx context.Context, userID, tokenID string) (string, *session, error) {
	id, err := randomToken(s.rand)
	if err != nil {
		return "", nil, err
	}
	csrf, err := randomToken(s.rand)
	if err != nil {
		return "", nil, err
	}
	now := s.now()
	if _, err := s.st.DeleteExpiredConsoleSessions(ctx, now.Add(-s.idle), now, sweepBatch); err != nil {
		return "", nil, fmt.Errorf("console sessions: %w", err)
	}
	ss := &session{idHash: hashID(id), userID: userID, tokenID: tokenID, csrf: csrf, created: now, seen: now, expires: now.Add(s.max)}
	err = s.st.CreateConsoleSession(ctx, store.ConsoleSession{IDHash: ss.idHash, UserID: userID, TokenID: tokenID, CSRF: csrf,
		CreatedAt: now, LastSeenAt: now, ExpiresAt: ss.expires})
	if err != nil {
		return "", nil, fmt.Errorf("console sessions: %w", err)
	}
	return id, ss, nil
}

// get returns the live session with this ID, marking it used, or nil if there is none (an
// expired one is deleted).
func (s *sessions) get(ctx context.Context, id string) (*session, error) {
	if id == "" || len(id) > 2*maxQueryValue {
		return nil, nil
	}
	key := hashID(id)
	row, err := s.st.GetConsoleSession(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("console sessions: %w", err)
	}
	ss := &session{idHash: row.IDHash, userID: row.UserID, tokenID: row.TokenID, csrf: row.CSRF, created: row.CreatedAt, seen: row.LastSeenAt, expires: row.ExpiresAt}
	now := s.now()
	if s.expired(ss, now) {
		return nil, s.st.DeleteConsoleSession(ctx, key)
	}
	if now.Sub(ss.seen) >= touchEvery {
		if err := s.st.TouchConsoleSession(ctx, key, now); errors.Is(err, store.ErrNotFound) {
			return nil, nil // logged out meanwhile
		} else if err != nil {
			return nil, fmt.Errorf("console sessions: %w", err)
		}
		ss.seen = now
	}
	return ss, nil
}

// drop ends the session with this ID.
func (s *sessions) drop(ctx context.Context, id string) error {
	if id == "" {
		return nil
	}
	return s.st.DeleteConsoleSession(ctx, hashID(id))
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
