// Package ids makes the identifiers of the service's resources: UUIDv7 strings (RFC 9562), which
// sort by creation time, built from an injected clock and source of randomness. One Generator's
// identifiers strictly increase, even within a millisecond (RFC 9562 method 1: a 12-bit
// counter in rand_a), so lists ordered by ID are in creation order.
package ids

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"sync"
	"time"
)

// Generator makes UUIDv7 identifiers. The zero value uses time.Now and crypto/rand. It is safe
// for concurrent use; it must not be copied after first use.
type Generator struct {
	Now  func() time.Time
	Rand io.Reader

	mu     sync.Mutex
	lastMS uint64
	seq    uint16 // 12 bits
}

// New returns a new identifier in canonical lowercase form.
func (g *Generator) New() (string, error) {
	now := time.Now
	if g.Now != nil {
		now = g.Now
	}
	r := g.Rand
	if r == nil {
		r = rand.Reader
	}
	var u [16]byte
	if _, err := io.ReadFull(r, u[6:]); err != nil {
		return "", fmt.Errorf("reading randomness for an identifier: %w", err)
	}
	ms := uint64(now().UnixMilli())
	g.mu.Lock()
	if ms <= g.lastMS { // same millisecond, or the clock stepped back: count on from the last
		ms = g.lastMS
		g.seq++
		if g.seq > 0xfff {
			ms++
			g.seq = 0
		}
	} else {
		g.seq = 0
	}
	g.lastMS = ms
	seq := g.seq
	g.mu.Unlock()
	var ts [8]byte
	binary.BigEndian.PutUint64(ts[:], ms)
	copy(u[0:6], ts[2:8])
	u[6] = 0x70 | byte(seq>>8) // version 7, then the counter's high 4 bits
	u[7] = byte(seq)
	u[8] = 0x80 | (u[8] & 0x3f) // RFC 9562 variant
	return format(u), nil
}

// MustNew is New for callers whose randomness cannot fail (crypto/rand).
func (g *Generator) MustNew() string {
	id, err := g.New()
	if err != nil {
		panic(err)
	}
	return id
}

func format(u [16]byte) string {
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:], u[10:])
	return string(b[:])
}

// Valid reports whether s is a UUID in canonical lowercase form (any version).
func Valid(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
	}
	return true
}

// LooksLikeUUID reports whether s is a UUID in any letter case, so that names can be kept
// distinct from identifiers.
func LooksLikeUUID(s string) bool {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'F' {
			b[i] = c + ('a' - 'A')
		}
	}
	return Valid(string(b))
}
