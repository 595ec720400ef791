package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/rampart-iot/rampart/internal/store"
)

// hourOf is t's hour in whole hours since the Unix epoch.
func hourOf(t time.Time) int64 { return t.Unix() / 3600 }

// RecordDeviceHours implements store.Tx.
func (t *tx) RecordDeviceHours(ctx context.Context, tenantID, deviceID, deploymentID string, from, to time.Time) error {
	first, last := hourOf(from), hourOf(to)
	if last < first {
		return fmt.Errorf("record device hours: %v is before %v", to, from)
	}
	first = max(first, last-store.MaxDeviceHoursPerRecord+1)
	for h := first; h <= last; h++ {
		if _, err := t.exec(ctx, `INSERT INTO device_hours (device_id, hour, tenant_id, deployment_id, crashed) VALUES (?, ?, ?, ?, 0)
			ON CONFLICT (device_id, hour) DO UPDATE SET deployment_id = excluded.deployment_id`,
			deviceID, h, tenantID, deploymentID); err != nil {
			return t.dbErr(err, fmt.Sprintf("record the hours of device %q", deviceID), nil)
		}
	}
	return nil
}

// MarkCrashedHour implements store.Tx.
func (t *tx) MarkCrashedHour(ctx context.Context, tenantID, deviceID string, at time.Time) error {
	_, err := t.exec(ctx, `INSERT INTO device_hours (device_id, hour, tenant_id, deployment_id, crashed)
		VALUES (?, ?, ?, COALESCE((SELECT deployment_id FROM device_hours WHERE device_id = ? ORDER BY hour DESC LIMIT 1), ''), 1)
		ON CONFLICT (device_id, hour) DO UPDATE SET crashed = 1`,
		deviceID, hourOf(at), tenantID, deviceID)
	if err != nil {
		return t.dbErr(err, fmt.Sprintf("record a crash of device %q", deviceID), nil)
	}
	return nil
}

// CohortHours implements store.Tx.
func (t *tx) CohortHours(ctx context.Context, tenantID, deploymentID string) (store.CohortHours, error) {
	var c store.CohortHours
	err := t.queryRow(ctx, `SELECT COUNT(DISTINCT device_id), COUNT(*), COALESCE(SUM(crashed), 0) FROM device_hours
		WHERE tenant_id = ? AND deployment_id = ?`, tenantID, deploymentID).Scan(&c.Devices, &c.Hours, &c.CrashedHours)
	if err != nil {
		return c, t.dbErr(err, fmt.Sprintf("count the hours of deployment %q", deploymentID), nil)
	}
	return c, nil
}

// DeleteDeviceHoursBefore implements store.Tx.
func (t *tx) DeleteDeviceHoursBefore(ctx context.Context, before time.Time) (int64, error) {
	n, err := t.exec(ctx, `DELETE FROM device_hours WHERE hour < ?`, hourOf(before))
	if err != nil {
		return 0, t.dbErr(err, "delete old device hours", nil)
	}
	return n, nil
}

// RecordDeviceHours implements store.Tx.
func (s *DB) RecordDeviceHours(ctx context.Context, tenantID, deviceID, deploymentID string, from, to time.Time) error {
	return s.write(ctx, func(w *tx) error { return w.RecordDeviceHours(ctx, tenantID, deviceID, deploymentID, from, to) })
}

// MarkCrashedHour implements store.Tx.
func (s *DB) MarkCrashedHour(ctx context.Context, tenantID, deviceID string, at time.Time) error {
	return s.write(ctx, func(w *tx) error { return w.MarkCrashedHour(ctx, tenantID, deviceID, at) })
}

// CohortHours implements store.Tx.
func (s *DB) CohortHours(ctx context.Context, tenantID, deploymentID string) (store.CohortHours, error) {
	return s.read.CohortHours(ctx, tenantID, deploymentID)
}

// DeleteDeviceHoursBefore implements store.Tx.
func (s *DB) DeleteDeviceHoursBefore(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.write(ctx, func(w *tx) error {
		var err error
		n, err = w.DeleteDeviceHoursBefore(ctx, before)
		return err
	})
	return n, err
}
