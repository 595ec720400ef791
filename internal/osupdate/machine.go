package osupdate

// The protocol, in one place. Each state is saved (atomically) before the work it names is
// done, and each piece of work can be done again, so a power cut anywhere is followed by the
// same work, from the top:
//
//	Idle/Committed/RolledBack/Failed  settled: report the outcome once, delete the download
//	  └─ Update: a target newer than the running version and the floor → Downloading
//	Downloading  fetch by digest with resume; verify size, SHA-256, then the Verifier
//	  ├─ ok → Downloaded
//	  └─ refused by the Verifier, or MaxDownloadFailures wrong answers → Failed
//	Downloaded → Installing
//	Installing   unpack into the inactive slot through boot control (staged, synced, measured,
//	             renamed, then recorded: never selectable half-written)
//	  ├─ ok → Installed
//	  └─ bad bundle, wrong measurement → Failed
//	Installed → TrialBoot
//	TrialBoot    arm the slot for TrialTries trial boots; reboot
//	  ├─ booted the new slot → Verifying (deadline = now + VerifyTimeout)
//	  └─ tries used up before that → RollingBack (trial-boot)
//	Verifying    the new system measures as installed, then Health says yes before the
//	             deadline → boot control commits → the floor is raised → Committed
//	  ├─ the boot fell back to the old slot (tries used up) → RollingBack (trial-boot)
//	  └─ deadline passed, ErrUnhealthy, or measured wrong → RollingBack (health)
//	RollingBack  disarm the trial; if the failed system is running, reboot
//	  └─ booted the active (old) slot → RolledBack
//
// Boot control always has an active slot that is installed and verified; only Commit, after
// the new system was verified, changes it, and the floor is raised only after that, so the
// slot a rollback returns to is never below the floor.

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/rampart-iot/rampart/internal/bootctl"
	"github.com/rampart-iot/rampart/internal/download"
	"github.com/rampart-iot/rampart/internal/measure"
)

// Machine runs OS updates. It is not safe for concurrent use, and one process at a time owns
// a device's update state.
type Machine struct {
	cfg     Config
	floor   Floor
	counter Counter
	st      Status
}

// Result is where Resume or Update left the machine.
type Result struct {
	State State
	// Reboot means the update goes on only after the device restarts (on an emulated device,
	// the agent): the caller restarts it, then calls Boot and Resume.
	Reboot bool
}

// Open loads the machine's state from cfg.Dir.
func Open(cfg Config) (*Machine, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("opening the OS update state: %w", err)
	}
	st, err := ReadStatus(cfg.Dir)
	if err != nil {
		return nil, err
	}
	m := &Machine{cfg: cfg, st: st, floor: cfg.Floor, counter: cfg.Counter}
	if m.floor == nil {
		m.floor = stateFloor{m}
	}
	m.counter = stateCounter{m}
	if cfg.Counter != nil {
		m.counter = bothCounters{stateCounter{m}, cfg.Counter}
	}
	return m, nil
}

// SecurityCounter reads the anti-rollback counter.
func (m *Machine) SecurityCounter(ctx context.Context) (uint64, error) {
	return m.counter.ReadCounter(ctx)
}

// Status returns the machine's state as saved.
func (m *Machine) Status() Status { return m.st }

func (m *Machine) step(name string) {
	if m.cfg.Step != nil {
		m.cfg.Step(name)
	}
}

// save persists next and makes it the machine's state.
func (m *Machine) save(next Status, step string) error {
	next.Format = statusFormat
	if err := writeStatus(m.cfg.Dir, next); err != nil {
		return err
	}
	if next.State != m.st.State && next.Target != nil {
		m.cfg.Logger.Info("os update", "state", next.State, "version", next.Target.Version, "slot", next.Slot, "phase", next.Phase, "reason", next.Reason)
	}
	m.st = next
	m.step(step)
	return nil
}

// to moves to state s.
func (m *Machine) to(s State) error {
	next := m.st
	next.State = s
	return m.save(next, string(s))
}

func (m *Machine) bundlePath() string {
	return filepath.Join(m.cfg.Dir, "bundle-"+m.st.Target.SHA256)
}

