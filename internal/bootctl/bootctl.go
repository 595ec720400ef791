// Package bootctl is boot control: the device's two OS slots, "a" and "b", and which of them
// boots. One slot is active (committed: every normal boot runs it). The other can be armed as a
// trial for a limited number of boots, counted by a trial-boot counter that is separate from
// normal boots, so power flicker never reverts a committed system and a trial that keeps
// failing falls back to the active slot by itself. Commit makes the booted trial slot active;
// Rollback disarms the trial. Installing writes only into the slot that is neither active,
// trial nor booted, and a slot becomes selectable only once its contents are complete.
//
// Backends register by name: "dir" (slot directories and an atomically written state file,
// for emulated devices and tests) is built in; GRUB and U-Boot environment backends will keep
// the same state in bootloader variables. The interface holds only what those can do.
//
// Trust: bootctl trusts the backend's storage to keep what was synced to it, and the caller to
// have verified what it installs; it checks that installed contents measure to what the caller
// says they should before making them selectable.
package bootctl

import (
	"context"
	"errors"
	"strings"

	"github.com/rampart-iot/rampart/internal/registry"
)

// Slot names an OS slot.
type Slot string

// The two slots.
const (
	A Slot = "a"
	B Slot = "b"
)

// Other returns the other slot.
func (s Slot) Other() Slot {
	if s == A {
		return B
	}
	return A
}

// Valid reports whether s is "a" or "b".
func (s Slot) Valid() bool { return s == A || s == B }

// SlotInfo is what a backend records about an installed slot.
type SlotInfo struct {
	// Version is the OS bundle's version, as the installer gave it.
	Version string `json:"version"`
	// Digest is the lowercase hex measurement of the slot's contents, computed by the backend
	// when it installed them (for "dir": measure.TreeDigest of the slot directory).
	Digest string `json:"digest"`
}

// State is the boot configuration.
type State struct {
	// Active is the committed slot: every boot that is not a trial boot runs it. Empty only on
	// a device that was never provisioned.
	Active Slot `json:"active"`
	// Trial is the slot armed for trial boots, or empty. A trial whose TriesLeft reached zero
	// stays recorded until Commit or Rollback, so the caller can tell that it fell back.
	Trial Slot `json:"trial,omitempty"`
	// TriesLeft is how many more boots run the trial slot. Only trial boots decrement it.
	TriesLeft int `json:"trial_tries_left,omitempty"`
	// Booted is the slot the current boot runs.
	Booted Slot `json:"booted,omitempty"`
	// Slots holds the installed slots. A slot that is absent is empty or half-written, and is
	// never booted.
	Slots map[Slot]SlotInfo `json:"slots"`
}

// Installed reports whether slot s holds complete contents.
func (st State) Installed(s Slot) bool {
	_, ok := st.Slots[s]
	return ok
}

// Next is the slot the next boot will run, or "" if none can boot.
func (st State) Next() Slot {
	if st.Trial != "" && st.TriesLeft > 0 && st.Installed(st.Trial) {
		return st.Trial
	}
	if st.Installed(st.Active) {
		return st.Active
	}
	return ""
}

// MaxTries bounds the trial-boot counter (U-Boot's bootlimit is a small integer too).
const MaxTries = 16

// Controller is a boot-control backend. Implementations are safe for concurrent use within
// one process; one process at a time owns a device's boot control.
type Controller interface {
	// Name is the backend's registered name.
	Name() string
	// Boot returns the slot the current boot runs. On "dir", where a boot is an agent start,
	// it is the boot: it picks the trial slot while the trial has tries left, decrementing the
	// counter (durably) before it returns, and the active slot otherwise. Call it once per
	// agent start. On a bootloader backend the bootloader made that choice and counted, and
	// Boot reads what it chose.
	Boot(ctx context.Context) (Slot, error)
	// State reads the boot configuration.
	State(ctx context.Context) (State, error)
	// Install replaces the contents of slot, which must be neither active, the armed trial nor
	// booted. The slot is unrecorded (not selectable) from before the first byte is written
	// until write has returned, the contents are durable and they measure to info.Digest (when
	// it is not empty); then it is recorded with info.Version and its measured digest. write
	// fills dir, which is empty.
	Install(ctx context.Context, slot Slot, info SlotInfo, write func(dir string) error) error
	// StartTrial arms slot, which must be installed and not active, for the next tries boots.
	// The booted slot must be the active one.
	StartTrial(ctx context.Context, slot Slot, tries int) error
	// Commit makes the booted trial slot active and disarms the trial. It does nothing if the
	// booted slot is already active and no trial is armed.
	Commit(ctx context.Context) error
	// Rollback disarms the trial, so the next boot runs the active slot. It does nothing if no
	// trial is armed.
	Rollback(ctx context.Context) error
	// Path is where slot's contents are: what the security monitor measures.
	Path(slot Slot) string
}

// Errors.
var (
	ErrNotProvisioned = errors.New("no OS slot has been provisioned")
	ErrSlotInUse      = errors.New("the slot is active, armed for a trial or booted")
	ErrNotInstalled   = errors.New("the slot holds no complete OS bundle")
	ErrDigest         = errors.New("the installed contents do not measure to the expected digest")
	ErrNoTrial        = errors.New("the booted slot is not the armed trial slot")
	ErrTrialArmed     = errors.New("a trial of the other slot is armed")
	ErrNotActive      = errors.New("the booted slot is not the active slot")
)

// Opener opens a backend. arg is what follows "NAME:" in the spec ("" if nothing does), and
// stateDir is the agent's state directory.
type Opener func(ctx context.Context, arg, stateDir string) (Controller, error)

var backends = registry.New[Opener]("boot control")

// Register makes a backend available under name; registering a name twice panics.
func Register(name string, open Opener) { backends.Register(name, open) }

// Backends lists the registered backend names.
func Backends() []string { return backends.Names() }

// Open opens the boot control that spec names: "NAME" or "NAME:ARG", for example "dir".
func Open(ctx context.Context, spec, stateDir string) (Controller, error) {
	name, arg, _ := strings.Cut(spec, ":")
	open, err := backends.Lookup(name)
	if err != nil {
		return nil, err
	}
	return open(ctx, arg, stateDir)
}
