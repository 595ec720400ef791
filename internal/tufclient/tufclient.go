// Package tufclient is the device side of Rampart's update metadata: it verifies a device
// group's director repository and its tenant's image repository (internal/tufrepo) in TUF
// order with go-tuf v2's trusted metadata set, and returns the targets the device may
// install, Uptane style: every target the director lists, with the image repository agreeing
// on its length, hashes and identity.
//
// Trust: it trusts the initial root of each repository its caller gives it (handed over at
// enrollment), the clock its caller gives it, and the files it wrote to its state directory
// (it verifies them again anyway). It trusts nothing a Fetcher returns: every file is bounded,
// checked against the trusted root (threshold of signatures), against the versions it already
// trusts (rollback), against its expiry by the injected clock (freeze), and against the
// length and hashes the timestamp and snapshot pin (mix-and-match, endless data).
package tufclient

import (
	"bytes"
	"context"
	"crypto/hmac"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/rampart-iot/rampart/imagepkg"
	"github.com/rampart-iot/rampart/internal/atomicfile"
	"github.com/rampart-iot/rampart/internal/tufrepo"
	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/trustedmetadata"
)

// Repo names one of the two repositories a device follows; it is also the name of the
// repository's subdirectory of the state directory.
type Repo string

// The two repositories.
const (
	Director Repo = "director" // the device group's: exactly what the group should run
	Image    Repo = "image"    // the tenant's: every image the tenant released
)

// Bounds on the files a Fetcher returns, in bytes (the repository side refuses to make larger
// ones). Snapshot and targets are further bounded by the length the timestamp and snapshot pin.
const (
	MaxRootSize      = tufrepo.MaxRootSize
	MaxTimestampSize = tufrepo.MaxTimestampSize
	MaxSnapshotSize  = tufrepo.MaxSnapshotSize
	MaxTargetsSize   = tufrepo.MaxTargetsSize
	// MaxRootRotations bounds how many new root versions one Refresh follows.
	MaxRootRotations = 32
)

// A Fetcher fetches a repository's metadata files; the agent implements it over mutual TLS to
// the service. name is one of "N.root.json" (root version N), "timestamp.json",
// "N.snapshot.json" and "N.targets.json" (those versions), as tufrepo.State.File serves them.
// If the file does not exist, Fetch returns an error wrapping ErrNotFound. The client reads at
// most maxLength+1 bytes and then closes the body; the Fetcher may refuse a longer response
// early (say, by its Content-Length), but need not.
type Fetcher interface {
	Fetch(ctx context.Context, repo Repo, name string, maxLength int64) (io.ReadCloser, error)
}

// Config configures a Client.
type Config struct {
	// Dir is the state directory; the client keeps each repository's trusted metadata in
	// Dir/director and Dir/image, written atomically.
	Dir string
	// Fetcher fetches the metadata files.
	Fetcher Fetcher
	// Now is the clock that decides expiry. A device without a real-time clock passes the
	// trusted time from its last attestation (the service's time, bound to a fresh nonce),
	// never its own uptime-based guess. nil means time.Now.
	Now func() time.Time
	// DirectorRoot and ImageRoot are the initial roots (any version) of the two repositories,
	// handed to the device at enrollment. They are used only when Dir holds no root for the
	// repository yet; after that, the client trusts what it verified and stored.
	DirectorRoot, ImageRoot []byte
}

// Client verifies the two repositories. It is safe for concurrent use; Refresh calls are
// serialized.
type Client struct {
	dir   string
	fetch Fetcher
	now   func() time.Time
	mu    sync.Mutex
}

// Target is one image the device may install.
type Target struct {
	Path        string        // "<component_id>/<image_id>"
	ComponentID string        // lower-case UUID
	ImageID     string        // lower-case UUID
	Kind        imagepkg.Kind // application, os or board-config
	Version     string        // semantic version
	Length      int64         // bytes of the image package
	SHA256      string        // lower-case hex digest of the image package
	Development bool          // signed only with the development key: development-mode devices only
	Measurement string        // an OS image's golden OS-bundle measurement, "" if none
	// SecurityVersion is an OS image's security version, 0 if none (tufrepo.Target).
	SecurityVersion uint64
}

