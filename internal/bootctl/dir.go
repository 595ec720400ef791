package bootctl

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/rampart-iot/rampart/internal/atomicfile"
	"github.com/rampart-iot/rampart/internal/measure"
	"github.com/rampart-iot/rampart/internal/strictjson"
)

// DirName is the "dir" backend's name in boot-control specs.
const DirName = "dir"

// Files of the "dir" backend, under its directory (STATE/boot).
const (
	DirStateFile = "state.json"
	dirFormat    = 1
	maxStateSize = 64 << 10
)

func init() {
	Register(DirName, func(_ context.Context, arg, stateDir string) (Controller, error) {
		if arg != "" {
			return nil, fmt.Errorf("boot control %q takes no argument", DirName)
		}
		return OpenDir(filepath.Join(stateDir, "boot"))
	})
}

// Dir is the "dir" backend: the slots are the directories slot-a and slot-b, and the boot
// configuration is state.json, replaced atomically (temporary file, fsync, rename, fsync of
// the directory) at every change. A boot is an agent start (Boot). Install fills
// slot-X.staging, syncs it, measures it, renames it to slot-X, syncs the directory, and only
// then records the slot in state.json; until then the slot is absent from the state and no
// boot selects it.
type Dir struct {
	dir string
	// Step, if set, is called after every durable step with its name ("boot", "install:staged",
	// ...). Tests use it to stop the process at each one.
	Step func(step string)

	mu sync.Mutex
}

// dirState is state.json.
type dirState struct {
	Format     int               `json:"format"`
	Active     Slot              `json:"active"`
	Trial      Slot              `json:"trial"`
	TriesLeft  int               `json:"trial_tries_left"`
	Booted     Slot              `json:"booted"`
	Boots      uint64            `json:"boots"`       // normal boots
	TrialBoots uint64            `json:"trial_boots"` // trial boots, counted apart
	Slots      map[Slot]SlotInfo `json:"slots"`
}

// OpenDir opens the "dir" backend kept in dir (normally STATE/boot), creating the directory
// if needed. A directory without a state file is an unprovisioned device (see Provision).
func OpenDir(dir string) (*Dir, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("opening boot control: %w", err)
	}
	d := &Dir{dir: dir}
	if _, err := d.load(); err != nil {
		return nil, err
	}
	return d, nil
}

// Name implements Controller.
func (d *Dir) Name() string { return DirName }

// Path implements Controller.
func (d *Dir) Path(slot Slot) string { return filepath.Join(d.dir, "slot-"+string(slot)) }

func (d *Dir) step(name string) {
	if d.Step != nil {
		d.Step(name)
	}
}

func (d *Dir) load() (*dirState, error) {
	p := filepath.Join(d.dir, DirStateFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return &dirState{Format: dirFormat, Slots: map[Slot]SlotInfo{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the boot state: %w", err)
	}
	if len(b) > maxStateSize {
		return nil, fmt.Errorf("the boot state %s is larger than %d bytes", p, maxStateSize)
	}
	var st dirState
	if err := strictjson.Decode(b, &st); err != nil {
		return nil, fmt.Errorf("the boot state %s is corrupt: %w", p, err)
	}
	if err := st.check(); err != nil {
		return nil, fmt.Errorf("the boot state %s is corrupt: %w", p, err)
	}
	if st.Slots == nil {
		st.Slots = map[Slot]SlotInfo{}
	}
	return &st, nil
}

func (st *dirState) check() error {
	if st.Format != dirFormat {
		return fmt.Errorf("format %d, want %d", st.Format, dirFormat)
	}
	for name, s := range map[string]Slot{"active": st.Active, "trial": st.Trial, "booted": st.Booted} {
		if s != "" && !s.Valid() {
			return fmt.Errorf("%s slot %q is neither a nor b", name, s)
		}
	}
	for s, info := range st.Slots {
		if !s.Valid() {
			return fmt.Errorf("slot %q is neither a nor b", s)
		}
		if b, err := hex.DecodeString(info.Digest); err != nil || len(b) != 32 {
			return fmt.Errorf("slot %s: digest %q is not a SHA-256 in hex", s, info.Digest)
		}
	}
	if st.Active != "" && !st.installed(st.Active) {
		return fmt.Errorf("active slot %s is not installed", st.Active)
	}
	if st.Trial != "" && st.Trial == st.Active {
		return fmt.Errorf("slot %s is both active and the trial", st.Trial)
	}
	if st.TriesLeft < 0 || st.TriesLeft > MaxTries || st.Trial == "" && st.TriesLeft != 0 {
		return fmt.Errorf("trial tries left %d", st.TriesLeft)
	}
	return nil
}

func (st *dirState) installed(s Slot) bool {
	_, ok := st.Slots[s]
	return ok
}

func (d *Dir) save(st *dirState, step string) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(d.dir, DirStateFile), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("saving the boot state: %w", err)
	}
	d.step(step)
	return nil
}

func (st *dirState) public() State {
	out := State{Active: st.Active, Trial: st.Trial, TriesLeft: st.TriesLeft, Booted: st.Booted, Slots: map[Slot]SlotInfo{}}
	for s, info := range st.Slots {
		out.Slots[s] = info
	}
	return out
}

// State implements Controller.
func (d *Dir) State(ctx context.Context) (State, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	st, err := d.load()
	if err != nil {
		return State{}, err
	}
	return st.public(), nil
}

// Boot implements Controller: it records a boot and returns the slot it runs.
func (d *Dir) Boot(ctx context.Context) (Slot, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	st, err := d.load()
	if err != nil {
		return "", err
	}
	if st.Active == "" {
		return "", ErrNotProvisioned
	}
	next := st.public().Next()
	if next == st.Trial {
		st.TriesLeft--
		st.TrialBoots++
	} else {
		st.Boots++
	}
	st.Booted = next
	if err := d.save(st, "boot"); err != nil {
		return "", err
	}
	return next, nil
}

