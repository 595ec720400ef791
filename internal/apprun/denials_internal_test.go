package apprun

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/internal/appinstall"
	"github.com/rampart-iot/rampart/internal/kernelaudit"
	"github.com/rampart-iot/rampart/internal/netpolicy"
	"github.com/rampart-iot/rampart/manifest"
)

func denialEv(cid, blocker, object string) Event {
	return Event{Kind: EventDenied, ComponentID: cid, Denied: &Denied{By: "landlock", Blockers: []string{blocker}, Object: object, Count: 1}}
}

// TestCoalescer: the first denial of an (app, blockers) pair goes out at once; later ones in
// the window go out as one counted event when it ends; a quiet window forgets the pair.
func TestCoalescer(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	c := newCoalescer(time.Minute)
	if ev := c.add(t0, denialEv("a", "fs.write_file", "/x")); ev == nil || ev.Denied.Count != 1 || ev.Denied.Object != "/x" {
		t.Fatalf("first denial: %+v, want it at once", ev)
	}
	for i := range 100 {
		if ev := c.add(t0.Add(time.Duration(i)*time.Millisecond), denialEv("a", "fs.write_file", fmt.Sprint("/y", i))); ev != nil {
			t.Fatalf("denial %d in the window went out: %+v", i, ev)
		}
	}
	// Another blocker, another app: their own pairs.
	if c.add(t0, denialEv("a", "fs.read_file", "/z")) == nil || c.add(t0, denialEv("b", "fs.write_file", "/x")) == nil {
		t.Fatal("a new pair was held back")
	}
	if out := c.flush(t0.Add(59*time.Second), false); len(out) != 0 {
		t.Fatalf("flushed before the window ended: %+v", out)
	}
	out := c.flush(t0.Add(time.Minute), false)
	if len(out) != 1 || out[0].ComponentID != "a" || out[0].Denied.Count != 100 || out[0].Denied.Object != "/y99" {
		t.Fatalf("at the window's end: %+v, want one event of a counting 100, naming the latest object", out)
	}
	// The pairs with no further denial are forgotten; a's fs.write_file starts a new window
	// in which it stays quiet, and is then forgotten too.
	if out := c.flush(t0.Add(time.Minute), false); len(out) != 0 {
		t.Fatalf("a second flush: %+v", out)
	}
	if len(c.slots) != 1 {
		t.Fatalf("%d pairs remembered, want 1", len(c.slots))
	}
	if ev := c.add(t0.Add(90*time.Second), denialEv("a", "fs.write_file", "/w")); ev != nil {
		t.Fatalf("a denial within a minute of the last event went out: %+v", ev)
	}
	out = c.flush(t0.Add(2*time.Minute), true)
	if len(out) != 1 || out[0].Denied.Count != 1 {
		t.Fatalf("final flush: %+v", out)
	}
	c.flush(t0.Add(4*time.Minute), false)
	if len(c.slots) != 0 {
		t.Fatalf("%d pairs remembered after quiet windows, want none", len(c.slots))
	}
}

func TestCoalescerBound(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	c := newCoalescer(time.Minute)
	emitted := 0
	for i := range maxDenialSlots + 10 {
		if c.add(t0, denialEv(fmt.Sprint("app", i), "fs.write_file", "/x")) != nil {
			emitted++
		}
	}
	if emitted != maxDenialSlots || c.takeDropped() != 10 || c.takeDropped() != 0 {
		t.Fatalf("emitted %d, want %d and 10 dropped", emitted, maxDenialSlots)
	}
}

func netEv(cid, by, object string) Event {
	return Event{Kind: EventDenied, ComponentID: cid, Denied: &Denied{By: by, Blockers: []string{"AllowedConnections"}, Object: object, Count: 1}}
}

