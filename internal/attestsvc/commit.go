package attestsvc

import (
	"context"
	"errors"
	"sync"

	"github.com/rampart-iot/rampart/internal/store"
)

// committer writes the outcomes of concurrent attestations in shared transactions (group
// commit): while one transaction commits, the next attestations queue, and the next
// transaction takes all of them. An idle service commits at once; a busy one pays one fsync for
// many attestations. Each job's own error (such as a replayed nonce) is its own; an error of the
// transaction fails every job in it.
type committer struct {
	st   store.Store
	jobs chan *job
	once sync.Once
	max  int
}

type job struct {
	ctx  context.Context
	fn   func(tx store.Tx) error // a sentinel error from the store leaves tx usable
	err  error
	done chan struct{}
}

func newCommitter(st store.Store) *committer {
	return &committer{st: st, jobs: make(chan *job, 1024), max: 256}
}

// do runs fn in a shared transaction and returns fn's error, or the transaction's.
func (c *committer) do(ctx context.Context, fn func(tx store.Tx) error) error {
	c.once.Do(func() { go c.loop() })
	j := &job{ctx: ctx, fn: fn, done: make(chan struct{})}
	select {
	case c.jobs <- j:
	case <-ctx.Done():
		return ctx.Err()
	}
	<-j.done // a job in flight is always answered, so its outcome is known
	return j.err
}

func (c *committer) loop() {
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
