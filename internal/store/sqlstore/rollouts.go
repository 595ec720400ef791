package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/rampart-iot/rampart/internal/store"
)

const rolloutCols = `tenant_id, deployment_id, device_group_id, previous_deployment_id, policy, state, batch, reason,
	revert_deployment_id, created_at, batch_started_at, updated_at`

func scanRollout(s scanner) (store.Rollout, error) {
	var r store.Rollout
	var created, batchStarted, updated sql.NullInt64
	if err := s.Scan(&r.TenantID, &r.DeploymentID, &r.DeviceGroupID, &r.PreviousDeploymentID, &r.Policy, &r.State,
		&r.Batch, &r.Reason, &r.RevertDeploymentID, &created, &batchStarted, &updated); err != nil {
		return store.Rollout{}, err
	}
	r.CreatedAt, r.BatchStartedAt, r.UpdatedAt = timeOf(created), timeOf(batchStarted), timeOf(updated)
	return r, nil
}

// CreateRollout implements store.Tx.
func (t *tx) CreateRollout(ctx context.Context, r store.Rollout, devices []store.RolloutDevice) error {
	what := fmt.Sprintf("create the rollout of deployment %q", r.DeploymentID)
	ok, err := t.exists(ctx, `SELECT 1 FROM deployments WHERE tenant_id = ? AND id = ? AND device_group_id = ?`,
		r.TenantID, r.DeploymentID, r.DeviceGroupID)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if !ok {
		return fmt.Errorf("%s: deployment of group %q: %w", what, r.DeviceGroupID, store.ErrNotFound)
	}
	_, err = t.exec(ctx, `INSERT INTO rollouts (`+rolloutCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.TenantID, r.DeploymentID, r.DeviceGroupID, r.PreviousDeploymentID, r.Policy, r.State, r.Batch, r.Reason,
		r.RevertDeploymentID, timeArg(r.CreatedAt), timeArg(r.BatchStartedAt), timeArg(r.UpdatedAt))
	if err != nil {
		return t.dbErr(err, what, store.ErrNotFound)
	}
	for _, d := range devices {
		if _, err := t.exec(ctx, `INSERT INTO rollout_devices (deployment_id, device_id, batch, released_at) VALUES (?, ?, ?, ?)`,
			r.DeploymentID, d.DeviceID, d.Batch, timeArg(d.ReleasedAt)); err != nil {
			return t.dbErr(err, fmt.Sprintf("%s: device %q", what, d.DeviceID), store.ErrNotFound)
		}
	}
	return nil
}

// GetRollout implements store.Tx.
func (t *tx) GetRollout(ctx context.Context, tenantID, deploymentID string) (store.Rollout, error) {
	r, err := scanRollout(t.queryRow(ctx, `SELECT `+rolloutCols+` FROM rollouts WHERE tenant_id = ? AND deployment_id = ?`,
		tenantID, deploymentID))
	if err != nil {
		return store.Rollout{}, notFound(err, fmt.Sprintf("rollout of deployment %q", deploymentID))
	}
	return r, nil
}

// ActiveRollout implements store.Tx.
func (t *tx) ActiveRollout(ctx context.Context, tenantID, groupID string) (store.Rollout, error) {
	r, err := scanRollout(t.queryRow(ctx, `SELECT `+rolloutCols+` FROM rollouts
		WHERE tenant_id = ? AND device_group_id = ? AND state IN (?, ?) ORDER BY deployment_id DESC LIMIT 1`,
		tenantID, groupID, store.RolloutRunning, store.RolloutPaused))
	if err != nil {
		return store.Rollout{}, notFound(err, fmt.Sprintf("active rollout of device group %q", groupID))
	}
	return r, nil
}

