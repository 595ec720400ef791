package apprun

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"time"

	"github.com/rampart-iot/rampart/internal/landlockaudit"
)

// DefaultDenialWindow is Config.DenialWindow's default.
const DefaultDenialWindow = time.Minute

// Denials is a source of the kernel's Landlock denials; *landlockaudit.Reader has it.
type Denials interface {
	Next(ctx context.Context) (landlockaudit.Denial, error)
}

var _ Denials = (*landlockaudit.Reader)(nil)

// Denied is what an application's sandbox refused it (EventDenied).
type Denied struct {
	// By is the layer that refused: "landlock".
	By string `json:"by"`
	// Blockers are the rights the application lacked, such as "fs.write_file".
	Blockers []string `json:"blockers"`
	// Object is what it tried to reach (a path as the application sees it, an address and
	// port, a process), as the kernel logged it: untrusted text. With Count > 1 it is the
	// latest one's.
	Object string `json:"object,omitempty"`
	// Count is how many such denials this event stands for: 1 for the first in a window, or
	// how many came since the last event.
	Count int `json:"count"`
}

// maxDenialSlots bounds the (application, blockers) pairs the coalescer tracks at once; the
// denials of further pairs are dropped (and logged) until a window ends.
const maxDenialSlots = 1024

// maxLaterDenials bounds the unattributed denials kept to be tried again.
const maxLaterDenials = 64

// proc is an application's process as the denial watcher knows it: the sandbox's init, which
// creates the application's Landlock domain and execs the application, keeping its pid.
type proc struct {
	cid, name, imageID, version string
	exited                      time.Time // zero while it runs
}

// trackProc records that pid is component cid's process (runOnce, once its sandbox started).
func (s *Supervisor) trackProc(pid int, st *AppStatus) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	for p, pr := range s.procs { // forget the processes that exited over a window ago
		if !pr.exited.IsZero() && now.Sub(pr.exited) > s.cfg.DenialWindow {
			delete(s.procs, p)
		}
	}
	s.procs[pid] = proc{cid: st.ComponentID, name: st.Name, imageID: st.ImageID, version: st.Version}
}

// untrackProc records that pid exited. Its denials may still be on their way from the kernel,
// so it is remembered for a window.
func (s *Supervisor) untrackProc(pid int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if pr, ok := s.procs[pid]; ok {
		pr.exited = s.cfg.Now()
		s.procs[pid] = pr
	}
}

// watchDenials reads Config.Denials until ctx ends, attributes each denial to the application
// whose sandbox created the denying Landlock domain, and emits EventDenied, coalesced: at most
// one event per application and set of blockers per DenialWindow, counting the rest.
func (s *Supervisor) watchDenials(ctx context.Context) {
	in := make(chan landlockaudit.Denial, 64)
	go func() {
		defer close(in)
		for {
			d, err := s.cfg.Denials.Next(ctx)
			if err != nil {
				if ctx.Err() == nil {
					s.log.Warn("reading Landlock denials stopped", "err", err)
				}
				return
			}
			select {
			case in <- d:
			case <-ctx.Done():
				return
			}
		}
	}()
	c := newCoalescer(s.cfg.DenialWindow)
	tick := s.cfg.After(s.cfg.DenialWindow)
	// A denial read before runOnce recorded its sandbox's pid (the application was denied
	// as it started) is tried again when the window ends.
	var later []landlockaudit.Denial
	for {
		select {
		case d, ok := <-in:
			if !ok {
				for _, ev := range c.flush(s.cfg.Now(), true) {
					s.emit(ev)
				}
				return
			}
			ev, ok := s.denialEvent(d)
			if !ok {
				if d.Pid != 0 && len(later) < maxLaterDenials {
					later = append(later, d)
				} else {
					s.log.Debug("a Landlock denial of no application", "domain_pid", d.Pid, "blockers", d.Blockers, "object", d.Object())
				}
				continue
			}
			if out := c.add(s.cfg.Now(), ev); out != nil {
				s.emit(*out)
			}
		case <-tick:
			for _, d := range later {
				if ev, ok := s.denialEvent(d); ok {
					if out := c.add(s.cfg.Now(), ev); out != nil {
						s.emit(*out)
					}
				} else {
					s.log.Debug("a Landlock denial of no application", "domain_pid", d.Pid, "blockers", d.Blockers, "object", d.Object())
				}
			}
			later = later[:0]
			for _, ev := range c.flush(s.cfg.Now(), false) {
				s.emit(ev)
			}
			if n := c.takeDropped(); n > 0 {
				s.log.Warn("Landlock denials not reported: too many kinds at once", "dropped", n)
			}
			tick = s.cfg.After(s.cfg.DenialWindow)
		}
	}
}

// denialEvent attributes d: the domain's creator is an application's sandbox init.
func (s *Supervisor) denialEvent(d landlockaudit.Denial) (Event, bool) {
	if d.Pid == 0 {
		return Event{}, false
	}
	s.mu.Lock()
	pr, ok := s.procs[d.Pid]
	restarts := 0
	if st := s.status[pr.cid]; ok && st != nil {
		restarts = st.Restarts
	}
	s.mu.Unlock()
	if !ok {
		return Event{}, false
	}
	return Event{Kind: EventDenied, ComponentID: pr.cid, Name: pr.name, ImageID: pr.imageID, Version: pr.version,
		Restarts: restarts, Denied: &Denied{By: "landlock", Blockers: d.Blockers, Object: d.Object(), Count: 1}}, true
}

// coalescer bounds denial events: the first denial of an (application, blockers) pair is
// reported at once; the pair's later ones in its window are counted and reported as one
// event when the window ends.
type coalescer struct {
	window  time.Duration
	slots   map[denialKey]*denialSlot
	dropped int
}

type denialKey struct{ cid, blockers string }

type denialSlot struct {
	last  Event     // the latest denial
	count int       // denials since the last event
	next  time.Time // when the next event may go out
}

func newCoalescer(window time.Duration) *coalescer {
	return &coalescer{window: window, slots: map[denialKey]*denialSlot{}}
}

// add takes a denial event (Denied.Count 1) and returns it if it is to be emitted now.
func (c *coalescer) add(now time.Time, ev Event) *Event {
	k := denialKey{ev.ComponentID, strings.Join(ev.Denied.Blockers, ",")}
	if sl, ok := c.slots[k]; ok {
		sl.last, sl.count = ev, sl.count+1
		return nil
	}
	if len(c.slots) >= maxDenialSlots {
		c.dropped++
		return nil
	}
	c.slots[k] = &denialSlot{last: ev, next: now.Add(c.window)}
	return &ev
}

// flush returns an event for each pair whose window has ended (every pair, with all) and that
// had denials in it, with their count, and forgets the pairs that had none.
func (c *coalescer) flush(now time.Time, all bool) []Event {
	var out []Event
	for k, sl := range c.slots {
		if !all && now.Before(sl.next) {
			continue
		}
		if sl.count == 0 {
			delete(c.slots, k)
			continue
		}
		ev := sl.last
		d := *ev.Denied
		d.Count = sl.count
		ev.Denied = &d
		out = append(out, ev)
		sl.count, sl.next = 0, now.Add(c.window)
	}
	slices.SortFunc(out, func(a, b Event) int {
		return cmp.Or(cmp.Compare(a.ComponentID, b.ComponentID),
			cmp.Compare(strings.Join(a.Denied.Blockers, ","), strings.Join(b.Denied.Blockers, ",")))
	})
	return out
}

func (c *coalescer) takeDropped() int {
	n := c.dropped
	c.dropped = 0
	return n
}
