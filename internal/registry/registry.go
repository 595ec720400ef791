// Package registry is the name-keyed registry of built-in backends that each extension point
// (store, blob store, root of trust, boot control) keeps: backends register from init, and
// callers look them up by name. It trusts its callers; it only guards the map.
package registry

import (
	"fmt"
	"sort"
	"strings"
	"sync"
)

// Registry maps names to values of type T (usually a backend's open function). The zero value
// is not usable; make one with New.
type Registry[T any] struct {
	what string // "store backend", "root of trust", ... for messages
	mu   sync.Mutex
	m    map[string]T
}

// New returns an empty registry of what (used in panics and errors).
func New[T any](what string) *Registry[T] {
	return &Registry[T]{what: what, m: map[string]T{}}
}

// Register adds v under name; registering a name twice panics, as it is a programming error.
func (r *Registry[T]) Register(name string, v T) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.m[name]; dup {
		panic(r.what + " registered twice: " + name)
	}
	r.m[name] = v
}

// Names lists the registered names, sorted.
func (r *Registry[T]) Names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	names := make([]string, 0, len(r.m))
	for n := range r.m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Lookup returns the value registered under name, or an error that lists the known names.
func (r *Registry[T]) Lookup(name string) (T, error) {
	r.mu.Lock()
	v, ok := r.m[name]
	r.mu.Unlock()
	if !ok {
		return v, fmt.Errorf("unknown %s %q (known: %s)", r.what, name, strings.Join(r.Names(), ", "))
	}
	return v, nil
}
