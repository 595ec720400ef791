package tufrepo

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/rampart-iot/rampart/imagepkg"
	"github.com/rampart-iot/rampart/internal/ids"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Target is one image a targets role lists: an image package, named by its component and
// image IDs, described by length and SHA-256 of the whole package file.
type Target struct {
	ComponentID string        // lower-case UUID
	ImageID     string        // lower-case UUID
	Kind        imagepkg.Kind // application, os or board-config
	Version     string        // the image's semantic version
	Length      int64         // bytes of the package, 1 to MaxTargetLength
	SHA256      string        // 64 lower-case hex digits
	// Development marks an image uploaded signed only with the well-known development key:
	// only devices in development mode install it.
	Development bool
	// Measurement is an OS image's golden OS-bundle measurement (64 lower-case hex digits), ""
	// if none: the installed slot must measure to it.
	Measurement string
	// SecurityVersion is an OS image's security version (imagepkg.Metadata.SecurityVersion),
	// 0 if none: a device refuses an OS image below its anti-rollback counter.
	SecurityVersion uint64
}

// Path is the target's TUF path: "<component_id>/<image_id>".
func (t Target) Path() string { return t.ComponentID + "/" + t.ImageID }

// Custom is the custom object of every target, as it appears in targets.json.
type Custom struct {
	ComponentID     string `json:"component_id"`
	ImageID         string `json:"image_id"`
	Kind            string `json:"kind"`
	Version         string `json:"version"`
	Development     bool   `json:"development,omitempty"`
	Measurement     string `json:"measurement,omitempty"`
	SecurityVersion uint64 `json:"security_version,omitempty"`
}

// Check reports the first way t is malformed, or nil.
func (t Target) Check() error {
	switch {
	case !ids.Valid(t.ComponentID):
		return fmt.Errorf("%w: component ID %q is not a lower-case UUID", ErrTarget, t.ComponentID)
	case !ids.Valid(t.ImageID):
		return fmt.Errorf("%w: %s: image ID %q is not a lower-case UUID", ErrTarget, t.ComponentID, t.ImageID)
	}
	switch t.Kind {
	case imagepkg.KindApplication, imagepkg.KindOS, imagepkg.KindBoardConfig:
	default:
		return fmt.Errorf("%w: %s: kind %q is not %q, %q or %q", ErrTarget, t.Path(), t.Kind, imagepkg.KindApplication, imagepkg.KindOS, imagepkg.KindBoardConfig)
	}
	if _, err := imagepkg.ParseVersion(t.Version); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrTarget, t.Path(), err)
	}
	if t.Length < 1 || t.Length > MaxTargetLength {
		return fmt.Errorf("%w: %s: length %d is not 1 to %d", ErrTarget, t.Path(), t.Length, int64(MaxTargetLength))
	}
	if b, err := hex.DecodeString(t.SHA256); err != nil || len(b) != 32 || hex.EncodeToString(b) != t.SHA256 {
		return fmt.Errorf("%w: %s: SHA-256 %q is not 64 lower-case hex digits", ErrTarget, t.Path(), t.SHA256)
	}
	if b, err := hex.DecodeString(t.Measurement); t.Measurement != "" && (err != nil || len(b) != 32 || hex.EncodeToString(b) != t.Measurement) {
		return fmt.Errorf("%w: %s: measurement %q is not 64 lower-case hex digits", ErrTarget, t.Path(), t.Measurement)
	}
	switch {
	case t.SecurityVersion > imagepkg.MaxSecurityVersion:
		return fmt.Errorf("%w: %s: security version %d is above %d", ErrTarget, t.Path(), t.SecurityVersion, imagepkg.MaxSecurityVersion)
	case t.SecurityVersion != 0 && t.Kind != imagepkg.KindOS:
		return fmt.Errorf("%w: %s: a %s image has no security version", ErrTarget, t.Path(), t.Kind)
	}
	return nil
}

// Publish makes targets list exactly targets (version+1), then a snapshot pinning it and a
// timestamp pinning that (each version+1). For an image repository, targets are all the
// tenant's images; for a director repository, the group's current deployment after the
// update policy. At most MaxTargets, each valid (Target.Check) and with a distinct path.
func (o *Online) Publish(s *State, targets []Target, now time.Time) (*State, error) {
	now = now.UTC().Truncate(time.Second)
	if len(targets) > MaxTargets {
		return nil, fmt.Errorf("%w: %d targets; the limit is %d", ErrTarget, len(targets), MaxTargets)
	}
	r, err := s.parse()
	if err != nil {
		return nil, err
	}
	lt := o.Lifetimes.withDefaults()
	t := metadata.Targets(now.Add(lt.Targets))
	t.Signed.Version = r.targets.Signed.Version + 1
	sorted := append([]Target{}, targets...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Path() < sorted[j].Path() })
	for i, tg := range sorted {
		if err := tg.Check(); err != nil {
			return nil, err
		}
		if i > 0 && sorted[i-1].Path() == tg.Path() {
			return nil, fmt.Errorf("%w: %s is listed twice", ErrTarget, tg.Path())
		}
		sum, _ := hex.DecodeString(tg.SHA256)
		custom, err := json.Marshal(Custom{ComponentID: tg.ComponentID, ImageID: tg.ImageID, Kind: string(tg.Kind), Version: tg.Version,
			Development: tg.Development, Measurement: tg.Measurement, SecurityVersion: tg.SecurityVersion})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", tg.Path(), err)
		}
		raw := json.RawMessage(custom)
		t.Signed.Targets[tg.Path()] = &metadata.TargetFiles{
			Length: tg.Length,
			Hashes: metadata.Hashes{"sha256": sum},
			Custom: &raw,
			Path:   tg.Path(),
		}
	}
	if err := r.resign(o, t, now); err != nil {
		return nil, err
	}
	return r.state(), nil
}

// Renew re-signs whatever online metadata has less than half its lifetime left at now, so that
// devices never see it expire while the service runs: the timestamp (version+1) at least daily
// with the default lifetime; the snapshot, and targets with the same list, when they near
// their own expiry (each change to targets or snapshot brings a new snapshot and timestamp).
// It reports whether anything changed; if nothing did, it returns s itself. The caller runs
// it periodically (Online.RenewAt says when next) for every repository. The root is not
// renewed here: it needs the root keys (RotateRoot with the same roles).
func (o *Online) Renew(s *State, now time.Time) (*State, bool, error) {
	now = now.UTC().Truncate(time.Second)
	r, err := s.parse()
	if err != nil {
		return nil, false, err
	}
	lt := o.Lifetimes.withDefaults()
	due := func(expires time.Time, lifetime time.Duration) bool {
		return expires.Sub(now) < lifetime/2
	}
	switch {
	case due(r.targets.Signed.Expires, lt.Targets):
		t := r.targets
		t.Signed.Version++
		t.Signed.Expires = now.Add(lt.Targets)
		err = r.resign(o, t, now)
	case due(r.snapshot.Signed.Expires, lt.Snapshot):
		err = r.resignSnapshot(o, now)
	case due(r.timestamp.Signed.Expires, lt.Timestamp):
		err = r.resignTimestamp(o, now)
	default:
		return s, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return r.state(), true, nil
}
