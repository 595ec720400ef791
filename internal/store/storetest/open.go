// Package storetest is the conformance suite that every store backend passes (Run,
// RunMigrations, RunUpgrade, RunUpgradeFrom2, RunFrozenMigrations, and the benchmarks that set
// the ceiling for the API's), and the helpers that open the built-in backends for tests: SQLite in a temporary
// directory, and PostgreSQL in a fresh schema of the database that RAMPART_TEST_POSTGRES names.
//
// It trusts the database it is pointed at to be disposable: it creates and drops schemas.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rampart-iot/rampart/internal/store"
	_ "github.com/rampart-iot/rampart/internal/store/postgres" // registers "postgres"
	_ "github.com/rampart-iot/rampart/internal/store/sqlite"   // registers "sqlite"
)

// PostgresEnv names the environment variable that holds the DSN of the PostgreSQL database
// the tests may use, such as postgres://root@127.0.0.1:5432/test?sslmode=disable.
const PostgresEnv = "RAMPART_TEST_POSTGRES"

// OpenSQLite opens a "sqlite" store on a new file in a temporary directory, closed when the
// test ends.
func OpenSQLite(t *testing.T) store.Store {
	t.Helper()
	return Open(t, "sqlite", SQLiteDSN(t))
}

// OpenPostgres opens a "postgres" store on a new schema of the database that
// RAMPART_TEST_POSTGRES names, closed and dropped when the test ends. It skips the test if the
// variable is not set, and fails it if the database cannot be reached.
func OpenPostgres(t *testing.T) store.Store {
	t.Helper()
	return Open(t, "postgres", PostgresDSN(t))
}

// Open opens the named backend on dsn and closes it when the test ends.
func Open(tb testing.TB, backend, dsn string) store.Store {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := store.Open(ctx, backend, dsn)
	if err != nil {
		tb.Fatalf("open %s store: %v", backend, err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("close %s store: %v", backend, err)
		}
	})
	return s
}

// SQLiteDSN returns the path of a database file, not yet created, in a temporary directory
// removed when the test ends.
func SQLiteDSN(tb testing.TB) string {
	return filepath.Join(tb.TempDir(), "rampart.db")
}

// PostgresDSN creates a schema with a random name in the database that RAMPART_TEST_POSTGRES
// names, and returns a DSN that works in it. The schema is dropped when the test ends. It skips
// the test if the variable is not set, and fails it if the database cannot be reached.
func PostgresDSN(tb testing.TB) string {
	tb.Helper()
	SkipWithoutPostgres(tb)
	base := os.Getenv(PostgresEnv)
	var b [8]byte
	_, _ = rand.Read(b[:])
	schema := "rampart_test_" + hex.EncodeToString(b[:])
	ident := pgx.Identifier{schema}.Sanitize()
	if err := execPostgres(base, "CREATE SCHEMA "+ident); err != nil {
		tb.Fatalf("PostgreSQL from %s: %v", PostgresEnv, err)
	}
	tb.Cleanup(func() {
		if err := execPostgres(base, "DROP SCHEMA "+ident+" CASCADE"); err != nil {
			tb.Errorf("PostgreSQL from %s: %v", PostgresEnv, err)
		}
	})
	dsn, err := withSearchPath(base, schema)
	if err != nil {
		tb.Fatalf("%s: %v", PostgresEnv, err)
	}
	return dsn
}

// SkipWithoutPostgres skips the test, saying how to enable it, unless RAMPART_TEST_POSTGRES
// is set.
func SkipWithoutPostgres(tb testing.TB) {
	tb.Helper()
	if os.Getenv(PostgresEnv) == "" {
		tb.Skipf("set %s=postgres://USER@HOST:5432/DB?sslmode=disable to run the PostgreSQL tests", PostgresEnv)
	}
}

// execPostgres runs one statement on its own connection to the database dsn names.
func execPostgres(dsn, sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

// withSearchPath returns dsn, a URL or key=value DSN, set to work in schema.
func withSearchPath(dsn, schema string) (string, error) {
	if !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
		return dsn + " search_path=" + schema, nil
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return "", err
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), nil
}
