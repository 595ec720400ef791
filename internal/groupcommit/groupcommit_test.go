package groupcommit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/internal/store"
	"github.com/rampart-iot/rampart/internal/store/storetest"
)

func TestJobsShareTransactionsAndKeepTheirErrors(t *testing.T) {
	ctx := t.Context()
	st := storetest.Open(t, "sqlite", storetest.SQLiteDSN(t))
	c := New(st, 0)
	now := time.Now().UTC().Truncate(time.Microsecond)
	const n = 64
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Every other job makes the same tenant: exactly one of those succeeds, and the
			// others' ErrConflict is their own.
			id := fmt.Sprintf("t%d", i)
			if i%2 == 1 {
				id = "same"
			}
			errs[i] = c.Do(ctx, func(tx store.Tx) error {
				return tx.CreateTenant(ctx, store.Tenant{ID: id, Name: id, CreatedAt: now})
			})
		}()
	}
	wg.Wait()
	conflicts := 0
	for i, err := range errs {
		switch {
		case err == nil:
		case errors.Is(err, store.ErrConflict) && i%2 == 1:
			conflicts++
		default:
			t.Fatalf("job %d: %v", i, err)
		}
	}
	if conflicts != n/2-1 {
		t.Fatalf("%d conflicts, want %d", conflicts, n/2-1)
	}
	for i := 0; i < n; i += 2 {
		if _, err := st.GetTenant(ctx, fmt.Sprintf("t%d", i)); err != nil {
			t.Fatalf("job %d's write is not durable: %v", i, err)
		}
	}
	// A job that fails the transaction fails it, nothing of it is kept, and the committer goes on.
	boom := errors.New("boom")
	err := c.Do(ctx, func(tx store.Tx) error {
		if err := tx.CreateTenant(ctx, store.Tenant{ID: "doomed", Name: "doomed", CreatedAt: now}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("got %v", err)
	}
	if _, err := st.GetTenant(ctx, "doomed"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a failed transaction kept its write: %v", err)
	}
	if err := c.Do(ctx, func(tx store.Tx) error { return nil }); err != nil {
		t.Fatal(err)
	}
	// A caller whose context ended before its job was queued gets the context's error.
	done, cancel := context.WithCancel(ctx)
	cancel()
	if err := New(st, 1).Do(done, func(tx store.Tx) error { return nil }); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
}
