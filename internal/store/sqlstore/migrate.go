package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"regexp"
	"strconv"
	"time"

	"github.com/rampart-iot/rampart/internal/store"
)

// migration is one schema change, numbered from 1.
type migration struct {
	version int64
	name    string
	sql     string
}

var migrationName = regexp.MustCompile(`^(\d{4})_[a-z0-9_]+\.sql$`)

// loadMigrations reads the migrations in fsys and checks they are numbered 1, 2, ... n.
func loadMigrations(fsys fs.FS) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var ms []migration
	for _, e := range entries { // sorted by name, so by version
		m := migrationName.FindStringSubmatch(e.Name())
		if m == nil || e.IsDir() {
			return nil, fmt.Errorf("migration %q is not named NNNN_description.sql", e.Name())
		}
		v, _ := strconv.ParseInt(m[1], 10, 64)
		if v != int64(len(ms)+1) {
			return nil, fmt.Errorf("migration %q: want version %04d", e.Name(), len(ms)+1)
		}
		b, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("read migration: %w", err)
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(b)})
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("no migrations")
	}
	return ms, nil
}

// migrate brings the schema of db up to date, one migration per transaction, each holding the
// write lock so that processes starting together apply every migration once. It refuses a
// database whose schema is newer than the newest migration it knows.
func migrate(ctx context.Context, d *Dialect, db *sql.DB) error {
	ms, err := loadMigrations(d.Migrations)
	if err != nil {
		return err
	}
	for {
		done, err := migrateOnce(ctx, d, db, ms)
		if err != nil || done {
			return err
		}
	}
}

// migrateOnce applies the first pending migration, if any, and reports whether none was.
func migrateOnce(ctx context.Context, d *Dialect, db *sql.DB, ms []migration) (done bool, err error) {
	sqlTx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil || done {
			_ = sqlTx.Rollback()
		}
	}()
	if d.WriteLock != "" {
		if _, err := sqlTx.ExecContext(ctx, d.WriteLock); err != nil {
			return false, fmt.Errorf("take write lock: %w", err)
		}
	}
	if _, err := sqlTx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version BIGINT PRIMARY KEY,
		name TEXT NOT NULL,
		applied_at BIGINT NOT NULL
	)`); err != nil {
		return false, fmt.Errorf("create schema_migrations: %w", err)
	}
	var current int64
	if err := sqlTx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return false, fmt.Errorf("read schema version: %w", err)
	}
	latest := ms[len(ms)-1].version
	switch {
	case current > latest:
		return false, fmt.Errorf("database schema is at version %d, this binary knows versions up to %d: %w",
			current, latest, store.ErrSchemaTooNew)
	case current == latest:
		return true, nil
	}
	m := ms[current]
	if _, err := sqlTx.ExecContext(ctx, m.sql); err != nil {
		return false, fmt.Errorf("apply %s: %w", m.name, err)
	}
	if _, err := sqlTx.ExecContext(ctx, d.rebind(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`),
		m.version, m.name, time.Now().UnixMicro()); err != nil {
		return false, fmt.Errorf("record %s: %w", m.name, err)
	}
	if err := sqlTx.Commit(); err != nil {
		return false, fmt.Errorf("commit %s: %w", m.name, err)
	}
	return false, nil
}
