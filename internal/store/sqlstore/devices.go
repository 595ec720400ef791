package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"time"

	"github.com/rampart-iot/rampart/internal/store"
)

// A device's product is its group's.
const deviceCols = `d.id, d.tenant_id, COALESCE(d.device_group_id, ''), COALESCE(g.product_id, ''),
	d.root_of_trust, d.agent_version, d.ek_public, d.ek_certificate, d.ak_public, d.enrollment,
	d.claimed_by, d.claimed_at, d.updated_at, d.disabled, d.ak_activated, d.last_attestation, d.last_result,
	d.last_reason, d.last_message, d.certificate_expires, d.security_counter`

const deviceFrom = ` FROM devices d LEFT JOIN device_groups g ON g.id = d.device_group_id`

func scanDevice(s scanner) (store.Device, error) {
	var x store.Device
	var claimed, updated, activated, attested, expires sql.NullInt64
	var counter int64
	if err := s.Scan(&x.ID, &x.TenantID, &x.DeviceGroupID, &x.ProductID, &x.RootOfTrust, &x.AgentVersion,
		&x.EKPublic, &x.EKCertificate, &x.AKPublic, &x.Enrollment, &x.ClaimedBy, &claimed, &updated,
		&x.Disabled, &activated, &attested, &x.LastResult, &x.LastReason, &x.LastMessage, &expires, &counter); err != nil {
		return store.Device{}, err
	}
	if counter < 0 {
		return store.Device{}, fmt.Errorf("device %q: security counter %d is negative", x.ID, counter)
	}
	x.SecurityCounter = uint64(counter)
	x.EKPublic, x.EKCertificate = bytesOf(x.EKPublic), bytesOf(x.EKCertificate)
	x.AKPublic, x.Enrollment = bytesOf(x.AKPublic), bytesOf(x.Enrollment)
	x.ClaimedAt, x.UpdatedAt = timeOf(claimed), timeOf(updated)
	x.AKActivated, x.LastAttestation, x.CertificateExpires = timeOf(activated), timeOf(attested), timeOf(expires)
	return x, nil
}

