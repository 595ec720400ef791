package softrot_test

import (
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampart-iot/rampart/internal/rot"
	"github.com/rampart-iot/rampart/internal/rot/softrot"
)

func openT(t *testing.T, dir string) *softrot.Software {
	t.Helper()
	s, err := softrot.Open(dir, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func counterFile(dir string) string {
	return filepath.Join(dir, "rot-software", softrot.CounterFileName)
}

func wantCounter(t *testing.T, c rot.Counter, want uint64) {
	t.Helper()
	got, err := c.ReadCounter(context.Background())
	if err != nil || got != want {
		t.Fatalf("ReadCounter = %d, %v; want %d", got, err, want)
	}
}

func TestCounterAdvance(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var c rot.Counter = openT(t, dir)
	wantCounter(t, c, 0)
	if _, err := os.Stat(counterFile(dir)); !os.IsNotExist(err) {
		t.Fatalf("reading the counter made a file: %v", err)
	}
	if err := c.AdvanceCounter(ctx, 3); err != nil {
		t.Fatal(err)
	}
	wantCounter(t, c, 3)
	for _, v := range []uint64{0, 2, 3} {
		if err := c.AdvanceCounter(ctx, v); err != nil {
			t.Fatalf("AdvanceCounter(%d) at 3: %v", v, err)
		}
		wantCounter(t, c, 3)
	}
	big := uint64(3 + rot.MaxCounterStep + 1)
	if err := c.AdvanceCounter(ctx, big); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("from 3 to %d", big)) {
		t.Fatalf("a step of MaxCounterStep+1: %v", err)
	}
	wantCounter(t, c, 3)
	if err := c.AdvanceCounter(ctx, 3+rot.MaxCounterStep); err != nil {
		t.Fatal(err)
	}
	wantCounter(t, c, 3+rot.MaxCounterStep)

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := c.AdvanceCounter(cancelled, 5000); err == nil {
		t.Fatal("a cancelled context advanced the counter")
	}
	wantCounter(t, c, 3+rot.MaxCounterStep)

	// Another Software on the same directory, as after a restart, reads the same value.
	wantCounter(t, openT(t, dir), 3+rot.MaxCounterStep)
}

// TestCounterRejectsBadFiles: a file that is not this device's sealed counter is an error,
// never 0.
func TestCounterRejectsBadFiles(t *testing.T) {
	ctx := context.Background()
	dir, other := t.TempDir(), t.TempDir()
	s := openT(t, dir)
	if err := s.AdvanceCounter(ctx, 7); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(counterFile(dir))
	if err != nil {
		t.Fatal(err)
	}
	o := openT(t, other)
	if err := o.AdvanceCounter(ctx, 9); err != nil {
		t.Fatal(err)
	}
	foreign, err := os.ReadFile(counterFile(other))
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte {
		b := bytes.Clone(good)
		b[(i+len(b))%len(b)] ^= 1
		return b
	}
	for _, c := range []struct {
		name    string
		content []byte
		want    string
	}{
		{"value edited", flip(len("rampart-antirollback-1\n") + 7), "not sealed by this device's key"},
		{"MAC edited", flip(-1), "not sealed by this device's key"},
		{"magic edited", flip(0), "does not start with"},
		{"another device's", foreign, "not sealed by this device's key"},
		{"empty", nil, "holds 0 bytes"},
		{"truncated", good[:len(good)-1], fmt.Sprintf("holds %d bytes", len(good)-1)},
		{"one byte more", append(bytes.Clone(good), '\n'), "more than that"},
		{"oversized", bytes.Repeat(good, 1<<14), "more than that"},
	} {
		if err := os.WriteFile(counterFile(dir), c.content, 0o600); err != nil {
			t.Fatal(err)
		}
		if v, err := s.ReadCounter(ctx); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: ReadCounter = %d, %v; want an error about %q", c.name, v, err, c.want)
		}
		if err := s.AdvanceCounter(ctx, 8); err == nil {
			t.Errorf("%s: AdvanceCounter worked over a bad file", c.name)
		}
	}
	if err := os.WriteFile(counterFile(dir), good, 0o600); err != nil {
		t.Fatal(err)
	}
	wantCounter(t, s, 7)
}

// TestCounterOldCopyIsAccepted is the limit the doc names: an older copy of the file, put back,
// is a valid seal.
func TestCounterOldCopyIsAccepted(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openT(t, dir)
	if err := s.AdvanceCounter(ctx, 2); err != nil {
		t.Fatal(err)
	}
	old, err := os.ReadFile(counterFile(dir))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AdvanceCounter(ctx, 5); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(counterFile(dir), old, 0o600); err != nil {
		t.Fatal(err)
	}
	wantCounter(t, s, 2)
}

// TestCounterFileFormat rebuilds the file from its documented format: the magic line, the value
// big-endian, and HMAC-SHA256 under HKDF-SHA256 of the EK's private scalar.
func TestCounterFileFormat(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	const v = 0x0102030405060708 % rot.MaxCounterStep
	if err := s.AdvanceCounter(context.Background(), v); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(counterFile(dir))
	if err != nil {
		t.Fatal(err)
	}
	pemBytes, err := os.ReadFile(filepath.Join(dir, "rot-software", "ek.pem"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(pemBytes)
	ek, err := x509.ParseECPrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	scalar, err := ek.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	key, err := hkdf.Key(sha256.New, scalar, nil, "rampart softrot anti-rollback counter v1", 32)
	if err != nil {
		t.Fatal(err)
	}
	want := binary.BigEndian.AppendUint64([]byte("rampart-antirollback-1\n"), v)
	mac := hmac.New(sha256.New, key)
	mac.Write(want)
	want = mac.Sum(want)
	if !bytes.Equal(got, want) {
		t.Fatalf("file\n%x\nwant\n%x", got, want)
	}
}
