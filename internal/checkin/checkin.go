// Package checkin serves device check-ins: it validates and records what a device reports
// (installed images, OS slots, its latest update) and answers with the device's group, the
// group's current deployment, when to check in again, and where the device fetches its signed
// update metadata.
//
// Trust: the device's identity comes from mutual TLS, verified by the caller; everything in
// the report is the device's word, checked only for shape and bounds, stored as said, and
// shown as untrusted. What a device may install is decided by the signed metadata, never by
// the check-in answer.
package checkin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/imagepkg"
	"github.com/rampart-iot/rampart/internal/groupcommit"
	"github.com/rampart-iot/rampart/internal/problem"
	"github.com/rampart-iot/rampart/internal/store"
	"github.com/rampart-iot/rampart/internal/updatemeta"
	"github.com/rampart-iot/rampart/manifest"
)

// DefaultInterval is how often a device in no group, or in a group without an interval, checks
// in.
const DefaultInterval = time.Hour

// Paths of the metadata repositories, under which the device fetches TUF files.
const (
	DirectorPath = "/v1/device/metadata/director/"
	ImagesPath   = "/v1/device/metadata/images/"
)

// Config configures a Service.
type Config struct {
	Store store.Store
	Now   func() time.Time // default time.Now
}

// Service records check-ins. It is safe for concurrent use.
type Service struct {
	store  store.Store
	commit *groupcommit.Committer // reports from concurrent check-ins share a transaction
	now    func() time.Time
}

// New returns a Service.
func New(cfg Config) *Service {
	s := &Service{store: cfg.Store, commit: groupcommit.New(cfg.Store, 0), now: cfg.Now}
	if s.now == nil {
		s.now = time.Now
	}
	return s
}

// CheckIn records dev's report and tells it what to do next. dev is the device as read when
// its certificate was checked.
func (s *Service) CheckIn(ctx context.Context, dev store.Device, in v1.CheckIn) (v1.CheckInResult, error) {
	if err := Validate(in); err != nil {
		return v1.CheckInResult{}, err
	}
	body, err := json.Marshal(in)
	if err != nil {
		return v1.CheckInResult{}, fmt.Errorf("encoding the check-in report: %w", err)
	}
	now := s.now().UTC()
	res, err := s.result(ctx, dev, now)
	if err != nil {
		return v1.CheckInResult{}, err
	}
	// The device was up since it started, or since its previous check-in at the latest
	// (twice its interval back): those hours count for the deployment it runs now.
	up := time.Duration(in.UptimeSeconds) * time.Second
	up = min(up, 2*time.Duration(res.IntervalSeconds)*time.Second)
	r := store.DeviceReport{TenantID: dev.TenantID, DeviceID: dev.ID, Report: body, CheckedInAt: now}
	var presses []string
	if err := s.commit.Do(ctx, func(tx store.Tx) error {
		presses = nil // a retried group commit runs this again
		if err := tx.PutDeviceReport(ctx, r); err != nil {
			return err
		}
		if err := tx.RecordDeviceHours(ctx, dev.TenantID, dev.ID, res.DeploymentID, now.Add(-up), now); err != nil {
			return err
		}
		// The device's anti-rollback counter only goes up here too: attestation refuses a
		// release below it, so a disk put back to an older release does not attest.
		if in.OS != nil && in.OS.SecurityCounter > dev.SecurityCounter {
			if err := tx.RaiseDeviceSecurityCounter(ctx, dev.TenantID, dev.ID, in.OS.SecurityCounter); err != nil {
				return err
			}
		}
		if in.Board != nil { // only a device with a board takes presses
			p, err := tx.TakeBoardPresses(ctx, dev.TenantID, dev.ID)
			presses = p
			return err
		}
		return nil
	}); err != nil {
		return v1.CheckInResult{}, err
	}
	res.BoardPresses = presses
	return res, nil
}