// New returns a Client, storing the initial roots in Dir if it has none yet. It checks that
// each root it will start from is signed by a threshold of its own root keys.
func New(cfg Config) (*Client, error) {
	if cfg.Fetcher == nil {
		return nil, errors.New("tufclient: no Fetcher")
	}
	if cfg.Dir == "" {
		return nil, errors.New("tufclient: no state directory")
	}
	c := &Client{dir: cfg.Dir, fetch: cfg.Fetcher, now: cfg.Now}
	if c.now == nil {
		c.now = time.Now
	}
	for _, r := range []struct {
		repo Repo
		root []byte
	}{{Director, cfg.DirectorRoot}, {Image, cfg.ImageRoot}} {
		if err := os.MkdirAll(filepath.Join(cfg.Dir, string(r.repo)), 0o700); err != nil {
			return nil, &Error{Repo: r.repo, Reason: ReasonState, Err: err}
		}
		stored, err := c.readLocal(r.repo, "root.json", MaxRootSize)
		if err != nil {
			return nil, err
		}
		root := stored
		if root == nil {
			if r.root == nil {
				return nil, &Error{Repo: r.repo, Reason: ReasonState, Err: errors.New("no trusted root stored and no initial root given")}
			}
			root = r.root
		}
		if _, err := trustedmetadata.New(root); err != nil {
			return nil, classify(r.repo, "root.json", err, nil, root, false)
		}
		if stored == nil {
			if err := c.persist(r.repo, "root.json", root); err != nil {
				return nil, err
			}
		}
	}
	return c, nil
}

// Refresh updates both repositories (director first) in TUF order: the root chain, then
// timestamp, snapshot and targets, each checked for threshold signatures, version
// monotonicity, expiry and the pinned length and hashes, and each stored once verified. Then
// it returns the director's targets, sorted by path, each of which the image repository lists
// with the same length, hashes, component, image, kind and version. Every error is an *Error.
func (c *Client) Refresh(ctx context.Context) ([]Target, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	director, err := c.update(ctx, Director)
	if err != nil {
		return nil, err
	}
	image, err := c.update(ctx, Image)
	if err != nil {
		return nil, err
	}
	return match(director, image)
}

