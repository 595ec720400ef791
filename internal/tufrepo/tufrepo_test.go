package tufrepo_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"github.com/rampart-iot/rampart/imagepkg"
	"strings"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/internal/tufrepo"
	"github.com/rampart-iot/rampart/internal/tufrepo/tufrepotest"
	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/trustedmetadata"
)

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// verify loads st into go-tuf's trusted metadata set at now, as a device would, starting from
// root version 1 and walking the chain, and returns the trusted targets.
func verify(t *testing.T, st *tufrepo.State, now time.Time) *metadata.Metadata[metadata.TargetsType] {
	t.Helper()
	tm, err := trustedmetadata.New(st.Roots[0])
	if err != nil {
		t.Fatal(err)
	}
	tm.RefTime = now
	for _, r := range st.Roots[1:] {
		if _, err := tm.UpdateRoot(r); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tm.UpdateTimestamp(st.Timestamp); err != nil {
		t.Fatal(err)
	}
	if _, err := tm.UpdateSnapshot(st.Snapshot, false); err != nil {
		t.Fatal(err)
	}
	tg, err := tm.UpdateTargets(st.Targets)
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

func TestInitMakesVerifiableVersionOne(t *testing.T) {
	r := tufrepotest.New(t, t0)
	tg := verify(t, r.State, t0)
	if len(tg.Signed.Targets) != 0 {
		t.Fatalf("new repository lists %d targets", len(tg.Signed.Targets))
	}
	s := r.Status()
	for name, rs := range map[string]tufrepo.RoleStatus{"root": s.Root, "targets": s.Targets, "snapshot": s.Snapshot, "timestamp": s.Timestamp} {
		if rs.Version != 1 {
			t.Errorf("%s version %d", name, rs.Version)
		}
	}
	if want := t0.Add(tufrepo.DefaultTimestampLifetime); !s.Timestamp.Expires.Equal(want) {
		t.Errorf("timestamp expires %v, want %v", s.Timestamp.Expires, want)
	}
	if want := t0.Add(tufrepo.DefaultRootLifetime); !s.Root.Expires.Equal(want) {
		t.Errorf("root expires %v, want %v", s.Root.Expires, want)
	}
	root, err := metadata.Root().FromBytes(r.State.Roots[0])
	if err != nil {
		t.Fatal(err)
	}
	if !root.Signed.ConsistentSnapshot {
		t.Error("consistent_snapshot is off")
	}
	id, _ := tufrepo.KeyID(r.TimestampKeys[0].Public())
	k := root.Signed.Keys[id]
	if k == nil || k.Type != "ecdsa" || k.Scheme != "ecdsa-sha2-nistp256" {
		t.Errorf("timestamp key %s: %+v", id, k)
	}
	if got := root.Signed.Roles["timestamp"].KeyIDs; len(got) != 1 || got[0] != id {
		t.Errorf("timestamp role key IDs %v, want [%s]", got, id)
	}
}

func TestSameInputsMakeSameMetadata(t *testing.T) {
	r := tufrepotest.New(t, t0)
	again, err := r.Online.Init(r.Roles(), tufrepotest.Signers(r.RootKeys), t0)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(r.State)
	b, _ := json.Marshal(again)
	if !bytes.Equal(a, b) {
		t.Fatal("Init with the same keys and time made different metadata")
	}
}

func TestPublishListsExactlyTheTargets(t *testing.T) {
	r := tufrepotest.New(t, t0)
	a, b := tufrepotest.Target(1), tufrepotest.Target(2)
	r.Publish(t0.Add(time.Hour), b, a)
	tg := verify(t, r.State, t0.Add(time.Hour))
	if len(tg.Signed.Targets) != 2 {
		t.Fatalf("%d targets", len(tg.Signed.Targets))
	}
	for _, want := range []tufrepo.Target{a, b} {
		got := tg.Signed.Targets[want.Path()]
		if got == nil {
			t.Fatalf("%s missing", want.Path())
		}
		if got.Length != want.Length || hex.EncodeToString(got.Hashes["sha256"]) != want.SHA256 || len(got.Hashes) != 1 {
			t.Errorf("%s: length %d hashes %v", want.Path(), got.Length, got.Hashes)
		}
		var c tufrepo.Custom
		if err := json.Unmarshal(*got.Custom, &c); err != nil {
			t.Fatal(err)
		}
		if c != (tufrepo.Custom{ComponentID: want.ComponentID, ImageID: want.ImageID, Kind: string(want.Kind), Version: want.Version}) {
			t.Errorf("%s: custom %+v", want.Path(), c)
		}
	}
	s := r.Status()
	if s.Targets.Version != 2 || s.Snapshot.Version != 2 || s.Timestamp.Version != 2 || s.Root.Version != 1 {
		t.Fatalf("versions after one publish: %+v", s)
	}
	// Publishing the empty list empties the targets.
	r.Publish(t0.Add(2 * time.Hour))
	if tg := verify(t, r.State, t0.Add(2*time.Hour)); len(tg.Signed.Targets) != 0 || tg.Signed.Version != 3 {
		t.Fatalf("after publishing nothing: version %d, %d targets", tg.Signed.Version, len(tg.Signed.Targets))
	}
}

func TestPublishRefusesBadTargets(t *testing.T) {
	r := tufrepotest.New(t, t0)
	before, _ := json.Marshal(r.State)
	mod := func(f func(*tufrepo.Target)) []tufrepo.Target {
		tg := tufrepotest.Target(1)
		f(&tg)
		return []tufrepo.Target{tg}
	}
	many := make([]tufrepo.Target, tufrepo.MaxTargets+1)
	for i := range many {
		many[i] = tufrepotest.Target(i)
	}
	for _, tc := range []struct {
		name    string
		targets []tufrepo.Target
		want    string
	}{
		{"component not a UUID", mod(func(t *tufrepo.Target) { t.ComponentID = "../etc" }), "component ID"},
		{"upper-case image ID", mod(func(t *tufrepo.Target) { t.ImageID = "0000000a-0000-7000-8000-00000000000A" }), "image ID"},
		{"kind", mod(func(t *tufrepo.Target) { t.Kind = "firmware" }), "kind"},
		{"version", mod(func(t *tufrepo.Target) { t.Version = "v1" }), "semantic version"},
		{"empty", mod(func(t *tufrepo.Target) { t.Length = 0 }), "length"},
		{"too long", mod(func(t *tufrepo.Target) { t.Length = tufrepo.MaxTargetLength + 1 }), "length"},
		{"digest", mod(func(t *tufrepo.Target) { t.SHA256 = strings.ToUpper(t.SHA256) }), "SHA-256"},
		{"short digest", mod(func(t *tufrepo.Target) { t.SHA256 = t.SHA256[:62] }), "SHA-256"},
		{"security version too high", mod(func(t *tufrepo.Target) { t.Kind, t.SecurityVersion = imagepkg.KindOS, imagepkg.MaxSecurityVersion+1 }), "security version 1048577 is above"},
		{"app security version", mod(func(t *tufrepo.Target) { t.Kind, t.SecurityVersion = imagepkg.KindApplication, 1 }), "has no security version"},
		{"twice", []tufrepo.Target{tufrepotest.Target(1), tufrepotest.Target(1)}, "listed twice"},
		{"too many", many, "the limit is 4096"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := r.Online.Publish(r.State, tc.targets, t0)
			if !errors.Is(err, tufrepo.ErrTarget) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrTarget mentioning %q", err, tc.want)
			}
		})
	}
	if after, _ := json.Marshal(r.State); !bytes.Equal(before, after) {
		t.Fatal("a refused publish changed the state passed in")
	}
}

