package apprun

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rampart-iot/rampart/internal/appinstall"
	"github.com/rampart-iot/rampart/internal/sandbox"
)

// runner runs one component's current image, from its start by the supervisor until it is
// stopped (its context ends). Its fields are guarded by Supervisor.mu.
type runner struct {
	cid    string
	in     appinstall.Installed // the image it runs: changed only by its own rollback
	uid    uint32
	cancel context.CancelFunc
	done   chan struct{}
	failed bool // it cannot start and waits only to be stopped
}

// Run starts every installed application that is not stopped ("apps start at boot"), keeps
// them running, and when ctx ends stops them all and returns once every one has exited. It
// returns an error at once if the supervisor is already running; problems with single
// applications are reported in their status and events, not as Run's error.
func (s *Supervisor) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		return errors.New("apprun: the supervisor is already running")
	}
	s.running, s.runCtx = true, ctx
	s.mu.Unlock()
	denialsDone := make(chan struct{})
	if s.cfg.Denials != nil || s.cfg.NetworkDenials != nil {
		go func() {
			defer close(denialsDone)
			s.watchDenials(ctx)
		}()
	} else {
		close(denialsDone)
	}
	defer func() { <-denialsDone }()

	if err := s.Reconcile(ctx); err != nil && ctx.Err() == nil {
		s.log.Warn("starting applications", "err", err)
	}
	<-ctx.Done()

	s.lock(context.Background())
	defer s.unlock()
	s.mu.Lock()
	s.running = false
	var all []*runner
	for _, r := range s.runners {
		all = append(all, r)
	}
	s.mu.Unlock()
	s.stopRunners(all) // their contexts are ctx's children: they are stopping already
	return nil
}

// Reconcile brings the running applications in line with the installer: it stops the
// applications that were removed or whose current image changed (an install, a rollback), and
// starts the current image of every installed application that is neither running nor
// stopped by Stop. The agent calls it after every install, rollback and removal. Before Run
// (and after it), it does nothing: Run reconciles as it starts. ctx bounds waiting for
// another change in progress.
func (s *Supervisor) Reconcile(ctx context.Context) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.unlock()
	return s.reconcile()
}

// reconcile is Reconcile with s.op held.
func (s *Supervisor) reconcile() error {
	installed := s.cfg.Apps.List()
	want := make(map[string]appinstall.Installed, len(installed))
	for _, in := range installed {
		want[in.ComponentID] = in
	}

	s.mu.Lock()
	if !s.running {
		s.mu.Unlock()
		return nil
	}
	var stop []*runner
	for id, r := range s.runners {
		in, ok := want[id]
		if !ok || in.Current.ID != r.in.Current.ID || r.failed || s.st.app(id).Stopped {
			stop = append(stop, r)
		}
	}
	s.mu.Unlock()
	s.stopRunners(stop)

	s.mu.Lock()
	var errs []error
	changed := false
	// Removed (now, or while the agent was down): forget it, but keep its uid for a reinstall.
	for id := range s.status {
		if _, ok := want[id]; !ok {
			delete(s.status, id)
			delete(s.logs, id)
		}
	}
	for id, a := range s.st.Apps {
		if _, ok := want[id]; !ok && (a.Stopped || a.Healthy != "") {
			a.Stopped, a.Healthy = false, ""
			changed = true
		}
	}
	var started []Event
	for _, id := range sortedKeys(want) {
		in := want[id]
		if _, ok := s.runners[id]; ok {
			continue
		}
		uid, allocated, err := s.st.uid(id, s.cfg.UIDMin, s.cfg.UIDMax)
		changed = changed || allocated
		if old := s.status[id]; err == nil && s.st.app(id).Stopped && old != nil &&
			old.State == StateStopped && old.ImageID == in.Current.ID {
			continue // still stopped
		}
		st := s.setStatus(in, uid)
		switch {
		case err != nil:
			errs = append(errs, err)
			st.State, st.Error = StateFailed, err.Error()
			started = append(started, s.event(EventFailed, st, func(ev *Event) { ev.Error = err.Error() }))
		case s.st.app(id).Stopped:
			st.State = StateStopped
		default:
			s.startRunner(in, uid)
		}
	}
	if changed {
		if err := s.st.save(statePath(s.cfg.StateDir)); err != nil {
			errs = append(errs, err)
		}
	}
	s.mu.Unlock()
	for _, ev := range started {
		s.emit(ev)
	}
	return errors.Join(errs...)
}

// setStatus resets the status of component in to its current image, not running; s.mu held.
func (s *Supervisor) setStatus(in appinstall.Installed, uid uint32) *AppStatus {
	st := &AppStatus{ComponentID: in.ComponentID, Name: in.Name, ImageID: in.Current.ID,
		Version: in.Current.Version, State: StateStopped, UID: uid, Since: s.cfg.Now()}
	if old := s.status[in.ComponentID]; old != nil {
		st.LastExit, st.LastExitAt = old.LastExit, old.LastExitAt
	}
	s.status[in.ComponentID] = st
	return st
}

// startRunner starts a runner for in; s.mu held, s.running.
func (s *Supervisor) startRunner(in appinstall.Installed, uid uint32) {
	ctx, cancel := context.WithCancel(s.runCtx)
	r := &runner{cid: in.ComponentID, in: in, uid: uid, cancel: cancel, done: make(chan struct{})}
	s.runners[r.cid] = r
	if s.logs[r.cid] == nil {
		s.logs[r.cid] = newRing(s.cfg.LogSize)
	}
	go s.supervise(ctx, r, s.logs[r.cid])
}

// stopRunners stops rs in parallel and waits for them; s.mu not held.
func (s *Supervisor) stopRunners(rs []*runner) {
	for _, r := range rs {
		r.cancel()
	}
	for _, r := range rs {
		<-r.done
	}
	s.mu.Lock()
	for _, r := range rs {
		if s.runners[r.cid] == r {
			delete(s.runners, r.cid)
		}
	}
	s.mu.Unlock()
}

// Stop stops the application (SIGTERM, then SIGKILL after the grace period) and keeps it
// stopped, across Reconcile and agent restarts, until Start. It returns once the application
// has exited.
func (s *Supervisor) Stop(componentID string) error {
	return s.setStopped(componentID, true)
}

// Start clears a Stop and starts the application if the supervisor is running and the
// application is not; an application that could not be started (StateFailed) is tried again.
func (s *Supervisor) Start(componentID string) error {
	return s.setStopped(componentID, false)
}

func (s *Supervisor) setStopped(id string, stopped bool) error {
	if err := s.lock(context.Background()); err != nil {
		return err
	}
	defer s.unlock()
	installed := false
	for _, in := range s.cfg.Apps.List() {
		installed = installed || in.ComponentID == id
	}
	if !installed {
		return fmt.Errorf("%s: %w", id, ErrNotInstalled)
	}
	s.mu.Lock()
	_, allocated, err := s.st.uid(id, s.cfg.UIDMin, s.cfg.UIDMax)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	a := s.st.Apps[id]
	if a.Stopped != stopped || allocated {
		a.Stopped = stopped
		if err := s.st.save(statePath(s.cfg.StateDir)); err != nil {
			s.mu.Unlock()
			return err
		}
	}
	s.mu.Unlock()
	if err := s.reconcile(); err != nil {
		return err
	}
	s.log.Info("application "+map[bool]string{true: "stopped", false: "started"}[stopped], "component", id)
	return nil
}

