package manage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/authz"
	"github.com/rampart-iot/rampart/internal/problem"
	"github.com/rampart-iot/rampart/internal/rollout"
	"github.com/rampart-iot/rampart/internal/store"
	"github.com/rampart-iot/rampart/internal/webhook"
)

// Audit actions of rollouts. Pause, resume and abort are authorized as deployment.create.
const (
	auditRolloutRelease  = "rollout.release"
	auditRolloutAdvance  = "rollout.advance"
	auditRolloutComplete = "rollout.complete"
	auditRolloutAbort    = "rollout.abort"
	auditRolloutPause    = "rollout.pause"
	auditRolloutResume   = "rollout.resume"
)

// maxRolloutReports bounds the error reports one evaluation reads.
const maxRolloutReports = 100_000

// startRollout ends the group's active rollout, if any (a new deployment supersedes it), and,
// with a policy, starts the new deployment's rollout: the group's devices, its canaries first
// and then by device ID, split into batches. It runs in CreateDeployment's transaction, before the
// director is published.
func (m *Manager) startRollout(ctx context.Context, tx store.Tx, n *note, d store.Deployment, prev *store.Deployment, policy *v1.RolloutPolicy) error {
	if old, err := tx.ActiveRollout(ctx, d.TenantID, d.DeviceGroupID); err == nil {
		old.State, old.Reason, old.UpdatedAt = store.RolloutAborted, "superseded by deployment "+d.ID, m.timestamp()
		if err := tx.UpdateRollout(ctx, old); err != nil {
			return err
		}
		if err := m.rolloutChanged(ctx, tx, old, rolloutChanges[auditRolloutAbort]); err != nil {
			return err
		}
		n.detail("superseded_rollout", old.DeploymentID)
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if policy == nil {
		return nil
	}
	if prev == nil {
		return problem.Invalid(v1.ErrorDetail{Field: "rollout", Message: "the group has no deployment yet: a rollout holds devices on the previous one"})
	}
	var devs []store.Device
	opt := store.ListOptions{Limit: store.MaxLimit}
	for {
		page, err := tx.ListDevices(ctx, d.TenantID, store.DeviceFilter{DeviceGroupID: d.DeviceGroupID}, opt)
		if err != nil {
			return err
		}
		devs = append(devs, page.Items...)
		if page.Next == "" {
			break
		}
		opt.After = page.Next
	}
	ids := make([]string, len(devs))
	for i, dev := range devs {
		ids[i] = dev.ID
	}
	ordered, bad := rollout.Order(*policy, ids)
	if len(bad) > 0 {
		return problem.Invalid(bad...)
	}
	sizes := rollout.Plan(*policy, len(ordered))
	var rds []store.RolloutDevice
	i := 0
	for b, k := range sizes {
		for range k {
			rds = append(rds, store.RolloutDevice{DeviceID: ordered[i], Batch: b})
			i++
		}
	}
	body, err := json.Marshal(policy)
	if err != nil {
		return err
	}
	now := m.timestamp()
	r := store.Rollout{TenantID: d.TenantID, DeploymentID: d.ID, DeviceGroupID: d.DeviceGroupID, PreviousDeploymentID: prev.ID,
		Policy: body, State: store.RolloutRunning, CreatedAt: now, BatchStartedAt: now, UpdatedAt: now}
	if err := tx.CreateRollout(ctx, r, rds); err != nil {
		return err
	}
	n.detail("rollout", map[string]any{"batches": sizes, "previous_deployment_id": prev.ID})
	if _, err = m.stepRollout(ctx, tx, &r, n); err != nil {
		return err
	}
	return m.rolloutChanged(ctx, tx, r, webhook.ChangeStarted)
}

// stepRollout evaluates a running rollout and applies the decision, within tx: it releases
// devices, advances batches, completes or aborts. It reports the audit action of what changed
// ("" for nothing), with details in n. The caller publishes the director when it changed.
func (m *Manager) stepRollout(ctx context.Context, tx store.Tx, r *store.Rollout, n *note) (string, error) {
	if r.State != store.RolloutRunning {
		return "", nil
	}
	var policy v1.RolloutPolicy
	if err := json.Unmarshal(r.Policy, &policy); err != nil {
		return "", fmt.Errorf("rollout %s: stored policy: %w", r.DeploymentID, err)
	}
	action := ""
	var released []string
	for range 1000 { // each round advances a batch or stops
		in, err := m.rolloutInput(ctx, tx, *r, policy)
		if err != nil {
			return "", err
		}
		dec := rollout.Evaluate(in)
		now := m.timestamp()
		if len(dec.Release) > 0 {
			if err := tx.ReleaseRolloutDevices(ctx, r.TenantID, r.DeploymentID, dec.Release, now); err != nil {
				return "", err
			}
			released = append(released, dec.Release...)
			if action == "" { // an advance that released its batch is recorded as the advance
				action = auditRolloutRelease
			}
		}
		switch {
		case dec.Abort != "":
			if err := m.abortRollout(ctx, tx, r, dec.Abort, ""); err != nil {
				return "", err
			}
			n.detail("revert_deployment_id", r.RevertDeploymentID)
			action = auditRolloutAbort
		case dec.Complete:
			r.State, r.Reason, r.UpdatedAt = store.RolloutCompleted, "every batch is healthy", now
			action = auditRolloutComplete
		case dec.Advance:
			r.Batch++
			r.BatchStartedAt, r.UpdatedAt = now, now
			action = auditRolloutAdvance
			if err := tx.UpdateRollout(ctx, *r); err != nil {
				return "", err
			}
			continue
		}
		break
	}
	if action == "" {
		return "", nil
	}
	if len(released) > 0 {
		n.detail("released", released)
	}
	n.detail("state", r.State)
	n.detail("batch", r.Batch+1)
	if r.Reason != "" {
		n.message = r.Reason
	}
	r.UpdatedAt = m.timestamp()
	if err := tx.UpdateRollout(ctx, *r); err != nil {
		return "", err
	}
	return action, nil
}

// abortRollout aborts r: the group gets a new deployment equal to the previous one, which
// every device is served, so those that took the new release go back through the normal
// update path with their metadata versions still going forward.
func (m *Manager) abortRollout(ctx context.Context, tx store.Tx, r *store.Rollout, reason, by string) error {
	prev, err := tx.GetDeployment(ctx, r.TenantID, r.PreviousDeploymentID)
	if err != nil {
		return fmt.Errorf("rollout %s: the previous deployment: %w", r.DeploymentID, err)
	}
	id, err := m.newID()
	if err != nil {
		return err
	}
	revert := store.Deployment{ID: id, TenantID: r.TenantID, DeviceGroupID: r.DeviceGroupID, ImageIDs: prev.ImageIDs,
		CreatedBy: by, CreatedAt: m.timestamp()}
	if err := tx.CreateDeployment(ctx, revert); err != nil {
		return err
	}
	r.State, r.Reason, r.RevertDeploymentID, r.UpdatedAt = store.RolloutAborted, reason, id, m.timestamp()
	return tx.UpdateRollout(ctx, *r)
}

// rolloutInput gathers what rollout.Evaluate judges: each device's batch, release and health,
// and the crash counts of both cohorts since the rollout began.
func (m *Manager) rolloutInput(ctx context.Context, tx store.Tx, r store.Rollout, policy v1.RolloutPolicy) (rollout.Input, error) {
	now := m.timestamp()
	in := rollout.Input{Policy: policy, Now: now, Started: r.CreatedAt, Batch: r.Batch, BatchStartedAt: r.BatchStartedAt}
	rds, err := tx.ListRolloutDevices(ctx, r.TenantID, r.DeploymentID)
	if err != nil {
		return in, err
	}
	want, err := expectedImages(ctx, tx, r)
	if err != nil {
		return in, err
	}
	index := map[string]int{}
	for _, rd := range rds {
		d := rollout.Device{ID: rd.DeviceID, Batch: rd.Batch, ReleasedAt: rd.ReleasedAt}
		if d.Released() {
			d.Installed, d.Failed, err = reportedInstall(ctx, tx, r.TenantID, rd.DeviceID, want)
			if err != nil {
				return in, err
			}
			in.Crashes.NewHours += now.Sub(rd.ReleasedAt).Hours()
			in.Crashes.PreviousHours += rd.ReleasedAt.Sub(r.CreatedAt).Hours()
		} else {
			in.Crashes.PreviousHours += now.Sub(r.CreatedAt).Hours()
		}
		index[rd.DeviceID] = len(in.Devices)
		in.Devices = append(in.Devices, d)
	}
	// Error reports, by when the service received them (its own clock), newest first: the
	// reading stops at the first page that reaches back before the rollout.
	opt := store.ListOptions{Limit: store.MaxLimit}
	for read, older := 0, false; read < maxRolloutReports && !older; {
		page, err := tx.ListErrorReports(ctx, r.TenantID, store.ErrorReportFilter{DeviceGroupID: r.DeviceGroupID}, opt)
		if err != nil {
			return in, err
		}
		for _, e := range page.Items {
			i, ok := index[e.DeviceID]
			if e.ReceivedAt.Before(r.CreatedAt) {
				older = true
			}
			if !ok || e.ReceivedAt.Before(r.CreatedAt) {
				continue
			}
			d := &in.Devices[i]
			onNew := d.Released() && !e.ReceivedAt.Before(d.ReleasedAt)
			switch e.Type {
			case v1.EventAppCrash:
				if onNew {
					in.Crashes.New++
				} else {
					in.Crashes.Previous++
				}
			case v1.EventUpdateFailed, v1.EventRollbackPerformed:
				if onNew {
					d.Failed = true
				}
			}
		}
		read += len(page.Items)
		if page.Next == "" {
			break
		}
		opt.After = page.Next
	}
	return in, nil
}

// expectedImages are the image IDs of the rollout's deployment a device of the group installs
// (No3rdPartyAppUpdates: no applications).
func expectedImages(ctx context.Context, tx store.Tx, r store.Rollout) ([]string, error) {
	d, err := tx.GetDeployment(ctx, r.TenantID, r.DeploymentID)
	if err != nil {
		return nil, err
	}
	g, err := tx.GetDeviceGroup(ctx, r.TenantID, r.DeviceGroupID)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, id := range d.ImageIDs {
		img, err := tx.GetImage(ctx, r.TenantID, id)
		if err != nil {
			return nil, err
		}
		if g.UpdatePolicy == store.No3rdPartyAppUpdates && img.Kind == store.ImageApplication {
			continue
		}
		out = append(out, id)
	}
	return out, nil
}

// reportedInstall reads a device's latest check-in: installed when it lists every wanted
// image in a state other than failed; failed when it lists one of them failed.
func reportedInstall(ctx context.Context, tx store.Tx, tenantID, deviceID string, want []string) (installed, failed bool, err error) {
	rep, err := tx.GetDeviceReport(ctx, tenantID, deviceID)
	if errors.Is(err, store.ErrNotFound) {
		return false, false, nil
	}
	if err != nil {
		return false, false, err
	}
	var in v1.CheckIn
	if json.Unmarshal(rep.Report, &in) != nil {
		return false, false, nil
	}
	have := map[string]string{}
	for _, img := range in.Images {
		have[img.ImageID] = img.State
	}
	installed = true
	for _, id := range want {
		st, ok := have[id]
		installed = installed && ok && st != v1.ImageFailed
		failed = failed || (ok && st == v1.ImageFailed)
	}
	return installed, failed, nil
}

// rolloutWrite runs fn on the deployment's rollout in one transaction and records what changed
// in the audit log (nothing when fn reports no action); the director is re-published when
// anything changed, and devices are told after the commit.
func (m *Manager) rolloutWrite(ctx context.Context, p *authz.Principal, tenantID, deploymentID string,
	fn func(tx store.Tx, r *store.Rollout, n *note) (string, error)) (store.Rollout, error) {
	var r store.Rollout
	var action string
	n := &note{resourceID: deploymentID}
	err := m.store.Update(ctx, func(tx store.Tx) error {
		var err error
		if r, err = tx.GetRollout(ctx, tenantID, deploymentID); err != nil {
			return err
		}
		if action, err = fn(tx, &r, n); err != nil || action == "" {
			return err
		}
		if err := m.rolloutChanged(ctx, tx, r, rolloutChanges[action]); err != nil {
			return err
		}
		if m.meta != nil {
			if err := m.meta.PublishDirector(ctx, tx, tenantID, r.DeviceGroupID); err != nil {
				return err
			}
		}
		_, err = tx.AppendAudit(ctx, m.auditEntry(p, op{tenantID: tenantID, action: authz.Action(action), resourceType: "rollout"}, n, nil))
		return err
	})
	if err != nil && action != "" {
		m.auditFailure(ctx, p, op{tenantID: tenantID, action: authz.Action(action), resourceType: "rollout", resourceID: deploymentID}, n, err)
	}
	if err == nil && action != "" && m.notify != nil {
		m.notify.DeploymentCreated(tenantID, r.DeviceGroupID, r.DeploymentID)
	}
	return r, err
}

// AdvanceRollouts steps every running rollout once: the janitor calls it every minute. It
// returns how many changed.
func (m *Manager) AdvanceRollouts(ctx context.Context) (int, error) {
	rs, err := m.store.ListActiveRollouts(ctx, store.MaxLimit)
	if err != nil {
		return 0, err
	}
	changed := 0
	var errs []error
	for _, r := range rs {
		after, err := m.rolloutWrite(ctx, nil, r.TenantID, r.DeploymentID, func(tx store.Tx, r *store.Rollout, n *note) (string, error) {
			return m.stepRollout(ctx, tx, r, n)
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("rollout %s: %w", r.DeploymentID, err))
		} else if after.UpdatedAt != r.UpdatedAt {
			changed++
		}
	}
	return changed, errors.Join(errs...)
}

// AdvanceGroupRollout steps the group's running rollout, if any: check-in and error-report
// ingestion call it, so a rollout reacts to its devices' health at once.
func (m *Manager) AdvanceGroupRollout(ctx context.Context, tenantID, groupID string) error {
	if groupID == "" {
		return nil
	}
	r, err := m.store.ActiveRollout(ctx, tenantID, groupID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && r.State != store.RolloutRunning) {
		return nil
	}
	if err != nil {
		return err
	}
	_, err = m.rolloutWrite(ctx, nil, tenantID, r.DeploymentID, func(tx store.Tx, r *store.Rollout, n *note) (string, error) {
		return m.stepRollout(ctx, tx, r, n)
	})
	return err
}

// rolloutCommand authorizes a user's command on a rollout.
func (m *Manager) rolloutCommand(ctx context.Context, p *authz.Principal, tenantID, deploymentID string,
	fn func(tx store.Tx, r *store.Rollout, n *note) (string, error)) (v1.Rollout, error) {
	if _, err := m.authorize(ctx, p, tenantID, authz.DeploymentCreate); err != nil {
		return v1.Rollout{}, err
	}
	if _, err := m.rolloutWrite(ctx, p, tenantID, deploymentID, fn); err != nil {
		return v1.Rollout{}, err
	}
	return m.rolloutStatus(ctx, tenantID, deploymentID)
}

func notActive(r *store.Rollout) error {
	return problem.New(v1.CodeConflict, "the rollout of deployment %s is %s", r.DeploymentID, r.State)
}

// PauseRollout stops a running rollout from releasing more devices; released devices keep the
// new deployment.
func (m *Manager) PauseRollout(ctx context.Context, p *authz.Principal, tenantID, deploymentID string) (v1.Rollout, error) {
	return m.rolloutCommand(ctx, p, tenantID, deploymentID, func(tx store.Tx, r *store.Rollout, n *note) (string, error) {
		if r.State != store.RolloutRunning {
			return "", notActive(r)
		}
		r.State, r.Reason, r.UpdatedAt = store.RolloutPaused, "paused by "+p.UserName, m.timestamp()
		n.detail("state", r.State)
		return auditRolloutPause, tx.UpdateRollout(ctx, *r)
	})
}

// ResumeRollout lets a paused rollout go on.
func (m *Manager) ResumeRollout(ctx context.Context, p *authz.Principal, tenantID, deploymentID string) (v1.Rollout, error) {
	return m.rolloutCommand(ctx, p, tenantID, deploymentID, func(tx store.Tx, r *store.Rollout, n *note) (string, error) {
		if r.State != store.RolloutPaused {
			return "", notActive(r)
		}
		r.State, r.Reason, r.UpdatedAt = store.RolloutRunning, "", m.timestamp()
		if err := tx.UpdateRollout(ctx, *r); err != nil {
			return "", err
		}
		n.detail("state", r.State)
		if _, err := m.stepRollout(ctx, tx, r, n); err != nil {
			return "", err
		}
		return auditRolloutResume, nil
	})
}

// AbortRollout aborts a running or paused rollout and returns the group to its previous
// deployment.
func (m *Manager) AbortRollout(ctx context.Context, p *authz.Principal, tenantID, deploymentID string) (v1.Rollout, error) {
	return m.rolloutCommand(ctx, p, tenantID, deploymentID, func(tx store.Tx, r *store.Rollout, n *note) (string, error) {
		if r.State != store.RolloutRunning && r.State != store.RolloutPaused {
			return "", notActive(r)
		}
		if err := m.abortRollout(ctx, tx, r, "aborted by "+p.UserName, p.UserID); err != nil {
			return "", err
		}
		n.detail("state", r.State)
		n.detail("revert_deployment_id", r.RevertDeploymentID)
		return auditRolloutAbort, nil
	})
}

// GetRollout returns where a deployment's rollout stands.
func (m *Manager) GetRollout(ctx context.Context, p *authz.Principal, tenantID, deploymentID string) (v1.Rollout, error) {
	if err := m.read(ctx, p, tenantID, authz.DeploymentRead); err != nil {
		return v1.Rollout{}, err
	}
	return m.rolloutStatus(ctx, tenantID, deploymentID)
}

func (m *Manager) rolloutStatus(ctx context.Context, tenantID, deploymentID string) (v1.Rollout, error) {
	r, err := m.store.GetRollout(ctx, tenantID, deploymentID)
	if err != nil {
		return v1.Rollout{}, err
	}
	out := v1.Rollout{DeploymentID: r.DeploymentID, DeviceGroupID: r.DeviceGroupID, PreviousDeploymentID: r.PreviousDeploymentID,
		State: r.State, Reason: r.Reason, Batch: r.Batch + 1, RevertDeploymentID: r.RevertDeploymentID,
		CreatedAt: r.CreatedAt, BatchStartedAt: r.BatchStartedAt, UpdatedAt: r.UpdatedAt, Batches: []v1.BatchStatus{}}
	if err := json.Unmarshal(r.Policy, &out.Policy); err != nil {
		return v1.Rollout{}, fmt.Errorf("rollout %s: stored policy: %w", r.DeploymentID, err)
	}
	in, err := m.rolloutInput(ctx, m.store, r, out.Policy)
	if err != nil {
		return v1.Rollout{}, err
	}
	for _, d := range in.Devices {
		for len(out.Batches) <= d.Batch {
			out.Batches = append(out.Batches, v1.BatchStatus{})
		}
		out.Batches[d.Batch].Devices++
		if d.Released() {
			out.Batches[d.Batch].Released++
			switch {
			case d.Failed:
				out.Failed++
			case d.Installed:
				out.Succeeded++
			}
		}
	}
	c := in.Crashes
	out.NewCrashes, out.PrevCrashes, out.NewDeviceHours, out.PrevDeviceHours = c.New, c.Previous, c.NewHours, c.PreviousHours
	return out, nil
}
