package apprun

import (
	"fmt"
	"testing"
	"time"
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
