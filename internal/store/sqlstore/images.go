package sqlstore

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/rampart-iot/rampart/internal/store"
)

const imageCols = `i.id, i.tenant_id, i.component_id, i.kind, i.name, i.version, i.payload_sha256, i.payload_size,
	i.package_sha256, i.package_size, i.metadata, i.development, i.uploaded_by, i.created_at`

func scanImage(s scanner) (store.Image, error) {
	var x store.Image
	var created sql.NullInt64
	if err := s.Scan(&x.ID, &x.TenantID, &x.ComponentID, &x.Kind, &x.Name, &x.Version, &x.PayloadSHA256,
		&x.PayloadSize, &x.PackageSHA256, &x.PackageSize, &x.Metadata, &x.Development, &x.UploadedBy,
		&created); err != nil {
		return store.Image{}, err
	}
	x.Metadata = bytesOf(x.Metadata)
	x.CreatedAt = timeOf(created)
	return x, nil
}

// CreateImage implements store.Tx. Every rule is checked before anything is written, so a
// failed call claims no component; the database's keys are the backstop.
func (t *tx) CreateImage(ctx context.Context, img store.Image) error {
	what := fmt.Sprintf("create image %q", img.ID)
	if err := t.checkTenant(ctx, img.TenantID); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	owner, owned, err := t.componentOwner(ctx, img.ComponentID)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if owned && owner != img.TenantID {
		return fmt.Errorf("%s: component %q: %w", what, img.ComponentID, store.ErrComponentOwned)
	}
	taken, err := t.exists(ctx, `SELECT 1 FROM images WHERE id = ?`, img.ID)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if taken {
		return fmt.Errorf("an image with ID %q already exists: %w", img.ID, store.ErrConflict)
	}
	claimed := false
	if !owned {
		n, err := t.exec(ctx, `INSERT INTO components (id, tenant_id, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
			img.ComponentID, img.TenantID, timeArg(img.CreatedAt))
		if err != nil {
			return t.dbErr(err, what, store.ErrNotFound)
		}
		if n == 0 {
			// The write lock makes this impossible; DO NOTHING keeps even a broken lock from
			// letting two tenants own one component.
			owner, _, err := t.componentOwner(ctx, img.ComponentID)
			if err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			if owner != img.TenantID {
				return fmt.Errorf("%s: component %q: %w", what, img.ComponentID, store.ErrComponentOwned)
			}
		}
		claimed = n > 0
	}
	n, err := t.exec(ctx, `INSERT INTO images (id, tenant_id, component_id, kind, name, version, payload_sha256,
			payload_size, package_sha256, package_size, metadata, development, uploaded_by, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		img.ID, img.TenantID, img.ComponentID, img.Kind, img.Name, img.Version, img.PayloadSHA256,
		img.PayloadSize, img.PackageSHA256, img.PackageSize, bytesArg(img.Metadata), img.Development,
		img.UploadedBy, timeArg(img.CreatedAt))
	if err != nil {
		return t.dbErr(err, what, store.ErrNotFound)
	}
	if n == 0 {
		if claimed { // undo the claim, so that the failed call leaves nothing behind
			if _, err := t.exec(ctx, `DELETE FROM components WHERE id = ? AND tenant_id = ?`,
				img.ComponentID, img.TenantID); err != nil {
				return t.dbErr(err, what, nil)
			}
		}
		return fmt.Errorf("an image with ID %q already exists: %w", img.ID, store.ErrConflict)
	}
	return nil
}

// componentOwner returns the tenant that owns a component, and whether any does.
func (t *tx) componentOwner(ctx context.Context, id string) (tenantID string, owned bool, err error) {
	err = t.queryRow(ctx, `SELECT tenant_id FROM components WHERE id = ?`, id).Scan(&tenantID)
	switch {
	case isNoRows(err):
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("read component %q: %w", id, err)
	}
	return tenantID, true, nil
}

// GetImage implements store.Tx.
func (t *tx) GetImage(ctx context.Context, tenantID, id string) (store.Image, error) {
	x, err := scanImage(t.queryRow(ctx, `SELECT `+imageCols+` FROM images i WHERE i.tenant_id = ? AND i.id = ?`,
		tenantID, id))
	if err != nil {
		return store.Image{}, notFound(err, fmt.Sprintf("image %q", id))
	}
	return x, nil
}

// ListImages implements store.Tx.
func (t *tx) ListImages(ctx context.Context, tenantID string, filter store.ImageFilter, opt store.ListOptions) (store.Page[store.Image], error) {
	opt = opt.Normalize()
	var w where
	w.add(`i.tenant_id = ?`, tenantID)
	if filter.ComponentID != "" {
		w.add(`i.component_id = ?`, filter.ComponentID)
	}
	if filter.Kind != "" {
		w.add(`i.kind = ?`, filter.Kind)
	}
	if opt.After != "" {
		w.add(`i.id > ?`, opt.After)
	}
	p, err := list(ctx, t, opt, `SELECT `+imageCols+` FROM images i`+w.String()+` ORDER BY i.id LIMIT ?`, w.args,
		scanImage, func(x store.Image) string { return x.ID })
	if err != nil {
		return p, fmt.Errorf("list images of tenant %q: %w", tenantID, err)
	}
	return p, nil
}
