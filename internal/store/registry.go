package store

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// Opener opens a backend from a data source name, applying any pending migrations.
type Opener func(ctx context.Context, dsn string) (Store, error)

var (
	registryMu sync.Mutex
	registry   = map[string]Opener{}
)

// Register makes a backend available under name. Backends call it from init; registering a
// name twice panics, as it is a programming error.
func Register(name string, open Opener) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[name]; dup {
		panic("store: backend registered twice: " + name)
	}
	registry[name] = open
}

// Backends lists the registered backend names, sorted.
func Backends() []string {
	registryMu.Lock()
	defer registryMu.Unlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Open opens the named backend.
func Open(ctx context.Context, backend, dsn string) (Store, error) {
	registryMu.Lock()
	open, ok := registry[backend]
	registryMu.Unlock()
	if !ok {
		return nil, fmt.Errorf("unknown store backend %q (known: %s)", backend, strings.Join(Backends(), ", "))
	}
	return open(ctx, dsn)
}
