package apprun

import (
	"cmp"
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-iot/rampart/internal/kernelaudit"
	"github.com/rampart-iot/rampart/internal/netpolicy"
	"github.com/rampart-iot/rampart/internal/sandbox"
)

// DefaultDenialWindow is Config.DenialWindow's default.
const DefaultDenialWindow = time.Minute

// Denials is a source of the kernel's Landlock denials and seccomp refusals;
// *kernelaudit.Reader has it.
type Denials interface {
	Next(ctx context.Context) (kernelaudit.Denial, error)
}

var _ Denials = (*kernelaudit.Reader)(nil)

// NetworkDenials is a source of what applications' networks refused them, each already
// attributed to an application by its component ID; *netpolicy.Manager has it.
type NetworkDenials interface {
	NextDenial(ctx context.Context) (netpolicy.Denial, error)
}

var _ NetworkDenials = (*netpolicy.Manager)(nil)

// Denied is what an application's sandbox refused it (EventDenied).
type Denied struct {
	// By is the layer that refused: "landlock", "seccomp" (the sandbox's argument filter),
	// "network" (the application's ruleset) or "dns" (the agent's DNS answerer).
	By string `json:"by"`
	// Blockers are the rights the application lacked: Landlock's, such as "fs.write_file";
	// for seccomp, the system call ("socket"); for the network and DNS, the manifest field
	// that would have allowed it, such as "AllowedConnections".
	Blockers []string `json:"blockers"`
	// Object is what it tried to reach (a path as the application sees it, an address and
	// port, a process; "tcp to 198.18.0.3:9000", "inbound udp to port 5000"; a DNS name), as
	// the kernel logged it or the application asked: untrusted text. For seccomp it is what
	// the filter refuses of the system call ("raw or packet socket, or a refused address family": the kernel does not log
	// the arguments), the platform's text. For Landlock, with Count
	// > 1, it is the latest one's; for the network and DNS it is part of what is counted.
	Object string `json:"object,omitempty"`
	// Count is how many such denials this event stands for: 1 for the first in a window, or
	// how many came since the last event.
	Count int `json:"count"`
}

// maxDenialSlots bounds the (application, what) pairs the coalescer tracks at once, and
// maxAppDenialSlots those of one application (the network's objects are the application's
// choice); the denials of further pairs are dropped (and logged) until a window ends.
const (
	maxDenialSlots    = 1024
	maxAppDenialSlots = 64
)

// what is what denials are counted under, besides the application: for Landlock the blockers
// (the objects vary: a program that walks a directory), for the network and DNS the blockers
// and the object (one count per destination or name).
func (d *Denied) what() string {
	w := d.By + " " + strings.Join(d.Blockers, ",")
	if d.By != "landlock" {
		w += " " + d.Object
	}
	return w
}

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

// watchDenials reads Config.Denials and Config.NetworkDenials until ctx ends, attributes each
// Landlock denial to the application whose sandbox created the denying domain, each seccomp
// refusal to the application whose uid made the call (a network denial names its
// application), and emits EventDenied, coalesced: at most one event per
// application and what was refused (Denied.what) per DenialWindow, counting the rest. When
// the kernel dropped records of denials, it emits one EventDenialsLost at the end of the
// window, with how many times.
func (s *Supervisor) watchDenials(ctx context.Context) {
	in := readDenials(ctx, s, "kernel", s.cfg.Denials != nil, func(ctx context.Context) (kernelaudit.Denial, error) {
		return s.cfg.Denials.Next(ctx)
	})
	netIn := readDenials(ctx, s, "network", s.cfg.NetworkDenials != nil, func(ctx context.Context) (netpolicy.Denial, error) {
		return s.cfg.NetworkDenials.NextDenial(ctx)
	})
	c := newCoalescer(s.cfg.DenialWindow)
	tick := s.cfg.After(s.cfg.DenialWindow)
	// A denial read before runOnce recorded its sandbox's pid (the application was denied
	// as it started) is tried again when the window ends.
	var later []kernelaudit.LandlockDenial
	lost := 0 // times the kernel dropped denials this window
	reportLost := func() {
		if lost > 0 {
			s.emit(Event{Kind: EventDenialsLost, Lost: lost})
			lost = 0
		}
	}
	for {
		if in == nil && netIn == nil {
			for _, ev := range c.flush(s.cfg.Now(), true) {
				s.emit(ev)
			}
			reportLost()
			return
		}
		select {
		case d, ok := <-netIn:
			if !ok {
				netIn = nil
				continue
			}
			ev, ok := s.networkDenialEvent(d)
			if !ok {
				s.log.Debug("a network denial of no application", "app", d.App, "by", d.By, "object", d.Object)
				continue
			}
			if out := c.add(s.cfg.Now(), ev); out != nil {
				s.emit(*out)
			}
		case kd, ok := <-in:
			if !ok {
				in = nil
				continue
			}
			if kd.Lost > 0 {
				lost += kd.Lost
				continue
			}
			if kd.Seccomp != nil {
				ev, ok := s.seccompEvent(kd.Seccomp, max(kd.Count, 1))
				if !ok {
					s.log.Debug("a seccomp refusal of no application", "pid", kd.Seccomp.Pid, "uid", kd.Seccomp.UID, "syscall", kd.Seccomp.Syscall)
				} else if out := c.add(s.cfg.Now(), ev); out != nil {
					s.emit(*out)
				}
				continue
			}
			if kd.Landlock == nil {
				continue
			}
			d := *kd.Landlock
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
				s.log.Warn("denials not reported: too many kinds at once", "dropped", n)
			}
			reportLost()
			tick = s.cfg.After(s.cfg.DenialWindow)
		}
	}
}

