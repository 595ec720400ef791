package store

import (
	"context"
	"time"
)

// ConsoleTx is the web console's state: users' password hashes and the console's login
// sessions. Sessions are kept in the store so that every replica behind a load balancer serves
// every session and they survive a restart.
type ConsoleTx interface {
	// SetUserPassword stores a user's password hash (an encoded argon2id string; "" removes the
	// password). ErrNotFound if there is no such user.
	SetUserPassword(ctx context.Context, userID, hash string, at time.Time) error
	// GetUserPassword returns a user's password hash ("" and the zero time if none is set).
	// ErrNotFound if there is no such user.
	GetUserPassword(ctx context.Context, userID string) (UserPassword, error)

	// CreateConsoleSession stores a session. ErrNotFound if its user does not exist,
	// ErrConflict if a session has its ID hash.
	CreateConsoleSession(ctx context.Context, s ConsoleSession) error
	// GetConsoleSession finds a session by the SHA-256 of its ID, expired or not; ErrNotFound
	// if there is none.
	GetConsoleSession(ctx context.Context, idHash []byte) (ConsoleSession, error)
	// TouchConsoleSession sets a session's LastSeenAt. ErrNotFound if there is none.
	TouchConsoleSession(ctx context.Context, idHash []byte, at time.Time) error
	// DeleteConsoleSession deletes a session; deleting one that is not there is not an error.
	DeleteConsoleSession(ctx context.Context, idHash []byte) error
	// DeleteUserConsoleSessions deletes a user's sessions but the one with the hash keep (nil
	// for none) and returns how many it deleted.
	DeleteUserConsoleSessions(ctx context.Context, userID string, keep []byte) (int, error)
	// DeleteExpiredConsoleSessions deletes at most limit sessions last seen before idleBefore
	// or whose ExpiresAt is not after now, and returns how many it deleted.
	DeleteExpiredConsoleSessions(ctx context.Context, idleBefore, now time.Time, limit int) (int, error)

	// CountErrorReportsByBin counts, for the console's charts, the error reports filter selects
	// per bucket (type, component, image, signal and exit code) and per time bin of the
	// event's time: bin i is [since + i×width, since + (i+1)×width), i < bins; filter's Since
	// and Until are ignored. With only set, just the reports of that bucket are counted. At
	// most limit rows (clamped to 1..MaxBinCounts), by bucket, then bin; empty bins have none.
	CountErrorReportsByBin(ctx context.Context, tenantID string, filter ErrorReportFilter, only *ErrorBucket,
		since time.Time, width time.Duration, bins, limit int) ([]ErrorBinCount, error)
}

// MaxBinCounts bounds the rows of one CountErrorReportsByBin.
const MaxBinCounts = 100_000

// ErrorBinCount is how many error reports of one bucket fell in one time bin.
type ErrorBinCount struct {
	Type        string
	ComponentID string
	ImageID     string
	Signal      int
	ExitCode    int
	Bin         int
	Count       int64
}

// UserPassword is a user's password hash.
type UserPassword struct {
	Hash      string // encoded argon2id (internal/password); "" for none
	ChangedAt time.Time
}

// ConsoleSession is one logged-in browser. Only the SHA-256 of the session ID is stored; the
// ID itself is only in the browser's cookie.
type ConsoleSession struct {
	IDHash     []byte
	UserID     string
	TokenID    string // the API token it was opened with, "" for a password login
	CSRF       string // the token every form of the session carries
	CreatedAt  time.Time
	LastSeenAt time.Time
	ExpiresAt  time.Time // absolute expiry
}
