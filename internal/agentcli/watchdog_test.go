package agentcli

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/rampart-iot/rampart/api/v1"
)

// TestWatchdogResetReportedOncePerBoot: a watchdog whose bootstatus has WDIOF_CARDRESET makes the
// agent queue a WatchdogReset at start, once per boot (an agent restart in the same boot does not
// repeat it, the next boot's does); without the flag, nothing.
func TestWatchdogResetReportedOncePerBoot(t *testing.T) {
	root, state := t.TempDir(), t.TempDir()
	oldSys, oldBoot := sysRoot, bootIDFile
	sysRoot, bootIDFile = root, filepath.Join(root, "boot_id")
	t.Cleanup(func() { sysRoot, bootIDFile = oldSys, oldBoot })
	write := func(p, v string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	status := filepath.Join(root, "class", "watchdog", "watchdog0", "bootstatus")
	write(status, "0\n")
	write(bootIDFile, "boot-1\n")
	count := func() int {
		t.Helper()
		r, err := openReporter(state, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		r.started(state)
		evs, _ := r.q.Peek(100)
		r.stopped(state)
		n := 0
		for _, e := range evs {
			if e.Type == v1.EventWatchdogReset {
				n++
			}
		}
		return n
	}
	if n := count(); n != 0 {
		t.Fatalf("without WDIOF_CARDRESET: %d reports", n)
	}
	write(status, "32\n") // WDIOF_CARDRESET
	if n := count(); n != 1 {
		t.Fatalf("after a watchdog reset: %d reports, want 1", n)
	}
	if n := count(); n != 1 {
		t.Fatalf("an agent restart in the same boot: %d reports, want still 1", n)
	}
	write(bootIDFile, "boot-2\n")
	if n := count(); n != 2 {
		t.Fatalf("the next boot, reset again: %d reports, want 2", n)
	}
}
