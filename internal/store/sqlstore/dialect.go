package sqlstore

import (
	"errors"
	"io/fs"
	"strconv"
	"strings"
)

// Dialect is what differs between the SQL databases behind the store. Everything else, every
// query included, is shared.
type Dialect struct {
	// Name names the backend in error messages, such as "sqlite".
	Name string
	// NumberedPlaceholders makes queries use $1, $2, ... (PostgreSQL) instead of ?.
	NumberedPlaceholders bool
	// Migrations holds the schema, as files named NNNN_description.sql at its root, numbered
	// from 0001 without gaps. Each runs in its own transaction.
	Migrations fs.FS
	// WriteLock, if not empty, is run first in every write transaction and every migration to
	// run them one at a time, across processes too. SQLite needs none: its single writer
	// connection and BEGIN IMMEDIATE already serialize writes.
	WriteLock string
	// IsUniqueViolation reports whether err is the violation of a uniqueness constraint.
	IsUniqueViolation func(error) bool
	// IsForeignKeyViolation reports whether err is the violation of a foreign key.
	IsForeignKeyViolation func(error) bool
	// FailedStatementKeepsTx says a statement that fails on a constraint undoes only itself and
	// leaves its transaction usable (SQLite). Where it aborts the whole transaction
	// (PostgreSQL), rules are checked with queries before the statement that would break them.
	FailedStatementKeepsTx bool
}

func (d *Dialect) validate() error {
	var errs []error
	if d.Name == "" {
		errs = append(errs, errors.New("dialect has no name"))
	}
	if d.Migrations == nil {
		errs = append(errs, errors.New("dialect has no migrations"))
	}
	if d.IsUniqueViolation == nil || d.IsForeignKeyViolation == nil {
		errs = append(errs, errors.New("dialect cannot classify constraint violations"))
	}
	return errors.Join(errs...)
}

// rebind rewrites the ? placeholders of query for the dialect. Queries are written by this
// package, never with a ? inside a literal or identifier, so a plain scan suffices.
func (d *Dialect) rebind(query string) string {
	if !d.NumberedPlaceholders || !strings.Contains(query, "?") {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 8)
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] != '?' {
			b.WriteByte(query[i])
			continue
		}
		n++
		b.WriteByte('$')
		b.WriteString(strconv.Itoa(n))
	}
	return b.String()
}
