package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rampart-iot/rampart/internal/store"
)

// querier is what *sql.DB and *sql.Tx have in common.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// tx implements store.Tx on a write transaction, or for reads on the reader pool.
type tx struct {
	d *Dialect
	q querier
}

var _ store.Tx = (*tx)(nil)

func (t *tx) exec(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := t.q.ExecContext(ctx, t.d.rebind(query), args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (t *tx) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return t.q.QueryContext(ctx, t.d.rebind(query), args...)
}

func (t *tx) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	return t.q.QueryRowContext(ctx, t.d.rebind(query), args...)
}

// exists reports whether query, a SELECT 1 ..., returns a row.
func (t *tx) exists(ctx context.Context, query string, args ...any) (bool, error) {
	var one int
	err := t.queryRow(ctx, query, args...).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// count runs query, a SELECT COUNT(*) ....
func (t *tx) count(ctx context.Context, query string, args ...any) (int, error) {
	var n int
	err := t.queryRow(ctx, query, args...).Scan(&n)
	return n, err
}

// dbErr wraps err, returned by the database while doing what, turning a violated uniqueness
// constraint into store.ErrConflict and a violated foreign key into onFK (if not nil).
func (t *tx) dbErr(err error, what string, onFK error) error {
	switch {
	case t.d.IsUniqueViolation(err):
		return fmt.Errorf("%s: %w: %w", what, store.ErrConflict, err)
	case onFK != nil && t.d.IsForeignKeyViolation(err):
		return fmt.Errorf("%s: %w: %w", what, onFK, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// notFound wraps the error of a single-row read: sql.ErrNoRows becomes store.ErrNotFound.
func notFound(err error, what string) error {
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return fmt.Errorf("read %s: %w", what, err)
}

// nameKey is the form of a name that uniqueness and name filters compare.
func nameKey(name string) string { return strings.ToLower(name) }

// Times are stored as microseconds since the Unix epoch, UTC; the zero time is NULL.

func timeArg(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

func timeOf(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.UnixMicro(n.Int64).UTC()
}

// Optional references are stored as NULL when empty, so foreign keys skip them.

func stringArg(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// Byte fields are stored as NULL when empty and read back as nil.

func bytesArg(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

func bytesOf(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// where builds the WHERE clause of a list query.
type where struct {
	conds []string
	args  []any
}

func (w *where) add(cond string, args ...any) {
	w.conds = append(w.conds, cond)
	w.args = append(w.args, args...)
}

func (w *where) String() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface {
	Scan(dest ...any) error
}

// list runs a keyset-paged query (which must end in LIMIT ? and is given the limit as its
// last argument) and scans every row with scan. It reads one row more than the page holds to
// learn whether another page follows, whose After is then next(last item).
func list[T any](ctx context.Context, t *tx, opt store.ListOptions, query string, args []any,
	scan func(scanner) (T, error), next func(T) string) (store.Page[T], error) {
	rows, err := t.query(ctx, query, append(args, opt.Limit+1)...)
	if err != nil {
		return store.Page[T]{}, err
	}
	defer rows.Close()
	items := make([]T, 0, min(opt.Limit, 64))
	for rows.Next() {
		item, err := scan(rows)
		if err != nil {
			return store.Page[T]{}, err
		}
		items = append(items, item)
	}
	if err := rows.Err(); err != nil {
		return store.Page[T]{}, err
	}
	var p store.Page[T]
	if len(items) > opt.Limit {
		items = items[:opt.Limit]
		p.Next = next(items[len(items)-1])
	}
	p.Items = items
	return p, nil
}

func isNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }
