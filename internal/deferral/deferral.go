// Package deferral is the device's update-deferral coordinator, Azure Sphere's system events
// for updates: the update loop announces each update it is about to install, applications with
// SystemEventNotifications see it, and those with SoftwareUpdateDeferral may defer it, within
// caps counted from when the device learned of the update (an OS update at most 24 hours, an
// application update at most 167 hours), or resume it early.
//
// The update loop is the authority: it asks Hold before installing and the coordinator answers
// from the applications' requests, clamped to the cap, so no application can hold an update
// back for longer. Events carry a sequence number; applications long-poll for those after the
// last one they saw.
//
// Trust: it trusts the update loop; an application's requests are bounded and only ever
// shorten or lengthen its own deferral within the cap.
package deferral

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"
)

// Type is what an update replaces.
type Type string

// Update types, as Azure Sphere names them.
const (
	App    Type = "App"
	System Type = "System"
)

// Caps on deferral, from when the device learned of the update.
const (
	MaxApp    = 10020 * time.Minute // 167 hours
	MaxSystem = 1440 * time.Minute  // 24 hours
)

// Max is the cap for t.
func Max(t Type) time.Duration {
	if t == System {
		return MaxSystem
	}
	return MaxApp
}

// Valid says whether t is a known type.
func (t Type) Valid() bool { return t == App || t == System }

// Event statuses, as Azure Sphere names them.
const (
	StatusPending  = "Pending"  // an update is ready to install and may be deferred
	StatusDeferred = "Deferred" // an application deferred it; Until says until when
	StatusFinal    = "Final"    // it installs now; it can no longer be deferred
	StatusComplete = "Complete" // it was installed (or is no longer offered)
)

// EventUpdateReadyForInstall is the only event kind today.
const EventUpdateReadyForInstall = "UpdateReadyForInstall"

// Event is one system event.
type Event struct {
	Seq    uint64 `json:"seq"`
	Event  string `json:"event"`
	Type   Type   `json:"updateType"`
	Status string `json:"status"`
	// MaxDeferralMinutes is how much deferral is left (Pending, Deferred).
	MaxDeferralMinutes int       `json:"maxDeferralMinutes"`
	Until              time.Time `json:"until,omitzero"` // Deferred: until when
}

// Limits.
const (
	// MaxEvents is how many recent events are kept for applications that poll late.
	MaxEvents = 64
	// DefaultGrace is how long Hold waits, after announcing a new update, for a listening
	// application that may defer it to decide.
	DefaultGrace = 3 * time.Second
)

// Errors.
var (
	ErrNoPendingUpdate = errors.New("no update of that type is pending")
	ErrInvalid         = errors.New("invalid deferral")
)

// Config configures a Coordinator.
type Config struct {
	Now   func() time.Time // the trusted clock; nil means time.Now
	Grace time.Duration    // default DefaultGrace
	// OnChange is called when an application resumes an update or its deferral ends early:
	// the update loop should run now.
	OnChange func()
}

// Coordinator is safe for concurrent use.
type Coordinator struct {
	cfg Config

	mu        sync.Mutex
	seq       uint64
	events    []Event
	changed   chan struct{} // closed and replaced on each new event or decision
	listeners map[string]bool
	pending   map[Type]*pending
}

type pending struct {
	key       string
	firstSeen time.Time
	deadline  time.Time
	announced bool
	status    string
	until     time.Time            // last Deferred event's Until
	deferrals map[string]time.Time // component → deferred until
	decided   bool                 // an application deferred or resumed since the announcement
	resumed   bool                 // an application resumed it: it goes ahead
}

// New returns a Coordinator.
func New(cfg Config) *Coordinator {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Grace == 0 {
		cfg.Grace = DefaultGrace
	}
	return &Coordinator{cfg: cfg, changed: make(chan struct{}), listeners: map[string]bool{}, pending: map[Type]*pending{}}
}