// UpdateRollout implements store.Tx.
func (t *tx) UpdateRollout(ctx context.Context, r store.Rollout) error {
	n, err := t.exec(ctx, `UPDATE rollouts SET state = ?, batch = ?, reason = ?, revert_deployment_id = ?,
		batch_started_at = ?, updated_at = ? WHERE tenant_id = ? AND deployment_id = ?`,
		r.State, r.Batch, r.Reason, r.RevertDeploymentID, timeArg(r.BatchStartedAt), timeArg(r.UpdatedAt),
		r.TenantID, r.DeploymentID)
	if err != nil {
		return t.dbErr(err, fmt.Sprintf("update the rollout of deployment %q", r.DeploymentID), nil)
	}
	if n == 0 {
		return fmt.Errorf("update the rollout of deployment %q: %w", r.DeploymentID, store.ErrNotFound)
	}
	return nil
}

// ListRolloutDevices implements store.Tx.
func (t *tx) ListRolloutDevices(ctx context.Context, tenantID, deploymentID string) ([]store.RolloutDevice, error) {
	rows, err := t.query(ctx, `SELECT rd.device_id, rd.batch, rd.released_at FROM rollout_devices rd
		JOIN rollouts r ON r.deployment_id = rd.deployment_id
		WHERE r.tenant_id = ? AND rd.deployment_id = ? ORDER BY rd.batch, rd.device_id`, tenantID, deploymentID)
	if err != nil {
		return nil, fmt.Errorf("list the devices of rollout %q: %w", deploymentID, err)
	}
	defer rows.Close()
	var out []store.RolloutDevice
	for rows.Next() {
		var d store.RolloutDevice
		var at sql.NullInt64
		if err := rows.Scan(&d.DeviceID, &d.Batch, &at); err != nil {
			return nil, err
		}
		d.ReleasedAt = timeOf(at)
		out = append(out, d)
	}
	return out, rows.Err()
}

// GetRolloutDevice implements store.Tx.
func (t *tx) GetRolloutDevice(ctx context.Context, tenantID, deploymentID, deviceID string) (store.RolloutDevice, error) {
	d := store.RolloutDevice{DeviceID: deviceID}
	var at sql.NullInt64
	err := t.queryRow(ctx, `SELECT rd.batch, rd.released_at FROM rollout_devices rd
		JOIN rollouts r ON r.deployment_id = rd.deployment_id
		WHERE r.tenant_id = ? AND rd.deployment_id = ? AND rd.device_id = ?`, tenantID, deploymentID, deviceID).Scan(&d.Batch, &at)
	if err != nil {
		return store.RolloutDevice{}, notFound(err, fmt.Sprintf("device %q of rollout %q", deviceID, deploymentID))
	}
	d.ReleasedAt = timeOf(at)
	return d, nil
}

// ReleaseRolloutDevices implements store.Tx.
func (t *tx) ReleaseRolloutDevices(ctx context.Context, tenantID, deploymentID string, deviceIDs []string, at time.Time) error {
	if _, err := t.GetRollout(ctx, tenantID, deploymentID); err != nil {
		return err
	}
	for _, id := range deviceIDs {
		if _, err := t.exec(ctx, `UPDATE rollout_devices SET released_at = ?
			WHERE deployment_id = ? AND device_id = ? AND released_at IS NULL`, timeArg(at), deploymentID, id); err != nil {
			return fmt.Errorf("release device %q of rollout %q: %w", id, deploymentID, err)
		}
	}
	return nil
}

// ListActiveRollouts implements store.Tx.
func (t *tx) ListActiveRollouts(ctx context.Context, limit int) ([]store.Rollout, error) {
	limit = store.ListOptions{Limit: limit}.Normalize().Limit
	rows, err := t.query(ctx, `SELECT `+rolloutCols+` FROM rollouts WHERE state = ? ORDER BY created_at, deployment_id LIMIT ?`,
		store.RolloutRunning, limit)
	if err != nil {
		return nil, fmt.Errorf("list running rollouts: %w", err)
	}
	defer rows.Close()
	var out []store.Rollout
	for rows.Next() {
		r, err := scanRollout(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
