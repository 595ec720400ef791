package updatemeta

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/internal/store"
	"github.com/rampart-iot/rampart/internal/tufclient"
)

// deviceFetcher serves a device the director DirectorFor chooses for it, as the device
// endpoint does.
type deviceFetcher struct {
	f             *fixture
	group, device string
}

func (x deviceFetcher) Fetch(ctx context.Context, repo tufclient.Repo, name string, max int64) (io.ReadCloser, error) {
	r := store.TUFImages
	if repo == tufclient.Director {
		var err error
		if r, _, err = DirectorFor(ctx, x.f.st, tenant, x.group, x.device); err != nil {
			return nil, err
		}
	}
	b, err := File(ctx, x.f.st, tenant, r, name)
	if errors.Is(err, ErrNoFile) {
		return nil, fmt.Errorf("%w: %v", tufclient.ErrNotFound, err)
	}
	if err != nil {
		return nil, err
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

// rolloutFleet is a group's devices, each with the trusted metadata it keeps across the test.
type rolloutFleet struct {
	f       *fixture
	group   string
	devices map[string]*tufclient.Client
}

func (r *rolloutFleet) add(id string) {
	dirRoot, err := File(r.f.ctx, r.f.st, tenant, DirectorRepository(r.group), "1.root.json")
	must(r.f.t, err)
	imgRoot, err := File(r.f.ctx, r.f.st, tenant, store.TUFImages, "1.root.json")
	must(r.f.t, err)
	c, err := tufclient.New(tufclient.Config{Dir: r.f.t.TempDir(), Fetcher: deviceFetcher{r.f, r.group, id}, Now: r.f.clock.now,
		DirectorRoot: dirRoot, ImageRoot: imgRoot})
	must(r.f.t, err)
	r.devices[id] = c
}

// expect refreshes the devices named in want and checks the image each is offered.
func (r *rolloutFleet) expect(step string, want map[string]store.Image) {
	r.f.t.Helper()
	for id := range want {
		got, err := r.devices[id].Refresh(r.f.ctx)
		if err != nil {
			r.f.t.Fatalf("%s: device %s refused its director: %v", step, id, err)
		}
		if fmt.Sprint(ids(got)) != fmt.Sprint([]string{want[id].ID}) {
			r.f.t.Fatalf("%s: device %s is offered %v, want %s", step, id, ids(got), want[id].ID)
		}
	}
}

// write changes the store and publishes the group's directors, as manage does.
func (r *rolloutFleet) write(fn func(tx store.Tx) error) {
	r.f.t.Helper()
	must(r.f.t, r.f.st.Update(r.f.ctx, func(tx store.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		return r.f.svc.PublishDirector(r.f.ctx, tx, tenant, r.group)
	}))
}

func (r *rolloutFleet) deployment(tx store.Tx, img store.Image) (store.Deployment, error) {
	r.f.n++
	d := store.Deployment{ID: fmt.Sprintf("01900000-0000-7000-8000-%012x", r.f.n), TenantID: tenant, DeviceGroupID: r.group,
		ImageIDs: []string{img.ID}, CreatedBy: "u", CreatedAt: r.f.clock.now()}
	return d, tx.CreateDeployment(r.f.ctx, d)
}

func TestHeldDirectorVersionsOnlyGoForward(t *testing.T) {
	f := newFixture(t)
	f.group("g1")
	a, b := f.image(store.ImageApplication, "1.0.0"), f.image(store.ImageApplication, "2.0.0")
	fl := &rolloutFleet{f: f, group: "g1", devices: map[string]*tufclient.Client{}}
	var prev, next store.Deployment
	fl.write(func(tx store.Tx) (err error) { prev, err = fl.deployment(tx, a); return err })
	for _, id := range []string{"d1", "d2", "d3"} {
		fl.add(id)
	}
	fl.expect("before the rollout", map[string]store.Image{"d1": a, "d2": a, "d3": a})

	// A rollout releases d1; d2 and d3 are held on the previous deployment.
	ro := store.Rollout{TenantID: tenant, DeviceGroupID: "g1", Policy: []byte(`{"batches":[{"count":1},{"count":1}]}`),
		State: store.RolloutRunning, CreatedAt: f.clock.now(), BatchStartedAt: f.clock.now(), UpdatedAt: f.clock.now()}
	fl.write(func(tx store.Tx) (err error) {
		if next, err = fl.deployment(tx, b); err != nil {
			return err
		}
		ro.DeploymentID, ro.PreviousDeploymentID = next.ID, prev.ID
		if err := tx.CreateRollout(f.ctx, ro, []store.RolloutDevice{{DeviceID: "d1"}, {DeviceID: "d2", Batch: 1}, {DeviceID: "d3", Batch: 2}}); err != nil {
			return err
		}
		return tx.ReleaseRolloutDevices(f.ctx, tenant, next.ID, []string{"d1"}, f.clock.now())
	})
	fl.expect("batch 1", map[string]store.Image{"d1": b, "d2": a, "d3": a})

	// The held director alone renewed: it is ahead of the group's (whose devices do not
	// refresh until it renews too).
	f.clock.add(13 * time.Hour)
	must(t, f.st.Update(f.ctx, func(tx store.Tx) error {
		changed, err := f.svc.Renew(f.ctx, tx, tenant, HeldDirectorRepository("g1"))
		if err == nil && !changed {
			err = errors.New("the held director was not renewed")
		}
		return err
	}))
	fl.expect("held renewed", map[string]store.Image{"d2": a, "d3": a})
	held, err := f.st.GetTUFMetadata(f.ctx, tenant, HeldDirectorRepository("g1"), store.TUFTimestamp, 0)
	must(t, err)
	main, err := f.st.GetTUFMetadata(f.ctx, tenant, DirectorRepository("g1"), store.TUFTimestamp, 0)
	must(t, err)
	if held.Version <= main.Version {
		t.Fatalf("held timestamp %d is not ahead of the group's %d", held.Version, main.Version)
	}

	// d2 moves from the held director to the group's, which is now behind what d2 trusts.
	fl.write(func(tx store.Tx) error {
		return tx.ReleaseRolloutDevices(f.ctx, tenant, next.ID, []string{"d2"}, f.clock.now())
	})
	fl.expect("batch 2", map[string]store.Image{"d1": b, "d2": b, "d3": a})

	// RenewAll renews both; then d3 moves too.
	f.clock.add(13 * time.Hour)
	n, err := f.svc.RenewAll(f.ctx, f.st, 100)
	must(t, err)
	if n < 2 {
		t.Fatalf("RenewAll renewed %d repositories, want both directors", n)
	}
	fl.expect("renewed", map[string]store.Image{"d1": b, "d2": b, "d3": a})
	fl.write(func(tx store.Tx) error {
		return tx.ReleaseRolloutDevices(f.ctx, tenant, next.ID, []string{"d3"}, f.clock.now())
	})
	fl.expect("batch 3", map[string]store.Image{"d1": b, "d2": b, "d3": b})

	// The rollout completes: nothing is held any more.
	fl.write(func(tx store.Tx) error {
		ro.State = store.RolloutCompleted
		return tx.UpdateRollout(f.ctx, ro)
	})
	fl.expect("completed", map[string]store.Image{"d1": b, "d2": b, "d3": b})

	// A second rollout, of c, aborted after releasing d1: every device returns to b, d1
	// from the group's director, d2 and d3 from the held one, which was renewed meanwhile.
	c := f.image(store.ImageApplication, "3.0.0")
	var third store.Deployment
	ro2 := ro
	fl.write(func(tx store.Tx) (err error) {
		if third, err = fl.deployment(tx, c); err != nil {
			return err
		}
		ro2.DeploymentID, ro2.PreviousDeploymentID, ro2.State = third.ID, next.ID, store.RolloutRunning
		if err := tx.CreateRollout(f.ctx, ro2, []store.RolloutDevice{{DeviceID: "d1"}, {DeviceID: "d2", Batch: 1}, {DeviceID: "d3", Batch: 1}}); err != nil {
			return err
		}
		return tx.ReleaseRolloutDevices(f.ctx, tenant, third.ID, []string{"d1"}, f.clock.now())
	})
	fl.expect("second rollout", map[string]store.Image{"d1": c, "d2": b, "d3": b})
	f.clock.add(13 * time.Hour)
	must(t, f.st.Update(f.ctx, func(tx store.Tx) error {
		_, err := f.svc.Renew(f.ctx, tx, tenant, HeldDirectorRepository("g1"))
		return err
	}))
	fl.expect("held renewed again", map[string]store.Image{"d2": b, "d3": b})
	fl.write(func(tx store.Tx) error {
		if _, err := fl.deployment(tx, b); err != nil {
			return err
		}
		ro2.State = store.RolloutAborted
		return tx.UpdateRollout(f.ctx, ro2)
	})
	fl.expect("aborted", map[string]store.Image{"d1": b, "d2": b, "d3": b})
}
