package push

import (
	"sync"
	"testing"
)

func recv(t *testing.T, s *Sub) (Event, bool) {
	t.Helper()
	select {
	case e := <-s.C():
		return e, true
	default:
		return Event{}, false
	}
}

func TestGroupEventsReachOnlyTheGroup(t *testing.T) {
	var h Hub
	a1 := h.Subscribe("t1", "g1", "d1")
	a2 := h.Subscribe("t1", "g1", "d2")
	other := h.Subscribe("t1", "g2", "d3")
	otherTenant := h.Subscribe("t2", "g1", "d4")
	if n := h.PublishGroup("t1", "g1", Event{Type: "deployment", DeploymentID: "x"}); n != 2 {
		t.Fatalf("reached %d channels, want 2", n)
	}
	for _, s := range []*Sub{a1, a2} {
		if e, ok := recv(t, s); !ok || e.DeploymentID != "x" {
			t.Errorf("device %s: got %+v, %v", s.deviceID, e, ok)
		}
	}
	for _, s := range []*Sub{other, otherTenant} {
		if e, ok := recv(t, s); ok {
			t.Errorf("device %s outside the group got %+v", s.deviceID, e)
		}
	}
}

func TestNewestEventWinsAndPublishersNeverBlock(t *testing.T) {
	var h Hub
	s := h.Subscribe("t", "g", "d")
	for i := range 100 { // nobody reads: must not block
		h.PublishGroup("t", "g", Event{Type: "deployment", DeploymentID: string(rune('a' + i%26))})
	}
	h.PublishGroup("t", "g", Event{Type: "deployment", DeploymentID: "last"})
	if e, ok := recv(t, s); !ok || e.DeploymentID != "last" {
		t.Fatalf("got %+v, %v; want the newest event", e, ok)
	}
	if e, ok := recv(t, s); ok {
		t.Fatalf("a second pending event %+v: events must coalesce", e)
	}
}

func TestOneChannelPerDevice(t *testing.T) {
	var h Hub
	first := h.Subscribe("t", "g", "d")
	second := h.Subscribe("t", "g2", "d") // the device reconnected, now in another group
	select {
	case <-first.Done():
	default:
		t.Fatal("the earlier channel was not ended")
	}
	if h.Len() != 1 {
		t.Fatalf("Len = %d, want 1", h.Len())
	}
	if n := h.PublishGroup("t", "g", Event{Type: "deployment"}); n != 0 {
		t.Fatalf("the old group still reaches %d channels", n)
	}
	if !h.PublishDevice("d", Event{Type: "check-in"}) {
		t.Fatal("PublishDevice found no channel")
	}
	if e, ok := recv(t, second); !ok || e.Type != "check-in" {
		t.Fatalf("got %+v, %v", e, ok)
	}
	// Closing the ended channel must not remove the live one.
	first.Close()
	if h.Len() != 1 {
		t.Fatalf("closing a replaced channel removed the live one")
	}
	if !h.End("d") {
		t.Fatal("End found no channel")
	}
	select {
	case <-second.Done():
	default:
		t.Fatal("End did not end the channel")
	}
	second.Close()
	second.Close()
	if h.Len() != 0 || h.PublishDevice("d", Event{}) {
		t.Fatal("a closed channel is still subscribed")
	}
}

func TestConcurrentUse(t *testing.T) {
	var h Hub
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for range 200 {
				s := h.Subscribe("t", "g", string(rune('a'+i)))
				h.PublishGroup("t", "g", Event{Type: "deployment"})
				s.Close()
			}
		}()
		go func() {
			defer wg.Done()
			for range 200 {
				h.PublishDevice(string(rune('a'+i)), Event{Type: "check-in"})
			}
		}()
	}
	wg.Wait()
	if h.Len() != 0 {
		t.Fatalf("Len = %d after every channel closed", h.Len())
	}
}

func TestWakeAllReachesEveryChannelOnce(t *testing.T) {
	var h Hub
	a, b := h.Subscribe("t", "g1", "d1"), h.Subscribe("t", "g2", "d2")
	defer a.Close()
	defer b.Close()
	if n := h.WakeAll(); n != 2 {
		t.Fatalf("woke %d", n)
	}
	for _, s := range []*Sub{a, b} {
		select {
		case e := <-s.C():
			if e.Type != EventCheckIn {
				t.Fatalf("event %+v", e)
			}
		default:
			t.Fatal("a channel got nothing")
		}
		select {
		case e := <-s.C():
			t.Fatalf("a second event %+v", e)
		default:
		}
	}
}
