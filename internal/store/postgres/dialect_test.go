package postgres

import (
	"database/sql"
	"os"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"
)

// TestViolations checks that the dialect recognizes PostgreSQL's constraint violations, the
// backstop behind the store's own checks. (It cannot use storetest, which imports this
// package, so it works in temporary tables.)
func TestViolations(t *testing.T) {
	dsn := os.Getenv("RAMPART_TEST_POSTGRES")
	if dsn == "" {
		t.Skip("set RAMPART_TEST_POSTGRES=postgres://USER@HOST:5432/DB?sslmode=disable to run the PostgreSQL tests")
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(t.Context()) // temporary tables live in one session
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	exec := func(q string) error {
		_, err := conn.ExecContext(t.Context(), q)
		return err
	}
	for _, q := range []string{
		`CREATE TEMP TABLE p (id TEXT PRIMARY KEY, name TEXT UNIQUE)`,
		`CREATE TEMP TABLE c (p TEXT REFERENCES p (id))`,
		`CREATE TEMP TABLE n (x TEXT NOT NULL)`,
		`INSERT INTO p VALUES ('a', 'x')`,
	} {
		if err := exec(q); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		err        error
		unique, fk bool
	}{
		{exec(`INSERT INTO p VALUES ('a', 'y')`), true, false},
		{exec(`INSERT INTO p VALUES ('b', 'x')`), true, false},
		{exec(`INSERT INTO c VALUES ('z')`), false, true},
		{exec(`INSERT INTO n VALUES (NULL)`), false, false},
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