// TestCoalescerNetwork: network and DNS denials are counted per destination or name (one
// event per (app, kind, destination) per window), Landlock's per blockers as before, and one
// application cannot take more than maxAppDenialSlots of the slots.
func TestCoalescerNetwork(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	c := newCoalescer(time.Minute)
	if c.add(t0, netEv("a", "network", "tcp to 198.18.0.3:9000")) == nil ||
		c.add(t0, netEv("a", "network", "tcp to 198.18.0.4:9000")) == nil ||
		c.add(t0, netEv("a", "dns", "denied.test")) == nil {
		t.Fatal("the first denial of a destination or name was held back")
	}
	for range 3 {
		if ev := c.add(t0, netEv("a", "network", "tcp to 198.18.0.3:9000")); ev != nil {
			t.Fatalf("a repeat went out at once: %+v", ev)
		}
	}
	if ev := c.add(t0, netEv("a", "dns", "denied.test")); ev != nil {
		t.Fatalf("a repeated name went out at once: %+v", ev)
	}
	// Landlock: the object is not part of what is counted.
	if c.add(t0, denialEv("a", "fs.write_file", "/x")) == nil || c.add(t0, denialEv("a", "fs.write_file", "/y")) != nil {
		t.Fatal("Landlock denials are no longer counted by blockers")
	}
	out := c.flush(t0.Add(time.Minute), false)
	got := map[string]int{}
	for _, ev := range out {
		got[ev.Denied.By+" "+ev.Denied.Object] = ev.Denied.Count
	}
	want := map[string]int{"network tcp to 198.18.0.3:9000": 3, "dns denied.test": 1, "landlock /y": 1}
	if len(got) != len(want) {
		t.Fatalf("flushed %v, want %v", got, want)
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("flushed %v, want %v", got, want)
		}
	}

	// One application's many destinations take at most maxAppDenialSlots slots; another
	// application still gets its own.
	c = newCoalescer(time.Minute)
	emitted := 0
	for i := range maxAppDenialSlots + 5 {
		if c.add(t0, netEv("noisy", "network", fmt.Sprintf("udp to 10.0.0.%d:53", i))) != nil {
			emitted++
		}
	}
	if emitted != maxAppDenialSlots || c.takeDropped() != 5 {
		t.Errorf("emitted %d for one app, want %d and 5 dropped", emitted, maxAppDenialSlots)
	}
	if c.add(t0, netEv("quiet", "dns", "x.test")) == nil {
		t.Error("another app's denial was dropped")
	}
	// Quiet windows free the noisy app's slots.
	c.flush(t0.Add(time.Minute), false)
	if c.add(t0.Add(time.Minute), netEv("noisy", "network", "udp to 10.0.1.1:53")) == nil {
		t.Error("the noisy app's slots were not freed after a quiet window")
	}
}

// fakeNetDenials hands out fixed denials once start is closed, then blocks until its context
// ends; called tells how many calls it has had.
type fakeNetDenials struct {
	ds     []netpolicy.Denial
	start  chan struct{}
	called chan int
	n      int
}

func (f *fakeNetDenials) NextDenial(ctx context.Context) (netpolicy.Denial, error) {
	select {
	case <-f.start:
	case <-ctx.Done():
		return netpolicy.Denial{}, ctx.Err()
	}
	f.n++
	f.called <- f.n
	if f.n <= len(f.ds) {
		return f.ds[f.n-1], nil
	}
	<-ctx.Done()
	return netpolicy.Denial{}, ctx.Err()
}

