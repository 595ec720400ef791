package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/rampart-iot/rampart/internal/store"
)

// AddBoardPress implements store.Tx.
func (t *tx) AddBoardPress(ctx context.Context, tenantID, deviceID, button string, at time.Time) error {
	if err := t.checkDevice(ctx, tenantID, deviceID); err != nil {
		return fmt.Errorf("press a button of device %q: %w", deviceID, err)
	}
	var n, last int64
	if err := t.queryRow(ctx, `SELECT COUNT(*), COALESCE(MAX(seq), 0) FROM board_presses WHERE device_id = ?`, deviceID).Scan(&n, &last); err != nil {
		return t.dbErr(err, fmt.Sprintf("press a button of device %q", deviceID), nil)
	}
	if n >= store.MaxBoardPresses {
		return fmt.Errorf("press a button of device %q: %w: %d presses already wait for its next check-in", deviceID, store.ErrConflict, n)
	}
	if _, err := t.exec(ctx, `INSERT INTO board_presses (device_id, seq, tenant_id, button, created_at) VALUES (?, ?, ?, ?, ?)`,
		deviceID, last+1, tenantID, button, timeArg(at)); err != nil {
		return t.dbErr(err, fmt.Sprintf("press a button of device %q", deviceID), nil)
	}
	return nil
}

// TakeBoardPresses implements store.Tx.
func (t *tx) TakeBoardPresses(ctx context.Context, tenantID, deviceID string) ([]string, error) {
	rows, err := t.query(ctx, `SELECT button FROM board_presses WHERE tenant_id = ? AND device_id = ? ORDER BY seq`, tenantID, deviceID)
	if err != nil {
		return nil, t.dbErr(err, fmt.Sprintf("read the presses of device %q", deviceID), nil)
	}
	var out []string
	for rows.Next() {
		var b string
		if err := rows.Scan(&b); err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, b)
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, nil
	}
	if _, err := t.exec(ctx, `DELETE FROM board_presses WHERE tenant_id = ? AND device_id = ?`, tenantID, deviceID); err != nil {
		return nil, t.dbErr(err, fmt.Sprintf("take the presses of device %q", deviceID), nil)
	}
	return out, nil
}

// AddBoardPress implements store.Tx.
func (s *DB) AddBoardPress(ctx context.Context, tenantID, deviceID, button string, at time.Time) error {
	return s.write(ctx, func(w *tx) error { return w.AddBoardPress(ctx, tenantID, deviceID, button, at) })
}

// TakeBoardPresses implements store.Tx.
func (s *DB) TakeBoardPresses(ctx context.Context, tenantID, deviceID string) ([]string, error) {
	var out []string
	err := s.write(ctx, func(w *tx) error {
		var err error
		out, err = w.TakeBoardPresses(ctx, tenantID, deviceID)
		return err
	})
	return out, err
}
