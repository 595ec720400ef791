package tufclient_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/internal/tufclient"
	"github.com/rampart-iot/rampart/internal/tufrepo"
	"github.com/rampart-iot/rampart/internal/tufrepo/tufrepotest"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

func TestRoundTripReturnsExactlyTheDeployment(t *testing.T) {
	f := newFixture(t)
	if got, w := f.mustRefresh(), want(tufrepotest.Target(1), tufrepotest.Target(2)); !reflect.DeepEqual(got, w) {
		t.Fatalf("got %+v\nwant %+v", got, w)
	}
	// A new deployment replaces the old one.
	f.now = f.now.Add(time.Hour)
	f.director.Publish(f.now, tufrepotest.Target(3))
	if got, w := f.mustRefresh(), want(tufrepotest.Target(3)); !reflect.DeepEqual(got, w) {
		t.Fatalf("got %+v\nwant %+v", got, w)
	}
	// An empty deployment is an empty set, not an error.
	f.director.Publish(f.now)
	if got := f.mustRefresh(); len(got) != 0 {
		t.Fatalf("got %+v, want nothing", got)
	}
	// The state directory holds what was trusted, and a restarted client starts from it
	// without the initial roots.
	for _, name := range []string{"root.json", "timestamp.json", "snapshot.json", "targets.json"} {
		b, err := os.ReadFile(filepath.Join(f.dir, "director", name))
		if err != nil {
			t.Fatal(err)
		}
		if name == "targets.json" && !bytes.Equal(b, f.director.State.Targets) {
			t.Fatal("stored director targets are not the newest")
		}
	}
	c, err := tufclient.New(tufclient.Config{Dir: f.dir, Fetcher: f.srv, Now: func() time.Time { return f.now }})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.Refresh(t.Context()); err != nil || len(got) != 0 {
		t.Fatalf("after restart: %v, %v", got, err)
	}
	// Unchanged metadata is not fetched again: only the timestamp.
	f.srv.fetched = nil
	f.mustRefresh()
	for _, name := range f.srv.fetched {
		if filepath.Ext(name) == ".json" && !bytes.HasSuffix([]byte(name), []byte("timestamp.json")) && !bytes.HasSuffix([]byte(name), []byte(".root.json")) {
			t.Errorf("fetched %s although nothing changed", name)
		}
	}
}

func TestNewNeedsARoot(t *testing.T) {
	_, err := tufclient.New(tufclient.Config{Dir: t.TempDir(), Fetcher: &server{}})
	if tufclient.ReasonOf(err) != tufclient.ReasonState {
		t.Fatalf("no roots: %v", err)
	}
	r := tufrepotest.New(t, t0)
	bad := bytes.Replace(r.State.Roots[0], []byte(`"threshold":1`), []byte(`"threshold":2`), 1)
	_, err = tufclient.New(tufclient.Config{Dir: t.TempDir(), Fetcher: &server{}, DirectorRoot: bad, ImageRoot: r.State.Roots[0]})
	if tufclient.ReasonOf(err) != tufclient.ReasonSignature {
		t.Fatalf("tampered initial root: %v", err)
	}
}

// Arbitrary software: an attacker holding a director's snapshot and timestamp keys and one of
// its two targets keys adds an image to the group's deployment (one the tenant released, so
// only the signature threshold stands in the way).
func TestArbitrarySoftwareBelowThreshold(t *testing.T) {
	f := newFixture(t)
	f.director.TargetsKeys = append(f.director.TargetsKeys, tufrepotest.Key(t))
	f.director.Thresholds[1] = 2
	f.director.RotateRoot(t0, f.director.RootKeys, 1)
	f.mustRefresh()
	f.forge(tufclient.Director, f.director, lists(tufrepotest.Target(3)), f.director.TargetsKeys[0])
	f.refused(tufclient.ReasonSignature, "director", "targets.json", "arbitrary software", "got 1, want 2")
	// With both keys the same change is accepted: the threshold was the only defence.
	f.forge(tufclient.Director, f.director, lists(tufrepotest.Target(3)), f.director.TargetsKeys...)
	if got := f.mustRefresh(); len(got) != 3 {
		t.Fatalf("got %+v", got)
	}
}

func TestArbitrarySoftwareUnknownKey(t *testing.T) {
	f := newFixture(t)
	f.mustRefresh()
	f.forge(tufclient.Director, f.director, lists(tufrepotest.Target(3)), tufrepotest.Key(t))
	f.refused(tufclient.ReasonWrongRepository, "director", "targets.json")
}

