// Package tufrepotest builds real, signed tufrepo repositories for tests: fresh ECDSA P-256
// keys for every role, an Online that signs with them, and helpers that publish, renew and
// rotate, failing the test on any error. Nothing in it is fake: the metadata is what the
// service would serve.
package tufrepotest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/imagepkg"
	"github.com/rampart-iot/rampart/internal/tufrepo"
)

// Repo is one repository with its keys.
type Repo struct {
	T                                                  testing.TB
	RootKeys, TargetsKeys, SnapshotKeys, TimestampKeys []*ecdsa.PrivateKey
	Thresholds                                         [4]int // root, targets, snapshot, timestamp
	Online                                             *tufrepo.Online
	State                                              *tufrepo.State
}

// Key returns a new ECDSA P-256 key.
func Key(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Keys returns n new keys.
func Keys(t testing.TB, n int) []*ecdsa.PrivateKey {
	ks := make([]*ecdsa.PrivateKey, n)
	for i := range ks {
		ks[i] = Key(t)
	}
	return ks
}

// FixedKey returns the ECDSA P-256 key derived from name: the same name, the same key, so
// that metadata (signed deterministically) is the same bytes in every run.
func FixedKey(t testing.TB, name string) *ecdsa.PrivateKey {
	t.Helper()
	d := sha256.Sum256([]byte("tufrepotest " + name))
	k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d[:])
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// New makes a repository at now with one new key and threshold 1 for every role.
func New(t testing.TB, now time.Time) *Repo {
	t.Helper()
	return initRepo(t, now, &Repo{T: t, RootKeys: Keys(t, 1), TargetsKeys: Keys(t, 1), SnapshotKeys: Keys(t, 1), TimestampKeys: Keys(t, 1), Thresholds: [4]int{1, 1, 1, 1}})
}

// NewFixed is New with keys derived from name (FixedKey): the same name and time make the
// same metadata.
func NewFixed(t testing.TB, now time.Time, name string) *Repo {
	t.Helper()
	key := func(role string) []*ecdsa.PrivateKey { return []*ecdsa.PrivateKey{FixedKey(t, name+"/"+role)} }
	return initRepo(t, now, &Repo{T: t, RootKeys: key("root"), TargetsKeys: key("targets"), SnapshotKeys: key("snapshot"), TimestampKeys: key("timestamp"), Thresholds: [4]int{1, 1, 1, 1}})
}

func initRepo(t testing.TB, now time.Time, r *Repo) *Repo {
	t.Helper()
	r.SetOnline()
	st, err := r.Online.Init(r.Roles(), Signers(r.RootKeys), now)
	if err != nil {
		t.Fatal(err)
	}
	r.State = st
	return r
}

// SetOnline remakes r.Online from the online keys, keeping its lifetimes.
func (r *Repo) SetOnline() {
	var lt tufrepo.Lifetimes
	if r.Online != nil {
		lt = r.Online.Lifetimes
	}
	r.Online = &tufrepo.Online{Targets: Signers(r.TargetsKeys), Snapshot: Signers(r.SnapshotKeys), Timestamp: Signers(r.TimestampKeys), Lifetimes: lt}
}

// Roles returns the roles r's keys and thresholds make.
func (r *Repo) Roles() tufrepo.Roles {
	rk := func(ks []*ecdsa.PrivateKey, th int) tufrepo.RoleKeys {
		pubs := make([]crypto.PublicKey, len(ks))
		for i, k := range ks {
			pubs[i] = k.Public()
		}
		return tufrepo.RoleKeys{Keys: pubs, Threshold: th}
	}
	return tufrepo.Roles{
		Root:      rk(r.RootKeys, r.Thresholds[0]),
		Targets:   rk(r.TargetsKeys, r.Thresholds[1]),
		Snapshot:  rk(r.SnapshotKeys, r.Thresholds[2]),
		Timestamp: rk(r.TimestampKeys, r.Thresholds[3]),
	}
}

// Publish publishes targets at now.
func (r *Repo) Publish(now time.Time, targets ...tufrepo.Target) {
	r.T.Helper()
	st, err := r.Online.Publish(r.State, targets, now)
	if err != nil {
		r.T.Fatal(err)
	}
	r.State = st
}

// Renew renews at now and reports whether anything changed.
func (r *Repo) Renew(now time.Time) bool {
	r.T.Helper()
	st, changed, err := r.Online.Renew(r.State, now)
	if err != nil {
		r.T.Fatal(err)
	}
	r.State = st
	return changed
}

// RotateRoot replaces the root keys with newRoot (threshold rootThreshold), signed by all the
// old and all the new root keys, and re-signs the online roles with r's current online keys.
func (r *Repo) RotateRoot(now time.Time, newRoot []*ecdsa.PrivateKey, rootThreshold int) {
	r.T.Helper()
	old := r.RootKeys
	r.RootKeys, r.Thresholds[0] = newRoot, rootThreshold
	r.SetOnline()
	st, err := r.Online.RotateRoot(r.State, r.Roles(), Signers(old), Signers(newRoot), now)
	if err != nil {
		r.T.Fatal(err)
	}
	r.State = st
}

// Status returns the state's status.
func (r *Repo) Status() tufrepo.Status {
	r.T.Helper()
	s, err := r.State.Status()
	if err != nil {
		r.T.Fatal(err)
	}
	return s
}

// Signers converts keys to signers.
func Signers(ks []*ecdsa.PrivateKey) []crypto.Signer {
	ss := make([]crypto.Signer, len(ks))
	for i, k := range ks {
		ss[i] = k
	}
	return ss
}

// Target returns a valid application target whose IDs and digest derive from n.
func Target(n int) tufrepo.Target {
	sum := sha256.Sum256([]byte(fmt.Sprint("image ", n)))
	return tufrepo.Target{
		ComponentID: fmt.Sprintf("%08x-0000-4000-8000-000000000000", n),
		ImageID:     fmt.Sprintf("%08x-0000-7000-8000-%012x", n, n),
		Kind:        imagepkg.KindApplication,
		Version:     fmt.Sprintf("1.0.%d", n),
		Length:      int64(1000 + n),
		SHA256:      hex.EncodeToString(sum[:]),
	}
}
