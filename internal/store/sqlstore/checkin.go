package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/rampart-iot/rampart/internal/store"
)

// PutDeviceReport implements store.Tx.
func (t *tx) PutDeviceReport(ctx context.Context, r store.DeviceReport) error {
	if err := t.checkDevice(ctx, r.TenantID, r.DeviceID); err != nil {
		return fmt.Errorf("record check-in: %w", err)
	}
	_, err := t.exec(ctx, `INSERT INTO device_reports (device_id, tenant_id, report, checked_in_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (device_id) DO UPDATE SET report = excluded.report, checked_in_at = excluded.checked_in_at`,
		r.DeviceID, r.TenantID, r.Report, timeArg(r.CheckedInAt))
	if err != nil {
		return t.dbErr(err, fmt.Sprintf("record check-in of device %q", r.DeviceID), store.ErrNotFound)
	}
	return nil
}

// GetDeviceReport implements store.Tx.
func (t *tx) GetDeviceReport(ctx context.Context, tenantID, deviceID string) (store.DeviceReport, error) {
	r := store.DeviceReport{TenantID: tenantID, DeviceID: deviceID}
	var at sql.NullInt64
	err := t.queryRow(ctx, `SELECT report, checked_in_at FROM device_reports WHERE tenant_id = ? AND device_id = ?`,
		tenantID, deviceID).Scan(&r.Report, &at)
	if err != nil {
		return store.DeviceReport{}, notFound(err, fmt.Sprintf("check-in report of device %q", deviceID))
	}
	r.CheckedInAt = timeOf(at)
	return r, nil
}

const tufCols = `tenant_id, repository, role, version, body, expires_at, created_at`

func scanTUF(s scanner) (store.TUFMetadata, error) {
	var m store.TUFMetadata
	var exp, created sql.NullInt64
	if err := s.Scan(&m.TenantID, &m.Repository, &m.Role, &m.Version, &m.Body, &exp, &created); err != nil {
		return store.TUFMetadata{}, err
	}
	m.ExpiresAt, m.CreatedAt = timeOf(exp), timeOf(created)
	return m, nil
}

// PutTUFMetadata implements store.Tx.
func (t *tx) PutTUFMetadata(ctx context.Context, m store.TUFMetadata) error {
	what := fmt.Sprintf("store %s metadata version %d of repository %q", m.Role, m.Version, m.Repository)
	if err := t.checkTenant(ctx, m.TenantID); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	n, err := t.exec(ctx, `INSERT INTO tuf_metadata (`+tufCols+`) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		m.TenantID, m.Repository, m.Role, m.Version, m.Body, timeArg(m.ExpiresAt), timeArg(m.CreatedAt))
	if err != nil {
		return t.dbErr(err, what, store.ErrNotFound)
	}
	if n == 0 {
		return fmt.Errorf("%s: that version exists: %w", what, store.ErrConflict)
	}
	return nil
}

// GetTUFMetadata implements store.Tx.
func (t *tx) GetTUFMetadata(ctx context.Context, tenantID, repository, role string, version int64) (store.TUFMetadata, error) {
	what := fmt.Sprintf("%s metadata of repository %q", role, repository)
	var row *sql.Row
	if version == 0 {
		row = t.queryRow(ctx, `SELECT `+tufCols+` FROM tuf_metadata WHERE tenant_id = ? AND repository = ? AND role = ?
			ORDER BY version DESC LIMIT 1`, tenantID, repository, role)
	} else {
		what = fmt.Sprintf("%s version %d", what, version)
		row = t.queryRow(ctx, `SELECT `+tufCols+` FROM tuf_metadata WHERE tenant_id = ? AND repository = ? AND role = ?
			AND version = ?`, tenantID, repository, role, version)
	}
	m, err := scanTUF(row)
	if err != nil {
		return store.TUFMetadata{}, notFound(err, what)
	}
	return m, nil
}

// ListTUFExpiring implements store.Tx.
func (t *tx) ListTUFExpiring(ctx context.Context, role string, before time.Time, limit int) ([]store.TUFMetadata, error) {
	rows, err := t.query(ctx, `SELECT `+tufCols+` FROM tuf_metadata m WHERE role = ? AND expires_at < ?
		AND version = (SELECT MAX(version) FROM tuf_metadata n WHERE n.tenant_id = m.tenant_id
			AND n.repository = m.repository AND n.role = m.role)
		ORDER BY expires_at, tenant_id, repository LIMIT ?`, role, before.UnixMicro(), limit)
	if err != nil {
		return nil, fmt.Errorf("list expiring %s metadata: %w", role, err)
	}
	defer rows.Close()
	out := []store.TUFMetadata{}
	for rows.Next() {
		m, err := scanTUF(rows)
		if err != nil {
			return nil, fmt.Errorf("list expiring %s metadata: %w", role, err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list expiring %s metadata: %w", role, err)
	}
	return out, nil
}