func TestArbitrarySoftwareTamperedByte(t *testing.T) {
	f := newFixture(t)
	// The timestamp says 2 (its version); a tampered copy says 9.
	f.srv.serve(tufclient.Director, tufrepo.TimestampFile, bytes.Replace(f.director.State.Timestamp, []byte(`"version":2`), []byte(`"version":9`), 1))
	f.refused(tufclient.ReasonSignature, "director timestamp.json")

	// A target's length changed in targets.json: the snapshot's pin catches it first.
	f = newFixture(t)
	tampered := bytes.Replace(f.director.State.Targets, []byte(`"length":1001`), []byte(`"length":1002`), 1)
	if bytes.Equal(tampered, f.director.State.Targets) {
		t.Fatal("nothing tampered")
	}
	f.srv.serve(tufclient.Director, tufrepo.TargetsFileName(2), tampered)
	f.refused(tufclient.ReasonMismatch, "director 2.targets.json")
}

func TestDirectorAndImageRepositoryMustAgree(t *testing.T) {
	for _, tc := range []struct {
		name   string
		edit   func(*tufrepo.Target)
		reason tufclient.Reason
		words  []string
	}{
		{"hash", func(t *tufrepo.Target) { t.SHA256 = tufrepotest.Target(9).SHA256 }, tufclient.ReasonMismatch, []string{"sha256"}},
		{"length", func(t *tufrepo.Target) { t.Length++ }, tufclient.ReasonMismatch, []string{"1002"}},
		{"version", func(t *tufrepo.Target) { t.Version = "9.9.9" }, tufclient.ReasonMismatch, []string{"9.9.9"}},
		{"kind", func(t *tufrepo.Target) { t.Kind = "os" }, tufclient.ReasonMismatch, []string{"os"}},
		{"unreleased image", func(t *tufrepo.Target) { t.ImageID = tufrepotest.Target(9).ImageID }, tufclient.ReasonMismatch, []string{"image repository does not"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			bad := tufrepotest.Target(1)
			tc.edit(&bad)
			f.director.Publish(t0, bad, tufrepotest.Target(2))
			e := f.refused(tc.reason, append(tc.words, "target "+bad.Path(), "mix-and-match")...)
			if e.Target != bad.Path() {
				t.Fatalf("error names target %q, want %q", e.Target, bad.Path())
			}
		})
	}
}

func TestRollbackRefused(t *testing.T) {
	f := newFixture(t)
	oldTimestamp := f.director.State.Timestamp
	f.mustRefresh()
	f.now = f.now.Add(time.Hour)
	f.director.Publish(f.now, tufrepotest.Target(2))
	f.mustRefresh()
	// The old timestamp (still unexpired) is served again.
	f.srv.serve(tufclient.Director, tufrepo.TimestampFile, oldTimestamp)
	f.refused(tufclient.ReasonRollback, "director timestamp.json", "must be >=")
	// Also after a restart: the trusted timestamp was stored.
	f.restart()
	f.srv.serve(tufclient.Director, tufrepo.TimestampFile, oldTimestamp)
	f.refused(tufclient.ReasonRollback, "director timestamp.json")
	// Without the stored timestamp the same old file is accepted: the state directory is what
	// carries the protection across restarts.
	if err := os.Remove(filepath.Join(f.dir, "director", "timestamp.json")); err != nil {
		t.Fatal(err)
	}
	f.restart()
	f.srv.serve(tufclient.Director, tufrepo.TimestampFile, oldTimestamp)
	if _, err := f.refresh(); tufclient.ReasonOf(err) == tufclient.ReasonRollback {
		t.Fatalf("refused as a rollback without the stored timestamp: %v", err)
	}
}

