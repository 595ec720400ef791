package sqlstore

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/rampart-iot/rampart/internal/store"
)

// Deployments are read with their images in one query, one row per image (or one row with a
// NULL image for a deployment of none), ordered by deployment and then position; from is a
// subquery aliased d that selects the deployments' columns.
const deploymentSelect = `SELECT d.id, d.tenant_id, d.device_group_id, d.created_by, d.created_at, di.image_id FROM `

const deploymentJoin = ` LEFT JOIN deployment_images di ON di.deployment_id = d.id`

const deploymentSubCols = `id, tenant_id, device_group_id, created_by, created_at`

// queryDeployments runs a deployment query and gathers each deployment's images, in order.
func (t *tx) queryDeployments(ctx context.Context, query string, args ...any) ([]store.Deployment, error) {
	rows, err := t.query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Deployment
	for rows.Next() {
		var x store.Deployment
		var created sql.NullInt64
		var image sql.NullString
		if err := rows.Scan(&x.ID, &x.TenantID, &x.DeviceGroupID, &x.CreatedBy, &created, &image); err != nil {
			return nil, err
		}
		if n := len(out); n == 0 || out[n-1].ID != x.ID {
			x.CreatedAt = timeOf(created)
			out = append(out, x)
		}
		if image.Valid {
			last := &out[len(out)-1]
			last.ImageIDs = append(last.ImageIDs, image.String)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// CreateDeployment implements store.Tx. Every rule is checked before anything is written.
func (t *tx) CreateDeployment(ctx context.Context, d store.Deployment) error {
	what := fmt.Sprintf("create deployment %q of device group %q", d.ID, d.DeviceGroupID)
	if err := t.checkGroup(ctx, d.TenantID, d.DeviceGroupID); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	for _, id := range d.ImageIDs {
		ok, err := t.exists(ctx, `SELECT 1 FROM images WHERE tenant_id = ? AND id = ?`, d.TenantID, id)
		if err != nil {
			return fmt.Errorf("%s: read image %q: %w", what, id, err)
		}
		if !ok {
			return fmt.Errorf("%s: image %q: %w", what, id, store.ErrNotFound)
		}
	}
	taken, err := t.exists(ctx, `SELECT 1 FROM deployments WHERE id = ?`, d.ID)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if taken {
		return fmt.Errorf("a deployment with ID %q already exists: %w", d.ID, store.ErrConflict)
	}
	// The new deployment must sort after the current one to become current. IDs compare
	// bytewise in the database (BINARY on SQLite, "C" on PostgreSQL) as in Go.
	var current string
	err = t.queryRow(ctx, `SELECT id FROM deployments WHERE device_group_id = ? ORDER BY id DESC LIMIT 1`,
		d.DeviceGroupID).Scan(&current)
	switch {
	case err != nil && !isNoRows(err):
		return fmt.Errorf("%s: read the current deployment: %w", what, err)
	case err == nil && d.ID <= current:
		return fmt.Errorf("%s: its ID does not sort after that of the group's current deployment %q: %w",
			what, current, store.ErrConflict)
	}
	n, err := t.exec(ctx, `INSERT INTO deployments (id, tenant_id, device_group_id, created_by, created_at)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		d.ID, d.TenantID, d.DeviceGroupID, d.CreatedBy, timeArg(d.CreatedAt))
	if err != nil {
		return t.dbErr(err, what, store.ErrNotFound)
	}
	if n == 0 {
		return fmt.Errorf("a deployment with ID %q already exists: %w", d.ID, store.ErrConflict)
	}
	for i, id := range d.ImageIDs {
		if _, err := t.exec(ctx, `INSERT INTO deployment_images (deployment_id, position, tenant_id, image_id)
			VALUES (?, ?, ?, ?)`, d.ID, i, d.TenantID, id); err != nil {
			return t.dbErr(err, what, store.ErrNotFound)
		}
	}
	return nil
}

// GetDeployment implements store.Tx.
func (t *tx) GetDeployment(ctx context.Context, tenantID, id string) (store.Deployment, error) {
	ds, err := t.queryDeployments(ctx, deploymentSelect+`(SELECT `+deploymentSubCols+` FROM deployments
		WHERE tenant_id = ? AND id = ?) d`+deploymentJoin+` ORDER BY di.position`, tenantID, id)
	if err != nil {
		return store.Deployment{}, fmt.Errorf("read deployment %q: %w", id, err)
	}
	if len(ds) == 0 {
		return store.Deployment{}, fmt.Errorf("deployment %q: %w", id, store.ErrNotFound)
	}
	return ds[0], nil
}

// ListDeployments implements store.Tx. Deployments are listed by ID, descending, which is
// newest first for UUIDv7 IDs; After is the ID of the last deployment of the page before.
func (t *tx) ListDeployments(ctx context.Context, tenantID string, filter store.DeploymentFilter, opt store.ListOptions) (store.Page[store.Deployment], error) {
	opt = opt.Normalize()
	var w where
	w.add(`tenant_id = ?`, tenantID)
	if filter.DeviceGroupID != "" {
		w.add(`device_group_id = ?`, filter.DeviceGroupID)
	}
	if opt.After != "" {
		w.add(`id < ?`, opt.After)
	}
	// The page is chosen in the subquery, so that its limit counts deployments, not images;
	// one more than the page holds tells whether another page follows.
	ds, err := t.queryDeployments(ctx, deploymentSelect+`(SELECT `+deploymentSubCols+` FROM deployments`+w.String()+
		` ORDER BY id DESC LIMIT ?) d`+deploymentJoin+` ORDER BY d.id DESC, di.position`,
		append(w.args, opt.Limit+1)...)
	if err != nil {
		return store.Page[store.Deployment]{}, fmt.Errorf("list deployments of tenant %q: %w", tenantID, err)
	}
	p := store.Page[store.Deployment]{Items: ds}
	if p.Items == nil {
		p.Items = []store.Deployment{}
	}
	if len(p.Items) > opt.Limit {
		p.Items = p.Items[:opt.Limit]
		p.Next = p.Items[len(p.Items)-1].ID
	}
	return p, nil
}

// CurrentDeployment implements store.Tx: the group's deployment with the greatest ID.
func (t *tx) CurrentDeployment(ctx context.Context, tenantID, groupID string) (store.Deployment, error) {
	ds, err := t.queryDeployments(ctx, deploymentSelect+`(SELECT `+deploymentSubCols+` FROM deployments
		WHERE tenant_id = ? AND device_group_id = ? ORDER BY id DESC LIMIT 1) d`+deploymentJoin+
		` ORDER BY di.position`, tenantID, groupID)
	if err != nil {
		return store.Deployment{}, fmt.Errorf("read the current deployment of device group %q: %w", groupID, err)
	}
	if len(ds) == 0 {
		return store.Deployment{}, fmt.Errorf("current deployment of device group %q: %w", groupID, store.ErrNotFound)
	}
	return ds[0], nil
}
