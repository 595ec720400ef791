// Package groupcommit writes the work of concurrent requests in shared store transactions
// (group commit): while one transaction commits, the next requests queue, and the next
// transaction takes all of them. An idle service commits at once; a busy one pays one fsync for
// many requests. Each job's own error (such as a replayed nonce) is its own; an error of the
// transaction fails every job in it. A job is answered only once its transaction committed or
// failed, so what a caller acknowledges is durable.
//
// Trust: it trusts the store and the jobs it is given.
package groupcommit

import (
	"context"
	"errors"
	"sync"

	"github.com/rampart-iot/rampart/internal/store"
)

// DefaultMax bounds the jobs in one transaction.
const DefaultMax = 256

// Committer groups jobs into transactions. Its goroutine starts with the first job and lives as
// long as the process.
type Committer struct {
	st   store.Store
	jobs chan *job
	once sync.Once
	max  int
}

type job struct {
	fn   func(tx store.Tx) error // a sentinel error from the store leaves tx usable
	err  error
	done chan struct{}
}

// New returns a Committer over st with at most max jobs per transaction (DefaultMax if max
// is not positive).
func New(st store.Store, max int) *Committer {
	if max <= 0 {
		max = DefaultMax
	}
	return &Committer{st: st, jobs: make(chan *job, 1024), max: max}
}

// Do runs fn in a shared transaction and returns fn's error, or the transaction's. fn must
// work through tx only, and may run after ctx ended if it was queued before.
func (c *Committer) Do(ctx context.Context, fn func(tx store.Tx) error) error {
	c.once.Do(func() { go c.loop() })
	j := &job{fn: fn, done: make(chan struct{})}
	select {
	case c.jobs <- j:
	case <-ctx.Done():
		return ctx.Err()
	}
	<-j.done // a job in flight is always answered, so its outcome is known
	return j.err
}

func (c *Committer) loop() {
	for first := range c.jobs {
		batch := []*job{first}
	drain:
		for len(batch) < c.max {
			select {
			case j := <-c.jobs:
				batch = append(batch, j)
			default:
				break drain
			}
		}
		err := c.st.Update(context.Background(), func(tx store.Tx) error {
			for _, j := range batch {
				j.err = j.fn(tx)
				if j.err != nil && !isSentinel(j.err) {
					return j.err
				}
			}
			return nil
		})
		for _, j := range batch {
			if err != nil {
				j.err = err
			}
			close(j.done)
		}
	}
}

// isSentinel reports whether err is a store check that leaves the transaction usable.
func isSentinel(err error) bool {
	for _, s := range []error{store.ErrConflict, store.ErrNotFound} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}
