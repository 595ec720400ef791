package sqlite

import (
	"database/sql"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestConnectionSettings checks that the driver applies the settings the backend relies on to
// every connection of each pool.
func TestConnectionSettings(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rampart.db")
	for _, dsn := range []string{path, "file:" + path, "file:" + path + "?psow=1"} {
		writerDSN, readerDSN, err := dsns(dsn)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			dsn  string
			want map[string]string
		}{
			{writerDSN, map[string]string{"journal_mode": "wal", "synchronous": "2", "foreign_keys": "1",
				"busy_timeout": strconv.FormatInt(busyTimeout.Milliseconds(), 10), "query_only": "0"}},
			{readerDSN, map[string]string{"journal_mode": "wal", "foreign_keys": "1",
				"busy_timeout": strconv.FormatInt(busyTimeout.Milliseconds(), 10), "query_only": "1"}},
		} {
			db, err := sql.Open("sqlite", tc.dsn)
			if err != nil {
				t.Fatal(err)
			}
			for pragma, want := range tc.want {
				var got string
				if err := db.QueryRow("PRAGMA " + pragma).Scan(&got); err != nil {
					t.Fatalf("%s: PRAGMA %s: %v", tc.dsn, pragma, err)
				}
				if got != want {
					t.Errorf("%s: PRAGMA %s = %s, want %s", tc.dsn, pragma, got, want)
				}
			}
			db.Close()
		}
	}
}

// TestWriterBeginsImmediate checks that a write transaction takes the write lock when it
// begins, not at its first write, so that it can never fail to upgrade a read lock.
func TestWriterBeginsImmediate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rampart.db")
	writerDSN, _, err := dsns(path)
	if err != nil {
		t.Fatal(err)
	}
	writer, err := sql.Open("sqlite", writerDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	tx, err := writer.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()

	other, err := sql.Open("sqlite", path) // no busy timeout: fails at once
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.Exec("BEGIN IMMEDIATE"); err == nil || !strings.Contains(err.Error(), "locked") {
		t.Errorf("another writer began while a write transaction was open: %v", err)
	}
}

func TestDSNRejected(t *testing.T) {
	for _, dsn := range []string{
		"",
		"file:",
		":memory:",
		"file::memory:",
		"file:x.db?mode=memory&cache=shared",
		"x.db?_txlock=deferred",
		"x.db?_pragma=foreign_keys(0)",
		"file:x.db?_sync=OFF",
	} {
		if _, _, err := dsns(dsn); err == nil {
			t.Errorf("dsns(%q) accepted", dsn)
		} else if strings.Contains(err.Error(), "%!") {
			t.Errorf("dsns(%q): badly formatted error %v", dsn, err)
		}
	}
}

// TestViolations checks that the dialect recognizes SQLite's constraint violations, the
// backstop behind the store's own checks.
func TestViolations(t *testing.T) {
	writerDSN, _, err := dsns(filepath.Join(t.TempDir(), "rampart.db"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", writerDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE p (id TEXT PRIMARY KEY, name TEXT UNIQUE);
		CREATE TABLE c (p TEXT REFERENCES p (id));
		INSERT INTO p VALUES ('a', 'x')`); err != nil {
		t.Fatal(err)
	}
	_, dupKey := db.Exec(`INSERT INTO p VALUES ('a', 'y')`)
	_, dupName := db.Exec(`INSERT INTO p VALUES ('b', 'x')`)
	_, noParent := db.Exec(`INSERT INTO c VALUES ('z')`)
	_, notNull := db.Exec(`CREATE TABLE n (x TEXT NOT NULL); INSERT INTO n VALUES (NULL)`)
	for _, tc := range []struct {
		err        error
		unique, fk bool
	}{
		{dupKey, true, false},
		{dupName, true, false},
		{noParent, false, true},
		{notNull, false, false},
		{nil, false, false},
	} {
		if tc.err == nil && (tc.unique || tc.fk) {
			t.Fatalf("the statement did not fail")
		}
		if got := dialect.IsUniqueViolation(tc.err); got != tc.unique {
			t.Errorf("IsUniqueViolation(%v) = %v", tc.err, got)
		}
		if got := dialect.IsForeignKeyViolation(tc.err); got != tc.fk {
			t.Errorf("IsForeignKeyViolation(%v) = %v", tc.err, got)
		}
	}
}
