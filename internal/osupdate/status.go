package osupdate

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/rampart-iot/rampart/imagepkg"
	"github.com/rampart-iot/rampart/internal/atomicfile"
	"github.com/rampart-iot/rampart/internal/bootctl"
	"github.com/rampart-iot/rampart/internal/strictjson"
)

// State is where an update stands.
type State string

// The states. Idle, Committed, RolledBack and Failed are settled: no update is in flight.
const (
	Idle        State = "Idle"
	Downloading State = "Downloading"
	Downloaded  State = "Downloaded" // size, SHA-256 and the Verifier all passed
	Installing  State = "Installing"
	Installed   State = "Installed"
	TrialBoot   State = "TrialBoot" // the new slot is (being) armed; a reboot runs it
	Verifying   State = "Verifying" // the new system runs as a trial, waiting to be healthy
	Committed   State = "Committed"
	RollingBack State = "RollingBack"
	RolledBack  State = "RolledBack"
	Failed      State = "Failed" // failed before any trial boot; the active slot never changed
)

var states = map[State]bool{Idle: true, Downloading: true, Downloaded: true, Installing: true, Installed: true,
	TrialBoot: true, Verifying: true, Committed: true, RollingBack: true, RolledBack: true, Failed: true}

// Settled reports whether no update is in flight.
func (s State) Settled() bool {
	return s == Idle || s == Committed || s == RolledBack || s == Failed
}

// StateFile is the state file's name in Config.Dir.
const StateFile = "state.json"

const (
	statusFormat  = 1
	maxStatusSize = 64 << 10
)

// Status is the state file: where the update stands, and what the device must remember
// across power cuts to go on.
type Status struct {
	Format int   `json:"format"`
	State  State `json:"state"`
	// Target is the bundle being (or last) installed.
	Target *Target `json:"target,omitempty"`
	// Slot is the slot Target goes to; FromVersion is the version that was running.
	Slot        bootctl.Slot `json:"slot,omitempty"`
	FromVersion string       `json:"from_version,omitempty"`
	// Attempt numbers updates on this device; it makes event IDs unique.
	Attempt uint64 `json:"attempt"`
	// Deadline is when Verifying gives up (set on the new system's first boot).
	Deadline time.Time `json:"deadline,omitzero"`
	// DownloadFailures counts wrong answers from the server for this target.
	DownloadFailures int `json:"download_failures,omitempty"`
	// Phase and Reason say why the update failed or rolled back; At is when it settled.
	Phase  string    `json:"phase,omitempty"`
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at,omitzero"`
	// Reported is set once the sink has taken the settled update's events.
	Reported bool `json:"reported,omitempty"`
	// Floor is the version floor, when the state file keeps it (Config.Floor is nil).
	Floor string `json:"floor,omitempty"`
	// SecurityCounter is the anti-rollback counter, when the state file keeps it
	// (Config.Counter is nil).
	SecurityCounter uint64 `json:"security_counter,omitempty"`
}

// ReadStatus reads the state file of the machine whose directory is dir. A missing file is
// Idle.
func ReadStatus(dir string) (Status, error) {
	p := filepath.Join(dir, StateFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return Status{Format: statusFormat, State: Idle}, nil
	}
	if err != nil {
		return Status{}, fmt.Errorf("reading the OS update state: %w", err)
	}
	if len(b) > maxStatusSize {
		return Status{}, fmt.Errorf("the OS update state %s is larger than %d bytes", p, maxStatusSize)
	}
	var st Status
	if err := strictjson.Decode(b, &st); err != nil {
		return Status{}, fmt.Errorf("the OS update state %s is corrupt: %w", p, err)
	}
	if err := st.check(); err != nil {
		return Status{}, fmt.Errorf("the OS update state %s is corrupt: %w", p, err)
	}
	return st, nil
}

func (st *Status) check() error {
	if st.Format != statusFormat {
		return fmt.Errorf("format %d, want %d", st.Format, statusFormat)
	}
	if !states[st.State] {
		return fmt.Errorf("unknown state %q", st.State)
	}
	if st.State != Idle {
		if st.Target == nil {
			return fmt.Errorf("state %s without a target", st.State)
		}
		if err := st.Target.check(); err != nil {
			return err
		}
		if !st.Slot.Valid() {
			return fmt.Errorf("state %s with slot %q", st.State, st.Slot)
		}
	}
	if st.Floor != "" {
		if _, err := imagepkg.ParseVersion(st.Floor); err != nil {
			return fmt.Errorf("floor: %w", err)
		}
	}
	return nil
}

func writeStatus(dir string, st Status) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, StateFile), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("saving the OS update state: %w", err)
	}
	return nil
}