// An attacker with the timestamp key pins an older snapshot; with the snapshot key too, an
// older targets version.
func TestRollbackOfSnapshotAndTargetsRefused(t *testing.T) {
	f := newFixture(t)
	oldSnapshot, oldTargets := f.director.State.Snapshot, f.director.State.Targets
	f.director.Publish(t0, tufrepotest.Target(2))
	f.mustRefresh()
	st := f.director.Status()

	ts := metadata.Timestamp(t0.Add(time.Hour))
	ts.Signed.Version = st.Timestamp.Version + 1
	ts.Signed.Meta["snapshot.json"] = pin(2, oldSnapshot)
	f.srv.serve(tufclient.Director, tufrepo.TimestampFile, sign(t, ts, f.director.TimestampKeys...))
	f.refused(tufclient.ReasonRollback, "snapshot version 2 must be >= 3")

	f.restart()
	f.srv.override = map[string]io.Reader{}
	sn := metadata.Snapshot(t0.Add(time.Hour))
	sn.Signed.Version = st.Snapshot.Version + 1
	sn.Signed.Meta["targets.json"] = pin(2, oldTargets)
	sJSON := sign(t, sn, f.director.SnapshotKeys...)
	ts.Signed.Meta["snapshot.json"] = pin(sn.Signed.Version, sJSON)
	f.srv.serve(tufclient.Director, tufrepo.SnapshotFileName(sn.Signed.Version), sJSON)
	f.srv.serve(tufclient.Director, tufrepo.TimestampFile, sign(t, ts, f.director.TimestampKeys...))
	f.refused(tufclient.ReasonRollback, "targets.json")
}

func TestFreezeRefusedAndRenewKeepsTheFleetAlive(t *testing.T) {
	f := newFixture(t)
	f.mustRefresh()
	// The service is down (or frozen by an attacker) and its timestamp expires.
	f.now = t0.Add(tufrepo.DefaultTimestampLifetime + time.Minute)
	f.refused(tufclient.ReasonExpired, "director timestamp.json", "freeze")
	f.restart()
	f.refused(tufclient.ReasonExpired, "freeze")

	// A fleet whose service renews on schedule never sees an expiry.
	f = newFixture(t)
	f.mustRefresh()
	for h := 1; h <= 10*24; h++ {
		f.now = t0.Add(time.Duration(h) * time.Hour)
		f.director.Renew(f.now)
		f.image.Renew(f.now)
		if h%7 == 0 {
			if got := f.mustRefresh(); len(got) != 2 {
				t.Fatalf("hour %d: %+v", h, got)
			}
		}
	}
	if f.now.Before(t0.Add(tufrepo.DefaultTimestampLifetime)) {
		t.Fatal("the clock never passed the first expiry")
	}
}

func TestMixAndMatchRefused(t *testing.T) {
	// A targets file of another version than the snapshot pins, served under the pinned name.
	f := newFixture(t)
	old := f.director.State.Targets
	f.director.Publish(t0, tufrepotest.Target(1), tufrepotest.Target(2), tufrepotest.Target(3))
	f.srv.serve(tufclient.Director, tufrepo.TargetsFileName(3), old)
	f.refused(tufclient.ReasonMismatch, "director 3.targets.json", "not the file pinned")

	// Another group's director (its own keys and root), served as this group's.
	f = newFixture(t)
	f.mustRefresh()
	other := tufrepotest.New(t, t0)
	other.Publish(t0, tufrepotest.Target(3))
	for i := 0; i < 3; i++ {
		other.Publish(t0, tufrepotest.Target(3)) // newer versions than the group's
	}
	f.srv.repos[tufclient.Director] = other
	f.refused(tufclient.ReasonWrongRepository, "director timestamp.json", "wrong software")
}

func TestWrongSoftwareRefused(t *testing.T) {
	// Another tenant's image repository, listing the very images the director names.
	f := newFixture(t)
	f.mustRefresh()
	otherTenant := tufrepotest.New(t, t0)
	for i := 0; i < 4; i++ {
		otherTenant.Publish(t0, tufrepotest.Target(1), tufrepotest.Target(2))
	}
	f.srv.repos[tufclient.Image] = otherTenant
	f.refused(tufclient.ReasonWrongRepository, "image timestamp.json")

	// A device set up for another group: its initial director root is that group's.
	f = newFixture(t)
	other := tufrepotest.New(t, t0)
	f.srv.repos[tufclient.Director] = other
	f.dir = t.TempDir()
	f.restart() // trusts f.director's root, is served other's
	f.refused(tufclient.ReasonWrongRepository, "director")
}

// infinite is an endless body that counts what was read and gives up after 64 MiB, so that a
// missing bound fails the test rather than hanging it.
type infinite struct{ n int64 }

func (r *infinite) Read(p []byte) (int, error) {
	if r.n > 64<<20 {
		return 0, errors.New("read 64 MiB of an endless body")
	}
	for i := range p {
		p[i] = ' '
	}
	r.n += int64(len(p))
	return len(p), nil
}