// update runs TUF's client workflow for one repository and returns its verified targets.
func (c *Client) update(ctx context.Context, repo Repo) (*metadata.Metadata[metadata.TargetsType], error) {
	root, err := c.readLocal(repo, "root.json", MaxRootSize)
	if err != nil {
		return nil, err
	}
	if root == nil {
		return nil, &Error{Repo: repo, Reason: ReasonState, Err: errors.New("no trusted root stored")}
	}
	tm, err := trustedmetadata.New(root)
	if err != nil {
		return nil, classify(repo, "root.json", err, nil, root, false)
	}
	tm.RefTime = c.now()

	// 5.3: the root chain, one version at a time.
	for last := tm.Root.Signed.Version + MaxRootRotations; tm.Root.Signed.Version < last; {
		v := tm.Root.Signed.Version + 1
		name := tufrepo.RootFileName(v)
		data, err := c.fetchFile(ctx, repo, name, MaxRootSize, 0)
		if errors.Is(err, ErrNotFound) {
			break
		}
		if err != nil {
			return nil, err
		}
		if _, err := tm.UpdateRoot(data); err != nil {
			var got struct {
				Signed struct {
					Version int64 `json:"version"`
				} `json:"signed"`
			}
			_ = json.Unmarshal(data, &got)
			return nil, classify(repo, name, err, nil, data, got.Signed.Version > v)
		}
		if err := c.persist(repo, "root.json", data); err != nil {
			return nil, err
		}
	}

	// 5.4: timestamp. The stored one is loaded first so that an older one is refused.
	if local, err := c.readLocal(repo, "timestamp.json", MaxTimestampSize); err != nil {
		return nil, err
	} else if local != nil {
		_, _ = tm.UpdateTimestamp(local) // an invalid stored file only loses its protection
	}
	if tm.Root.Signed.IsExpired(tm.RefTime) {
		return nil, &Error{Repo: repo, File: tufrepo.RootFileName(tm.Root.Signed.Version), Reason: ReasonExpired,
			Err: fmt.Errorf("the newest root (version %d) expired at %s", tm.Root.Signed.Version, tm.Root.Signed.Expires.Format(time.RFC3339))}
	}
	data, err := c.fetchFile(ctx, repo, tufrepo.TimestampFile, MaxTimestampSize, 0)
	if err != nil {
		return nil, err
	}
	old := tm.Timestamp
	if _, err := tm.UpdateTimestamp(data); err != nil {
		if !errors.Is(err, &metadata.ErrEqualVersionNumber{}) {
			return nil, classify(repo, tufrepo.TimestampFile, err, roleKeys(tm, metadata.TIMESTAMP), data, false)
		}
	} else if err := c.persist(repo, "timestamp.json", data); err != nil {
		return nil, err
	}
	if tm.Timestamp == old && old != nil && old.Signed.IsExpired(tm.RefTime) {
		return nil, &Error{Repo: repo, File: tufrepo.TimestampFile, Reason: ReasonExpired,
			Err: fmt.Errorf("the newest timestamp (version %d) expired at %s", old.Signed.Version, old.Signed.Expires.Format(time.RFC3339))}
	}
	snapMeta := tm.Timestamp.Signed.Meta["snapshot.json"]
	if snapMeta == nil {
		return nil, &Error{Repo: repo, File: tufrepo.TimestampFile, Reason: ReasonMalformed, Err: errors.New("it pins no snapshot.json")}
	}

	// 5.5: snapshot, unless the stored one is the version the timestamp pins.
	if local, err := c.readLocal(repo, "snapshot.json", MaxSnapshotSize); err != nil {
		return nil, err
	} else if local != nil {
		_, _ = tm.UpdateSnapshot(local, true) // kept for rollback checks even if not current
	}
	if tm.Snapshot == nil || tm.Snapshot.Signed.Version != snapMeta.Version || tm.Snapshot.Signed.IsExpired(tm.RefTime) {
		name := tufrepo.SnapshotFileName(snapMeta.Version)
		data, err := c.fetchFile(ctx, repo, name, MaxSnapshotSize, snapMeta.Length)
		if err != nil {
			return nil, err
		}
		old := tm.Snapshot
		if _, err := tm.UpdateSnapshot(data, false); err != nil {
			return nil, classify(repo, name, err, roleKeys(tm, metadata.SNAPSHOT), data, tm.Snapshot != old)
		}
		if err := c.persist(repo, "snapshot.json", data); err != nil {
			return nil, err
		}
	}
	targetsMeta := tm.Snapshot.Signed.Meta["targets.json"]
	if targetsMeta == nil {
		return nil, &Error{Repo: repo, File: tufrepo.SnapshotFileName(tm.Snapshot.Signed.Version), Reason: ReasonMalformed, Err: errors.New("it pins no targets.json")}
	}

	// 5.6: targets, unless the stored one is the version and file the snapshot pins.
	if local, err := c.readLocal(repo, "targets.json", MaxTargetsSize); err != nil {
		return nil, err
	} else if local != nil {
		if t, err := tm.UpdateTargets(local); err == nil {
			return t, nil
		}
	}
	name := tufrepo.TargetsFileName(targetsMeta.Version)
	data, err = c.fetchFile(ctx, repo, name, MaxTargetsSize, targetsMeta.Length)
	if err != nil {
		return nil, err
	}
	t, err := tm.UpdateTargets(data)
	if err != nil {
		return nil, classify(repo, name, err, roleKeys(tm, metadata.TARGETS), data, true)
	}
	if err := c.persist(repo, "targets.json", data); err != nil {
		return nil, err
	}
	return t, nil
}

func roleKeys(tm *trustedmetadata.TrustedMetadata, role string) []string {
	if r := tm.Root.Signed.Roles[role]; r != nil {
		return r.KeyIDs
	}
	return nil
}

// fetchFile fetches a file, reading at most limit+1 bytes, or pinned+1 if the repository
// pinned its length (pinned > 0): more is endless data.
func (c *Client) fetchFile(ctx context.Context, repo Repo, name string, limit, pinned int64) ([]byte, error) {
	max, bound := limit, "the limit"
	if pinned > 0 {
		if pinned > limit {
			return nil, &Error{Repo: repo, File: name, Reason: ReasonTooLarge, Err: fmt.Errorf("the pinned length %d is over the limit of %d bytes", pinned, limit)}
		}
		max, bound = pinned, "the length pinned"
	}
	rc, err := c.fetch.Fetch(ctx, repo, name, max)
	if err != nil {
		return nil, &Error{Repo: repo, File: name, Reason: ReasonUnavailable, Err: err}
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, max+1))
	if err != nil {
		return nil, &Error{Repo: repo, File: name, Reason: ReasonUnavailable, Err: err}
	}
	if int64(len(data)) > max {
		return nil, &Error{Repo: repo, File: name, Reason: ReasonTooLarge, Err: fmt.Errorf("more than %s of %d bytes", bound, max)}
	}
	return data, nil
}