// Update resumes whatever is in flight; once settled, it asks the Source for a target and, if
// the target is new, runs the update as far as it goes without a reboot.
func (m *Machine) Update(ctx context.Context) (Result, error) {
	res, err := m.Resume(ctx)
	if err != nil || !res.State.Settled() || res.Reboot {
		return res, err
	}
	t, err := m.cfg.Source.Target(ctx)
	if err != nil {
		return res, fmt.Errorf("asking for the OS target: %w", err)
	}
	if t == nil {
		return res, nil
	}
	if err := t.check(); err != nil {
		return res, err
	}
	if m.st.Target != nil && m.st.Target.SHA256 == t.SHA256 && (m.st.State == Failed || m.st.State == RolledBack) {
		return res, nil // tried, failed and reported; the service offers something else next
	}
	bs, err := m.cfg.Boot.State(ctx)
	if err != nil {
		return res, err
	}
	running := bs.Slots[bs.Active].Version
	newer, verr := compareVersions(t.Version, running)
	if verr == nil && newer == 0 {
		return res, nil // running it
	}
	floor, err := m.floor.Get(ctx)
	if err != nil {
		return res, fmt.Errorf("reading the anti-rollback floor: %w", err)
	}
	below, err := m.belowCounter(ctx, t)
	if err != nil {
		return res, err
	}
	next := Status{State: Downloading, Target: t, Slot: bs.Active.Other(), FromVersion: running,
		Attempt: m.st.Attempt + 1, Floor: m.st.Floor, SecurityCounter: m.st.SecurityCounter}
	refused := below
	switch aboveFloor, ferr := compareVersions(t.Version, floor); {
	case verr != nil:
		refused = verr.Error()
	case newer < 0:
		refused = fmt.Sprintf("version %s is older than the running %s", t.Version, running)
	case refused != "":
	case floor != "" && (ferr != nil || aboveFloor < 0):
		refused = fmt.Sprintf("version %s is older than the anti-rollback floor %s", t.Version, floor)
	}
	if refused != "" {
		next.State, next.Phase, next.Reason, next.At = Failed, PhaseCheck, refused, m.cfg.Clock.Now()
	}
	if err := m.save(next, string(next.State)); err != nil {
		return res, err
	}
	return m.Resume(ctx)
}

// Wants says whether Update would start installing t now: nothing is in flight, t is not the
// image that already failed here, and it is newer than the running system. The update loop
// asks it before it lets applications defer an OS update.
func (m *Machine) Wants(ctx context.Context, t *Target) (bool, error) {
	if t == nil || !m.st.State.Settled() {
		return false, nil
	}
	if m.st.Target != nil && m.st.Target.SHA256 == t.SHA256 && (m.st.State == Failed || m.st.State == RolledBack) {
		return false, nil
	}
	bs, err := m.cfg.Boot.State(ctx)
	if err != nil {
		return false, err
	}
	newer, err := compareVersions(t.Version, bs.Slots[bs.Active].Version)
	return err == nil && newer > 0, nil
}

// Resume carries the update in flight forward until it settles, needs a reboot, or fails
// with an error that a later call may get past (the network, a full queue, ctx). Call it at
// every start, after boot control's Boot.
func (m *Machine) Resume(ctx context.Context) (Result, error) {
	for {
		bs, err := m.cfg.Boot.State(ctx)
		if err != nil {
			return Result{State: m.st.State}, err
		}
		reboot := false
		switch m.st.State {
		case Idle, Committed, RolledBack, Failed:
			reboot, err = m.settle(ctx, bs)
			return Result{State: m.st.State, Reboot: reboot}, err
		case Downloading:
			err = m.download(ctx)
		case Downloaded:
			err = m.to(Installing)
		case Installing:
			err = m.install(ctx)
		case Installed:
			err = m.to(TrialBoot)
		case TrialBoot:
			reboot, err = m.trialBoot(ctx, bs)
		case Verifying:
			err = m.verify(ctx, bs)
		case RollingBack:
			reboot, err = m.rollBack(ctx, bs)
		default:
			err = fmt.Errorf("unknown OS update state %q", m.st.State)
		}
		if err != nil || reboot {
			return Result{State: m.st.State, Reboot: reboot}, err
		}
	}
}

// fail settles an update that never reached a trial boot.
func (m *Machine) fail(phase string, cause error) error {
	next := m.st
	next.State, next.Phase, next.Reason, next.At = Failed, phase, cause.Error(), m.cfg.Clock.Now()
	return m.save(next, string(Failed))
}

// rollingBack starts a rollback.
func (m *Machine) rollingBack(phase string, cause error) error {
	next := m.st
	next.State, next.Phase, next.Reason = RollingBack, phase, cause.Error()
	return m.save(next, string(RollingBack))
}