func (c *Coordinator) publishLocked(e Event) {
	c.seq++
	e.Seq = c.seq
	e.Event = EventUpdateReadyForInstall
	c.events = append(c.events, e)
	if len(c.events) > MaxEvents {
		c.events = slices.Delete(c.events, 0, len(c.events)-MaxEvents)
	}
	c.signalLocked()
}

func (c *Coordinator) signalLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

func minutesLeft(deadline, now time.Time) int {
	if !deadline.After(now) {
		return 0
	}
	return int(deadline.Sub(now) / time.Minute)
}

// Hold is asked by the update loop before it installs an update of type t, identified by key
// (what it installs) and first learned of at firstSeen. It announces a new update to the
// listening applications and, if one of them may defer it, waits up to the grace period for a
// decision. held says whether to wait; until is when to ask again at the latest.
func (c *Coordinator) Hold(ctx context.Context, t Type, key string, firstSeen time.Time) (until time.Time, held bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.cfg.Now()
	p := c.pending[t]
	if p == nil || p.key != key {
		p = &pending{key: key, firstSeen: firstSeen, deadline: firstSeen.Add(Max(t)), deferrals: map[string]time.Time{}}
		c.pending[t] = p
	}
	if !now.Before(p.deadline) {
		c.finalLocked(t, p)
		return time.Time{}, false
	}
	for pass := 0; ; pass++ {
		if !p.announced {
			p.announced, p.status, p.decided = true, StatusPending, false
			c.publishLocked(Event{Type: t, Status: StatusPending, MaxDeferralMinutes: minutesLeft(p.deadline, now)})
			if c.anyDeferrerLocked() {
				c.awaitDecisionLocked(ctx, t, p)
				now = c.cfg.Now()
			}
		}
		var latest time.Time
		for comp, u := range p.deferrals {
			if !u.After(now) {
				delete(p.deferrals, comp)
				continue
			}
			if u.After(latest) {
				latest = u
			}
		}
		if !latest.IsZero() {
			return c.deferredLocked(t, p, latest, now)
		}
		// A deferral that ran out announces the update again, as Azure Sphere does: the
		// application may defer it once more, within the cap.
		if p.status == StatusDeferred && !p.resumed && pass == 0 && now.Before(p.deadline) && ctx.Err() == nil {
			p.announced = false
			continue
		}
		c.finalLocked(t, p)
		return time.Time{}, false
	}
}

// awaitDecisionLocked waits, up to the grace, for a listening application to defer or resume
// the update just announced.
func (c *Coordinator) awaitDecisionLocked(ctx context.Context, t Type, p *pending) {
	deadline := time.NewTimer(c.cfg.Grace)
	defer deadline.Stop()
	for !p.decided {
		ch := c.changed
		c.mu.Unlock()
		expired := false
		select {
		case <-ctx.Done():
		case <-deadline.C:
			expired = true // nobody decided in time: the update goes ahead
		case <-ch:
		}
		c.mu.Lock()
		if expired || ctx.Err() != nil || c.pending[t] != p {
			return
		}
	}
}

func (c *Coordinator) deferredLocked(t Type, p *pending, latest, now time.Time) (time.Time, bool) {
	if latest.After(p.deadline) {
		latest = p.deadline
	}
	if p.status != StatusDeferred || !p.until.Equal(latest) {
		p.status, p.until = StatusDeferred, latest
		c.publishLocked(Event{Type: t, Status: StatusDeferred, MaxDeferralMinutes: minutesLeft(p.deadline, now), Until: latest})
	}
	return latest, true
}

func (c *Coordinator) finalLocked(t Type, p *pending) {
	if p.status != StatusFinal {
		p.status = StatusFinal
		c.publishLocked(Event{Type: t, Status: StatusFinal})
	}
}

func (c *Coordinator) anyDeferrerLocked() bool {
	for _, canDefer := range c.listeners {
		if canDefer {
			return true
		}
	}
	return false
}