// readLocal reads a stored file, or returns nil if there is none. A stored file over the
// bound is treated as absent.
func (c *Client) readLocal(repo Repo, name string, max int64) ([]byte, error) {
	f, err := os.Open(filepath.Join(c.dir, string(repo), name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, &Error{Repo: repo, File: name, Reason: ReasonState, Err: err}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, &Error{Repo: repo, File: name, Reason: ReasonState, Err: err}
	}
	if int64(len(data)) > max {
		return nil, nil
	}
	return data, nil
}

func (c *Client) persist(repo Repo, name string, data []byte) error {
	if err := atomicfile.WriteFile(filepath.Join(c.dir, string(repo), name), data, 0o600); err != nil {
		return &Error{Repo: repo, File: name, Reason: ReasonState, Err: err}
	}
	return nil
}

// match returns the director's targets, each checked against the image repository.
func match(director, image *metadata.Metadata[metadata.TargetsType]) ([]Target, error) {
	paths := make([]string, 0, len(director.Signed.Targets))
	for p := range director.Signed.Targets {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	out := make([]Target, 0, len(paths))
	for _, p := range paths {
		mismatch := func(format string, args ...any) error {
			return &Error{Repo: Director, Target: p, Reason: ReasonMismatch, Err: fmt.Errorf(format, args...)}
		}
		d, i := director.Signed.Targets[p], image.Signed.Targets[p]
		dt, err := target(p, d)
		if err != nil {
			return nil, &Error{Repo: Director, Target: p, Reason: ReasonMalformed, Err: err}
		}
		if i == nil {
			return nil, mismatch("the director lists it but the image repository does not")
		}
		it, err := target(p, i)
		if err != nil {
			return nil, &Error{Repo: Image, Target: p, Reason: ReasonMalformed, Err: err}
		}
		if d.Length != i.Length {
			return nil, mismatch("the director says %d bytes, the image repository %d", d.Length, i.Length)
		}
		for alg, dh := range d.Hashes {
			if ih, ok := i.Hashes[alg]; ok && !hmac.Equal(dh, ih) {
				return nil, mismatch("the director and the image repository disagree on its %s", alg)
			}
		}
		if dt != it {
			return nil, mismatch("the director says %+v, the image repository %+v", custom(dt), custom(it))
		}
		out = append(out, dt)
	}
	return out, nil
}

func custom(t Target) tufrepo.Custom {
	return tufrepo.Custom{ComponentID: t.ComponentID, ImageID: t.ImageID, Kind: string(t.Kind), Version: t.Version,
		Development: t.Development, Measurement: t.Measurement, SecurityVersion: t.SecurityVersion}
}

// target reads a listed target: its custom fields, path, length and SHA-256.
func target(path string, f *metadata.TargetFiles) (Target, error) {
	if f.Custom == nil {
		return Target{}, errors.New("no custom fields")
	}
	dec := json.NewDecoder(bytes.NewReader(*f.Custom))
	dec.DisallowUnknownFields()
	var c tufrepo.Custom
	if err := dec.Decode(&c); err != nil {
		return Target{}, fmt.Errorf("custom fields: %w", err)
	}
	sum := f.Hashes["sha256"]
	if len(sum) == 0 {
		return Target{}, errors.New("no sha256 hash")
	}
	t := tufrepo.Target{ComponentID: c.ComponentID, ImageID: c.ImageID, Kind: imagepkg.Kind(c.Kind), Version: c.Version, Length: f.Length,
		SHA256: hex.EncodeToString(sum), Development: c.Development, Measurement: c.Measurement, SecurityVersion: c.SecurityVersion}
	if err := t.Check(); err != nil {
		return Target{}, err
	}
	if t.Path() != path {
		return Target{}, fmt.Errorf("listed as %q but its custom fields name %q", path, t.Path())
	}
	return Target{Path: path, ComponentID: t.ComponentID, ImageID: t.ImageID, Kind: t.Kind, Version: t.Version, Length: t.Length,
		SHA256: t.SHA256, Development: t.Development, Measurement: t.Measurement, SecurityVersion: t.SecurityVersion}, nil
}
