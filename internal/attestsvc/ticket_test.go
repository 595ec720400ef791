package attestsvc

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/internal/groupcommit"
	"github.com/rampart-iot/rampart/internal/store"
	"github.com/rampart-iot/rampart/internal/store/storetest"
)

func TestTicketRoundTripAndTampering(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	exp := time.UnixMilli(1_800_000_000_123).UTC()
	ah := bytes.Repeat([]byte{9}, 32)
	b, err := makeTicket(key, rand.Reader, "dev-a", ticket{expires: exp, activationHash: ah})
	if err != nil {
		t.Fatal(err)
	}
	got, err := openTicket(key, "dev-a", b)
	if err != nil || !got.expires.Equal(exp) || !bytes.Equal(got.activationHash, ah) {
		t.Fatalf("%v %+v", err, got)
	}
	plain, _ := makeTicket(key, rand.Reader, "dev-a", ticket{expires: exp})
	if got, err := openTicket(key, "dev-a", plain); err != nil || got.activationHash != nil {
		t.Fatalf("ticket without activation: %v %+v", err, got)
	}
	if _, err := openTicket(key, "dev-b", b); err == nil {
		t.Error("a ticket opened for another device")
	}
	if _, err := openTicket(bytes.Repeat([]byte{8}, 32), "dev-a", b); err == nil {
		t.Error("a ticket opened with another key")
	}
	for i := range b {
		c := append([]byte(nil), b...)
		c[i] ^= 1
		if _, err := openTicket(key, "dev-a", c); err == nil {
			t.Fatalf("flipping byte %d went unnoticed", i)
		}
	}
	for _, c := range [][]byte{nil, b[:len(b)-1], append(append([]byte(nil), b...), 0)} {
		if _, err := openTicket(key, "dev-a", c); err == nil {
			t.Errorf("a ticket of %d bytes opened", len(c))
		}
	}
}

func FuzzOpenTicket(f *testing.F) {
	key := bytes.Repeat([]byte{7}, 32)
	b, _ := makeTicket(key, rand.Reader, "d", ticket{expires: time.Now()})
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := openTicket(key, "d", b); err == nil {
			// Only a ticket this key made can open; the fuzzer cannot forge the MAC.
			if !bytes.Equal(ticketMAC(key, "d", b[:58]), b[58:]) {
				t.Fatal("opened without a valid MAC")
			}
		}
	})
}

// TestCommitterGroupsAndIsolatesJobs runs many concurrent jobs: each sees its own sentinel
// error, and all the others commit.
func TestCommitterGroupsAndIsolatesJobs(t *testing.T) {
	st := storetest.OpenSQLite(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	if err := st.CreateTenant(ctx, store.Tenant{ID: "t", Name: "T", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.ClaimDevice(ctx, store.Device{ID: "d", TenantID: "t", RootOfTrust: "software", EKPublic: []byte{1}, AKPublic: []byte{1},
		Enrollment: []byte("{}"), ClaimedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	c := groupcommit.New(st, 0)
	const n = 64
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Every other job reuses one nonce hash: exactly one of those may succeed.
			h := bytes.Repeat([]byte{byte(i)}, 32)
			if i%2 == 1 {
				h = bytes.Repeat([]byte{0xff}, 32)
			}
			errs[i] = c.Do(ctx, func(tx store.Tx) error {
				return useNonce(ctx, tx, &store.Nonce{Hash: h, DeviceID: "d", TenantID: "t", CreatedAt: now, ExpiresAt: now.Add(time.Minute)})
			})
		}()
	}
	wg.Wait()
	replayed := 0
	for i, err := range errs {
		switch {
		case err == nil:
		case errors.Is(err, errReplayed) && i%2 == 1:
			replayed++
		default:
			t.Fatalf("job %d: %v", i, err)
		}
	}
	if replayed != n/2-1 {
		t.Fatalf("%d replays, want %d", replayed, n/2-1)
	}
	if k, err := st.DeleteExpiredNonces(ctx, now.Add(time.Hour)); err != nil || k != n/2+1 {
		t.Fatalf("%d nonces stored (%v), want %d", k, err, n/2+1)
	}
	// A job that fails the transaction fails it for its batch, and the committer goes on.
	boom := errors.New("boom")
	if err := c.Do(ctx, func(tx store.Tx) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("got %v", err)
	}
	if err := c.Do(ctx, func(tx store.Tx) error { return nil }); err != nil {
		t.Fatal(err)
	}
}