// result is what the device is told: its interval, its deployment (the held one during a
// rollout that has not released it yet) and where its update metadata is.
func (s *Service) result(ctx context.Context, dev store.Device, now time.Time) (v1.CheckInResult, error) {
	res := v1.CheckInResult{DeviceGroupID: dev.DeviceGroupID, IntervalSeconds: int64(DefaultInterval / time.Second),
		ImagesPath: ImagesPath, ServerTime: now, ImageSigningKeys: [][]byte{}}
	keys, err := s.store.ListSigningKeys(ctx, dev.TenantID, store.KeyImageSigning)
	if err != nil {
		return v1.CheckInResult{}, fmt.Errorf("reading the tenant's image-signing keys: %w", err)
	}
	for _, k := range keys {
		if k.RevokedAt.IsZero() {
			res.ImageSigningKeys = append(res.ImageSigningKeys, k.PublicDER)
		}
	}
	if dev.DeviceGroupID == "" {
		return res, nil
	}
	g, err := s.store.GetDeviceGroup(ctx, dev.TenantID, dev.DeviceGroupID)
	if err != nil {
		return v1.CheckInResult{}, fmt.Errorf("reading the device's group: %w", err)
	}
	if g.CheckInInterval > 0 {
		res.IntervalSeconds = int64(g.CheckInInterval / time.Second)
	}
	d, err := s.store.CurrentDeployment(ctx, dev.TenantID, dev.DeviceGroupID)
	switch {
	case err == nil:
		res.DeploymentID = d.ID
	case !errors.Is(err, store.ErrNotFound):
		return v1.CheckInResult{}, fmt.Errorf("reading the group's deployment: %w", err)
	}
	// During a rollout, a device not yet released keeps the previous deployment.
	if _, held, err := updatemeta.DirectorFor(ctx, s.store, dev.TenantID, dev.DeviceGroupID, dev.ID); err != nil {
		return v1.CheckInResult{}, fmt.Errorf("reading the group's rollout: %w", err)
	} else if held != "" {
		res.DeploymentID = held
	}
	// The director exists once the group had a deployment or its feed an OS release.
	_, err = s.store.GetTUFMetadata(ctx, dev.TenantID, store.TUFDirectorPrefix+dev.DeviceGroupID, store.TUFRoot, 1)
	switch {
	case err == nil:
		res.DirectorPath = DirectorPath
	case !errors.Is(err, store.ErrNotFound):
		return v1.CheckInResult{}, fmt.Errorf("reading the group's update metadata: %w", err)
	}
	return res, nil
}

// Status decodes a stored report for display.
func Status(r store.DeviceReport) (*v1.DeviceStatus, error) {
	var in v1.CheckIn
	if err := json.Unmarshal(r.Report, &in); err != nil {
		return nil, fmt.Errorf("decoding the check-in report of device %s: %w", r.DeviceID, err)
	}
	if in.Images == nil {
		in.Images = []v1.InstalledImage{}
	}
	return &v1.DeviceStatus{CheckedInAt: r.CheckedInAt, Report: in}, nil
}

var (
	imageKinds  = map[string]bool{store.ImageApplication: true, store.ImageOS: true, store.ImageBoardConfig: true}
	imageStates = map[string]bool{v1.ImageInstalled: true, v1.ImageRunning: true, v1.ImageStopped: true,
		v1.ImageCrashed: true, v1.ImageFailed: true}
	slotNames = map[string]bool{"a": true, "b": true}
)