func TestRenewKeepsMetadataFresh(t *testing.T) {
	r := tufrepotest.New(t, t0)
	r.Publish(t0, tufrepotest.Target(1))
	at, err := r.Online.RenewAt(r.State)
	if err != nil {
		t.Fatal(err)
	}
	if want := t0.Add(tufrepo.DefaultTimestampLifetime / 2); !at.Equal(want) {
		t.Fatalf("RenewAt %v, want %v", at, want)
	}
	before := r.State
	if r.Renew(t0.Add(time.Hour)) || r.State != before {
		t.Fatal("Renew changed metadata with most of its lifetime left")
	}
	// Past half the timestamp's lifetime: only the timestamp changes.
	now := t0.Add(13 * time.Hour)
	if !r.Renew(now) {
		t.Fatal("Renew did nothing past half the timestamp's lifetime")
	}
	s := r.Status()
	if s.Timestamp.Version != 3 || s.Snapshot.Version != 2 || s.Targets.Version != 2 {
		t.Fatalf("versions %+v", s)
	}
	if !bytes.Equal(r.State.Targets, before.Targets) || !bytes.Equal(r.State.Snapshot, before.Snapshot) {
		t.Fatal("a timestamp renewal re-signed snapshot or targets")
	}
	// A device whose clock is past the first timestamp's expiry still verifies.
	verify(t, r.State, t0.Add(tufrepo.DefaultTimestampLifetime+time.Hour))
	// Renewals every 6 hours for 50 days keep every role valid for at least 6 more hours;
	// targets (90 days) are re-signed once, past day 45, with the same list.
	for h := 18; h <= 50*24; h += 6 {
		now = t0.Add(time.Duration(h) * time.Hour)
		r.Renew(now)
		verify(t, r.State, now.Add(5*time.Hour))
	}
	s = r.Status()
	if s.Targets.Version != 3 {
		t.Fatalf("targets version %d after 50 days, want 3", s.Targets.Version)
	}
	if tg := verify(t, r.State, now); tg.Signed.Targets[tufrepotest.Target(1).Path()] == nil || len(tg.Signed.Targets) != 1 {
		t.Fatal("renewing targets changed the list")
	}
}

