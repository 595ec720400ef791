package agentcli

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/internal/eventqueue"
)

// TestFailedStartReleasesWhatItOpened: a start that fails late, after it opened the
// error-report queue, the board and the application supervisor (here on a missing
// --update-root), releases them, so the queue's lock is free for the next start in the same
// process.
func TestFailedStartReleasesWhatItOpened(t *testing.T) {
	dir := t.TempDir()
	f := &runFlags{state: dir, board: "emulated", kernelAudit: "off", updateRoot: filepath.Join(dir, "no-such-root.json")}
	_, err := newUpdates(t.Context(), f, nil, nil, nil, nil, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "--update-root") {
		t.Fatalf("newUpdates with a missing --update-root: %v, want its error", err)
	}
	q, err := eventqueue.Open(eventqueue.Config{Dir: filepath.Join(dir, eventsDir)})
	if err != nil {
		t.Fatalf("the failed start kept the error-report queue: %v", err)
	}
	q.Close()
}

// TestBadKernelAuditFlagOpensNothing: --kernel-audit is checked before anything is opened.
func TestBadKernelAuditFlagOpensNothing(t *testing.T) {
	dir := t.TempDir()
	f := &runFlags{state: dir, board: "emulated", kernelAudit: "sideways"}
	_, err := newUpdates(t.Context(), f, nil, nil, nil, nil, slog.New(slog.DiscardHandler))
	var usage *usageError
	if !errors.As(err, &usage) || !strings.Contains(err.Error(), "--kernel-audit") {
		t.Fatalf("newUpdates with --kernel-audit sideways: %v, want a usage error", err)
	}
	if entries, _ := filepath.Glob(filepath.Join(dir, "*")); len(entries) != 0 {
		t.Fatalf("a refused flag left %v in the state directory", entries)
	}
}

// TestUpdateLoopWaitsForACertificate: a device that holds no certificate yet does not check in
// (it would go out without a client certificate and fail) until an attestation installs one.
func TestUpdateLoopWaitsForACertificate(t *testing.T) {
	u := &updates{stateDir: t.TempDir(), firstCert: make(chan struct{})}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if u.waitForCertificate(ctx) {
		t.Fatal("waited for nothing: no certificate, and no attestation installed one")
	}
	done := make(chan bool)
	go func() { done <- u.waitForCertificate(t.Context()) }()
	select {
	case <-done:
		t.Fatal("returned before an attestation installed a certificate")
	case <-time.After(50 * time.Millisecond):
	}
	u.certificateInstalled()
	u.certificateInstalled() // a later attestation: no second close
	if !<-done {
		t.Fatal("an installed certificate did not end the wait")
	}
	if !u.waitForCertificate(t.Context()) {
		t.Fatal("a later wait did not return at once")
	}
}
