package agentcli

import (
	"errors"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/rampart-iot/rampart/internal/eventqueue"
)

// TestFailedStartReleasesWhatItOpened: a start that fails after it opened the error-report
// queue and the board (here on a bad --kernel-audit) releases them, so the queue's lock is
// free for the next start in the same process.
func TestFailedStartReleasesWhatItOpened(t *testing.T) {
	dir := t.TempDir()
	f := &runFlags{state: dir, board: "emulated", kernelAudit: "sideways"}
	_, err := newUpdates(t.Context(), f, nil, nil, nil, nil, slog.New(slog.DiscardHandler))
	var usage *usageError
	if !errors.As(err, &usage) {
		t.Fatalf("newUpdates with --kernel-audit sideways: %v, want a usage error", err)
	}
	q, err := eventqueue.Open(eventqueue.Config{Dir: filepath.Join(dir, eventsDir)})
	if err != nil {
		t.Fatalf("the failed start kept the error-report queue: %v", err)
	}
	q.Close()
}
