// Package sqlstore implements store.Store once, over database/sql, for every SQL backend. A
// backend supplies its connection pools and a Dialect (placeholders, migrations, how to
// serialize writers and how to recognize constraint violations); the queries are shared.
//
// Writes are serialized: every write, including each direct call of a write method, runs in a
// transaction that holds the backend's single write lock (SQLite's single writer connection,
// PostgreSQL's advisory lock). Update transactions are therefore serializable and
// read-modify-write inside them is safe; reads outside Update run on their own and see only
// committed data. Uniqueness and existence are checked inside that write transaction so that
// a rule broken by the caller never aborts the transaction; the database's own constraints
// are the backstop.
//
// The package trusts its caller, as store.Store does, and trusts the database it is given.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/rampart-iot/rampart/internal/store"
)

// DB is a store.Store over database/sql.
type DB struct {
	d      *Dialect
	writer *sql.DB
	reader *sql.DB
	// Prepared statements of the reader pool, and of write transactions on the writer.
	readStmts  *stmts
	writeStmts *writeStmts
	read       *tx // direct reads, each in its own implicit transaction
}

var _ store.Store = (*DB)(nil)

// New returns a store that writes through writer and reads through reader (they may be the
// same pool), after applying the dialect's pending migrations. New takes ownership of both
// pools: Close closes them, or New itself if it fails. It returns an error wrapping
// store.ErrSchemaTooNew if the database was migrated by a newer binary.
func New(ctx context.Context, d Dialect, writer, reader *sql.DB) (_ *DB, err error) {
	s := &DB{d: &d, writer: writer, reader: reader, readStmts: newStmts(reader), writeStmts: newWriteStmts(writer)}
	s.read = &tx{d: s.d, q: prepared{cache: s.readStmts}}
	defer func() {
		if err != nil {
			_ = s.Close()
		}
	}()
	if err := d.validate(); err != nil {
		return nil, fmt.Errorf("sqlstore: %w", err)
	}
	if err := migrate(ctx, s.d, writer); err != nil {
		return nil, fmt.Errorf("migrate %s database: %w", d.Name, err)
	}
	return s, nil
}

// Update runs fn in one write transaction, holding the write lock.
func (s *DB) Update(ctx context.Context, fn func(store.Tx) error) error {
	return s.inWriteTx(ctx, func(q querier) error {
		return fn(&tx{d: s.d, q: q})
	})
}

// inWriteTx runs fn in a transaction on the writer that holds the write lock, and commits if
// fn returns nil. It rolls back on error and on panic. fn's queries go through the write
// statement cache, which prepares before the transaction what earlier ones ran unprepared.
func (s *DB) inWriteTx(ctx context.Context, fn func(querier) error) error {
	s.writeStmts.prepareWanted(ctx)
	sqlTx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin %s transaction: %w", s.d.Name, err)
	}
	done := false
	defer func() {
		if !done {
			_ = sqlTx.Rollback()
		}
	}()
	if s.d.WriteLock != "" {
		if _, err := sqlTx.ExecContext(ctx, s.d.WriteLock); err != nil {
			return fmt.Errorf("take %s write lock: %w", s.d.Name, err)
		}
	}
	if err := fn(inTx{tx: sqlTx, cache: s.writeStmts}); err != nil {
		return err
	}
	done = true
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("commit %s transaction: %w", s.d.Name, err)
	}
	return nil
}

// Ping reports whether both pools can reach the database.
func (s *DB) Ping(ctx context.Context) error {
	if err := s.writer.PingContext(ctx); err != nil {
		return fmt.Errorf("ping %s: %w", s.d.Name, err)
	}
	if s.reader != s.writer {
		if err := s.reader.PingContext(ctx); err != nil {
			return fmt.Errorf("ping %s: %w", s.d.Name, err)
		}
	}
	return nil
}

// Close closes both pools.
func (s *DB) Close() error {
	err := errors.Join(s.readStmts.close(), s.writeStmts.close(), s.writer.Close())
	if s.reader != s.writer {
		err = errors.Join(err, s.reader.Close())
	}
	return err
}
