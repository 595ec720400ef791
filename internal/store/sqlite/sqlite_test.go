package sqlite_test

import (
	"database/sql"
	"testing"

	"github.com/rampart-iot/rampart/internal/store/storetest"
)

func TestStore(t *testing.T) {
	storetest.Run(t, storetest.OpenSQLite)
}

func TestMigrations(t *testing.T) {
	path := storetest.SQLiteDSN(t)
	storetest.RunMigrations(t, "sqlite", path, func(t *testing.T) {
		db, err := sql.Open("sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, '9999_future.sql', 0)`); err != nil {
			t.Fatal(err)
		}
	})
}

func BenchmarkListDevices(b *testing.B) {
	storetest.BenchmarkListDevices(b, storetest.Open(b, "sqlite", storetest.SQLiteDSN(b)))
}

func BenchmarkClaimDevice(b *testing.B) {
	storetest.BenchmarkClaimDevice(b, storetest.Open(b, "sqlite", storetest.SQLiteDSN(b)))
}