func TestEndlessDataRefusedWithoutReadingIt(t *testing.T) {
	f := newFixture(t)
	body := &infinite{}
	f.srv.override["director/timestamp.json"] = body
	f.refused(tufclient.ReasonTooLarge, "director timestamp.json", "endless data", "16384")
	if body.n > tufclient.MaxTimestampSize+1<<16 {
		t.Fatalf("read %d bytes of an endless timestamp", body.n)
	}

	// The snapshot file is bounded by the length the timestamp pins, far below the limit.
	f = newFixture(t)
	pinned := int64(len(f.director.State.Snapshot))
	body = &infinite{}
	f.srv.override["director/2.snapshot.json"] = io.MultiReader(bytes.NewReader(f.director.State.Snapshot), body)
	f.refused(tufclient.ReasonTooLarge, "director 2.snapshot.json", "the length pinned")
	if got := pinned + body.n; got > pinned+1+1<<16 {
		t.Fatalf("read %d bytes of a snapshot pinned at %d", got, pinned)
	}

	// A root chain that never ends is followed at most MaxRootRotations versions, each
	// bounded: here every next root is endless.
	f = newFixture(t)
	f.srv.override["image/2.root.json"] = &infinite{}
	f.refused(tufclient.ReasonTooLarge, "image 2.root.json")
}

func TestRootRotation(t *testing.T) {
	f := newFixture(t)
	f.mustRefresh()
	// N -> N+1: new root keys (threshold 2 of 3) and a new timestamp key.
	k1 := tufrepotest.Keys(t, 3)
	f.director.TimestampKeys = tufrepotest.Keys(t, 1)
	f.director.RotateRoot(t0.Add(time.Hour), k1, 2)
	// N+1 -> N+2: another set of root keys; the device fetches both in order.
	k2 := tufrepotest.Keys(t, 1)
	f.director.RotateRoot(t0.Add(2*time.Hour), k2, 1)
	f.director.Publish(t0.Add(2*time.Hour), tufrepotest.Target(3))
	f.now = t0.Add(3 * time.Hour)
	if got, w := f.mustRefresh(), want(tufrepotest.Target(3)); !reflect.DeepEqual(got, w) {
		t.Fatalf("got %+v", got)
	}
	stored, err := metadata.Root().FromFile(filepath.Join(f.dir, "director", "root.json"))
	if err != nil || stored.Signed.Version != 3 {
		t.Fatalf("stored root: %v, %v", stored, err)
	}

	// A rotation signed only by the new keys is refused.
	f = newFixture(t)
	f.mustRefresh()
	newKeys := tufrepotest.Keys(t, 1)
	root, err := metadata.Root().FromBytes(f.director.State.Roots[0])
	if err != nil {
		t.Fatal(err)
	}
	root.Signed.Version = 2
	for _, id := range root.Signed.Roles["root"].KeyIDs {
		if err := root.Signed.RevokeKey(id, "root"); err != nil {
			t.Fatal(err)
		}
	}
	k, err := metadata.KeyFromPublicKey(newKeys[0].Public())
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Signed.AddKey(k, "root"); err != nil {
		t.Fatal(err)
	}
	f.srv.serve(tufclient.Director, "2.root.json", sign(t, root, newKeys...))
	f.refused(tufclient.ReasonSignature, "director 2.root.json")
	// Signed by old and new, the same root is accepted.
	f.srv.serve(tufclient.Director, "2.root.json", sign(t, root, append(newKeys, f.director.RootKeys...)...))
	f.mustRefresh()
}

func TestExpiredRootRefused(t *testing.T) {
	f := newFixture(t)
	f.mustRefresh()
	// The service renews the online roles, but nobody renewed the root.
	f.now = t0.Add(tufrepo.DefaultRootLifetime + time.Hour)
	f.director.Renew(f.now)
	f.image.Renew(f.now)
	f.refused(tufclient.ReasonExpired, "director 1.root.json", "root (version 1) expired")
	// Renewing it (a rotation to the same keys) brings the fleet back.
	f.director.RotateRoot(f.now, f.director.RootKeys, 1)
	f.image.RotateRoot(f.now, f.image.RootKeys, 1)
	if got := f.mustRefresh(); len(got) != 2 {
		t.Fatalf("got %+v", got)
	}
}
