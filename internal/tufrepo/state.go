package tufrepo

import (
	"crypto"
	"crypto/sha256"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// State is a repository's signed metadata: what the caller stores and devices fetch. Every
// operation returns a new State and leaves the one passed in unchanged.
type State struct {
	// Roots holds every root ever signed, oldest first: Roots[i] is version i+1. Devices walk
	// the chain one version at a time, so none may be dropped.
	Roots [][]byte `json:"roots"`
	// Targets, Snapshot and Timestamp are the current signed metadata of those roles.
	Targets   []byte `json:"targets"`
	Snapshot  []byte `json:"snapshot"`
	Timestamp []byte `json:"timestamp"`
}

// File names, as devices fetch them. The repository uses consistent snapshots, so snapshot
// and targets are fetched by version, and a device that races a Publish gets "not found"
// (and retries) rather than a mismatched file.
const (
	TimestampFile = "timestamp.json" // the current timestamp
	RootFile      = "root.json"      // the newest root: what a device is first given
)

// RootFileName is the name of root version v: "v.root.json".
func RootFileName(v int64) string { return strconv.FormatInt(v, 10) + ".root.json" }

// SnapshotFileName is the name of snapshot version v: "v.snapshot.json".
func SnapshotFileName(v int64) string { return strconv.FormatInt(v, 10) + ".snapshot.json" }

// TargetsFileName is the name of targets version v: "v.targets.json".
func TargetsFileName(v int64) string { return strconv.FormatInt(v, 10) + ".targets.json" }

// File returns the metadata file a device asked for by name, or false if there is none: an
// unknown name, a root version not yet signed, or a snapshot or targets version that is not
// the current one.
func (s *State) File(name string) ([]byte, bool) {
	if name == RootFile {
		if len(s.Roots) == 0 {
			return nil, false
		}
		return s.Roots[len(s.Roots)-1], true
	}
	if name == TimestampFile {
		return s.Timestamp, s.Timestamp != nil
	}
	vs, role, ok := strings.Cut(name, ".")
	if !ok || vs == "" || vs[0] == '0' || len(vs) > 18 {
		return nil, false
	}
	v, err := strconv.ParseInt(vs, 10, 64)
	if err != nil || v < 1 || strconv.FormatInt(v, 10) != vs {
		return nil, false
	}
	switch role {
	case "root.json":
		if v <= int64(len(s.Roots)) {
			return s.Roots[v-1], true
		}
	case "snapshot.json", "targets.json":
		st, err := s.Status()
		if err != nil {
			return nil, false
		}
		if role == "snapshot.json" && v == st.Snapshot.Version {
			return s.Snapshot, true
		}
		if role == "targets.json" && v == st.Targets.Version {
			return s.Targets, true
		}
	}
	return nil, false
}

// RoleStatus is one role's current version and expiry.
type RoleStatus struct {
	Version int64
	Expires time.Time
}

// Status is the version and expiry of every role's current metadata, for the caller to show
// and persist beside the State.
type Status struct {
	Root, Targets, Snapshot, Timestamp RoleStatus
}

// Status parses s and reports its roles' versions and expiries.
func (s *State) Status() (Status, error) {
	r, err := s.parse()
	if err != nil {
		return Status{}, err
	}
	return Status{
		Root:      RoleStatus{r.root.Signed.Version, r.root.Signed.Expires},
		Targets:   RoleStatus{r.targets.Signed.Version, r.targets.Signed.Expires},
		Snapshot:  RoleStatus{r.snapshot.Signed.Version, r.snapshot.Signed.Expires},
		Timestamp: RoleStatus{r.timestamp.Signed.Version, r.timestamp.Signed.Expires},
	}, nil
}

// RenewAt returns when Renew will next have work to do: the earliest moment an online role
// has less than half its lifetime left. The caller schedules Renew at (or before) it.
func (o *Online) RenewAt(s *State) (time.Time, error) {
	r, err := s.parse()
	if err != nil {
		return time.Time{}, err
	}
	lt := o.Lifetimes.withDefaults()
	at := r.timestamp.Signed.Expires.Add(-lt.Timestamp / 2)
	for _, t := range []time.Time{
		r.snapshot.Signed.Expires.Add(-lt.Snapshot / 2),
		r.targets.Signed.Expires.Add(-lt.Targets / 2),
	} {
		if t.Before(at) {
			at = t
		}
	}
	return at, nil
}

// repo is a parsed State.
type repo struct {
	rootVersions [][]byte
	root         *metadata.Metadata[metadata.RootType]
	targets      *metadata.Metadata[metadata.TargetsType]
	snapshot     *metadata.Metadata[metadata.SnapshotType]
	timestamp    *metadata.Metadata[metadata.TimestampType]
	targetsJSON  []byte
	snapJSON     []byte
	tsJSON       []byte
}

func (s *State) parse() (*repo, error) {
	if s == nil || len(s.Roots) == 0 {
		return nil, fmt.Errorf("%w: no root", ErrState)
	}
	r := &repo{rootVersions: append([][]byte{}, s.Roots...), targetsJSON: s.Targets, snapJSON: s.Snapshot, tsJSON: s.Timestamp}
	var err error
	if r.root, err = metadata.Root().FromBytes(s.Roots[len(s.Roots)-1]); err != nil {
		return nil, fmt.Errorf("%w: root: %v", ErrState, err)
	}
	if r.root.Signed.Version != int64(len(s.Roots)) {
		return nil, fmt.Errorf("%w: the newest of %d roots says it is version %d", ErrState, len(s.Roots), r.root.Signed.Version)
	}
	if r.targets, err = metadata.Targets().FromBytes(s.Targets); err != nil {
		return nil, fmt.Errorf("%w: targets: %v", ErrState, err)
	}
	if r.snapshot, err = metadata.Snapshot().FromBytes(s.Snapshot); err != nil {
		return nil, fmt.Errorf("%w: snapshot: %v", ErrState, err)
	}
	if r.timestamp, err = metadata.Timestamp().FromBytes(s.Timestamp); err != nil {
		return nil, fmt.Errorf("%w: timestamp: %v", ErrState, err)
	}
	return r, nil
}

func (r *repo) state() *State {
	return &State{Roots: r.rootVersions, Targets: r.targetsJSON, Snapshot: r.snapJSON, Timestamp: r.tsJSON}
}

// resign signs t (whose version and expiry the caller set) as the new targets, then a new
// snapshot pinning it and a new timestamp pinning that, each version one past the current
// (or 1 for a new repository).
func (r *repo) resign(o *Online, t *metadata.Metadata[metadata.TargetsType], now time.Time) error {
	t.ClearSignatures()
	tJSON, err := signOnline(r.root, t, RoleTargets, o.Targets)
	if err != nil {
		return err
	}
	if len(tJSON) > MaxTargetsSize {
		return fmt.Errorf("%w: targets.json would be %d bytes; the limit is %d", ErrTarget, len(tJSON), MaxTargetsSize)
	}
	r.targets, r.targetsJSON = t, tJSON
	return r.resignSnapshot(o, now)
}

// resignSnapshot signs a new snapshot pinning the current targets, then a new timestamp.
func (r *repo) resignSnapshot(o *Online, now time.Time) error {
	lt := o.Lifetimes.withDefaults()
	snap := metadata.Snapshot(now.Add(lt.Snapshot))
	if r.snapshot != nil {
		snap.Signed.Version = r.snapshot.Signed.Version + 1
	}
	snap.Signed.Meta = map[string]*metadata.MetaFiles{"targets.json": pin(r.targets.Signed.Version, r.targetsJSON)}
	sJSON, err := signOnline(r.root, snap, RoleSnapshot, o.Snapshot)
	if err != nil {
		return err
	}
	r.snapshot, r.snapJSON = snap, sJSON
	return r.resignTimestamp(o, now)
}

// resignTimestamp signs a new timestamp pinning the current snapshot.
func (r *repo) resignTimestamp(o *Online, now time.Time) error {
	lt := o.Lifetimes.withDefaults()
	ts := metadata.Timestamp(now.Add(lt.Timestamp))
	if r.timestamp != nil {
		ts.Signed.Version = r.timestamp.Signed.Version + 1
	}
	ts.Signed.Meta = map[string]*metadata.MetaFiles{"snapshot.json": pin(r.snapshot.Signed.Version, r.snapJSON)}
	tsJSON, err := signOnline(r.root, ts, RoleTimestamp, o.Timestamp)
	if err != nil {
		return err
	}
	r.timestamp, r.tsJSON = ts, tsJSON
	return nil
}

// pin describes a metadata file by version, length and SHA-256, as snapshot and timestamp do.
func pin(version int64, data []byte) *metadata.MetaFiles {
	sum := sha256.Sum256(data)
	return &metadata.MetaFiles{Version: version, Length: int64(len(data)), Hashes: metadata.Hashes{"sha256": sum[:]}}
}

// signOnline signs m as role, checks the signatures against root (threshold included) and
// returns its JSON.
func signOnline[T metadata.Roles](root *metadata.Metadata[metadata.RootType], m *metadata.Metadata[T], role string, signers []crypto.Signer) ([]byte, error) {
	listed := map[string]bool{}
	for _, id := range root.Signed.Roles[role].KeyIDs {
		listed[id] = true
	}
	for i, s := range signers {
		id, err := KeyID(s.Public())
		if err != nil {
			return nil, fmt.Errorf("%w: the %s role's signer %d: %v", ErrKeys, role, i, err)
		}
		if !listed[id] {
			return nil, fmt.Errorf("%w: signer %d (key %s) is not a key of the %s role in root version %d", ErrKeys, i, id, role, root.Signed.Version)
		}
	}
	if err := sign(m, role, signers); err != nil {
		return nil, err
	}
	if err := root.VerifyDelegate(role, m); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrThreshold, role, err)
	}
	b, err := m.ToBytes(false)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", role, err)
	}
	return b, nil
}
