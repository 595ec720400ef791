package manage

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/authz"
	"github.com/rampart-iot/rampart/internal/rollout"
	"github.com/rampart-iot/rampart/internal/store"
)

// States of one device of a rollout, as RolloutDevices reports them.
const (
	RolloutDeviceHeld      = "held"      // not released: keeps the previous deployment
	RolloutDeviceReleased  = "released"  // released, not yet reporting the images installed
	RolloutDeviceInstalled = "installed" // reports every image of the deployment installed
	RolloutDeviceFailed    = "failed"    // reported an install failure or a rollback
)

// RolloutDevice is one device of a rollout: its batch (from 1), when it was released and its
// state, judged as the rollout judges it.
type RolloutDevice struct {
	DeviceID   string
	Batch      int
	ReleasedAt time.Time
	State      string
}

// RolloutDevices returns each device of a deployment's rollout with its state, in batch
// order, and, for a running rollout, why it is waiting ("" when it is not). It reads what
// GetRollout reads and is authorized the same way.
func (m *Manager) RolloutDevices(ctx context.Context, p *authz.Principal, tenantID, deploymentID string) ([]RolloutDevice, string, error) {
	if err := m.read(ctx, p, tenantID, authz.DeploymentRead); err != nil {
		return nil, "", err
	}
	r, err := m.store.GetRollout(ctx, tenantID, deploymentID)
	if err != nil {
		return nil, "", err
	}
	var policy v1.RolloutPolicy
	if err := json.Unmarshal(r.Policy, &policy); err != nil {
		return nil, "", fmt.Errorf("rollout %s: stored policy: %w", r.DeploymentID, err)
	}
	in, err := m.rolloutInput(ctx, m.store, r, policy)
	if err != nil {
		return nil, "", err
	}
	out := make([]RolloutDevice, 0, len(in.Devices))
	for _, d := range in.Devices {
		st := RolloutDeviceHeld
		switch {
		case !d.Released():
		case d.Failed:
			st = RolloutDeviceFailed
		case d.Installed:
			st = RolloutDeviceInstalled
		default:
			st = RolloutDeviceReleased
		}
		out = append(out, RolloutDevice{DeviceID: d.ID, Batch: d.Batch + 1, ReleasedAt: d.ReleasedAt, State: st})
	}
	wait := ""
	if r.State == store.RolloutRunning {
		wait = rollout.Evaluate(in).Wait
	}
	return out, wait, nil
}

// ActiveRollout returns the group's running or paused rollout as stored (ErrNotFound if it has
// none), without judging its health: the fleet overview lists it.
func (m *Manager) ActiveRollout(ctx context.Context, p *authz.Principal, tenantID, groupID string) (store.Rollout, error) {
	if err := m.read(ctx, p, tenantID, authz.DeploymentRead); err != nil {
		return store.Rollout{}, err
	}
	return m.store.ActiveRollout(ctx, tenantID, groupID)
}
