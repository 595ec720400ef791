// Package ratelimit bounds how often one client may call: a token bucket per key (a client
// address, a token), refilled at a steady rate up to a burst. The table of keys is bounded:
// when it is full, the bucket that was used least recently is forgotten (a forgotten client
// starts again with a full bucket, which errs on the side of serving).
//
// Trust: it trusts its caller to choose keys an attacker cannot multiply cheaply.
package ratelimit

import (
	"container/list"
	"sync"
	"time"
)

// DefaultMaxKeys bounds the keys a Limiter remembers.
const DefaultMaxKeys = 65536

// Limiter is a set of token buckets. It is safe for concurrent use. A nil *Limiter allows
// everything.
type Limiter struct {
	rate    float64 // tokens per second
	burst   float64
	maxKeys int
	now     func() time.Time

	mu      sync.Mutex
	buckets map[string]*list.Element
	lru     *list.List // front: most recently used
}

type bucket struct {
	key    string
	tokens float64
	at     time.Time
}

// New returns a Limiter allowing rate calls per second per key with bursts of burst; maxKeys
// (DefaultMaxKeys if not positive) bounds its memory; now is the clock (time.Now if nil).
// A rate that is not positive returns nil: no limit.
func New(rate float64, burst int, maxKeys int, now func() time.Time) *Limiter {
	if rate <= 0 {
		return nil
	}
	if burst < 1 {
		burst = 1
	}
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	if now == nil {
		now = time.Now
	}
	return &Limiter{rate: rate, burst: float64(burst), maxKeys: maxKeys, now: now,
		buckets: map[string]*list.Element{}, lru: list.New()}
}

// Allow takes a token from key's bucket. If there is none, it returns false and how long
// until there is one.
func (l *Limiter) Allow(key string) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	var b *bucket
	if e, ok := l.buckets[key]; ok {
		l.lru.MoveToFront(e)
		b = e.Value.(*bucket)
		if el := now.Sub(b.at).Seconds(); el > 0 {
			b.tokens = min(l.burst, b.tokens+el*l.rate)
		}
		b.at = now
	} else {
		if l.lru.Len() >= l.maxKeys {
			oldest := l.lru.Back()
			delete(l.buckets, oldest.Value.(*bucket).key)
			l.lru.Remove(oldest)
		}
		b = &bucket{key: key, tokens: l.burst, at: now}
		l.buckets[key] = l.lru.PushFront(b)
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
	return false, wait
}

// Exhausted says whether key's bucket has no token left now, and how long until it has one,
// without taking one: a limit on failures checks it before the attempt and takes a token
// (Allow) only when the attempt fails.
func (l *Limiter) Exhausted(key string) (bool, time.Duration) {
	if l == nil {
		return false, 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.buckets[key]
	if !ok {
		return false, 0
	}
	b := e.Value.(*bucket)
	tokens := b.tokens
	if el := now.Sub(b.at).Seconds(); el > 0 {
		tokens = min(l.burst, tokens+el*l.rate)
	}
	if tokens >= 1 {
		return false, 0
	}
	return true, time.Duration((1 - tokens) / l.rate * float64(time.Second))
}

// Len is the number of keys remembered.
func (l *Limiter) Len() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lru.Len()
}
