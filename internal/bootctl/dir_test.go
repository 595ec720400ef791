package bootctl_test

import (
	"context"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampart-iot/rampart/internal/bootctl"
	"github.com/rampart-iot/rampart/internal/measure"
)

var ctx = context.Background()

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// bundle returns a write function that fills a slot with a small OS tree naming version.
func bundle(version string) func(dir string) error {
	return func(dir string) error {
		if err := os.MkdirAll(filepath.Join(dir, "etc"), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "etc", "os-release"), []byte("VERSION="+version+"\n"), 0o644); err != nil {
			return err
		}
		return os.Symlink("etc/os-release", filepath.Join(dir, "os-release"))
	}
}

// provisioned returns a dir backend with slot a holding 1.0.0, booted once.
func provisioned(t *testing.T) *bootctl.Dir {
	t.Helper()
	d, err := bootctl.OpenDir(filepath.Join(t.TempDir(), "boot"))
	must(t, err)
	must(t, d.Provision(ctx, bootctl.SlotInfo{Version: "1.0.0"}, bundle("1.0.0")))
	if s, err := d.Boot(ctx); err != nil || s != bootctl.A {
		t.Fatalf("first boot: %v, %v", s, err)
	}
	return d
}

func state(t *testing.T, d *bootctl.Dir) bootctl.State {
	t.Helper()
	st, err := d.State(ctx)
	must(t, err)
	return st
}

func boot(t *testing.T, d *bootctl.Dir, want bootctl.Slot) {
	t.Helper()
	s, err := d.Boot(ctx)
	must(t, err)
	if s != want {
		t.Fatalf("booted %s, want %s", s, want)
	}
}

func TestProvisionRecordsMeasuredDigest(t *testing.T) {
	d := provisioned(t)
	st := state(t, d)
	sum, err := measure.TreeDigest(d.Path(bootctl.A))
	must(t, err)
	if st.Active != bootctl.A || st.Booted != bootctl.A || st.Slots[bootctl.A] != (bootctl.SlotInfo{Version: "1.0.0", Digest: hex.EncodeToString(sum)}) {
		t.Fatalf("state %+v", st)
	}
	if err := d.Provision(ctx, bootctl.SlotInfo{Version: "9"}, bundle("9")); !errors.Is(err, bootctl.ErrSlotInUse) {
		t.Fatalf("second provision: %v", err)
	}
}

func TestUnprovisionedDoesNotBoot(t *testing.T) {
	d, err := bootctl.OpenDir(t.TempDir())
	must(t, err)
	if _, err := d.Boot(ctx); !errors.Is(err, bootctl.ErrNotProvisioned) {
		t.Fatalf("boot: %v", err)
	}
}

func TestNormalBootsNeverTouchTheTrialCounter(t *testing.T) {
	d := provisioned(t)
	for range 5 {
		boot(t, d, bootctl.A)
	}
	must(t, d.Install(ctx, bootctl.B, bootctl.SlotInfo{Version: "2.0.0"}, bundle("2.0.0")))
	must(t, d.StartTrial(ctx, bootctl.B, 2))
	boot(t, d, bootctl.B)
	must(t, d.Commit(ctx))
	for range 5 {
		boot(t, d, bootctl.B)
	}
	st := state(t, d)
	if st.Active != bootctl.B || st.Trial != "" || st.TriesLeft != 0 {
		t.Fatalf("state %+v", st)
	}
}

func TestTrialFallsBackWhenTriesRunOut(t *testing.T) {
	d := provisioned(t)
	must(t, d.Install(ctx, bootctl.B, bootctl.SlotInfo{Version: "2.0.0"}, bundle("2.0.0")))
	must(t, d.StartTrial(ctx, bootctl.B, 2))
	boot(t, d, bootctl.B)
	if st := state(t, d); st.TriesLeft != 1 {
		t.Fatalf("tries left after one trial boot: %d", st.TriesLeft)
	}
	boot(t, d, bootctl.B)
	boot(t, d, bootctl.A) // out of tries: the active slot
	st := state(t, d)
	if st.Active != bootctl.A || st.Trial != bootctl.B || st.TriesLeft != 0 || st.Booted != bootctl.A {
		t.Fatalf("state after fallback %+v", st)
	}
	if err := d.Commit(ctx); !errors.Is(err, bootctl.ErrNoTrial) {
		t.Fatalf("commit after fallback: %v", err)
	}
	must(t, d.Rollback(ctx))
	must(t, d.Rollback(ctx)) // idempotent
	if st := state(t, d); st.Trial != "" || st.Active != bootctl.A {
		t.Fatalf("state after rollback %+v", st)
	}
	boot(t, d, bootctl.A)
}

func TestRollbackFromTheTrialReturnsToActive(t *testing.T) {
	d := provisioned(t)
	must(t, d.Install(ctx, bootctl.B, bootctl.SlotInfo{Version: "2.0.0"}, bundle("2.0.0")))
	must(t, d.StartTrial(ctx, bootctl.B, 3))
	boot(t, d, bootctl.B)
	must(t, d.Rollback(ctx))
	if st := state(t, d); st.Next() != bootctl.A {
		t.Fatalf("next boot %q", st.Next())
	}
	boot(t, d, bootctl.A)
}

