// Package sqlite is the "sqlite" store backend: a single database file, opened with the pure
// Go driver modernc.org/sqlite.
//
// It keeps two connection pools on the file: one writer connection, which runs every write
// transaction with BEGIN IMMEDIATE, and a pool of query-only readers. Writers therefore queue
// in the pool rather than fail with SQLITE_BUSY, and readers never block them (the journal is
// in WAL mode). Writes are durable once acknowledged (synchronous=FULL) and foreign keys are
// enforced.
//
// The DSN is the database file's path or a "file:" URI naming it; the backend sets the
// connection parameters it depends on itself, so the DSN must not carry them.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"runtime"
	"strconv"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/rampart-iot/rampart/internal/store"
	"github.com/rampart-iot/rampart/internal/store/sqlstore"
)

func init() {
	store.Register("sqlite", Open)
}

//go:embed migrations/*.sql
var migrations embed.FS

// busyTimeout is how long a connection waits for a lock held by another process (or by a
// checkpoint) before it fails with SQLITE_BUSY.
const busyTimeout = 10 * time.Second

// The connection parameters the backend sets on every connection of each pool.
var (
	busyParam    = "_busy_timeout=" + strconv.FormatInt(busyTimeout.Milliseconds(), 10)
	writerParams = "_txlock=immediate&_journal_mode=WAL&_synchronous=FULL&_foreign_keys=1&" + busyParam
	readerParams = "_query_only=1&_foreign_keys=1&" + busyParam
)

// managedParams are the DSN parameters a caller must leave to the backend.
var managedParams = []string{
	"_txlock", "_journal_mode", "_journal", "_synchronous", "_sync", "_foreign_keys", "_fk",
	"_busy_timeout", "_timeout", "_query_only", "_pragma",
}

// dialect is SQLite's sqlstore dialect.
var dialect = sqlstore.Dialect{
	Name:                  "sqlite",
	Migrations:            mustSub(migrations, "migrations"),
	IsUniqueViolation:     hasCode(sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY),
	IsForeignKeyViolation: hasCode(sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY),
	// Foreign keys are checked at once (not deferred), and a statement that breaks one or a
	// uniqueness constraint is rolled back alone (ON CONFLICT ABORT, the default).
	FailedStatementKeepsTx: true,
}

// Open opens (creating if need be) and migrates the SQLite database that dsn names.
func Open(ctx context.Context, dsn string) (store.Store, error) {
	writerDSN, readerDSN, err := dsns(dsn)
	if err != nil {
		return nil, err
	}
	if err := ensureWAL(ctx, writerDSN); err != nil {
		return nil, fmt.Errorf("sqlite database %s: %w", dsn, err)
	}
	writer, err := sql.Open("sqlite", writerDSN)
	if err != nil {
		return nil, fmt.Errorf("open sqlite database: %w", err)
	}
	// One writer connection, kept open: writers wait for it in the pool, in order, instead of
	// racing for SQLite's lock.
	writer.SetMaxOpenConns(1)
	writer.SetMaxIdleConns(1)
	writer.SetConnMaxLifetime(0)
	writer.SetConnMaxIdleTime(0)
	reader, err := sql.Open("sqlite", readerDSN)
	if err != nil {
		_ = writer.Close()
		return nil, fmt.Errorf("open sqlite database: %w", err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	reader.SetMaxOpenConns(n)
	reader.SetMaxIdleConns(n)
	s, err := sqlstore.New(ctx, dialect, writer, reader)
	if err != nil {
		return nil, fmt.Errorf("sqlite database %s: %w", dsn, err)
	}
	return s, nil
}

// dsns returns the writer's and the readers' DSNs for the database dsn names.
func dsns(dsn string) (writer, reader string, err error) {
	name, query, _ := strings.Cut(dsn, "?")
	if name == "" || name == "file:" {
		return "", "", errors.New("sqlite DSN must name a database file")
	}
	if strings.Contains(name, ":memory:") || strings.Contains(query, "mode=memory") {
		return "", "", fmt.Errorf("sqlite DSN %q names an in-memory database; the backend needs a file", dsn)
	}
	for param := range strings.SplitSeq(query, "&") {
		key, _, _ := strings.Cut(param, "=")
		for _, m := range managedParams {
			if key == m {
				return "", "", fmt.Errorf("sqlite DSN %q sets %s, which the backend manages", dsn, key)
			}
		}
	}
	sep := "?"
	if query != "" {
		sep = "?" + query + "&"
	}
	return name + sep + writerParams, name + sep + readerParams, nil
}

// ensureWAL puts the database in WAL mode, through one connection of its own, before the
// pools connect. While another connection (of another process, say) is switching a new
// database to WAL, SQLite fails a switch at once with SQLITE_BUSY rather than wait, so that
// a pool's new connection, which sets the mode again, would fail to open; ensureWAL waits and
// retries instead. Once the database is in WAL mode, setting it again takes no lock.
func ensureWAL(ctx context.Context, writerDSN string) error {
	db, err := sql.Open("sqlite", writerDSN)
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	ctx, cancel := context.WithTimeout(ctx, busyTimeout)
	defer cancel()
	for delay := time.Millisecond; ; delay = min(2*delay, 100*time.Millisecond) {
		var mode string
		err := db.QueryRowContext(ctx, "PRAGMA journal_mode=WAL").Scan(&mode)
		switch {
		case err == nil && mode == "wal":
			return nil
		case err == nil:
			return fmt.Errorf("cannot switch to WAL mode: journal mode is %s", mode)
		case !isBusy(err):
			return fmt.Errorf("switch to WAL mode: %w", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("switch to WAL mode: %w", err)
		case <-time.After(delay):
		}
	}
}

// isBusy reports whether err is SQLITE_BUSY, with any extended code.
func isBusy(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && e.Code()&0xff == sqlite3.SQLITE_BUSY
}

// hasCode returns a function that reports whether an error is a SQLite error with one of codes
// (extended result codes).
func hasCode(codes ...int) func(error) bool {
	return func(err error) bool {
		var e *sqlite.Error
		if !errors.As(err, &e) {
			return false
		}
		for _, c := range codes {
			if e.Code() == c {
				return true
			}
		}
		return false
	}
}

func mustSub(fsys fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		panic(err)
	}
	return sub
}