// readDenials reads a source of denials while ctx lasts (if on), into the channel it returns,
// which it closes when the source fails or ctx ends; nil if the source is off.
func readDenials[D any](ctx context.Context, s *Supervisor, name string, on bool, next func(context.Context) (D, error)) chan D {
	if !on {
		return nil
	}
	in := make(chan D, 64)
	go func() {
		defer close(in)
		for {
			d, err := next(ctx)
			if err != nil {
				if ctx.Err() == nil {
					s.log.Warn("reading "+name+" denials stopped", "err", err)
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
	return in
}

// networkDenialEvent makes an event of d, attributed already: its App is a component ID.
func (s *Supervisor) networkDenialEvent(d netpolicy.Denial) (Event, bool) {
	s.mu.Lock()
	st := s.status[d.App]
	var ev Event
	if st != nil {
		ev = Event{Kind: EventDenied, ComponentID: st.ComponentID, Name: st.Name, ImageID: st.ImageID, Version: st.Version,
			Restarts: st.Restarts, Denied: &Denied{By: d.By, Blockers: []string{d.Capability}, Object: d.Object, Count: 1}}
	}
	s.mu.Unlock()
	return ev, st != nil
}

// seccompEvent attributes a seccomp refusal by the caller's uid: each application has its own,
// never another's, and every process of the application (its children too, and after they
// exited) runs as it, while pids are the host's, reused, and of any process of the app.
// The event stands for count refusals alike (kernelaudit.Denial.Count).
func (s *Supervisor) seccompEvent(d *kernelaudit.Seccomp, count int) (Event, bool) {
	name := d.SyscallName()
	if name == "" {
		name = "syscall " + strconv.Itoa(d.Syscall)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range s.status {
		if st.UID != 0 && st.UID == d.UID {
			return Event{Kind: EventDenied, ComponentID: st.ComponentID, Name: st.Name, ImageID: st.ImageID, Version: st.Version,
				Restarts: st.Restarts, Denied: &Denied{By: "seccomp", Blockers: []string{name}, Object: sandbox.ArgumentRefusal(name), Count: count}}, true
		}
	}
	return Event{}, false
}

// denialEvent attributes d: the domain's creator is an application's sandbox init.
func (s *Supervisor) denialEvent(d kernelaudit.LandlockDenial) (Event, bool) {
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

// coalescer bounds denial events: the first denial of an (application, what) pair (see
// Denied.what) is reported at once; the pair's later ones in its window are counted and
// reported as one event when the window ends.
type coalescer struct {
	window  time.Duration
	slots   map[denialKey]*denialSlot
	perApp  map[string]int // slots of each application
	dropped int
}

type denialKey struct{ cid, what string }

type denialSlot struct {
	last  Event     // the latest denial
	count int       // denials since the last event
	next  time.Time // when the next event may go out
}

func newCoalescer(window time.Duration) *coalescer {
	return &coalescer{window: window, slots: map[denialKey]*denialSlot{}, perApp: map[string]int{}}
}

// add takes a denial event (standing for Denied.Count denials) and returns it if it is to be
// emitted now.
func (c *coalescer) add(now time.Time, ev Event) *Event {
	k := denialKey{ev.ComponentID, ev.Denied.what()}
	if sl, ok := c.slots[k]; ok {
		sl.last, sl.count = ev, sl.count+ev.Denied.Count
		return nil
	}
	if len(c.slots) >= maxDenialSlots || c.perApp[k.cid] >= maxAppDenialSlots {
		c.dropped += ev.Denied.Count
		return nil
	}
	c.slots[k] = &denialSlot{last: ev, next: now.Add(c.window)}
	c.perApp[k.cid]++
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
			if c.perApp[k.cid]--; c.perApp[k.cid] == 0 {
				delete(c.perApp, k.cid)
			}
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
		return cmp.Or(cmp.Compare(a.ComponentID, b.ComponentID), cmp.Compare(a.Denied.what(), b.Denied.what()))
	})
	return out
}

func (c *coalescer) takeDropped() int {
	n := c.dropped
	c.dropped = 0
	return n
}
