package storetest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/internal/store"
)

// concurrently runs fn(0) ... fn(n-1) in n goroutines, started together, and returns their
// errors. It fails the test if they take so long that they must be deadlocked.
func concurrently(t *testing.T, n int, fn func(ctx context.Context, i int) error) []error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = fn(ctx, i)
		})
	}
	close(start)
	wg.Wait()
	if ctx.Err() != nil {
		t.Fatalf("%d goroutines did not finish in time: deadlock?", n)
	}
	return errs
}

func testConcurrentCreates(t *testing.T, s store.Store) {
	w := newWorld(t, s)
	const n = 16
	// Readers list all along; they must neither fail nor block the writers.
	stop := make(chan struct{})
	readErr := make(chan error, 1)
	go func() {
		defer close(readErr)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := s.ListProducts(t.Context(), w.a.ID, store.ProductFilter{}, store.ListOptions{}); err != nil {
				readErr <- err
				return
			}
		}
	}()
	errs := concurrently(t, n, func(ctx context.Context, i int) error {
		return s.CreateProduct(ctx, newProduct(w.a.ID, fmt.Sprintf("prod-%02d", i), fmt.Sprintf("Product %d", i)))
	})
	close(stop)
	for i, err := range errs {
		if err != nil {
			t.Errorf("create product %d: %v", i, err)
		}
	}
	if err := <-readErr; err != nil {
		t.Errorf("list products during the writes: %v", err)
	}
	p, err := s.ListProducts(t.Context(), w.a.ID, store.ProductFilter{}, store.ListOptions{})
	must(t, err)
	if len(p.Items) != n {
		t.Errorf("%d products listed, want %d", len(p.Items), n)
	}
}

// caseVariant returns name with the case of its letters flipped by the bits of i.
func caseVariant(name string, i int) string {
	b := []byte(strings.ToLower(name))
	for j := range b {
		if i&(1<<j) != 0 {
			b[j] = strings.ToUpper(string(b[j]))[0]
		}
	}
	return string(b)
}

func testConcurrentSameName(t *testing.T, s store.Store) {
	w := newWorld(t, s)
	const n = 16
	errs := concurrently(t, n, func(ctx context.Context, i int) error {
		return s.CreateProduct(ctx, newProduct(w.a.ID, fmt.Sprintf("prod-%02d", i), caseVariant("widget", i)))
	})
	ok := 0
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, store.ErrConflict):
			t.Errorf("create product %d: got %v, want nil or ErrConflict", i, err)
		}
	}
	if ok != 1 {
		t.Errorf("%d products named widget were created, want 1", ok)
	}
	p, err := s.ListProducts(t.Context(), w.a.ID, store.ProductFilter{}, store.ListOptions{})
	must(t, err)
	if len(p.Items) != 1 {
		t.Errorf("%d products listed, want 1", len(p.Items))
	}

	// The same holds for names unique within a product and globally.
	errs = concurrently(t, n, func(ctx context.Context, i int) error {
		return s.CreateTenant(ctx, store.Tenant{ID: fmt.Sprintf("tenant-%02d", i), Name: caseVariant("northwind", i)})
	})
	if ok := countNil(t, errs, store.ErrConflict); ok != 1 {
		t.Errorf("%d tenants named northwind were created, want 1", ok)
	}
	errs = concurrently(t, n, func(ctx context.Context, i int) error {
		return s.CreateUser(ctx, store.User{ID: fmt.Sprintf("user-%02d", i), Name: caseVariant("carol", i)})
	})
	if ok := countNil(t, errs, store.ErrConflict); ok != 1 {
		t.Errorf("%d users named carol were created, want 1", ok)
	}
	productID := p.Items[0].ID
	errs = concurrently(t, n, func(ctx context.Context, i int) error {
		return s.CreateDeviceGroup(ctx, newGroup(w.a.ID, productID, fmt.Sprintf("group-%02d", i), caseVariant("field", i)))
	})
	if ok := countNil(t, errs, store.ErrConflict); ok != 1 {
		t.Errorf("%d groups named field were created, want 1", ok)
	}
}

// countNil counts the nil errors, and fails the test if any other is not want.
func countNil(t *testing.T, errs []error, want error) int {
	t.Helper()
	n := 0
	for i, err := range errs {
		switch {
		case err == nil:
			n++
		case !errors.Is(err, want):
			t.Errorf("goroutine %d: got %v, want nil or %v", i, err, want)
		}
	}
	return n
}

