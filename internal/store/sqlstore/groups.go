package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/rampart-iot/rampart/internal/store"
)

const groupCols = `g.id, g.tenant_id, g.product_id, g.name, g.description, g.os_feed, g.update_policy,
	g.check_in_interval, g.cert_lifetime, g.created_at, g.updated_at`

func scanGroup(s scanner) (store.DeviceGroup, error) {
	var x store.DeviceGroup
	var interval, lifetime int64
	var created, updated sql.NullInt64
	if err := s.Scan(&x.ID, &x.TenantID, &x.ProductID, &x.Name, &x.Description, &x.OSFeed, &x.UpdatePolicy,
		&interval, &lifetime, &created, &updated); err != nil {
		return store.DeviceGroup{}, err
	}
	x.CheckInInterval = time.Duration(interval) * time.Second
	x.CertLifetime = time.Duration(lifetime) * time.Second
	x.CreatedAt, x.UpdatedAt = timeOf(created), timeOf(updated)
	return x, nil
}

// seconds is how a check-in interval and a certificate lifetime are stored.
func seconds(d time.Duration) int64 { return int64(d / time.Second) }

// CreateDeviceGroup implements store.Tx. Like every group write, it raises the tenant's
// policy generation.
func (t *tx) CreateDeviceGroup(ctx context.Context, g store.DeviceGroup) error {
	if err := t.checkProduct(ctx, g.TenantID, g.ProductID); err != nil {
		return fmt.Errorf("create device group %q: %w", g.ID, err)
	}
	n, err := t.exec(ctx, `INSERT INTO device_groups (id, tenant_id, product_id, name, name_key, description,
			os_feed, update_policy, check_in_interval, cert_lifetime, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		g.ID, g.TenantID, g.ProductID, g.Name, nameKey(g.Name), g.Description,
		string(g.OSFeed), string(g.UpdatePolicy), seconds(g.CheckInInterval), seconds(g.CertLifetime),
		timeArg(g.CreatedAt), timeArg(g.UpdatedAt))
	if err != nil {
		return t.dbErr(err, fmt.Sprintf("create device group %q", g.ID), store.ErrNotFound)
	}
	if n == 0 {
		return t.insertConflict(ctx, "device_groups", "device group", g.ID,
			fmt.Sprintf("a device group named %q already exists in product %q", g.Name, g.ProductID))
	}
	return t.raisePolicyGeneration(ctx, g.TenantID)
}

// GetDeviceGroup implements store.Tx.
func (t *tx) GetDeviceGroup(ctx context.Context, tenantID, id string) (store.DeviceGroup, error) {
	x, err := scanGroup(t.queryRow(ctx, `SELECT `+groupCols+` FROM device_groups g WHERE g.tenant_id = ? AND g.id = ?`,
		tenantID, id))
	if err != nil {
		return store.DeviceGroup{}, notFound(err, fmt.Sprintf("device group %q", id))
	}
	return x, nil
}

// checkGroup returns ErrNotFound unless the tenant has the device group.
func (t *tx) checkGroup(ctx context.Context, tenantID, id string) error {
	ok, err := t.exists(ctx, `SELECT 1 FROM device_groups WHERE tenant_id = ? AND id = ?`, tenantID, id)
	if err != nil {
		return fmt.Errorf("read device group %q: %w", id, err)
	}
	if !ok {
		return fmt.Errorf("device group %q: %w", id, store.ErrNotFound)
	}
	return nil
}

// UpdateDeviceGroup implements store.Tx. It writes every field but the ID, tenant, product
// and CreatedAt: a group never moves to another product.
func (t *tx) UpdateDeviceGroup(ctx context.Context, g store.DeviceGroup) error {
	var productID string
	err := t.queryRow(ctx, `SELECT product_id FROM device_groups WHERE tenant_id = ? AND id = ?`,
		g.TenantID, g.ID).Scan(&productID)
	if err != nil {
		return notFound(err, fmt.Sprintf("device group %q", g.ID))
	}
	taken, err := t.exists(ctx, `SELECT 1 FROM device_groups WHERE product_id = ? AND name_key = ? AND id <> ?`,
		productID, nameKey(g.Name), g.ID)
	if err != nil {
		return fmt.Errorf("update device group %q: %w", g.ID, err)
	}
	if taken {
		return fmt.Errorf("a device group named %q already exists in product %q: %w", g.Name, productID, store.ErrConflict)
	}
	_, err = t.exec(ctx, `UPDATE device_groups SET name = ?, name_key = ?, description = ?, os_feed = ?,
			update_policy = ?, check_in_interval = ?, cert_lifetime = ?, updated_at = ?
		WHERE tenant_id = ? AND id = ?`,
		g.Name, nameKey(g.Name), g.Description, string(g.OSFeed), string(g.UpdatePolicy),
		seconds(g.CheckInInterval), seconds(g.CertLifetime), timeArg(g.UpdatedAt), g.TenantID, g.ID)
	if err != nil {
		return t.dbErr(err, fmt.Sprintf("update device group %q", g.ID), nil)
	}
	return t.raisePolicyGeneration(ctx, g.TenantID)
}

// DeleteDeviceGroup implements store.Tx. A group that holds a device, or has a deployment, is
// not deleted.
func (t *tx) DeleteDeviceGroup(ctx context.Context, tenantID, id string) error {
	if err := t.checkGroup(ctx, tenantID, id); err != nil {
		return err
	}
	busy, err := t.exists(ctx, `SELECT 1 FROM devices WHERE tenant_id = ? AND device_group_id = ? LIMIT 1`, tenantID, id)
	if err != nil {
		return fmt.Errorf("delete device group %q: %w", id, err)
	}
	if busy {
		return fmt.Errorf("device group %q holds devices: %w", id, store.ErrNotEmpty)
	}
	deployed, err := t.exists(ctx, `SELECT 1 FROM deployments WHERE tenant_id = ? AND device_group_id = ? LIMIT 1`, tenantID, id)
	if err != nil {
		return fmt.Errorf("delete device group %q: %w", id, err)
	}
	if deployed {
		return fmt.Errorf("device group %q has deployments, which are kept as history: %w", id, store.ErrNotEmpty)
	}
	if _, err := t.exec(ctx, `DELETE FROM device_groups WHERE tenant_id = ? AND id = ?`, tenantID, id); err != nil {
		return t.dbErr(err, fmt.Sprintf("delete device group %q", id), store.ErrNotEmpty)
	}
	return t.raisePolicyGeneration(ctx, tenantID)
}

// ListDeviceGroups implements store.Tx.
func (t *tx) ListDeviceGroups(ctx context.Context, tenantID string, filter store.DeviceGroupFilter, opt store.ListOptions) (store.Page[store.DeviceGroup], error) {
	opt = opt.Normalize()
	var w where
	w.add(`g.tenant_id = ?`, tenantID)
	if filter.ProductID != "" {
		w.add(`g.product_id = ?`, filter.ProductID)
	}
	if filter.Name != "" {
		w.add(`g.name_key = ?`, nameKey(filter.Name))
	}
	if opt.After != "" {
		w.add(`g.id > ?`, opt.After)
	}
	p, err := list(ctx, t, opt, `SELECT `+groupCols+` FROM device_groups g`+w.String()+` ORDER BY g.id LIMIT ?`, w.args,
		scanGroup, func(x store.DeviceGroup) string { return x.ID })
	if err != nil {
		return p, fmt.Errorf("list device groups of tenant %q: %w", tenantID, err)
	}
	return p, nil
}