func (m *Machine) download(ctx context.Context) error {
	t := m.st.Target
	path, err := download.Fetch(ctx, m.cfg.Client, t.URL, download.Want{SHA256: t.SHA256, Size: t.Size},
		m.bundlePath()+download.PartialSuffix, download.Progress(m.progress))
	if err != nil {
		if ctx.Err() != nil || download.Retryable(err) {
			return err // stay, and try again later
		}
		next := m.st
		if next.DownloadFailures++; next.DownloadFailures >= m.cfg.MaxDownloadFailures {
			return m.fail(PhaseDownload, err)
		}
		if serr := m.save(next, "download-failure"); serr != nil {
			return serr
		}
		return err
	}
	m.step("downloaded")
	if err := m.cfg.Verifier.Verify(ctx, path, *t); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return m.fail(PhaseVerify, err)
	}
	return m.to(Downloaded)
}

func (m *Machine) progress(done, total int64) {
	if m.cfg.Progress != nil {
		m.cfg.Progress(done, total)
	}
}

func (m *Machine) install(ctx context.Context) error {
	t := m.st.Target
	bundle := m.bundlePath()
	// Verified once, checked again before a byte is installed; if it is gone, fetch it again.
	if err := download.Check(bundle, download.Want{SHA256: t.SHA256, Size: t.Size}); err != nil {
		_ = os.Remove(bundle)
		return m.to(Downloading)
	}
	err := m.cfg.Boot.Install(ctx, m.st.Slot, bootctl.SlotInfo{Version: t.Version, Digest: t.Measurement}, func(dir string) error {
		return m.cfg.Unpack(ctx, bundle, dir)
	})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return m.fail(PhaseInstall, err)
	}
	return m.to(Installed)
}

func (m *Machine) trialBoot(ctx context.Context, bs bootctl.State) (reboot bool, err error) {
	slot := m.st.Slot
	switch {
	case bs.Booted == slot: // this boot runs the new system
		next := m.st
		next.State, next.Deadline = Verifying, m.cfg.Clock.Now().Add(m.cfg.VerifyTimeout)
		return false, m.save(next, string(Verifying))
	case bs.Trial == slot && bs.TriesLeft > 0: // armed; the next boot runs it
		return true, nil
	case bs.Trial == slot:
		return false, m.rollingBack(PhaseTrialBoot, fmt.Errorf("the new system in slot %s did not start in %d boots", slot, m.cfg.TrialTries))
	case bs.Trial != "":
		return false, fmt.Errorf("boot control has slot %s armed, not %s", bs.Trial, slot)
	}
	floor, err := m.floor.Get(ctx)
	if err != nil {
		return false, fmt.Errorf("reading the anti-rollback floor: %w", err)
	}
	if c, err := compareVersions(m.st.Target.Version, floor); floor != "" && (err != nil || c < 0) {
		return false, m.fail(PhaseCheck, fmt.Errorf("version %s is older than the anti-rollback floor %s", m.st.Target.Version, floor))
	}
	if below, err := m.belowCounter(ctx, m.st.Target); err != nil {
		return false, err
	} else if below != "" {
		return false, m.fail(PhaseCheck, errors.New(below))
	}
	if err := m.cfg.Boot.StartTrial(ctx, slot, m.cfg.TrialTries); err != nil {
		if errors.Is(err, bootctl.ErrNotInstalled) {
			return false, m.fail(PhaseInstall, err)
		}
		return false, err
	}
	m.step("trial-armed")
	return true, nil
}

func (m *Machine) verify(ctx context.Context, bs bootctl.State) error {
	slot := m.st.Slot
	switch {
	case bs.Active == slot && bs.Trial == "": // boot control committed before a power cut
		return m.committed(ctx)
	case bs.Booted != slot:
		return m.rollingBack(PhaseTrialBoot, fmt.Errorf("the trial boot fell back to slot %s before the new system was verified", bs.Booted))
	case bs.Trial != slot:
		return m.rollingBack(PhaseTrialBoot, fmt.Errorf("boot control no longer has slot %s armed", slot))
	}
	if err := m.checkSlot(bs, slot); err != nil {
		return m.rollingBack(PhaseHealth, err)
	}
	for {
		err := m.cfg.Health.Check(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, ErrUnhealthy) {
			return m.rollingBack(PhaseHealth, err)
		}
		if !m.cfg.Clock.Now().Before(m.st.Deadline) {
			return m.rollingBack(PhaseHealth, fmt.Errorf("not attested and healthy within %s: %w", m.cfg.VerifyTimeout, err))
		}
		m.cfg.Logger.Info("os update: new system not healthy yet", "error", err, "deadline", m.st.Deadline)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-m.cfg.Clock.After(m.cfg.HealthInterval):
		}
	}
	if err := m.cfg.Boot.Commit(ctx); err != nil {
		return err
	}
	m.step("boot-committed")
	return m.committed(ctx)
}

