package tufrepo_test

import (
	"bytes"
	"crypto/ecdsa"
	"errors"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/rampart-iot/rampart/internal/tufrepo"
	"github.com/rampart-iot/rampart/internal/tufrepo/tufrepotest"
)

// attach signs root with each key, detached, and attaches the signatures.
func attach(t *testing.T, root []byte, keys ...*ecdsa.PrivateKey) []byte {
	t.Helper()
	m, err := metadata.Root().FromBytes(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		id, sig, err := tufrepo.SignRoot(root, k)
		if err != nil {
			t.Fatal(err)
		}
		m.Signatures = append(m.Signatures, metadata.Signature{KeyID: id, Signature: sig})
	}
	b, err := m.ToBytes(false)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAcceptRootNeedsThresholdsOfDetachedSignatures: root 2 (2 of 3 new keys) made by NextRoot
// and signed where the keys are is accepted with the old key and two new signatures, and
// verifies through the chain; with one new signature, only new ones, a wrong version or an
// expired root it is refused.
func TestAcceptRootNeedsThresholdsOfDetachedSignatures(t *testing.T) {
	r := tufrepotest.New(t, t0)
	newRoot := tufrepotest.Keys(t, 3)
	r2 := *r
	r2.RootKeys, r2.Thresholds[0] = newRoot, 2
	unsigned, err := r.Online.NextRoot(r.State, r2.Roles(), t0)
	if err != nil {
		t.Fatal(err)
	}
	for name, keys := range map[string][]*ecdsa.PrivateKey{
		"old and one of three new": {r.RootKeys[0], newRoot[0]},
		"old and one new twice":    {r.RootKeys[0], newRoot[1], newRoot[1]},
		"only new keys":            newRoot,
	} {
		// A signature twice by one key is malformed metadata (ErrKeys), as go-tuf reads it.
		if _, err := r.Online.AcceptRoot(r.State, attach(t, unsigned, keys...), t0); !errors.Is(err, tufrepo.ErrThreshold) && !errors.Is(err, tufrepo.ErrKeys) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := r.Online.AcceptRoot(r.State, attach(t, unsigned, r.RootKeys[0], newRoot[0], newRoot[2]), t0.Add(400*24*time.Hour)); !errors.Is(err, tufrepo.ErrKeys) {
		t.Errorf("an expired root: %v", err)
	}
	next, err := r.Online.AcceptRoot(r.State, attach(t, unsigned, r.RootKeys[0], newRoot[0], newRoot[2]), t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(next.Roots) != 2 {
		t.Fatalf("%d roots", len(next.Roots))
	}
	verify(t, next, t0)
	// The same root again is not version 3.
	if _, err := r.Online.AcceptRoot(next, attach(t, unsigned, newRoot[0], newRoot[2]), t0); !errors.Is(err, tufrepo.ErrKeys) {
		t.Errorf("root 2 again: %v", err)
	}
}

// TestAcceptRootRefusesRootDueForRenewal: a root signed as a device would accept it, but with no
// more than the renewal window left, is refused (its keys would be needed again at once); with
// a moment more than the window left it is accepted. NextRootExpiring with NextRoot's expiry is
// NextRoot's root byte for byte.
func TestAcceptRootRefusesRootDueForRenewal(t *testing.T) {
	r := tufrepotest.New(t, t0)
	window := tufrepo.DefaultRootLifetime / tufrepo.RootRenewFraction
	unsigned, err := r.Online.NextRoot(r.State, r.Roles(), t0)
	if err != nil {
		t.Fatal(err)
	}
	same, err := r.Online.NextRootExpiring(r.State, r.Roles(), t0.Add(tufrepo.DefaultRootLifetime))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(unsigned, same) {
		t.Errorf("NextRootExpiring differs from NextRoot:\n%s\n%s", unsigned, same)
	}
	for _, c := range []struct {
		expires time.Time
		ok      bool
	}{
		{t0.Add(2 * time.Second), false},
		{t0.Add(window), false},
		{t0.Add(window + time.Second), true},
	} {
		b, err := r.Online.NextRootExpiring(r.State, r.Roles(), c.expires)
		if err != nil {
			t.Fatal(err)
		}
		_, err = r.Online.AcceptRoot(r.State, attach(t, b, r.RootKeys...), t0)
		if c.ok != (err == nil) || !c.ok && !errors.Is(err, tufrepo.ErrKeys) {
			t.Errorf("a root expiring %s after now: %v", c.expires.Sub(t0), err)
		}
	}
}