func TestRotateRootNeedsOldAndNewKeys(t *testing.T) {
	r := tufrepotest.New(t, t0)
	newRoot := tufrepotest.Keys(t, 2)
	r2 := *r
	r2.RootKeys, r2.Thresholds[0] = newRoot, 2
	roles := r2.Roles()
	for _, tc := range []struct {
		name     string
		old, new []*ecdsa.PrivateKey
		want     string
	}{
		{"new keys only", nil, newRoot, "version 1's root keys"},
		{"old key only", r.RootKeys, nil, "its own root keys"},
		{"old and one of two new", r.RootKeys, newRoot[:1], "its own root keys"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := r.Online.RotateRoot(r.State, roles, tufrepotest.Signers(tc.old), tufrepotest.Signers(tc.new), t0)
			if !errors.Is(err, tufrepo.ErrThreshold) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrThreshold mentioning %q", err, tc.want)
			}
		})
	}
	r.Publish(t0, tufrepotest.Target(7))
	r.RotateRoot(t0.Add(time.Hour), newRoot, 2)
	// Rotate a timestamp key too: the online roles are re-signed with the new one.
	r.TimestampKeys = tufrepotest.Keys(t, 1)
	r.RotateRoot(t0.Add(2*time.Hour), newRoot, 2)
	if len(r.State.Roots) != 3 {
		t.Fatalf("%d roots", len(r.State.Roots))
	}
	tg := verify(t, r.State, t0.Add(2*time.Hour))
	if tg.Signed.Targets[tufrepotest.Target(7).Path()] == nil {
		t.Fatal("rotation lost the targets")
	}
	if f, ok := r.State.File("2.root.json"); !ok || !bytes.Equal(f, r.State.Roots[1]) {
		t.Fatal("2.root.json")
	}
}