func testConcurrentClaims(t *testing.T, s store.Store) {
	ctx := t.Context()
	const n = 8
	for i := range n {
		must(t, s.CreateTenant(ctx, store.Tenant{ID: fmt.Sprintf("tenant-%d", i), Name: fmt.Sprintf("Tenant %d", i)}))
	}
	claimed := make([]bool, n)
	errs := concurrently(t, n, func(ctx context.Context, i int) error {
		d := newDevice(fmt.Sprintf("tenant-%d", i), "", 1)
		d.AgentVersion = strconv.Itoa(i)
		var err error
		_, claimed[i], err = s.ClaimDevice(ctx, d)
		return err
	})
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && claimed[i]:
			if winner >= 0 {
				t.Errorf("tenants %d and %d both claimed the device", winner, i)
			}
			winner = i
		case err == nil:
			t.Errorf("tenant %d: claimed=false without an error", i)
		case !errors.Is(err, store.ErrClaimedByOtherTenant):
			t.Errorf("tenant %d: got %v, want ErrClaimedByOtherTenant", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no tenant claimed the device")
	}
	for i := range n {
		d, err := s.GetDevice(ctx, fmt.Sprintf("tenant-%d", i), deviceIDOf(1))
		if i == winner {
			must(t, err)
			eq(t, d.AgentVersion, strconv.Itoa(i))
		} else {
			isErr(t, err, store.ErrNotFound)
		}
	}
}

func testConcurrentClaimsSameTenant(t *testing.T, s store.Store) {
	w := newWorld(t, s)
	const n = 8
	claimed := make([]bool, n)
	stored := make([]store.Device, n)
	errs := concurrently(t, n, func(ctx context.Context, i int) error {
		var err error
		stored[i], claimed[i], err = s.ClaimDevice(ctx, newDevice(w.a.ID, "", 1))
		return err
	})
	wins := 0
	for i, err := range errs {
		must(t, err)
		if claimed[i] {
			wins++
		}
		eq(t, stored[i], norm(newDevice(w.a.ID, "", 1)))
	}
	if wins != 1 {
		t.Errorf("the device was claimed %d times, want once", wins)
	}
}

// testConcurrentReadModifyWrite runs transactions that each read a counter and write it back
// incremented: none may lose another's increment.
func testConcurrentReadModifyWrite(t *testing.T, s store.Store) {
	w := newWorld(t, s)
	w.product(w.a.ID, "prod-1", "Counter")
	must(t, s.UpdateProduct(t.Context(), store.Product{ID: "prod-1", TenantID: w.a.ID, Name: "Counter", Description: "0"}))
	const n, rounds = 16, 5
	errs := concurrently(t, n, func(ctx context.Context, i int) error {
		for range rounds {
			err := s.Update(ctx, func(tx store.Tx) error {
				p, err := tx.GetProduct(ctx, w.a.ID, "prod-1")
				if err != nil {
					return err
				}
				v, err := strconv.Atoi(p.Description)
				if err != nil {
					return err
				}
				p.Description = strconv.Itoa(v + 1)
				if err := tx.UpdateProduct(ctx, p); err != nil {
					return err
				}
				_, err = tx.AppendAudit(ctx, store.AuditEntry{TenantID: w.a.ID, Action: "count", ResourceID: p.Description})
				return err
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("goroutine %d: %v", i, err)
		}
	}
	p, err := s.GetProduct(t.Context(), w.a.ID, "prod-1")
	must(t, err)
	if p.Description != strconv.Itoa(n*rounds) {
		t.Errorf("counter = %s after %d increments", p.Description, n*rounds)
	}
	// Each increment saw the value the one before wrote.
	seen := map[string]bool{}
	a, err := s.ListAudit(t.Context(), store.AuditFilter{TenantID: w.a.ID, Action: "count"}, store.ListOptions{})
	must(t, err)
	for _, e := range a.Items {
		if seen[e.ResourceID] {
			t.Errorf("two transactions wrote counter value %s", e.ResourceID)
		}
		seen[e.ResourceID] = true
	}
}

// testConcurrentCrossedUpdates runs transactions that update the same two records in
// opposite orders, which deadlocks a store that locks rows one by one.
func testConcurrentCrossedUpdates(t *testing.T, s store.Store) {
	w := newWorld(t, s)
	w.product(w.a.ID, "prod-1", "One")
	w.product(w.a.ID, "prod-2", "Two")
	errs := concurrently(t, 8, func(ctx context.Context, i int) error {
		order := []string{"prod-1", "prod-2"}
		if i%2 == 1 {
			order = []string{"prod-2", "prod-1"}
		}
		for round := range 5 {
			err := s.Update(ctx, func(tx store.Tx) error {
				for _, id := range order {
					p, err := tx.GetProduct(ctx, w.a.ID, id)
					if err != nil {
						return err
					}
					p.Description = fmt.Sprintf("%d/%d", i, round)
					if err := tx.UpdateProduct(ctx, p); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("goroutine %d: %v", i, err)
		}
	}
	p1, err := s.GetProduct(t.Context(), w.a.ID, "prod-1")
	must(t, err)
	p2, err := s.GetProduct(t.Context(), w.a.ID, "prod-2")
	must(t, err)
	if p1.Description != p2.Description {
		t.Errorf("transactions interleaved: %q and %q", p1.Description, p2.Description)
	}
}