// Done is called by the update loop when the pending update of type t was installed, or is no
// longer offered.
func (c *Coordinator) Done(t Type) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.pending[t]; !ok {
		return
	}
	delete(c.pending, t)
	c.publishLocked(Event{Type: t, Status: StatusComplete})
}

// Register says that an application listens for system events (SystemEventNotifications),
// and whether it may defer (SoftwareUpdateDeferral). The returned function unregisters it and
// drops its deferrals.
func (c *Coordinator) Register(component string, canDefer bool) (unregister func()) {
	c.mu.Lock()
	c.listeners[component] = canDefer
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		delete(c.listeners, component)
		dropped := false
		for _, p := range c.pending {
			if _, ok := p.deferrals[component]; ok {
				delete(p.deferrals, component)
				dropped = true
			}
		}
		c.mu.Unlock()
		if dropped && c.cfg.OnChange != nil {
			c.cfg.OnChange()
		}
	}
}

// Defer defers the pending update of type t for the application, by minutes (at least 1),
// clamped to the update's cap.
func (c *Coordinator) Defer(component string, t Type, minutes int) (Event, error) {
	if !t.Valid() {
		return Event{}, fmt.Errorf("%w: update type %q: want App or System", ErrInvalid, t)
	}
	if minutes < 1 || minutes > int(MaxApp/time.Minute) {
		return Event{}, fmt.Errorf("%w: %d minutes: want 1 to %d", ErrInvalid, minutes, int(MaxApp/time.Minute))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.pending[t]
	if p == nil || !p.announced || p.status == StatusFinal {
		return Event{}, fmt.Errorf("%w (%s)", ErrNoPendingUpdate, t)
	}
	now := c.cfg.Now()
	until := now.Add(time.Duration(minutes) * time.Minute)
	if until.After(p.deadline) {
		until = p.deadline
	}
	p.deferrals[component] = until
	p.decided, p.resumed = true, false
	c.signalLocked()
	return Event{Type: t, Status: StatusDeferred, MaxDeferralMinutes: minutesLeft(p.deadline, now), Until: until}, nil
}

// Resume withdraws the application's deferral of the pending update of type t; the update
// loop runs at once and installs it unless another application still defers it.
func (c *Coordinator) Resume(component string, t Type) error {
	if !t.Valid() {
		return fmt.Errorf("%w: update type %q: want App or System", ErrInvalid, t)
	}
	c.mu.Lock()
	p := c.pending[t]
	if p == nil || !p.announced {
		c.mu.Unlock()
		return fmt.Errorf("%w (%s)", ErrNoPendingUpdate, t)
	}
	delete(p.deferrals, component)
	p.decided, p.resumed = true, len(p.deferrals) == 0
	c.signalLocked()
	c.mu.Unlock()
	if c.cfg.OnChange != nil {
		c.cfg.OnChange()
	}
	return nil
}

// Events returns the events after seq, waiting up to wait for one if there is none yet. The
// first event returned may be later than seq+1 when older ones were dropped.
func (c *Coordinator) Events(ctx context.Context, after uint64, wait time.Duration) []Event {
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		c.mu.Lock()
		var out []Event
		for _, e := range c.events {
			if e.Seq > after {
				out = append(out, e)
			}
		}
		ch := c.changed
		c.mu.Unlock()
		if len(out) > 0 {
			return out
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			return nil
		case <-ch:
		}
	}
}

// Pending is one pending update, for reports.
type Pending struct {
	Type      Type
	Status    string
	FirstSeen time.Time
	Until     time.Time // when deferred
}

// Snapshot returns the pending updates, by type.
func (c *Coordinator) Snapshot() []Pending {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Pending
	for _, t := range slices.Sorted(maps.Keys(c.pending)) {
		p := c.pending[t]
		e := Pending{Type: t, Status: p.status, FirstSeen: p.firstSeen}
		if p.status == StatusDeferred {
			e.Until = p.until
		}
		out = append(out, e)
	}
	return out
}