func TestCommitIsIdempotentOnlyOnTheActiveSlot(t *testing.T) {
	d := provisioned(t)
	must(t, d.Commit(ctx)) // nothing armed, booted active
	must(t, d.Install(ctx, bootctl.B, bootctl.SlotInfo{Version: "2.0.0"}, bundle("2.0.0")))
	must(t, d.StartTrial(ctx, bootctl.B, 1))
	if err := d.Commit(ctx); !errors.Is(err, bootctl.ErrNoTrial) {
		t.Fatalf("commit before booting the trial: %v", err)
	}
}

func TestInstallRefusesSlotsInUse(t *testing.T) {
	d := provisioned(t)
	if err := d.Install(ctx, bootctl.A, bootctl.SlotInfo{Version: "2"}, bundle("2")); !errors.Is(err, bootctl.ErrSlotInUse) {
		t.Fatalf("install into the active slot: %v", err)
	}
	must(t, d.Install(ctx, bootctl.B, bootctl.SlotInfo{Version: "2"}, bundle("2")))
	must(t, d.StartTrial(ctx, bootctl.B, 3))
	if err := d.Install(ctx, bootctl.B, bootctl.SlotInfo{Version: "3"}, bundle("3")); !errors.Is(err, bootctl.ErrSlotInUse) {
		t.Fatalf("install into the armed slot: %v", err)
	}
	boot(t, d, bootctl.B)
	must(t, d.Rollback(ctx))
	if err := d.Install(ctx, bootctl.B, bootctl.SlotInfo{Version: "3"}, bundle("3")); !errors.Is(err, bootctl.ErrSlotInUse) {
		t.Fatalf("install into the booted slot: %v", err)
	}
	if err := d.Install(ctx, "c", bootctl.SlotInfo{}, bundle("3")); err == nil {
		t.Fatal("install into slot c")
	}
}

func TestStartTrialChecks(t *testing.T) {
	d := provisioned(t)
	for _, tc := range []struct {
		slot  bootctl.Slot
		tries int
		want  error
	}{
		{bootctl.A, 1, bootctl.ErrSlotInUse},
		{bootctl.B, 1, bootctl.ErrNotInstalled},
		{bootctl.B, 0, nil},
		{bootctl.B, bootctl.MaxTries + 1, nil},
	} {
		err := d.StartTrial(ctx, tc.slot, tc.tries)
		if err == nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("StartTrial(%s, %d) = %v, want %v", tc.slot, tc.tries, err, tc.want)
		}
	}
	must(t, d.Install(ctx, bootctl.B, bootctl.SlotInfo{Version: "2"}, bundle("2")))
	must(t, d.StartTrial(ctx, bootctl.B, 1))
	boot(t, d, bootctl.B)
	if err := d.StartTrial(ctx, bootctl.B, 1); !errors.Is(err, bootctl.ErrNotActive) {
		t.Fatalf("re-arming from the trial: %v", err)
	}
}

func TestFailedInstallLeavesTheSlotUnselectable(t *testing.T) {
	d := provisioned(t)
	must(t, d.Install(ctx, bootctl.B, bootctl.SlotInfo{Version: "2"}, bundle("2")))
	// A second install fails half-way: the slot's old record is gone and nothing is armed.
	err := d.Install(ctx, bootctl.B, bootctl.SlotInfo{Version: "3"}, func(dir string) error {
		_ = os.WriteFile(filepath.Join(dir, "half"), []byte("x"), 0o644)
		return errors.New("disk full")
	})
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("install: %v", err)
	}
	st := state(t, d)
	if st.Installed(bootctl.B) {
		t.Fatalf("half-written slot recorded: %+v", st)
	}
	if err := d.StartTrial(ctx, bootctl.B, 1); !errors.Is(err, bootctl.ErrNotInstalled) {
		t.Fatalf("arming a half-written slot: %v", err)
	}
	if _, err := os.Stat(d.Path(bootctl.B) + ".staging"); !os.IsNotExist(err) {
		t.Fatalf("staging left behind: %v", err)
	}
}

func TestInstallChecksTheDigest(t *testing.T) {
	d := provisioned(t)
	err := d.Install(ctx, bootctl.B, bootctl.SlotInfo{Version: "2", Digest: strings.Repeat("00", 32)}, bundle("2"))
	if !errors.Is(err, bootctl.ErrDigest) {
		t.Fatalf("install: %v", err)
	}
	if state(t, d).Installed(bootctl.B) {
		t.Fatal("slot with the wrong digest recorded")
	}
	// The right digest is accepted.
	ref := t.TempDir()
	must(t, bundle("2")(ref))
	sum, _ := measure.TreeDigest(ref)
	must(t, d.Install(ctx, bootctl.B, bootctl.SlotInfo{Version: "2", Digest: hex.EncodeToString(sum)}, bundle("2")))
}