// TestNetworkDenialsAreReported: Config.NetworkDenials' denials become EventDenied of the
// application they name, with its name and image, coalesced per destination; a denial naming
// no application the supervisor knows is dropped. No root: the app cannot start (real-time
// capable), but the supervisor knows it.
func TestNetworkDenialsAreReported(t *testing.T) {
	src := &fakeNetDenials{start: make(chan struct{}), called: make(chan int, 10), ds: []netpolicy.Denial{
		{App: compA, By: "network", Object: "tcp to 198.18.0.3:9000", Capability: "AllowedConnections"},
		{App: compA, By: "network", Object: "tcp to 198.18.0.3:9000", Capability: "AllowedConnections"},
		{App: compA, By: "dns", Object: "denied.test", Capability: "AllowedConnections"},
		{App: "not-an-app", By: "dns", Object: "x.test", Capability: "AllowedConnections"},
		{App: compA, By: "network", Object: "tcp to 198.18.0.3:9000", Capability: "AllowedConnections"},
	}}
	var mu sync.Mutex
	var events []Event
	failed := make(chan struct{}, 1)
	s, err := New(Config{
		Apps:     fakeApps{installed: []appinstall.Installed{installed(t, compA, manifest.ApplicationTypeRealTimeCapable)}},
		StateDir: t.TempDir(), NetworkDenials: src,
		Events: func(ev Event) {
			mu.Lock()
			defer mu.Unlock()
			events = append(events, ev)
			if ev.Kind == EventFailed {
				failed <- struct{}{}
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	<-failed // the supervisor knows the app now
	close(src.start)
	for n := range src.called {
		if n > len(src.ds) { // every denial handed over
			break
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ev := range events {
		if ev.Kind != EventDenied {
			continue
		}
		if ev.ComponentID != compA || ev.ImageID != "0b1c2d3e-0000-4000-8000-000000000001" || ev.Version != "1.0.0" ||
			!slices.Equal(ev.Denied.Blockers, []string{"AllowedConnections"}) {
			t.Errorf("event %+v (denied %+v)", ev, ev.Denied)
		}
		got = append(got, fmt.Sprintf("%s %s x%d", ev.Denied.By, ev.Denied.Object, ev.Denied.Count))
	}
	want := []string{"network tcp to 198.18.0.3:9000 x1", "dns denied.test x1", "network tcp to 198.18.0.3:9000 x2"}
	if !slices.Equal(got, want) {
		t.Errorf("denial events %q, want %q", got, want)
	}
}

// TestCoalescerCounts: a denial standing for several (a flood's repeats, counted by the
// reader) counts as that many.
func TestCoalescerCounts(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	c := newCoalescer(time.Minute)
	ev := func(n int) Event {
		return Event{Kind: EventDenied, ComponentID: "a", Denied: &Denied{By: "seccomp", Blockers: []string{"socket"}, Count: n}}
	}
	if out := c.add(t0, ev(1)); out == nil || out.Denied.Count != 1 {
		t.Fatalf("first: %+v", out)
	}
	c.add(t0, ev(4095))
	c.add(t0, ev(7))
	if out := c.flush(t0.Add(time.Minute), false); len(out) != 1 || out[0].Denied.Count != 4102 {
		t.Fatalf("flushed %+v, want one event counting 4102", out)
	}
}

// fakeKernelDenials hands out fixed denials, then blocks until its context ends; called
// closes when it blocks, every denial handed over.
type fakeKernelDenials struct {
	ds     []kernelaudit.Denial
	n      int
	called chan struct{}
}

func (f *fakeKernelDenials) Next(ctx context.Context) (kernelaudit.Denial, error) {
	if f.n < len(f.ds) {
		f.n++
		return f.ds[f.n-1], nil
	}
	close(f.called)
	<-ctx.Done()
	return kernelaudit.Denial{}, ctx.Err()
}

// TestDenialsLostAreReported: the reader's overflows within a window become one
// EventDenialsLost counting them, naming no application; a refusal of no app is dropped.
func TestDenialsLostAreReported(t *testing.T) {
	src := &fakeKernelDenials{called: make(chan struct{}), ds: []kernelaudit.Denial{
		{Lost: 1},
		{Seccomp: &kernelaudit.Seccomp{UID: 4242, Arch: 0xc000003e, Syscall: 41, Code: 0x50000}, Count: 3},
		{Lost: 2},
	}}
	var mu sync.Mutex
	var events []Event
	s, err := New(Config{Apps: fakeApps{}, StateDir: t.TempDir(), Denials: src,
		After: func(time.Duration) <-chan time.Time { return nil }, // no window ends but the last
		Events: func(ev Event) {
			mu.Lock()
			defer mu.Unlock()
			events = append(events, ev)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	<-src.called
	mu.Lock()
	if len(events) != 0 {
		t.Errorf("events before the window ended: %+v", events)
	}
	mu.Unlock()
	cancel() // ends the window
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 || events[0].Kind != EventDenialsLost || events[0].Lost != 3 || events[0].ComponentID != "" || events[0].Time.IsZero() {
		t.Fatalf("events %+v, want one EventDenialsLost counting 3", events)
	}
}