// checkSlot checks that the running slot measures to what was installed, and to the target.
func (m *Machine) checkSlot(bs bootctl.State, slot bootctl.Slot) error {
	sum, err := measure.TreeDigest(m.cfg.Boot.Path(slot))
	if err != nil {
		return fmt.Errorf("measuring slot %s: %w", slot, err)
	}
	got := hex.EncodeToString(sum)
	if want := bs.Slots[slot].Digest; got != want {
		return fmt.Errorf("slot %s measures %s, installed as %s", slot, got, want)
	}
	if want := m.st.Target.Measurement; want != "" && got != want {
		return fmt.Errorf("slot %s measures %s, the release says %s", slot, got, want)
	}
	return nil
}

func (m *Machine) committed(ctx context.Context) error {
	if err := m.floor.Raise(ctx, m.st.Target.Version); err != nil {
		return fmt.Errorf("raising the anti-rollback floor: %w", err)
	}
	if err := m.counter.AdvanceCounter(ctx, m.st.Target.SecurityVersion); err != nil {
		return fmt.Errorf("advancing the anti-rollback counter: %w", err)
	}
	m.step("counter-advanced")
	next := m.st
	next.State, next.At = Committed, m.cfg.Clock.Now()
	return m.save(next, string(Committed))
}

func (m *Machine) rollBack(ctx context.Context, bs bootctl.State) (reboot bool, err error) {
	slot := m.st.Slot
	if bs.Active == slot {
		return false, fmt.Errorf("rolling back slot %s, which boot control has committed", slot)
	}
	if bs.Trial == slot {
		if err := m.cfg.Boot.Rollback(ctx); err != nil {
			return false, err
		}
		m.step("boot-rolled-back")
	}
	if bs.Booted == slot { // the failed system runs: restart into the active one
		return true, nil
	}
	next := m.st
	next.State, next.At = RolledBack, m.cfg.Clock.Now()
	return false, m.save(next, string(RolledBack))
}

// settle finishes a settled update: boot control runs its active slot with no trial armed,
// the download is gone and the outcome is reported.
func (m *Machine) settle(ctx context.Context, bs bootctl.State) (reboot bool, err error) {
	if bs.Trial != "" { // armed by no update in flight
		if err := m.cfg.Boot.Rollback(ctx); err != nil {
			return false, err
		}
		m.step("boot-rolled-back")
	}
	if bs.Booted != bs.Active {
		return true, nil
	}
	if m.st.Target != nil {
		for _, p := range []string{m.bundlePath(), m.bundlePath() + download.PartialSuffix} {
			if err := os.Remove(p); err == nil {
				m.step("cleaned")
			} else if !os.IsNotExist(err) {
				return false, err
			}
		}
	}
	if m.st.Reported || m.st.State == Idle {
		return false, nil
	}
	for _, e := range m.events() {
		if err := m.cfg.Sink.Report(ctx, e); err != nil {
			return false, fmt.Errorf("reporting %s: %w", e.Kind, err)
		}
		m.step("reported:" + string(e.Kind))
	}
	next := m.st
	next.Reported = true
	return false, m.save(next, "reported")
}

// events are the reports of a settled update.
func (m *Machine) events() []Event {
	e := Event{Time: m.st.At, Version: m.st.Target.Version, FromVersion: m.st.FromVersion, Slot: m.st.Slot,
		Phase: m.st.Phase, Reason: m.st.Reason}
	var kinds []EventKind
	switch m.st.State {
	case Committed:
		kinds = []EventKind{UpdateCommitted}
	case RolledBack:
		kinds = []EventKind{RollbackPerformed, UpdateFailed}
	case Failed:
		kinds = []EventKind{UpdateFailed}
	}
	out := make([]Event, len(kinds))
	for i, k := range kinds {
		out[i] = e
		out[i].Kind = k
		out[i].ID = fmt.Sprintf("os/%d/%s/%s", m.st.Attempt, m.st.Target.SHA256[:16], k)
	}
	return out
}
