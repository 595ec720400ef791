//go:build !cgo

package tpmrot

import (
	"context"
	"testing"

	"github.com/rampart-iot/rampart/internal/rot"
)

// TestNoSimWithoutCgo: a CGO_ENABLED=0 build has no "tpm-sim" backend, and says which exist.
func TestNoSimWithoutCgo(t *testing.T) {
	if _, err := rot.Open(context.Background(), NameSim, t.TempDir()); err == nil {
		t.Fatal("tpm-sim opened without cgo")
	}
}
