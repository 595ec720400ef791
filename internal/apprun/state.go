package apprun

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/rampart-iot/rampart/internal/atomicfile"
	"github.com/rampart-iot/rampart/internal/strictjson"
	"github.com/rampart-iot/rampart/manifest"
)

// StateFile is the supervisor's file in Config.StateDir.
const StateFile = "apprun.json"

// Bounds on the state file.
const (
	stateFormat = 1
	// MaxStateSize bounds the state file, in bytes.
	MaxStateSize = 8 << 20
	// MaxStateEntries bounds the components the state file remembers. A component keeps its
	// entry (its uid) after it is removed, so that a reinstall gets the same uid back.
	MaxStateEntries = 65536
)

// state is what the supervisor keeps across agent restarts, per component ID: the uid (also
// the gid) allocated to it, whether it was stopped by `app stop`, and the last image of it
// that proved healthy.
type state struct {
	Format int                  `json:"format"`
	Apps   map[string]*appState `json:"apps"`
}

type appState struct {
	// UID is the component's uid and gid; allocated once, never changed or reused.
	UID uint32 `json:"uid"`
	// Stopped is set by Stop and cleared by Start or when the component is removed.
	Stopped bool `json:"stopped,omitempty"`
	// Healthy is the ID of the last image of the component that ran for HealthyAfter without
	// exiting; that image is past its probation.
	Healthy string `json:"healthy,omitempty"`
}

// readState reads the state file at path; a missing file is an empty state.
func readState(path string) (*state, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &state{Format: stateFormat, Apps: map[string]*appState{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the supervisor state: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxStateSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading the supervisor state: %w", err)
	}
	st, err := parseState(data)
	if err != nil {
		return nil, fmt.Errorf("reading the supervisor state %s: %w", path, err)
	}
	return st, nil
}

// parseState parses and checks a state file: every uid nonzero and unique, every key a
// component ID.
func parseState(data []byte) (*state, error) {
	if len(data) > MaxStateSize {
		return nil, fmt.Errorf("it is over %d bytes", MaxStateSize)
	}
	var st state
	if err := strictjson.Decode(data, &st); err != nil {
		return nil, err
	}
	if st.Format != stateFormat {
		return nil, fmt.Errorf("format: want %d, not %d", stateFormat, st.Format)
	}
	if len(st.Apps) > MaxStateEntries {
		return nil, fmt.Errorf("apps: more than %d", MaxStateEntries)
	}
	if st.Apps == nil {
		st.Apps = map[string]*appState{}
	}
	var errs []error
	owner := map[uint32]string{}
	for _, id := range slices.Sorted(maps.Keys(st.Apps)) {
		a := st.Apps[id]
		if u, err := manifest.ParseUUID(id); err != nil || u != id {
			errs = append(errs, fmt.Errorf("apps.%s: not a lower-case component ID", id))
		}
		if a == nil {
			errs = append(errs, fmt.Errorf("apps.%s: null", id))
			continue
		}
		if a.UID == 0 {
			errs = append(errs, fmt.Errorf("apps.%s.uid: 0 (an app never runs as root)", id))
		} else if other, dup := owner[a.UID]; dup {
			errs = append(errs, fmt.Errorf("apps.%s.uid: %d is also %s's", id, a.UID, other))
		}
		owner[a.UID] = id
		if a.Healthy != "" {
			if u, err := manifest.ParseUUID(a.Healthy); err != nil || u != a.Healthy {
				errs = append(errs, fmt.Errorf("apps.%s.healthy: not a lower-case image ID", id))
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &st, nil
}

// save writes st to path atomically.
func (st *state) save(path string) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("writing the supervisor state: %w", err)
	}
	if err := atomicfile.WriteFile(path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("writing the supervisor state: %w", err)
	}
	return nil
}

// uid returns the uid of component id, allocating the lowest free one in [lo, hi] if it has
// none; allocated reports whether it did (the caller saves the state).
func (st *state) uid(id string, lo, hi uint32) (uid uint32, allocated bool, err error) {
	if a := st.Apps[id]; a != nil {
		return a.UID, false, nil
	}
	if len(st.Apps) >= MaxStateEntries {
		return 0, false, fmt.Errorf("allocating a uid for %s: the state already holds %d components", id, MaxStateEntries)
	}
	used := make(map[uint32]bool, len(st.Apps))
	for _, a := range st.Apps {
		used[a.UID] = true
	}
	for u := lo; ; u++ {
		if !used[u] {
			st.Apps[id] = &appState{UID: u}
			return u, true, nil
		}
		if u == hi {
			break
		}
	}
	return 0, false, fmt.Errorf("allocating a uid for %s: %w (%d to %d)", id, ErrUIDsExhausted, lo, hi)
}

func (st *state) app(id string) *appState {
	if a := st.Apps[id]; a != nil {
		return a
	}
	return &appState{}
}

func statePath(dir string) string { return filepath.Join(dir, StateFile) }
