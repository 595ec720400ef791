package deferral

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)} }

func TestNoListenerNoWait(t *testing.T) {
	clk := newClock()
	c := New(Config{Now: clk.now, Grace: time.Hour})
	// Nobody may defer: the update goes ahead at once (the grace is never waited).
	if _, held := c.Hold(t.Context(), App, "v2", clk.now()); held {
		t.Fatal("held with no application listening")
	}
	ev := c.Events(t.Context(), 0, 0)
	if len(ev) != 2 || ev[0].Status != StatusPending || ev[1].Status != StatusFinal || ev[0].MaxDeferralMinutes != 10020 {
		t.Fatalf("events: %+v", ev)
	}
	c.Done(App)
	if ev := c.Events(t.Context(), 2, 0); len(ev) != 1 || ev[0].Status != StatusComplete {
		t.Fatalf("after Done: %+v", ev)
	}
}

// A deferring application sees the announcement, defers, and the update is held until then;
// its resume lets it go at once.
func TestDeferThenResume(t *testing.T) {
	clk := newClock()
	var changes atomic.Int32
	c := New(Config{Now: clk.now, Grace: time.Minute, OnChange: func() { changes.Add(1) }})
	unregister := c.Register("app-1", true)
	defer unregister()
	go func() {
		ev := c.Events(context.Background(), 0, time.Minute)
		if len(ev) == 0 || ev[0].Status != StatusPending || ev[0].Type != System || ev[0].MaxDeferralMinutes != 1440 {
			t.Errorf("announcement: %+v", ev)
			return
		}
		if _, err := c.Defer("app-1", System, 60); err != nil {
			t.Error(err)
		}
	}()
	first := clk.now()
	until, held := c.Hold(t.Context(), System, "os-2", first)
	if !held || !until.Equal(first.Add(time.Hour)) {
		t.Fatalf("Hold = %v, %v; want held until %v", until, held, first.Add(time.Hour))
	}
	if s := c.Snapshot(); len(s) != 1 || s[0].Status != StatusDeferred || !s[0].Until.Equal(until) {
		t.Fatalf("snapshot: %+v", s)
	}
	// Asked again half-way: still held, no new event.
	clk.add(30 * time.Minute)
	before := len(c.Events(t.Context(), 0, 0))
	if _, held := c.Hold(t.Context(), System, "os-2", first); !held {
		t.Fatal("released early")
	}
	if n := len(c.Events(t.Context(), 0, 0)); n != before {
		t.Fatalf("a repeated Hold published %d events", n-before)
	}
	if err := c.Resume("app-1", System); err != nil {
		t.Fatal(err)
	}
	if changes.Load() != 1 {
		t.Fatalf("resume woke the loop %d times, want 1", changes.Load())
	}
	if _, held := c.Hold(t.Context(), System, "os-2", first); held {
		t.Fatal("held after the resume")
	}
}

// No application can hold an update past its cap, counted from when the device learned of it
// (also across restarts: firstSeen comes from the loop's state).
func TestCapsHold(t *testing.T) {
	clk := newClock()
	c := New(Config{Now: clk.now, Grace: time.Minute})
	defer c.Register("app-1", true)()
	first := clk.now().Add(-23 * time.Hour) // learned of it 23 hours ago
	go func() {
		c.Events(context.Background(), 0, time.Minute)
		if ev, err := c.Defer("app-1", System, 600); err != nil || !ev.Until.Equal(first.Add(MaxSystem)) {
			t.Errorf("Defer = %+v, %v; want clamped to %v", ev, err, first.Add(MaxSystem))
		}
	}()
	until, held := c.Hold(t.Context(), System, "os-2", first)
	if !held || !until.Equal(first.Add(MaxSystem)) {
		t.Fatalf("Hold = %v, %v; want held until the cap %v", until, held, first.Add(MaxSystem))
	}
	clk.add(time.Hour)
	if _, held := c.Hold(t.Context(), System, "os-2", first); held {
		t.Fatal("held past the 24-hour cap")
	}
	if _, err := c.Defer("app-1", System, 5); !errors.Is(err, ErrNoPendingUpdate) {
		t.Fatalf("deferring a final update: %v", err)
	}
}

// An application that does not answer within the grace does not hold the update, and one
// that unregisters (stops) drops its deferral.
func TestGraceAndUnregister(t *testing.T) {
	clk := newClock()
	var changes atomic.Int32
	c := New(Config{Now: clk.now, Grace: 20 * time.Millisecond, OnChange: func() { changes.Add(1) }})
	unregister := c.Register("app-1", true)
	if _, held := c.Hold(t.Context(), App, "v2", clk.now()); held {
		t.Fatal("held without a decision")
	}
	// A new update (another key) is announced again.
	go func() {
		ev := c.Events(context.Background(), 2, time.Minute)
		if len(ev) == 0 || ev[0].Status != StatusPending {
			t.Errorf("second announcement: %+v", ev)
		}
		if _, err := c.Defer("app-1", App, 10); err != nil {
			t.Error(err)
		}
	}()
	if _, held := c.Hold(t.Context(), App, "v3", clk.now()); !held {
		t.Fatal("the deferral of v3 did not hold it")
	}
	unregister()
	if changes.Load() != 1 {
		t.Fatalf("unregistering a deferring app woke the loop %d times, want 1", changes.Load())
	}
	if _, held := c.Hold(t.Context(), App, "v3", clk.now()); held {
		t.Fatal("a stopped application's deferral still holds")
	}
}

func TestBadRequests(t *testing.T) {
	c := New(Config{})
	for _, tc := range []struct {
		typ  Type
		mins int
		want error
	}{{"Firmware", 5, ErrInvalid}, {App, 0, ErrInvalid}, {App, 10021, ErrInvalid}, {App, 5, ErrNoPendingUpdate}} {
		if _, err := c.Defer("a", tc.typ, tc.mins); !errors.Is(err, tc.want) {
			t.Errorf("Defer(%q, %d) = %v, want %v", tc.typ, tc.mins, err, tc.want)
		}
	}
	if err := c.Resume("a", System); !errors.Is(err, ErrNoPendingUpdate) {
		t.Errorf("Resume with nothing pending: %v", err)
	}
}

func TestEventsAreBounded(t *testing.T) {
	clk := newClock()
	c := New(Config{Now: clk.now})
	for i := range MaxEvents {
		c.Hold(t.Context(), App, string(rune('a'+i%26))+string(rune('0'+i/26)), clk.now())
	}
	ev := c.Events(t.Context(), 0, 0)
	if len(ev) != MaxEvents || ev[len(ev)-1].Seq != 2*MaxEvents {
		t.Fatalf("%d events kept, last %d", len(ev), ev[len(ev)-1].Seq)
	}
	// A poll with nothing new returns empty after the wait, and at once when ctx ends.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if ev := c.Events(ctx, 2*MaxEvents, time.Hour); ev != nil {
		t.Fatalf("cancelled poll: %+v", ev)
	}
}
