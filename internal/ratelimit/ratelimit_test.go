package ratelimit

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestBurstThenRate(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	l := New(2, 3, 0, c.now) // 2 per second, bursts of 3
	for i := range 3 {
		if ok, _ := l.Allow("a"); !ok {
			t.Fatalf("call %d of the burst refused", i)
		}
	}
	ok, wait := l.Allow("a")
	if ok || wait != 500*time.Millisecond {
		t.Fatalf("past the burst: %v, wait %s; want refused, 500ms", ok, wait)
	}
	if ok, _ := l.Allow("b"); !ok {
		t.Fatal("another key shares a's bucket")
	}
	c.t = c.t.Add(500 * time.Millisecond)
	if ok, _ := l.Allow("a"); !ok {
		t.Fatal("a token after 500ms at 2/s was refused")
	}
	if ok, _ := l.Allow("a"); ok {
		t.Fatal("a second token after 500ms at 2/s was allowed")
	}
	c.t = c.t.Add(time.Hour) // refills only up to the burst
	for range 3 {
		l.Allow("a")
	}
	if ok, _ := l.Allow("a"); ok {
		t.Fatal("the bucket refilled past its burst")
	}
}

func TestBoundedKeys(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	l := New(1, 1, 3, c.now)
	for i := range 10 {
		l.Allow(fmt.Sprint(i))
	}
	if l.Len() != 3 {
		t.Fatalf("remembers %d keys, want 3", l.Len())
	}
	// The most recent keys are kept: "9" is still empty, "0" was forgotten (full again).
	if ok, _ := l.Allow("9"); ok {
		t.Fatal("a recent key was forgotten")
	}
	if ok, _ := l.Allow("0"); !ok {
		t.Fatal("an old key was remembered past the bound")
	}
}

func TestNilAndOffAllowEverything(t *testing.T) {
	var l *Limiter
	if ok, _ := l.Allow("x"); !ok || l.Len() != 0 {
		t.Fatal("a nil Limiter refused")
	}
	if New(0, 10, 0, nil) != nil {
		t.Fatal("rate 0 should mean no limiter")
	}
}

func TestConcurrent(t *testing.T) {
	l := New(1e-9, 100, 0, nil) // effectively no refill
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				if ok, _ := l.Allow("k"); ok {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if allowed != 100 {
		t.Fatalf("%d allowed, want exactly the burst of 100", allowed)
	}
}

// TestExhausted: Exhausted peeks without taking a token; a limit on failures takes one per
// failure and refuses once they are spent, until the bucket refills.
func TestExhausted(t *testing.T) {
	now := time.Unix(0, 0)
	l := New(1.0/60, 3, 0, func() time.Time { return now })
	if ex, _ := l.Exhausted("a"); ex {
		t.Fatal("an unknown key is exhausted")
	}
	for range 3 {
		if ex, _ := l.Exhausted("a"); ex {
			t.Fatal("exhausted before its burst was spent")
		}
		l.Allow("a")
	}
	ex, wait := l.Exhausted("a")
	if !ex || wait != time.Minute {
		t.Fatalf("after three failures: %v %v, want exhausted for a minute", ex, wait)
	}
	if ex, _ := l.Exhausted("b"); ex {
		t.Fatal("another key is exhausted")
	}
	now = now.Add(time.Minute)
	if ex, _ := l.Exhausted("a"); ex {
		t.Fatal("still exhausted after a refill")
	}
	var nilL *Limiter
	if ex, _ := nilL.Exhausted("a"); ex {
		t.Fatal("a nil limiter refuses")
	}
}