// Install implements Controller.
func (d *Dir) Install(ctx context.Context, slot Slot, info SlotInfo, write func(dir string) error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	st, err := d.load()
	if err != nil {
		return err
	}
	return d.install(ctx, st, slot, info, write)
}

func (d *Dir) install(ctx context.Context, st *dirState, slot Slot, info SlotInfo, write func(dir string) error) error {
	if !slot.Valid() {
		return fmt.Errorf("installing slot %q: not a slot", slot)
	}
	if slot == st.Active || slot == st.Trial || slot == st.Booted {
		return fmt.Errorf("installing slot %s: %w", slot, ErrSlotInUse)
	}
	// Unrecord the slot before touching its contents.
	if st.installed(slot) {
		delete(st.Slots, slot)
		if err := d.save(st, "install:unrecorded"); err != nil {
			return err
		}
	}
	path := d.Path(slot)
	staging, old := path+".staging", path+".old"
	for _, p := range []string{staging, old} {
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("installing slot %s: clearing %s: %w", slot, p, err)
		}
	}
	if err := os.Mkdir(staging, 0o755); err != nil {
		return fmt.Errorf("installing slot %s: %w", slot, err)
	}
	if err := write(staging); err != nil {
		_ = os.RemoveAll(staging)
		return fmt.Errorf("installing slot %s: %w", slot, err)
	}
	if err := ctx.Err(); err != nil {
		_ = os.RemoveAll(staging)
		return err
	}
	if err := syncTree(staging); err != nil {
		return fmt.Errorf("installing slot %s: syncing: %w", slot, err)
	}
	d.step("install:staged")
	sum, err := measure.TreeDigest(staging)
	if err != nil {
		return fmt.Errorf("installing slot %s: measuring: %w", slot, err)
	}
	digest := hex.EncodeToString(sum)
	if info.Digest != "" && info.Digest != digest {
		_ = os.RemoveAll(staging)
		return fmt.Errorf("installing slot %s: %w: measured %s, want %s", slot, ErrDigest, digest, info.Digest)
	}
	if _, err := os.Lstat(path); err == nil {
		if err := os.Rename(path, old); err != nil {
			return fmt.Errorf("installing slot %s: %w", slot, err)
		}
	}
	if err := os.Rename(staging, path); err != nil {
		return fmt.Errorf("installing slot %s: %w", slot, err)
	}
	if err := syncDir(d.dir); err != nil {
		return fmt.Errorf("installing slot %s: %w", slot, err)
	}
	d.step("install:renamed")
	if err := os.RemoveAll(old); err != nil {
		return fmt.Errorf("installing slot %s: removing the old contents: %w", slot, err)
	}
	st.Slots[slot] = SlotInfo{Version: info.Version, Digest: digest}
	return d.save(st, "install:recorded")
}

// Provision installs the first OS bundle into slot a and makes it active, on a device that
// has no active slot (the factory's job on real hardware). On a provisioned device it returns
// an error wrapping ErrSlotInUse and changes nothing.
func (d *Dir) Provision(ctx context.Context, info SlotInfo, write func(dir string) error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	st, err := d.load()
	if err != nil {
		return err
	}
	if st.Active != "" {
		return fmt.Errorf("provisioning: slot %s is already active: %w", st.Active, ErrSlotInUse)
	}
	if err := d.install(ctx, st, A, info, write); err != nil {
		return fmt.Errorf("provisioning: %w", err)
	}
	st.Active = A
	return d.save(st, "provision")
}

// StartTrial implements Controller.
func (d *Dir) StartTrial(ctx context.Context, slot Slot, tries int) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	st, err := d.load()
	if err != nil {
		return err
	}
	switch {
	case !slot.Valid():
		return fmt.Errorf("arming slot %q: not a slot", slot)
	case tries < 1 || tries > MaxTries:
		return fmt.Errorf("arming slot %s: %d tries is outside 1 to %d", slot, tries, MaxTries)
	case st.Active == "":
		return ErrNotProvisioned
	case slot == st.Active:
		return fmt.Errorf("arming slot %s: %w", slot, ErrSlotInUse)
	case !st.installed(slot):
		return fmt.Errorf("arming slot %s: %w", slot, ErrNotInstalled)
	case st.Booted != st.Active:
		return fmt.Errorf("arming slot %s: %w", slot, ErrNotActive)
	case st.Trial != "" && st.Trial != slot:
		return fmt.Errorf("arming slot %s: %w", slot, ErrTrialArmed)
	}
	st.Trial, st.TriesLeft = slot, tries
	return d.save(st, "trial")
}

// Commit implements Controller.
func (d *Dir) Commit(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	st, err := d.load()
	if err != nil {
		return err
	}
	if st.Trial == "" && st.Booted == st.Active && st.Active != "" {
		return nil
	}
	if st.Trial == "" || st.Booted != st.Trial {
		return fmt.Errorf("committing: %w", ErrNoTrial)
	}
	st.Active, st.Trial, st.TriesLeft = st.Trial, "", 0
	return d.save(st, "commit")
}

// Rollback implements Controller.
func (d *Dir) Rollback(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	st, err := d.load()
	if err != nil {
		return err
	}
	if st.Trial == "" {
		return nil
	}
	st.Trial, st.TriesLeft = "", 0
	return d.save(st, "rollback")
}

// syncTree fsyncs every file and directory under root, so that a rename of root publishes
// contents that are already on stable storage.
func syncTree(root string) error {
	return filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !e.IsDir() && !e.Type().IsRegular() {
			return nil // symlinks live in their directory, synced below
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		return f.Sync()
	})
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
