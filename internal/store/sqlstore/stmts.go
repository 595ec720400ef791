package sqlstore

import (
	"context"
	"database/sql"
	"sync"
)

// stmts caches prepared statements for one pool, keyed by their (rebound) text, so a query is
// parsed once per connection instead of on every call. Queries are constant strings of this
// package (filters choose among a few fixed forms), so the cache is bounded by the code.
type stmts struct {
	db *sql.DB
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

func newStmts(db *sql.DB) *stmts { return &stmts{db: db, m: map[string]*sql.Stmt{}} }

func (c *stmts) get(ctx context.Context, query string) (*sql.Stmt, error) {
	c.mu.Lock()
	st, ok := c.m[query]
	c.mu.Unlock()
	if ok {
		return st, nil
	}
	st, err := c.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[query]; ok { // another caller won the race
		st.Close()
		return old, nil
	}
	c.m[query] = st
	return st, nil
}

func (c *stmts) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.m {
		st.Close()
	}
	c.m = map[string]*sql.Stmt{}
	return nil
}

// prepared runs queries, outside any transaction, through a statement cache.
type prepared struct {
	cache *stmts
}

func (p prepared) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	return p.cache.get(ctx, query)
}

func (p prepared) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, err := p.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

func (p prepared) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := p.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// QueryRowContext returns a row whose Scan reports a preparation error, as sql.DB's does.
func (p prepared) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := p.stmt(ctx, query)
	if err != nil {
		// A failed preparation surfaces on Scan, the only way a *sql.Row can carry an error.
		return p.cache.db.QueryRowContext(ctx, query, args...)
	}
	return st.QueryRowContext(ctx, args...)
}

// maxWriteStmts bounds the write statement cache; queries past it run unprepared.
const maxWriteStmts = 512

// writeStmts caches the prepared statements of write transactions. A transaction holds a writer
// connection while its statements run, and SQLite's writer pool has only that one, so a
// statement cannot be prepared on the pool from inside a transaction (it would wait for its
// own connection). Instead a transaction runs a statement the cache lacks unprepared and marks
// it wanted, and the next transaction prepares what is wanted before it begins; inside a
// transaction a cached statement is bound to it with Tx.StmtContext, which reuses what the
// connection already prepared.
type writeStmts struct {
	db     *sql.DB
	mu     sync.Mutex
	m      map[string]*sql.Stmt // nil: could not be prepared; it runs unprepared
	wanted map[string]bool
}

func newWriteStmts(db *sql.DB) *writeStmts {
	return &writeStmts{db: db, m: map[string]*sql.Stmt{}, wanted: map[string]bool{}}
}

// lookup returns query's prepared statement, or nil after marking it wanted.
func (c *writeStmts) lookup(query string) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, ok := c.m[query]
	if !ok && len(c.m)+len(c.wanted) < maxWriteStmts {
		c.wanted[query] = true
	}
	return st
}

// prepareWanted prepares the wanted statements. It must not run inside a write transaction.
// A statement the database refuses to prepare is remembered as such and runs unprepared; one
// whose preparation was cut short by ctx is wanted again. Statements are closed only with c.mu
// released: closing one takes its connection's lock, which a transaction may hold while it
// waits for the write lock, whose holder may be waiting for c.mu in lookup.
func (c *writeStmts) prepareWanted(ctx context.Context) {
	c.mu.Lock()
	if len(c.wanted) == 0 {
		c.mu.Unlock()
		return
	}
	queries := make([]string, 0, len(c.wanted))
	for q := range c.wanted {
		queries = append(queries, q)
	}
	clear(c.wanted) // claimed: another transaction does not prepare them too
	c.mu.Unlock()
	for i, q := range queries {
		st, err := c.db.PrepareContext(ctx, q)
		if err != nil && ctx.Err() != nil {
			c.mu.Lock()
			for _, q := range queries[i:] {
				c.wanted[q] = true
			}
			c.mu.Unlock()
			return
		}
		c.mu.Lock()
		_, dup := c.m[q]
		keep := !dup && c.m != nil // c.m is nil once closed
		if keep {
			c.m[q] = st // nil if err != nil
		}
		c.mu.Unlock()
		if !keep && st != nil {
			st.Close()
		}
	}
}

func (c *writeStmts) close() error {
	c.mu.Lock()
	m := c.m
	c.m, c.wanted = nil, map[string]bool{}
	c.mu.Unlock()
	for _, st := range m {
		if st != nil {
			st.Close()
		}
	}
	return nil
}

// inTx runs a write transaction's queries through the write statement cache.
type inTx struct {
	tx    *sql.Tx
	cache *writeStmts
}

func (q inTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := q.cache.lookup(query); st != nil {
		return q.tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return q.tx.ExecContext(ctx, query, args...)
}

func (q inTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := q.cache.lookup(query); st != nil {
		return q.tx.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	return q.tx.QueryContext(ctx, query, args...)
}

func (q inTx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := q.cache.lookup(query); st != nil {
		return q.tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return q.tx.QueryRowContext(ctx, query, args...)
}
