package agentcli

import (
	"testing"
	"time"
)

func TestTrustedClockNeverRunsBehindAttestation(t *testing.T) {
	// A device whose clock says 1970 (no real-time clock) attests at what the service vouches
	// is 2026-11-24 12:00.
	sys := time.Unix(0, 0)
	c := &trustedClock{now: func() time.Time { return sys }}
	if got := c.Now(); !got.Equal(sys) {
		t.Fatalf("before any attestation: %s, want the system clock", got)
	}
	vouched := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	c.attested(vouched)
	if got := c.Now(); !got.Equal(vouched) {
		t.Fatalf("right after attesting: %s, want %s", got, vouched)
	}
	sys = sys.Add(90 * time.Minute) // time passes on the device
	if got, want := c.Now(), vouched.Add(90*time.Minute); !got.Equal(want) {
		t.Fatalf("90 minutes on: %s, want %s", got, want)
	}
	// A device with a correct clock (a little after the certificate's NotBefore) keeps it.
	sys2 := vouched.Add(5 * time.Minute)
	c2 := &trustedClock{now: func() time.Time { return sys2 }}
	c2.attested(vouched)
	sys2 = sys2.Add(10 * time.Minute)
	if got := c2.Now(); !got.Equal(sys2) {
		t.Fatalf("with a correct clock: %s, want %s", got, sys2)
	}
}
