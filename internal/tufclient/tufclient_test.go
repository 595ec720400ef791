package tufclient_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/internal/tufclient"
	"github.com/rampart-iot/rampart/internal/tufrepo"
	"github.com/rampart-iot/rampart/internal/tufrepo/tufrepotest"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// server is the in-memory Fetcher: it serves each repository's current tufrepo State, as the
// service will, except for files an attack overrides.
type server struct {
	mu       sync.Mutex
	repos    map[tufclient.Repo]*tufrepotest.Repo
	override map[string]io.Reader // "repo/name" -> body
	fetched  []string
}

func (s *server) Fetch(_ context.Context, repo tufclient.Repo, name string, _ int64) (io.ReadCloser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := string(repo) + "/" + name
	s.fetched = append(s.fetched, key)
	if r, ok := s.override[key]; ok {
		return io.NopCloser(r), nil
	}
	if b, ok := s.repos[repo].State.File(name); ok {
		return io.NopCloser(bytes.NewReader(b)), nil
	}
	return nil, fmt.Errorf("%s: %w", key, tufclient.ErrNotFound)
}

// serve makes the server answer repo/name with data.
func (s *server) serve(repo tufclient.Repo, name string, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.override[string(repo)+"/"+name] = bytes.NewReader(data)
}

type fixture struct {
	t               *testing.T
	now             time.Time
	dir             string
	director, image *tufrepotest.Repo
	srv             *server
	client          *tufclient.Client
	forged          int64 // forgeries so far: each is newer than the last
}

// newFixture makes a tenant's image repository listing images 1, 2 and 3, a group's
// director listing 1 and 2, and a device client trusting their first roots.
func newFixture(t *testing.T) *fixture {
	f := &fixture{t: t, now: t0, dir: t.TempDir()}
	f.director = tufrepotest.New(t, t0)
	f.image = tufrepotest.New(t, t0)
	f.image.Publish(t0, tufrepotest.Target(1), tufrepotest.Target(2), tufrepotest.Target(3))
	f.director.Publish(t0, tufrepotest.Target(1), tufrepotest.Target(2))
	f.srv = &server{repos: map[tufclient.Repo]*tufrepotest.Repo{tufclient.Director: f.director, tufclient.Image: f.image}, override: map[string]io.Reader{}}
	f.restart()
	return f
}

// restart makes a new client on the same state directory, as after a reboot.
func (f *fixture) restart() {
	f.t.Helper()
	c, err := tufclient.New(tufclient.Config{
		Dir: f.dir, Fetcher: f.srv, Now: func() time.Time { return f.now },
		DirectorRoot: f.director.State.Roots[0], ImageRoot: f.image.State.Roots[0],
	})
	if err != nil {
		f.t.Fatal(err)
	}
	f.client = c
}

func (f *fixture) refresh() ([]tufclient.Target, error) {
	return f.client.Refresh(context.Background())
}

func (f *fixture) mustRefresh() []tufclient.Target {
	f.t.Helper()
	ts, err := f.refresh()
	if err != nil {
		f.t.Fatal(err)
	}
	return ts
}

// refused checks that Refresh fails with reason, mentioning each of words.
func (f *fixture) refused(reason tufclient.Reason, words ...string) *tufclient.Error {
	f.t.Helper()
	ts, err := f.refresh()
	if err == nil {
		f.t.Fatalf("Refresh accepted %v; want a %s refusal", ts, reason)
	}
	var e *tufclient.Error
	if !errors.As(err, &e) {
		f.t.Fatalf("error %v (%T) is not a *tufclient.Error", err, err)
	}
	if e.Reason != reason || tufclient.ReasonOf(err) != reason {
		f.t.Fatalf("reason %q, want %q: %v", e.Reason, reason, err)
	}
	for _, w := range words {
		if !strings.Contains(err.Error(), w) {
			f.t.Errorf("error %q does not mention %q", err, w)
		}
	}
	return e
}

// want converts repository targets to what the client returns.
func want(ts ...tufrepo.Target) []tufclient.Target {
	out := []tufclient.Target{}
	for _, t := range ts {
		out = append(out, tufclient.Target{Path: t.Path(), ComponentID: t.ComponentID, ImageID: t.ImageID, Kind: t.Kind, Version: t.Version, Length: t.Length, SHA256: t.SHA256})
	}
	return out
}

// forged holds metadata an attacker made with the keys given; sign re-signs with them.
func sign[T metadata.Roles](t *testing.T, m *metadata.Metadata[T], keys ...*ecdsa.PrivateKey) []byte {
	t.Helper()
	m.ClearSignatures()
	for _, k := range keys {
		s, err := signature.LoadECDSASigner(k, crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Sign(s); err != nil {
			t.Fatal(err)
		}
	}
	b, err := m.ToBytes(false)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func pin(version int64, data []byte) *metadata.MetaFiles {
	sum := sha256.Sum256(data)
	return &metadata.MetaFiles{Version: version, Length: int64(len(data)), Hashes: metadata.Hashes{"sha256": sum[:]}}
}

// forge serves, for r's repository, targets changed by edit and signed with targetsKeys, and
// a snapshot and timestamp pinning it, signed with the repository's own snapshot and
// timestamp keys: an attacker who holds those online keys.
func (f *fixture) forge(repo tufclient.Repo, r *tufrepotest.Repo, edit func(*metadata.TargetsType), targetsKeys ...*ecdsa.PrivateKey) {
	t := f.t
	st := r.Status()
	f.forged++
	st.Targets.Version += f.forged - 1
	st.Snapshot.Version += f.forged - 1
	st.Timestamp.Version += f.forged - 1
	tg, err := metadata.Targets().FromBytes(r.State.Targets)
	if err != nil {
		t.Fatal(err)
	}
	tg.Signed.Version = st.Targets.Version + 1
	edit(&tg.Signed)
	tJSON := sign(t, tg, targetsKeys...)
	sn := metadata.Snapshot(f.now.Add(24 * time.Hour))
	sn.Signed.Version = st.Snapshot.Version + 1
	sn.Signed.Meta["targets.json"] = pin(tg.Signed.Version, tJSON)
	sJSON := sign(t, sn, r.SnapshotKeys...)
	ts := metadata.Timestamp(f.now.Add(24 * time.Hour))
	ts.Signed.Version = st.Timestamp.Version + 1
	ts.Signed.Meta["snapshot.json"] = pin(sn.Signed.Version, sJSON)
	f.srv.serve(repo, tufrepo.TargetsFileName(tg.Signed.Version), tJSON)
	f.srv.serve(repo, tufrepo.SnapshotFileName(sn.Signed.Version), sJSON)
	f.srv.serve(repo, tufrepo.TimestampFile, sign(t, ts, r.TimestampKeys...))
}

// lists returns an edit that lists tg in a targets role, as the repository would.
func lists(tg tufrepo.Target) func(*metadata.TargetsType) {
	return func(tt *metadata.TargetsType) {
		sum, err := hex.DecodeString(tg.SHA256)
		if err != nil {
			panic(err)
		}
		raw := json.RawMessage(fmt.Sprintf(`{"component_id":%q,"image_id":%q,"kind":%q,"version":%q}`, tg.ComponentID, tg.ImageID, tg.Kind, tg.Version))
		tt.Targets[tg.Path()] = &metadata.TargetFiles{Length: tg.Length, Hashes: metadata.Hashes{"sha256": sum}, Custom: &raw}
	}
}
