package store

import (
	"context"

	"github.com/rampart-iot/rampart/internal/registry"
)

// Opener opens a backend from a data source name, applying any pending migrations.
type Opener func(ctx context.Context, dsn string) (Store, error)

var backends = registry.New[Opener]("store backend")

// Register makes a backend available under name. Backends call it from init; registering a
// name twice panics, as it is a programming error.
func Register(name string, open Opener) { backends.Register(name, open) }

// Backends lists the registered backend names, sorted.
func Backends() []string { return backends.Names() }

// Open opens the named backend.
func Open(ctx context.Context, backend, dsn string) (Store, error) {
	open, err := backends.Lookup(backend)
	if err != nil {
		return nil, err
	}
	return open(ctx, dsn)
}
