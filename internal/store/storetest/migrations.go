package storetest

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/rampart-iot/rampart/internal/store"
)

// RunMigrations checks the migrations of a backend on dsn, an empty database: stores opened
// at once all migrate it without error, opening it again is idempotent and keeps the data,
// and once bumpVersion has recorded schema version 9999 in it, opening it fails with
// store.ErrSchemaTooNew.
func RunMigrations(t *testing.T, backend, dsn string, bumpVersion func(t *testing.T)) {
	ctx := t.Context()
	const n = 4
	stores := make([]store.Store, n)
	errs := concurrently(t, n, func(ctx context.Context, i int) error {
		var err error
		stores[i], err = store.Open(ctx, backend, dsn)
		return err
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("open %d of %d at once: %v", i+1, n, err)
		}
	}
	must(t, stores[0].CreateTenant(ctx, store.Tenant{ID: "tenant-a", Name: "Contoso"}))
	for _, s := range stores {
		_, err := s.GetTenant(ctx, "tenant-a")
		must(t, err)
		must(t, s.Ping(ctx))
		must(t, s.Close())
	}

	s, err := store.Open(ctx, backend, dsn)
	must(t, err)
	_, err = s.GetTenant(ctx, "tenant-a")
	must(t, err)
	must(t, s.Close())

	bumpVersion(t)
	s, err = store.Open(ctx, backend, dsn)
	if err == nil {
		s.Close()
		t.Fatal("opened a database with a newer schema")
	}
	if !errors.Is(err, store.ErrSchemaTooNew) || !strings.Contains(err.Error(), "9999") {
		t.Fatalf("got %v, want ErrSchemaTooNew naming version 9999", err)
	}
}
