package manage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/rampart-iot/rampart/imagepkg"
	"github.com/rampart-iot/rampart/internal/authz"
	"github.com/rampart-iot/rampart/internal/store"
)

// OS feeds. An OS image whose golden measurements name everything a device measures (the OS
// bundle, the agent and the policy) becomes, at upload, an unpublished OS release of the same
// version. Publishing it to RetailEval lets the devices of groups that follow RetailEval attest
// to it and brings it to those groups through their director; publishing it to Retail does so
// for every group. A deployment that names an OS image overrides the group's feed.

// feedMeasurements are the measurements an OS image must name to become a release.
var feedMeasurements = []string{imagepkg.MeasurementOSBundle, "agent", "policy"}

// releaseFromImage is the unpublished release an OS image makes, or false if its metadata
// does not name every measurement a device makes.
func releaseFromImage(img store.Image, id string) (store.OSRelease, bool) {
	if img.Kind != store.ImageOS {
		return store.OSRelease{}, false
	}
	var md struct {
		Measurements    map[string]string `json:"measurements"`
		SecurityVersion uint64            `json:"security_version"`
	}
	if json.Unmarshal(img.Metadata, &md) != nil {
		return store.OSRelease{}, false
	}
	for _, k := range feedMeasurements {
		if md.Measurements[k] == "" {
			return store.OSRelease{}, false
		}
	}
	return store.OSRelease{ID: id, TenantID: img.TenantID, Version: img.Version,
		Description: "made from OS image " + img.ID, Measurements: md.Measurements, Feed: store.FeedUnpublished,
		ImageID: img.ID, SecurityVersion: md.SecurityVersion, CreatedBy: img.UploadedBy, CreatedAt: img.CreatedAt}, true
}

// addImageRelease registers the release an OS image makes, within the upload's transaction.
// A version the tenant already registered is left alone (the note says so).
func (m *Manager) addImageRelease(ctx context.Context, tx store.Tx, img store.Image, n *note) error {
	id, err := m.newID()
	if err != nil {
		return err
	}
	rel, ok := releaseFromImage(img, id)
	if !ok {
		if img.Kind == store.ImageOS {
			n.detail("os_release", "none: the image does not name the agent and policy measurements; register one with 'rampart os-release add'")
		}
		return nil
	}
	switch err := tx.CreateOSRelease(ctx, rel); {
	case err == nil:
		n.detail("os_release", rel.ID)
	case errors.Is(err, store.ErrConflict):
		n.detail("os_release", "none: an OS release of version "+img.Version+" exists")
	default:
		return err
	}
	return nil
}

// PublishOSRelease publishes a release made from an OS image to a feed (Retail or
// RetailEval), or takes it back (Unpublished), and re-publishes the director of every group
// whose devices it concerns, in the same transaction.
func (m *Manager) PublishOSRelease(ctx context.Context, p *authz.Principal, tenantID, id string, feed string) (store.OSRelease, error) {
	var out store.OSRelease
	o := op{tenantID: tenantID, action: authz.OSReleaseCreate, resourceType: "os-release", resourceID: id}
	err := m.write(ctx, p, o, func(tx store.Tx, n *note) error {
		f := store.OSFeed(feed)
		if f != store.OSFeedRetail && f != store.OSFeedRetailEval && f != store.FeedUnpublished {
			return invalid("feed", "must be Retail, RetailEval or Unpublished, not %q", feed)
		}
		rel, err := tx.GetOSRelease(ctx, tenantID, id)
		if err != nil {
			return err
		}
		if rel.ImageID == "" {
			return invalid("feed", "OS release %s was registered by hand and is accepted for every group; only releases made from OS images are published to feeds", rel.Version)
		}
		n.detail("version", rel.Version)
		n.detail("from", string(rel.Feed))
		n.detail("feed", feed)
		if err := tx.SetOSReleaseFeed(ctx, tenantID, id, f); err != nil {
			return err
		}
		rel.Feed = f
		out = rel
		if m.meta == nil {
			return nil
		}
		return m.republishDirectors(ctx, tx, tenantID)
	})
	return out, err
}

// WithdrawOSRelease takes a release out of the feed it was published to (Retail or
// RetailEval): no group's director offers it any more (each group is offered its feed's newest
// remaining release, or its deployment's OS image), and the verifier accepts it only from
// devices that already passed an attestation with it, since a device cannot go back to an
// older OS. Publishing it again undoes the withdrawal.
func (m *Manager) WithdrawOSRelease(ctx context.Context, p *authz.Principal, tenantID, id string) (store.OSRelease, error) {
	var out store.OSRelease
	o := op{tenantID: tenantID, action: authz.OSReleaseCreate, resourceType: "os-release", resourceID: id}
	err := m.write(ctx, p, o, func(tx store.Tx, n *note) error {
		rel, err := tx.GetOSRelease(ctx, tenantID, id)
		if err != nil {
			return err
		}
		if rel.Feed != store.OSFeedRetail && rel.Feed != store.OSFeedRetailEval {
			return invalid("feed", "OS release %s is not published to a feed (it is %q); only Retail and RetailEval releases are withdrawn", rel.Version, rel.Feed)
		}
		n.message = "withdrew OS release " + rel.Version + " from " + string(rel.Feed)
		n.detail("version", rel.Version)
		n.detail("from", string(rel.Feed))
		if err := tx.SetOSReleaseFeed(ctx, tenantID, id, store.FeedWithdrawn); err != nil {
			return err
		}
		rel.Feed = store.FeedWithdrawn
		out = rel
		if m.meta == nil {
			return nil
		}
		return m.republishDirectors(ctx, tx, tenantID)
	})
	return out, err
}

// republishDirectors re-publishes the director of every group of the tenant (feeds changed).
func (m *Manager) republishDirectors(ctx context.Context, tx store.Tx, tenantID string) error {
	opt := store.ListOptions{Limit: store.MaxLimit}
	for {
		page, err := tx.ListDeviceGroups(ctx, tenantID, store.DeviceGroupFilter{}, opt)
		if err != nil {
			return err
		}
		for _, g := range page.Items {
			if err := m.meta.PublishDirector(ctx, tx, tenantID, g.ID); err != nil {
				return fmt.Errorf("group %s: %w", g.Name, err)
			}
		}
		if page.Next == "" {
			return nil
		}
		opt.After = page.Next
	}
}

func invalid(field, format string, args ...any) error {
	var ps problems
	ps.add(field, format, args...)
	return ps.err()
}