// Validate checks a report's shape and bounds, naming every problem.
func Validate(in v1.CheckIn) error {
	var d []v1.ErrorDetail
	bad := func(field, format string, args ...any) {
		d = append(d, v1.ErrorDetail{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	text := func(field, s string, required bool) {
		switch {
		case required && s == "":
			bad(field, "is required")
		case len(s) > v1.MaxCheckInText:
			bad(field, "is longer than %d bytes", v1.MaxCheckInText)
		case !utf8.ValidString(s):
			bad(field, "is not valid UTF-8")
		}
	}
	uuid := func(field, s string) {
		if _, err := manifest.ParseUUID(s); err != nil {
			bad(field, "%v", err)
		}
	}
	version := func(field, s string, required bool) {
		if s == "" && !required {
			return
		}
		if _, err := imagepkg.ParseVersion(s); err != nil {
			bad(field, "is not a semantic version: %q", clip(s))
		}
	}
	text("agent_version", in.AgentVersion, true)
	if in.UptimeSeconds < 0 || in.UptimeSeconds > 20*365*24*3600 {
		bad("uptime_seconds", "must be 0 to 20 years of seconds, not %d", in.UptimeSeconds)
	}
	if in.Images == nil {
		bad("images", "is required (an empty list if nothing is installed)")
	}
	if len(in.Images) > v1.MaxCheckInImages {
		bad("images", "lists %d images; at most %d", len(in.Images), v1.MaxCheckInImages)
	} else {
		seen := map[string]bool{}
		for i, img := range in.Images {
			f := fmt.Sprintf("images[%d]", i)
			uuid(f+".component_id", img.ComponentID)
			uuid(f+".image_id", img.ImageID)
			if seen[img.ComponentID] {
				bad(f+".component_id", "component %s is listed twice", clip(img.ComponentID))
			}
			seen[img.ComponentID] = true
			if !imageKinds[img.Kind] {
				bad(f+".kind", "must be application, os or board-config, not %q", clip(img.Kind))
			}
			version(f+".version", img.Version, true)
			if !imageStates[img.State] {
				bad(f+".state", "must be installed, running, stopped, crashed or failed, not %q", clip(img.State))
			}
			if img.Restarts < 0 {
				bad(f+".restarts", "must not be negative")
			}
			text(f+".last_error", img.LastError, false)
		}
	}
	if os := in.OS; os != nil {
		if !slotNames[os.Active] {
			bad("os.active", "must be a or b, not %q", clip(os.Active))
		}
		if !slotNames[os.Booted] {
			bad("os.booted", "must be a or b, not %q", clip(os.Booted))
		}
		if os.Trial != "" && !slotNames[os.Trial] {
			bad("os.trial", "must be a, b or empty, not %q", clip(os.Trial))
		}
		version("os.committed_version", os.CommittedVersion, false)
		if os.SecurityCounter > imagepkg.MaxSecurityVersion {
			bad("os.security_counter", "must be 0 to %d, not %d", imagepkg.MaxSecurityVersion, os.SecurityCounter)
		}
		if len(os.Slots) > 2 {
			bad("os.slots", "lists %d slots; at most 2", len(os.Slots))
		}
		for i, sl := range os.Slots {
			f := fmt.Sprintf("os.slots[%d]", i)
			if !slotNames[sl.Name] {
				bad(f+".name", "must be a or b, not %q", clip(sl.Name))
			}
			version(f+".version", sl.Version, true)
			if !isHexDigest(sl.Digest) && sl.Digest != "" {
				bad(f+".digest", "is not 64 lowercase hex digits")
			}
		}
	}
	if u := in.Update; u != nil {
		text("update.state", u.State, true)
		if u.ComponentID != "" {
			uuid("update.component_id", u.ComponentID)
		}
		if u.ImageID != "" {
			uuid("update.image_id", u.ImageID)
		}
		version("update.version", u.Version, false)
		version("update.from_version", u.FromVersion, false)
		text("update.phase", u.Phase, false)
		text("update.reason", u.Reason, false)
	}
	if b := in.Board; b != nil {
		boardName := func(field, n string) {
			if n == "" || len(n) > v1.MaxBoardName || !utf8.ValidString(n) || strings.ContainsFunc(n, unicode.IsControl) {
				bad(field, "must be 1 to %d printable bytes", v1.MaxBoardName)
			}
		}
		boardName("board.board", b.Board)
		if len(b.LEDs) > v1.MaxBoardItems || len(b.Buttons) > v1.MaxBoardItems {
			bad("board", "lists more than %d LEDs or buttons", v1.MaxBoardItems)
		} else {
			for i, l := range b.LEDs {
				boardName(fmt.Sprintf("board.leds[%d].name", i), l.Name)
			}
			for i, bt := range b.Buttons {
				boardName(fmt.Sprintf("board.buttons[%d].name", i), bt.Name)
				if bt.Presses < 0 {
					bad(fmt.Sprintf("board.buttons[%d].presses", i), "must not be negative")
				}
			}
		}
	}
	if len(in.Deferred) > 2 {
		bad("deferred", "lists %d updates; at most 2 (App and System)", len(in.Deferred))
	}
	seenType := map[string]bool{}
	for i, u := range in.Deferred {
		f := fmt.Sprintf("deferred[%d]", i)
		if u.UpdateType != "App" && u.UpdateType != "System" {
			bad(f+".update_type", "must be App or System, not %q", clip(u.UpdateType))
		} else if seenType[u.UpdateType] {
			bad(f+".update_type", "%s is listed twice", u.UpdateType)
		}
		seenType[u.UpdateType] = true
		if u.FirstSeen.IsZero() || u.Until.IsZero() {
			bad(f, "needs first_seen and until")
		} else if u.Until.Before(u.FirstSeen) {
			bad(f+".until", "is before first_seen")
		} else if u.Until.Sub(u.FirstSeen) > 10020*time.Minute {
			bad(f+".until", "is more than 167 hours after first_seen, the longest deferral")
		}
	}
	if len(d) > 0 {
		return problem.Invalid(d...)
	}
	return nil
}

func isHexDigest(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// clip shortens untrusted text quoted back in an error.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