func TestOnlineSignersMustBeTheRootsKeys(t *testing.T) {
	r := tufrepotest.New(t, t0)
	stranger := *r.Online
	stranger.Timestamp = tufrepotest.Signers(tufrepotest.Keys(t, 1))
	if _, err := stranger.Publish(r.State, nil, t0); !errors.Is(err, tufrepo.ErrKeys) || !strings.Contains(err.Error(), "not a key of the timestamp role") {
		t.Fatalf("publish with a timestamp key the root does not list: %v", err)
	}
	// A threshold of 2 with one signer.
	r2 := &tufrepotest.Repo{T: t, RootKeys: tufrepotest.Keys(t, 1), TargetsKeys: tufrepotest.Keys(t, 2), SnapshotKeys: tufrepotest.Keys(t, 1), TimestampKeys: tufrepotest.Keys(t, 1), Thresholds: [4]int{1, 2, 1, 1}}
	r2.SetOnline()
	st, err := r2.Online.Init(r2.Roles(), tufrepotest.Signers(r2.RootKeys), t0)
	if err != nil {
		t.Fatal(err)
	}
	one := *r2.Online
	one.Targets = one.Targets[:1]
	if _, err := one.Publish(st, nil, t0); !errors.Is(err, tufrepo.ErrThreshold) {
		t.Fatalf("publish with 1 of a threshold of 2 targets keys: %v", err)
	}
	if _, err := r2.Online.Publish(st, nil, t0); err != nil {
		t.Fatalf("publish with 2 of 2: %v", err)
	}
}

func TestInitRefusesBadRoles(t *testing.T) {
	r := tufrepotest.New(t, t0)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		f    func(*tufrepo.Roles)
		want string
	}{
		{"no keys", func(rs *tufrepo.Roles) { rs.Snapshot.Keys = nil }, "snapshot role has 0 keys"},
		{"threshold 0", func(rs *tufrepo.Roles) { rs.Targets.Threshold = 0 }, "threshold is 0"},
		{"threshold above keys", func(rs *tufrepo.Roles) { rs.Root.Threshold = 2 }, "threshold is 2"},
		{"P-384", func(rs *tufrepo.Roles) { rs.Timestamp.Keys = []crypto.PublicKey{p384.Public()} }, "P-256"},
		{"duplicate", func(rs *tufrepo.Roles) {
			rs.Targets.Keys = append(rs.Targets.Keys, rs.Targets.Keys[0])
		}, "twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			roles := r.Roles()
			tc.f(&roles)
			_, err := r.Online.Init(roles, tufrepotest.Signers(r.RootKeys), t0)
			if !errors.Is(err, tufrepo.ErrKeys) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrKeys mentioning %q", err, tc.want)
			}
		})
	}
	if _, err := r.Online.Init(r.Roles(), tufrepotest.Signers(tufrepotest.Keys(t, 1)), t0); !errors.Is(err, tufrepo.ErrThreshold) {
		t.Fatalf("root signed by a stranger: %v", err)
	}
}

func TestFileNames(t *testing.T) {
	r := tufrepotest.New(t, t0)
	r.Publish(t0, tufrepotest.Target(1))
	st := r.State
	for name, want := range map[string][]byte{
		"root.json":       st.Roots[0],
		"1.root.json":     st.Roots[0],
		"timestamp.json":  st.Timestamp,
		"2.snapshot.json": st.Snapshot,
		"2.targets.json":  st.Targets,
	} {
		if got, ok := st.File(name); !ok || !bytes.Equal(got, want) {
			t.Errorf("%s: ok=%v", name, ok)
		}
	}
	for _, name := range []string{"2.root.json", "0.root.json", "01.root.json", "1.snapshot.json", "1.targets.json", "3.targets.json", "snapshot.json", "targets.json", "-1.root.json", "x.root.json", "../root.json", ""} {
		if _, ok := st.File(name); ok {
			t.Errorf("%q served", name)
		}
	}
}
