package storetest

import (
	"sort"
	"testing"

	"github.com/rampart-iot/rampart/internal/store"
)

// newRollout returns the running rollout of deployment n (uuid7(n)) of a group.
func newRollout(tenantID, groupID string, n int) store.Rollout {
	return store.Rollout{TenantID: tenantID, DeploymentID: uuid7(n), DeviceGroupID: groupID,
		PreviousDeploymentID: uuid7(n - 1), Policy: []byte(`{"batches":[{"count":1}]}`), State: store.RolloutRunning,
		CreatedAt: at(70 + n), BatchStartedAt: at(70 + n), UpdatedAt: at(70 + n)}
}

func testRollouts(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	p := w.product(w.a.ID, "prod-1", "Thermostat")
	g := w.group(w.a.ID, p.ID, "group-1", "Field")
	g2 := w.group(w.a.ID, p.ID, "group-2", "Lab")
	pb := w.product(w.b.ID, "prod-2", "Camera")
	gb := w.group(w.b.ID, pb.ID, "group-3", "Field")
	img := w.image(w.a.ID, 1, 1)
	must(t, s.CreateDeployment(ctx, newDeployment(w.a.ID, g.ID, 1, img.ID)))
	must(t, s.CreateDeployment(ctx, newDeployment(w.a.ID, g.ID, 2, img.ID)))
	must(t, s.CreateDeployment(ctx, newDeployment(w.a.ID, g2.ID, 3, img.ID)))

	_, err := s.ActiveRollout(ctx, w.a.ID, g.ID)
	isErr(t, err, store.ErrNotFound)
	r := newRollout(w.a.ID, g.ID, 2)
	devs := []store.RolloutDevice{{DeviceID: deviceIDOf(3), Batch: 1}, {DeviceID: deviceIDOf(1), Batch: 0}, {DeviceID: deviceIDOf(2), Batch: 0}}
	// The deployment must be the tenant's and the group's.
	bad := newRollout(w.b.ID, gb.ID, 2)
	isErr(t, s.CreateRollout(ctx, bad, nil), store.ErrNotFound)
	bad = newRollout(w.a.ID, g2.ID, 2)
	isErr(t, s.CreateRollout(ctx, bad, nil), store.ErrNotFound)
	isErr(t, s.CreateRollout(ctx, newRollout(w.a.ID, g.ID, 9), nil), store.ErrNotFound)
	must(t, s.CreateRollout(ctx, r, devs))
	isErr(t, s.CreateRollout(ctx, r, nil), store.ErrConflict)

	got, err := s.GetRollout(ctx, w.a.ID, r.DeploymentID)
	must(t, err)
	eq(t, got, norm(r))
	got, err = s.ActiveRollout(ctx, w.a.ID, g.ID)
	must(t, err)
	eq(t, got.DeploymentID, r.DeploymentID)
	_, err = s.GetRollout(ctx, w.b.ID, r.DeploymentID)
	isErr(t, err, store.ErrNotFound)
	_, err = s.ActiveRollout(ctx, w.a.ID, g2.ID)
	isErr(t, err, store.ErrNotFound)

	// Devices come back by batch, then ID; none is released yet.
	ds, err := s.ListRolloutDevices(ctx, w.a.ID, r.DeploymentID)
	must(t, err)
	first := []store.RolloutDevice{{DeviceID: deviceIDOf(1)}, {DeviceID: deviceIDOf(2)}}
	sort.Slice(first, func(i, j int) bool { return first[i].DeviceID < first[j].DeviceID })
	eq(t, ds, append(first, store.RolloutDevice{DeviceID: deviceIDOf(3), Batch: 1}))
	ds, err = s.ListRolloutDevices(ctx, w.b.ID, r.DeploymentID)
	must(t, err)
	eq(t, len(ds), 0)

	// Release keeps the first time.
	must(t, s.ReleaseRolloutDevices(ctx, w.a.ID, r.DeploymentID, []string{deviceIDOf(1)}, at(100)))
	must(t, s.ReleaseRolloutDevices(ctx, w.a.ID, r.DeploymentID, []string{deviceIDOf(1), deviceIDOf(2)}, at(101)))
	isErr(t, s.ReleaseRolloutDevices(ctx, w.b.ID, r.DeploymentID, []string{deviceIDOf(3)}, at(101)), store.ErrNotFound)
	d1, err := s.GetRolloutDevice(ctx, w.a.ID, r.DeploymentID, deviceIDOf(1))
	must(t, err)
	eq(t, d1, store.RolloutDevice{DeviceID: deviceIDOf(1), ReleasedAt: stored(at(100))})
	d2, err := s.GetRolloutDevice(ctx, w.a.ID, r.DeploymentID, deviceIDOf(2))
	must(t, err)
	eq(t, d2.ReleasedAt, stored(at(101)))
	_, err = s.GetRolloutDevice(ctx, w.a.ID, r.DeploymentID, deviceIDOf(9))
	isErr(t, err, store.ErrNotFound)
	d3, err := s.GetRolloutDevice(ctx, w.a.ID, r.DeploymentID, deviceIDOf(3))
	must(t, err)
	eq(t, d3.ReleasedAt.IsZero(), true)

	// Running rollouts are listed across tenants; paused ones are not, but stay active.
	active, err := s.ListActiveRollouts(ctx, 10)
	must(t, err)
	eq(t, keys(active, rolloutID), []string{r.DeploymentID})
	r.State, r.Batch, r.Reason, r.BatchStartedAt, r.UpdatedAt = store.RolloutPaused, 1, "by alice", at(110), at(111)
	must(t, s.UpdateRollout(ctx, r))
	got, err = s.GetRollout(ctx, w.a.ID, r.DeploymentID)
	must(t, err)
	eq(t, got, norm(r))
	active, err = s.ListActiveRollouts(ctx, 10)
	must(t, err)
	eq(t, len(active), 0)
	_, err = s.ActiveRollout(ctx, w.a.ID, g.ID)
	must(t, err)
	r.State, r.RevertDeploymentID = store.RolloutAborted, uuid7(4)
	must(t, s.UpdateRollout(ctx, r))
	_, err = s.ActiveRollout(ctx, w.a.ID, g.ID)
	isErr(t, err, store.ErrNotFound)
	got, err = s.GetRollout(ctx, w.a.ID, r.DeploymentID)
	must(t, err)
	eq(t, got.RevertDeploymentID, uuid7(4))
	wrong := r
	wrong.TenantID = w.b.ID
	isErr(t, s.UpdateRollout(ctx, wrong), store.ErrNotFound)
}

func rolloutID(r store.Rollout) string { return r.DeploymentID }