// ClaimDevice implements store.Tx. It writes none of the fields that attestation keeps: a new
// device is enabled, not activated and not attested.
func (t *tx) ClaimDevice(ctx context.Context, d store.Device) (store.Device, bool, error) {
	stored, err := t.claimed(ctx, d)
	if err == nil || !isNoRows(err) {
		return stored, false, err
	}
	if err := t.checkTenant(ctx, d.TenantID); err != nil {
		return store.Device{}, false, fmt.Errorf("claim device %q: %w", d.ID, err)
	}
	if d.DeviceGroupID != "" {
		if err := t.checkGroup(ctx, d.TenantID, d.DeviceGroupID); err != nil {
			return store.Device{}, false, fmt.Errorf("claim device %q: %w", d.ID, err)
		}
	}
	// The write lock makes the conflict impossible; DO NOTHING keeps even a broken lock from
	// letting two tenants claim one device.
	n, err := t.exec(ctx, `INSERT INTO devices (id, tenant_id, device_group_id, root_of_trust, agent_version,
			ek_public, ek_certificate, ak_public, enrollment, claimed_by, claimed_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
		d.ID, d.TenantID, stringArg(d.DeviceGroupID), d.RootOfTrust, d.AgentVersion,
		bytesArg(d.EKPublic), bytesArg(d.EKCertificate), bytesArg(d.AKPublic), bytesArg(d.Enrollment),
		d.ClaimedBy, timeArg(d.ClaimedAt), timeArg(d.UpdatedAt))
	if err != nil {
		return store.Device{}, false, t.dbErr(err, fmt.Sprintf("claim device %q", d.ID), store.ErrNotFound)
	}
	if n == 0 {
		stored, err := t.claimed(ctx, d)
		if err != nil {
			return store.Device{}, false, fmt.Errorf("claim device %q: %w", d.ID, err)
		}
		return stored, false, nil
	}
	stored, err = t.GetDevice(ctx, d.TenantID, d.ID)
	if err != nil {
		return store.Device{}, false, fmt.Errorf("read back claimed device: %w", err)
	}
	return stored, true, nil
}

// claimed returns the stored device with d's ID if d's tenant has claimed it, an error
// wrapping ErrClaimedByOtherTenant if another has, or sql.ErrNoRows if none has.
func (t *tx) claimed(ctx context.Context, d store.Device) (store.Device, error) {
	stored, err := scanDevice(t.queryRow(ctx, `SELECT `+deviceCols+deviceFrom+` WHERE d.id = ?`, d.ID))
	switch {
	case isNoRows(err):
		return store.Device{}, err
	case err != nil:
		return store.Device{}, fmt.Errorf("read device %q: %w", d.ID, err)
	case stored.TenantID != d.TenantID:
		return store.Device{}, fmt.Errorf("device %q: %w", d.ID, store.ErrClaimedByOtherTenant)
	}
	return stored, nil
}

// GetDevice implements store.Tx.
func (t *tx) GetDevice(ctx context.Context, tenantID, id string) (store.Device, error) {
	x, err := scanDevice(t.queryRow(ctx, `SELECT `+deviceCols+deviceFrom+` WHERE d.tenant_id = ? AND d.id = ?`,
		tenantID, id))
	if err != nil {
		return store.Device{}, notFound(err, fmt.Sprintf("device %q", id))
	}
	return x, nil
}

// GetDeviceByID implements store.Tx.
func (t *tx) GetDeviceByID(ctx context.Context, id string) (store.Device, error) {
	x, err := scanDevice(t.queryRow(ctx, `SELECT `+deviceCols+deviceFrom+` WHERE d.id = ?`, id))
	if err != nil {
		return store.Device{}, notFound(err, fmt.Sprintf("device %q", id))
	}
	return x, nil
}

// checkDevice returns ErrNotFound unless the tenant has the device.
func (t *tx) checkDevice(ctx context.Context, tenantID, id string) error {
	ok, err := t.exists(ctx, `SELECT 1 FROM devices WHERE tenant_id = ? AND id = ?`, tenantID, id)
	if err != nil {
		return fmt.Errorf("read device %q: %w", id, err)
	}
	if !ok {
		return fmt.Errorf("device %q: %w", id, store.ErrNotFound)
	}
	return nil
}

// SetDeviceDisabled implements store.Tx. It sets the device's UpdatedAt to at.
func (t *tx) SetDeviceDisabled(ctx context.Context, tenantID, deviceID string, disabled bool, at time.Time) error {
	n, err := t.exec(ctx, `UPDATE devices SET disabled = ?, updated_at = ? WHERE tenant_id = ? AND id = ?`,
		disabled, timeArg(at), tenantID, deviceID)
	if err != nil {
		return t.dbErr(err, fmt.Sprintf("disable device %q", deviceID), nil)
	}
	if n == 0 {
		return fmt.Errorf("device %q: %w", deviceID, store.ErrNotFound)
	}
	return nil
}

// RaiseDeviceSecurityCounter implements store.Tx.
func (t *tx) RaiseDeviceSecurityCounter(ctx context.Context, tenantID, deviceID string, v uint64) error {
	if v > math.MaxInt64 {
		return fmt.Errorf("raise the security counter of device %q: %d is too large", deviceID, v)
	}
	n, err := t.exec(ctx, `UPDATE devices SET security_counter = ? WHERE tenant_id = ? AND id = ? AND security_counter < ?`,
		int64(v), tenantID, deviceID, int64(v))
	if err != nil {
		return t.dbErr(err, fmt.Sprintf("raise the security counter of device %q", deviceID), nil)
	}
	if n == 0 { // at or above v already, or no such device
		if _, err := t.GetDevice(ctx, tenantID, deviceID); err != nil {
			return err
		}
	}
	return nil
}

// SetDeviceAKActivated implements store.Tx. A device activated before keeps its first time;
// UpdatedAt is not touched.
func (t *tx) SetDeviceAKActivated(ctx context.Context, deviceID string, at time.Time) error {
	n, err := t.exec(ctx, `UPDATE devices SET ak_activated = COALESCE(ak_activated, ?) WHERE id = ?`,
		timeArg(at), deviceID)
	if err != nil {
		return t.dbErr(err, fmt.Sprintf("record activation of device %q", deviceID), nil)
	}
	if n == 0 {
		return fmt.Errorf("device %q: %w", deviceID, store.ErrNotFound)
	}
	return nil
}

// SetDeviceGroup implements store.Tx.
func (t *tx) SetDeviceGroup(ctx context.Context, tenantID, deviceID, groupID string, at time.Time) error {
	if err := t.checkDevice(ctx, tenantID, deviceID); err != nil {
		return err
	}
	if groupID != "" {
		if err := t.checkGroup(ctx, tenantID, groupID); err != nil {
			return fmt.Errorf("move device %q: %w", deviceID, err)
		}
	}
	_, err := t.exec(ctx, `UPDATE devices SET device_group_id = ?, updated_at = ? WHERE tenant_id = ? AND id = ?`,
		stringArg(groupID), timeArg(at), tenantID, deviceID)
	if err != nil {
		return t.dbErr(err, fmt.Sprintf("move device %q to group %q", deviceID, groupID), store.ErrNotFound)
	}
	return nil
}

// deviceWhere selects a tenant's devices by filter.
func deviceWhere(tenantID string, filter store.DeviceFilter) *where {
	w := &where{}
	w.add(`d.tenant_id = ?`, tenantID)
	if filter.ProductID != "" {
		w.add(`g.product_id = ?`, filter.ProductID)
	}
	if filter.DeviceGroupID != "" {
		w.add(`d.device_group_id = ?`, filter.DeviceGroupID)
	}
	if filter.Unassigned {
		w.add(`d.device_group_id IS NULL`)
	}
	return w
}

// ListDevices implements store.Tx.
func (t *tx) ListDevices(ctx context.Context, tenantID string, filter store.DeviceFilter, opt store.ListOptions) (store.Page[store.Device], error) {
	opt = opt.Normalize()
	w := deviceWhere(tenantID, filter)
	if opt.After != "" {
		w.add(`d.id > ?`, opt.After)
	}
	p, err := list(ctx, t, opt, `SELECT `+deviceCols+deviceFrom+w.String()+` ORDER BY d.id LIMIT ?`, w.args,
		scanDevice, func(x store.Device) string { return x.ID })
	if err != nil {
		return p, fmt.Errorf("list devices of tenant %q: %w", tenantID, err)
	}
	return p, nil
}

// CountDevices implements store.Tx.
func (t *tx) CountDevices(ctx context.Context, tenantID string, filter store.DeviceFilter) (int, error) {
	w := deviceWhere(tenantID, filter)
	n, err := t.count(ctx, `SELECT COUNT(*)`+deviceFrom+w.String(), w.args...)
	if err != nil {
		return 0, fmt.Errorf("count devices of tenant %q: %w", tenantID, err)
	}
	return n, nil
}
