package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"

	"github.com/rampart-iot/rampart/internal/store"
)

const releaseCols = `r.id, r.tenant_id, r.version, r.description, r.measurements, r.feed, r.image_id, r.created_by, r.created_at, r.security_version`

func scanRelease(s scanner) (store.OSRelease, error) {
	var x store.OSRelease
	var measurements string
	var created sql.NullInt64
	var feed string
	var image sql.NullString
	var security int64
	if err := s.Scan(&x.ID, &x.TenantID, &x.Version, &x.Description, &measurements, &feed, &image, &x.CreatedBy, &created, &security); err != nil {
		return store.OSRelease{}, err
	}
	if security < 0 {
		return store.OSRelease{}, fmt.Errorf("OS release %q: security version %d is negative", x.ID, security)
	}
	x.SecurityVersion = uint64(security)
	if err := json.Unmarshal([]byte(measurements), &x.Measurements); err != nil {
		return store.OSRelease{}, fmt.Errorf("OS release %q: measurements: %w", x.ID, err)
	}
	if len(x.Measurements) == 0 {
		x.Measurements = nil
	}
	x.Feed, x.ImageID = store.OSFeed(feed), image.String
	x.CreatedAt = timeOf(created)
	return x, nil
}

// CreateOSRelease implements store.Tx. Measurements are stored as a JSON object; an empty
// map is read back nil.
func (t *tx) CreateOSRelease(ctx context.Context, r store.OSRelease) error {
	if err := t.checkTenant(ctx, r.TenantID); err != nil {
		return fmt.Errorf("create OS release %q: %w", r.ID, err)
	}
	measurements := []byte("{}")
	if len(r.Measurements) > 0 {
		var err error
		if measurements, err = json.Marshal(r.Measurements); err != nil {
			return fmt.Errorf("create OS release %q: %w", r.ID, err)
		}
	}
	if r.SecurityVersion > math.MaxInt64 {
		return fmt.Errorf("create OS release %q: security version %d is too large", r.ID, r.SecurityVersion)
	}
	n, err := t.exec(ctx, `INSERT INTO os_releases (id, tenant_id, version, description, measurements, feed, image_id, created_by,
			created_at, security_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		r.ID, r.TenantID, r.Version, r.Description, string(measurements), string(r.Feed), stringArg(r.ImageID), r.CreatedBy,
		timeArg(r.CreatedAt), int64(r.SecurityVersion))
	if err != nil {
		return t.dbErr(err, fmt.Sprintf("create OS release %q", r.ID), store.ErrNotFound)
	}
	if n == 0 {
		return t.insertConflict(ctx, "os_releases", "OS release", r.ID,
			fmt.Sprintf("an OS release with version %q already exists", r.Version))
	}
	return t.raisePolicyGeneration(ctx, r.TenantID)
}

// GetOSRelease implements store.Tx.
func (t *tx) GetOSRelease(ctx context.Context, tenantID, id string) (store.OSRelease, error) {
	x, err := scanRelease(t.queryRow(ctx, `SELECT `+releaseCols+` FROM os_releases r WHERE r.tenant_id = ? AND r.id = ?`,
		tenantID, id))
	if err != nil {
		return store.OSRelease{}, notFound(err, fmt.Sprintf("OS release %q", id))
	}
	return x, nil
}

// SetOSReleaseFeed implements store.Tx. Like every release write, it raises the tenant's
// policy generation.
func (t *tx) SetOSReleaseFeed(ctx context.Context, tenantID, id string, feed store.OSFeed) error {
	n, err := t.exec(ctx, `UPDATE os_releases SET feed = ? WHERE tenant_id = ? AND id = ?`, string(feed), tenantID, id)
	if err != nil {
		return t.dbErr(err, fmt.Sprintf("publish OS release %q", id), nil)
	}
	if n == 0 {
		return fmt.Errorf("OS release %q: %w", id, store.ErrNotFound)
	}
	return t.raisePolicyGeneration(ctx, tenantID)
}

// DeleteOSRelease implements store.Tx. Attestations that name the release keep its ID.
func (t *tx) DeleteOSRelease(ctx context.Context, tenantID, id string) error {
	n, err := t.exec(ctx, `DELETE FROM os_releases WHERE tenant_id = ? AND id = ?`, tenantID, id)
	if err != nil {
		return t.dbErr(err, fmt.Sprintf("delete OS release %q", id), nil)
	}
	if n == 0 {
		return fmt.Errorf("OS release %q: %w", id, store.ErrNotFound)
	}
	return t.raisePolicyGeneration(ctx, tenantID)
}

// ListOSReleases implements store.Tx.
func (t *tx) ListOSReleases(ctx context.Context, tenantID string, opt store.ListOptions) (store.Page[store.OSRelease], error) {
	opt = opt.Normalize()
	var w where
	w.add(`r.tenant_id = ?`, tenantID)
	if opt.After != "" {
		w.add(`r.id > ?`, opt.After)
	}
	p, err := list(ctx, t, opt, `SELECT `+releaseCols+` FROM os_releases r`+w.String()+` ORDER BY r.id LIMIT ?`, w.args,
		scanRelease, func(x store.OSRelease) string { return x.ID })
	if err != nil {
		return p, fmt.Errorf("list OS releases of tenant %q: %w", tenantID, err)
	}
	return p, nil
}
