package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"testing/fstest"

	_ "modernc.org/sqlite"

	"github.com/rampart-iot/rampart/internal/store"
)

// openWriteTest opens a one-table SQLite store whose writer has one connection, as the sqlite
// backend's does.
func openWriteTest(t *testing.T) *DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "db")+"?_txlock=immediate&_journal_mode=WAL")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	d := Dialect{Name: "sqlite", Migrations: fstest.MapFS{"0001_init.sql": {Data: []byte("CREATE TABLE x (id INTEGER PRIMARY KEY, v TEXT NOT NULL) STRICT")}},
		IsUniqueViolation: func(error) bool { return false }, IsForeignKeyViolation: func(error) bool { return false }}
	s, err := New(t.Context(), d, db, db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func insertX(ctx context.Context, s *DB, query string, id int) error {
	return s.Update(ctx, func(tx store.Tx) error {
		_, err := tx.(interface {
			exec(context.Context, string, ...any) (int64, error)
		}).exec(ctx, query, id, "v")
		return err
	})
}

// TestWriteStatementsPrepared checks that a write transaction's statement runs unprepared the
// first time, is prepared before the next transaction and bound to it from then on, and that a
// statement the database refuses goes on failing as itself, unprepared.
func TestWriteStatementsPrepared(t *testing.T) {
	ctx := t.Context()
	s := openWriteTest(t)
	const ins = `INSERT INTO x (id, v) VALUES (?, ?)`
	cached := func(q string) (st *sql.Stmt, ok, wanted bool) {
		s.writeStmts.mu.Lock()
		defer s.writeStmts.mu.Unlock()
		st, ok = s.writeStmts.m[q]
		return st, ok, s.writeStmts.wanted[q]
	}
	if err := insertX(ctx, s, ins, 1); err != nil {
		t.Fatal(err)
	}
	if _, ok, wanted := cached(ins); ok || !wanted {
		t.Fatalf("after the first transaction: cached %v, wanted %v; want not cached, wanted", ok, wanted)
	}
	for id := 2; id <= 3; id++ {
		if err := insertX(ctx, s, ins, id); err != nil {
			t.Fatal(err)
		}
	}
	if st, ok, wanted := cached(ins); st == nil || !ok || wanted {
		t.Fatalf("after later transactions: statement %v, cached %v, wanted %v; want a prepared statement", st, ok, wanted)
	}
	var n int
	if err := s.writer.QueryRowContext(ctx, `SELECT COUNT(*) FROM x`).Scan(&n); err != nil || n != 3 {
		t.Fatalf("rows = %d (%v), want 3", n, err)
	}
	// A prepared statement still reports its own errors: a duplicate key.
	if err := insertX(ctx, s, ins, 3); err == nil {
		t.Fatal("inserting a duplicate key through the prepared statement succeeded")
	}

	const bad = `INSERT INTO nowhere (id, v) VALUES (?, ?)`
	for i := range 3 {
		err := insertX(ctx, s, bad, 10)
		if err == nil || errors.Is(err, context.Canceled) {
			t.Fatalf("round %d: a statement on a missing table: %v", i, err)
		}
	}
	if st, ok, wanted := cached(bad); st != nil || !ok || wanted {
		t.Fatalf("a refused statement: statement %v, cached %v, wanted %v; want remembered as unpreparable", st, ok, wanted)
	}
}

// TestWriteStatementsConcurrent runs transactions from many goroutines on the one writer
// connection while statements are being prepared: none waits for another forever.
func TestWriteStatementsConcurrent(t *testing.T) {
	ctx := t.Context()
	s := openWriteTest(t)
	queries := []string{
		`INSERT INTO x (id, v) VALUES (?, ?)`,
		`INSERT INTO x (id, v) VALUES (?, ?) ON CONFLICT DO NOTHING`,
		`INSERT OR REPLACE INTO x (id, v) VALUES (?, ?)`,
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8*60)
	for g := range 8 {
		wg.Go(func() {
			for i := range 60 {
				errs <- insertX(ctx, s, queries[i%len(queries)], g*1000+i)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var n int
	if err := s.writer.QueryRowContext(ctx, `SELECT COUNT(*) FROM x`).Scan(&n); err != nil || n != 8*60 {
		t.Fatalf("rows = %d (%v), want %d", n, err, 8*60)
	}
}