func TestInstallReplacesOldContents(t *testing.T) {
	d := provisioned(t)
	must(t, d.Install(ctx, bootctl.B, bootctl.SlotInfo{Version: "2"}, func(dir string) error {
		return os.WriteFile(filepath.Join(dir, "only-in-2"), nil, 0o644)
	}))
	must(t, d.Install(ctx, bootctl.B, bootctl.SlotInfo{Version: "3"}, bundle("3")))
	if _, err := os.Stat(filepath.Join(d.Path(bootctl.B), "only-in-2")); !os.IsNotExist(err) {
		t.Fatalf("old contents survived: %v", err)
	}
	if v := state(t, d).Slots[bootctl.B].Version; v != "3" {
		t.Fatalf("version %q", v)
	}
}

func TestStateSurvivesReopenAndStepsAreReported(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "boot")
	d, err := bootctl.OpenDir(dir)
	must(t, err)
	var steps []string
	d.Step = func(s string) { steps = append(steps, s) }
	must(t, d.Provision(ctx, bootctl.SlotInfo{Version: "1"}, bundle("1")))
	boot(t, d, bootctl.A)
	must(t, d.Install(ctx, bootctl.B, bootctl.SlotInfo{Version: "2"}, bundle("2")))
	must(t, d.StartTrial(ctx, bootctl.B, 1))
	want := "install:staged install:renamed install:recorded provision boot install:staged install:renamed install:recorded trial"
	if got := strings.Join(steps, " "); got != want {
		t.Fatalf("steps:\n got %s\nwant %s", got, want)
	}
	d2, err := bootctl.OpenDir(dir)
	must(t, err)
	if st := state(t, d2); st.Trial != bootctl.B || st.TriesLeft != 1 {
		t.Fatalf("reopened state %+v", st)
	}
	boot(t, d2, bootctl.B)
	boot(t, d2, bootctl.A)
}

func TestCorruptStateIsRefused(t *testing.T) {
	for name, body := range map[string]string{
		"not json":          "{",
		"unknown key":       `{"format":1,"active":"","trial":"","trial_tries_left":0,"booted":"","boots":0,"trial_boots":0,"slots":{},"extra":1}`,
		"bad format":        `{"format":2,"slots":{}}`,
		"bad slot":          `{"format":1,"active":"c","slots":{}}`,
		"active not there":  `{"format":1,"active":"a","slots":{}}`,
		"bad digest":        `{"format":1,"active":"a","slots":{"a":{"version":"1","digest":"zz"}}}`,
		"trial is active":   `{"format":1,"active":"a","trial":"a","trial_tries_left":1,"slots":{"a":{"version":"1","digest":"` + strings.Repeat("ab", 32) + `"}}}`,
		"negative tries":    `{"format":1,"active":"a","trial":"b","trial_tries_left":-1,"slots":{"a":{"version":"1","digest":"` + strings.Repeat("ab", 32) + `"}}}`,
		"tries and no tria": `{"format":1,"active":"a","trial_tries_left":2,"slots":{"a":{"version":"1","digest":"` + strings.Repeat("ab", 32) + `"}}}`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			must(t, os.WriteFile(filepath.Join(dir, bootctl.DirStateFile), []byte(body), 0o644))
			if _, err := bootctl.OpenDir(dir); err == nil || !strings.Contains(err.Error(), "corrupt") {
				t.Fatalf("open: %v", err)
			}
		})
	}
}

func TestRegistry(t *testing.T) {
	state := t.TempDir()
	c, err := bootctl.Open(ctx, "dir", state)
	must(t, err)
	if c.Name() != "dir" || c.Path(bootctl.B) != filepath.Join(state, "boot", "slot-b") {
		t.Fatalf("name %q path %q", c.Name(), c.Path(bootctl.B))
	}
	if _, err := bootctl.Open(ctx, "dir:x", state); err == nil {
		t.Fatal("dir with an argument")
	}
	if _, err := bootctl.Open(ctx, "grub", state); err == nil || !strings.Contains(err.Error(), "known: dir") {
		t.Fatalf("unknown backend: %v", err)
	}
	if bootctl.A.Other() != bootctl.B || bootctl.B.Other() != bootctl.A {
		t.Fatal("Other")
	}
}

func FuzzDirState(f *testing.F) {
	f.Add([]byte(`{"format":1,"active":"a","trial":"b","trial_tries_left":2,"booted":"a","boots":3,"trial_boots":0,"slots":{"a":{"version":"1","digest":"` +
		strings.Repeat("ab", 32) + `"},"b":{"version":"2","digest":"` + strings.Repeat("cd", 32) + `"}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		must(t, os.WriteFile(filepath.Join(dir, bootctl.DirStateFile), b, 0o644))
		d, err := bootctl.OpenDir(dir)
		if err != nil {
			return
		}
		st, err := d.State(ctx)
		must(t, err)
		// An accepted state never selects a slot that is not installed.
		if next := st.Next(); st.Active != "" && (next == "" || !st.Installed(next)) {
			t.Fatalf("state %+v boots %q", st, next)
		}
	})
}