// lock takes s.op, or gives up when ctx ends.
func (s *Supervisor) lock(ctx context.Context) error {
	select {
	case s.op <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Supervisor) unlock() { <-s.op }

// event builds an event about st; s.mu held.
func (s *Supervisor) event(kind EventKind, st *AppStatus, more func(*Event)) Event {
	ev := Event{Kind: kind, ComponentID: st.ComponentID, Name: st.Name, ImageID: st.ImageID,
		Version: st.Version, Restarts: st.Restarts}
	if more != nil {
		more(&ev)
	}
	return ev
}

// supervise runs r until ctx ends: start, wait, decide (restart with backoff, or roll back),
// and again. See docs/APPS-RUN.md for the rules.
func (s *Supervisor) supervise(ctx context.Context, r *runner, out *ring) {
	defer close(r.done)
	streak := 0      // exits in a row without a healthy run: drives the backoff
	failures := 0    // failed starts in a row of an image on probation
	noRollback := "" // an image whose rollback the installer refused
	for {
		s.mu.Lock()
		in := r.in
		st := s.status[r.cid]
		probation := in.Previous != nil && s.st.app(r.cid).Healthy != in.Current.ID && noRollback != in.Current.ID
		s.mu.Unlock()

		spec, release, err := s.spec(in, r.uid, out)
		if err != nil {
			s.mu.Lock()
			r.failed = true
			st.State, st.Error, st.Since = StateFailed, err.Error(), s.cfg.Now()
			ev := s.event(EventFailed, st, func(ev *Event) { ev.Error = err.Error() })
			s.mu.Unlock()
			s.emit(ev)
			<-ctx.Done()
			return
		}

		exit, uptime, startErr, healthy := s.runOnce(ctx, r, st, spec)
		release()
		if ctx.Err() != nil {
			s.stopped(st, exit, uptime) // by Stop, Reconcile, or the agent stopping
			return
		}
		if healthy {
			streak, failures = 0, 0
		}
		failure := startErr != nil || failed(exit)
		if probation && failure && !healthy {
			failures++
		}
		streak++
		delay := backoff(streak, s.cfg.BackoffMin, s.cfg.BackoffMax, s.cfg.Rand())
		rollback := probation && failures >= s.cfg.CrashLimit
		if rollback {
			delay = 0
		}

		s.mu.Lock()
		now := s.cfg.Now()
		st.Pid, st.Since, st.Restarts, st.Error = 0, now, st.Restarts+1, ""
		if startErr != nil {
			st.Error = startErr.Error()
		}
		if exit != nil {
			st.LastExit, st.LastExitAt = exit, now
		}
		st.State = StateBackoff
		if failure {
			st.State = StateCrashed
		}
		st.NextStart = now.Add(delay)
		ev := s.event(EventExited, st, func(ev *Event) {
			ev.Exit, ev.Uptime, ev.Backoff = exit, uptime, delay
			if startErr != nil {
				ev.Error = startErr.Error()
			}
		})
		s.mu.Unlock()
		s.emit(ev)

		if rollback {
			last := "failed to start: "
			if startErr != nil {
				last += startErr.Error()
			} else {
				last = exit.String()
			}
			reason := fmt.Sprintf("version %s crashed as it started %d times in a row (each within %v of its start); last: %s",
				in.Current.Version, failures, s.cfg.HealthyAfter, last)
			if s.rollback(ctx, r, in, exit, reason) {
				streak, failures = 0, 0
				continue // the previous image starts at once
			}
			if ctx.Err() != nil {
				s.stopped(st, nil, 0)
				return
			}
			// Refused: this image keeps restarting with backoff, and is not rolled back again.
			noRollback, failures = in.Current.ID, 0
			delay = backoff(streak, s.cfg.BackoffMin, s.cfg.BackoffMax, s.cfg.Rand())
			s.mu.Lock()
			st.NextStart = s.cfg.Now().Add(delay)
			s.mu.Unlock()
		}
		select {
		case <-s.cfg.After(delay):
		case <-ctx.Done():
			s.stopped(st, nil, 0)
			return
		}
	}
}

// runOnce starts the sandbox and waits for it to exit, or stops it when ctx ends. healthy
// reports whether the run lasted HealthyAfter; the first time an image does, the state file
// records it (its probation is over).
func (s *Supervisor) runOnce(ctx context.Context, r *runner, st *AppStatus, spec sandbox.Spec) (exit *sandbox.Exit, uptime time.Duration, startErr error, healthy bool) {
	start := s.cfg.Now()
	p, err := sandbox.Start(ctx, spec, s.log)
	if err != nil {
		return nil, 0, err, false
	}
	s.trackProc(p.Pid(), st)
	defer s.untrackProc(p.Pid())
	s.mu.Lock()
	imageID := st.ImageID
	st.State, st.Pid, st.Since, st.NextStart, st.Error = StateRunning, p.Pid(), start, time.Time{}, ""
	s.mu.Unlock()
	healthyC := s.cfg.After(s.cfg.HealthyAfter)
	for {
		select {
		case <-healthyC:
			healthyC, healthy = nil, true
			s.markHealthy(r.cid, imageID)
		case <-p.Done():
			e := p.Wait()
			uptime = s.cfg.Now().Sub(start)
			if !healthy && uptime >= s.cfg.HealthyAfter {
				healthy = true
				s.markHealthy(r.cid, imageID)
			}
			return &e, uptime, nil, healthy
		case <-ctx.Done():
			e := p.Stop()
			return &e, s.cfg.Now().Sub(start), nil, healthy
		}
	}
}

// markHealthy records that imageID of component id ran for HealthyAfter.
func (s *Supervisor) markHealthy(id, imageID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.st.Apps[id]
	if a == nil || a.Healthy == imageID {
		return
	}
	a.Healthy = imageID
	if err := s.st.save(statePath(s.cfg.StateDir)); err != nil {
		s.log.Warn("recording a healthy image", "component", id, "image", imageID, "err", err)
	}
}

// stopped records that the platform stopped the application; exit is how its last run ended,
// nil if it was not running.
func (s *Supervisor) stopped(st *AppStatus, exit *sandbox.Exit, uptime time.Duration) {
	s.mu.Lock()
	st.State, st.Pid, st.Since, st.NextStart = StateStopped, 0, s.cfg.Now(), time.Time{}
	var ev *Event
	if exit != nil {
		st.LastExit, st.LastExitAt = exit, st.Since
		e := s.event(EventExited, st, func(ev *Event) { ev.Exit, ev.Uptime = exit, uptime })
		ev = &e
	}
	s.mu.Unlock()
	if ev != nil {
		s.emit(*ev)
	}
}

// rollback asks the installer to roll component r back from in's current image, and on
// success makes r run the image it went back to. It reports whether it rolled back.
func (s *Supervisor) rollback(ctx context.Context, r *runner, in appinstall.Installed, exit *sandbox.Exit, reason string) bool {
	if err := s.lock(ctx); err != nil {
		return false
	}
	defer s.unlock()
	rb, err := s.cfg.Apps.Rollback(ctx, r.cid, reason)
	if err != nil {
		s.mu.Lock()
		ev := s.event(EventRollbackFailed, s.status[r.cid], func(ev *Event) {
			ev.FromImageID, ev.FromVersion, ev.Reason, ev.Error, ev.Exit = in.Current.ID, in.Current.Version, reason, err.Error(), exit
			if in.Previous != nil {
				ev.ImageID, ev.Version = in.Previous.ID, in.Previous.Version
			}
		})
		s.mu.Unlock()
		s.emit(ev)
		return false
	}
	name := in.Name
	if rb.To.Manifest != nil {
		name = rb.To.Manifest.Name
	}
	from := rb.From
	next := appinstall.Installed{ComponentID: r.cid, Name: name, Current: rb.To,
		Status: appinstall.StatusRolledBack, Failed: &from, Reason: rb.Reason}
	s.mu.Lock()
	r.in = next
	st := s.setStatus(next, r.uid)
	ev := s.event(EventRolledBack, st, func(ev *Event) {
		ev.FromImageID, ev.FromVersion, ev.Reason, ev.Exit = rb.From.ID, rb.From.Version, rb.Reason, exit
	})
	s.mu.Unlock()
	s.emit(ev)
	return true
}
