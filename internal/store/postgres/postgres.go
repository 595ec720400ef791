// Package postgres is the "postgres" store backend, for PostgreSQL through pgx.
//
// Replicas of the service may share one database: writes, and the migrations run at start-up,
// are serialized by a transaction-level advisory lock keyed by the schema, so concurrent
// replicas neither race to migrate nor interleave read-modify-write transactions.
//
// The DSN is a pgx connection string, URL or key=value. Besides pgx's own parameters it
// accepts pool_max_conns, the most connections the backend opens (default 16).
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/rampart-iot/rampart/internal/store"
	"github.com/rampart-iot/rampart/internal/store/sqlstore"
)

func init() {
	store.Register("postgres", Open)
}

//go:embed migrations/*.sql
var migrations embed.FS

// defaultMaxConns is the pool size when the DSN sets no pool_max_conns.
const defaultMaxConns = 16

// dialect is PostgreSQL's sqlstore dialect.
var dialect = sqlstore.Dialect{
	Name:                 "postgres",
	NumberedPlaceholders: true,
	Migrations:           mustSub(migrations, "migrations"),
	// One lock per schema, so that stores in different schemas of a database do not wait on
	// each other. COALESCE, because the strict lock function would silently do nothing with
	// NULL.
	WriteLock: `SELECT pg_advisory_xact_lock(hashtextextended('rampart/store/write:' || COALESCE(current_schema(), ''), 0))`,
	// unique_violation and foreign_key_violation.
	IsUniqueViolation:     hasSQLState("23505"),
	IsForeignKeyViolation: hasSQLState("23503"),
}

// Open connects to the database dsn names and migrates it.
func Open(ctx context.Context, dsn string) (store.Store, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse postgres DSN: %w", err)
	}
	maxConns := defaultMaxConns
	if v, ok := cfg.RuntimeParams["pool_max_conns"]; ok {
		delete(cfg.RuntimeParams, "pool_max_conns")
		maxConns, err = strconv.Atoi(v)
		if err != nil || maxConns < 1 {
			return nil, fmt.Errorf("postgres DSN: pool_max_conns %q is not a positive integer", v)
		}
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("connect to postgres at %s:%d: %w", cfg.Host, cfg.Port, err)
	}
	s, err := sqlstore.New(ctx, dialect, db, db)
	if err != nil {
		return nil, fmt.Errorf("postgres database %q: %w", cfg.Database, err)
	}
	return s, nil
}

func hasSQLState(code string) func(error) bool {
	return func(err error) bool {
		var e *pgconn.PgError
		return errors.As(err, &e) && e.Code == code
	}
}

func mustSub(fsys fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		panic(err)
	}
	return sub
}
