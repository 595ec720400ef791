package rollout_test

import (
	"bytes"
	"context"
	"sort"
	"sync"
	"testing"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/client"
	"github.com/rampart-iot/rampart/imagepkg/imagepkgtest"
	"github.com/rampart-iot/rampart/internal/checkinclient"
	"github.com/rampart-iot/rampart/internal/server/servertest"
	"github.com/rampart-iot/rampart/internal/tufclient"
)

// clock is the service's and the devices' time, moved only by the test.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// e2e is a real service with a group of attested devices.
type e2e struct {
	t     *testing.T
	ctx   context.Context
	clock *clock
	srv   *servertest.Server
	admin *client.Client
	group string
	devs  []*device
}

// device is one attested device with its own trusted metadata, kept across the whole test,
// so a version that goes backwards fails its Refresh.
type device struct {
	id  string
	cc  *checkinclient.Client
	tuf *tufclient.Client
}

func start(t *testing.T, devices int) *e2e {
	ctx := t.Context()
	c := &clock{now: time.Now().Truncate(time.Second)}
	srv := servertest.Start(t, servertest.AllowSoftwareRootOfTrust(true), servertest.Clock(c.Now))
	admin := srv.Client(t, srv.AdminToken)
	prod, err := admin.CreateProduct(ctx, srv.TenantID, v1.ProductCreate{Name: "Lamp"})
	if err != nil {
		t.Fatal(err)
	}
	g, err := admin.CreateDeviceGroup(ctx, srv.TenantID, prod.ID, v1.DeviceGroupCreate{Name: "Field"})
	if err != nil {
		t.Fatal(err)
	}
	e := &e2e{t: t, ctx: ctx, clock: c, srv: srv, admin: admin, group: g.ID}
	for range devices {
		d := srv.AttestedDevice(t, admin, srv.TenantID, g.ID)
		e.devs = append(e.devs, &device{id: d.ID, cc: &checkinclient.Client{Server: srv.URL, RootCAs: d.RootCAs, CertDir: d.Dir}})
	}
	sort.Slice(e.devs, func(i, j int) bool { return e.devs[i].id < e.devs[j].id })
	return e
}

func (e *e2e) upload(b imagepkgtest.Built) *v1.Image {
	e.t.Helper()
	img, err := e.admin.AddImage(e.ctx, e.srv.TenantID, bytes.NewReader(b.Bytes), -1, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return img
}

func (e *e2e) deploy(img *v1.Image, policy *v1.RolloutPolicy) *v1.Deployment {
	e.t.Helper()
	d, err := e.admin.CreateDeployment(e.ctx, e.srv.TenantID, e.group, v1.DeploymentCreate{ImageIDs: []string{img.ID}, Rollout: policy})
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

// offered is the image the device's metadata lists, verified by the device's own tufclient
// against everything it trusted before.
func (e *e2e) offered(d *device) string {
	e.t.Helper()
	if d.tuf == nil {
		dirRoot, err := d.cc.InitialRoot(e.ctx, tufclient.Director)
		if err != nil {
			e.t.Fatal(err)
		}
		imgRoot, err := d.cc.InitialRoot(e.ctx, tufclient.Image)
		if err != nil {
			e.t.Fatal(err)
		}
		if d.tuf, err = tufclient.New(tufclient.Config{Dir: e.t.TempDir(), Fetcher: d.cc, Now: e.clock.Now,
			DirectorRoot: dirRoot, ImageRoot: imgRoot}); err != nil {
			e.t.Fatal(err)
		}
	}
	targets, err := d.tuf.Refresh(e.ctx)
	if err != nil {
		e.t.Fatalf("device %s: refresh: %v", d.id, err)
	}
	if len(targets) != 1 {
		e.t.Fatalf("device %s is offered %d targets, want 1", d.id, len(targets))
	}
	return targets[0].ImageID
}

// offers checks what each device is offered, and returns the devices offered img.
func (e *e2e) offers(img *v1.Image, others *v1.Image) []*device {
	e.t.Helper()
	var got []*device
	for _, d := range e.devs {
		switch id := e.offered(d); id {
		case img.ID:
			got = append(got, d)
		case others.ID:
		default:
			e.t.Fatalf("device %s is offered image %s", d.id, id)
		}
	}
	return got
}

// checkIn reports the device running img and returns the deployment the service says it has.
func (e *e2e) checkIn(d *device, img *v1.Image) string {
	e.t.Helper()
	res, err := d.cc.CheckIn(e.ctx, v1.CheckIn{AgentVersion: "1.0.0", Images: []v1.InstalledImage{{
		ComponentID: img.ComponentID, ImageID: img.ID, Kind: img.Kind, Version: img.Version, State: v1.ImageRunning}}})
	if err != nil {
		e.t.Fatal(err)
	}
	return res.DeploymentID
}

func (e *e2e) rollout(id string) *v1.Rollout {
	e.t.Helper()
	r, err := e.admin.GetRollout(e.ctx, e.srv.TenantID, id)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

func (e *e2e) audited(deployment string, actions ...string) {
	e.t.Helper()
	for _, a := range actions {
		l, err := e.admin.AllAudit(e.ctx, e.srv.TenantID, client.AuditListOptions{Action: a, ResourceID: deployment})
		if err != nil {
			e.t.Fatal(err)
		}
		if len(l) == 0 {
			e.t.Errorf("no audit entry %s for deployment %s", a, deployment)
		}
		for _, x := range l {
			if x.Result != "success" {
				e.t.Errorf("audit %s: %+v", a, x)
			}
		}
	}
}

func apps(t *testing.T) (old, next imagepkgtest.Built) {
	comp := imagepkgtest.NewUUID(t)
	return imagepkgtest.Application(t, imagepkgtest.App{ComponentID: comp, Name: "lamp", Version: "1.0.0"}),
		imagepkgtest.Application(t, imagepkgtest.App{ComponentID: comp, Name: "lamp", Version: "2.0.0"})
}

func TestE2ERolloutAdvancesOnHealth(t *testing.T) {
	e := start(t, 3)
	b1, b2 := apps(t)
	img1, img2 := e.upload(b1), e.upload(b2)
	prev := e.deploy(img1, nil)
	if got := e.offers(img1, img2); len(got) != 3 {
		t.Fatalf("%d devices offered the first release, want 3", len(got))
	}

	// Three batches of one device each.
	const soak = 10 * time.Minute
	dep := e.deploy(img2, &v1.RolloutPolicy{Batches: []v1.RolloutBatch{{Count: 1}, {Percent: 10}}, SoakSeconds: int64(soak / time.Second)})
	r := e.rollout(dep.ID)
	if r.State != v1.RolloutRunning || r.Batch != 1 || len(r.Batches) != 3 || r.Batches[0] != (v1.BatchStatus{Devices: 1, Released: 1}) ||
		r.Batches[1] != (v1.BatchStatus{Devices: 1}) || r.Batches[2] != (v1.BatchStatus{Devices: 1}) || r.PreviousDeploymentID != prev.ID {
		t.Fatalf("rollout at start: %+v", r)
	}
	released := e.offers(img2, img1)
	if len(released) != 1 {
		t.Fatalf("%d devices offered the new release in batch 1, want 1", len(released))
	}
	for _, d := range e.devs {
		if d != released[0] {
			if got := e.checkIn(d, img1); got != prev.ID {
				t.Errorf("held device %s checks in on deployment %s, want the previous %s", d.id, got, prev.ID)
			}
		}
	}
	// checkInReleased reports every device offered the new release running it.
	checkInReleased := func() {
		t.Helper()
		for _, d := range released {
			if got := e.checkIn(d, img2); got != dep.ID {
				t.Errorf("released device %s checks in on deployment %s, want %s", d.id, got, dep.ID)
			}
		}
	}

	// Healthy, but soaking: batch 2 waits.
	checkInReleased()
	e.clock.Add(soak / 2)
	checkInReleased()
	if r := e.rollout(dep.ID); r.Batch != 1 || r.Succeeded != 1 {
		t.Fatalf("rollout while soaking: %+v", r)
	}
	if got := e.offers(img2, img1); len(got) != 1 {
		t.Fatalf("%d devices offered the new release while batch 1 soaks", len(got))
	}

	// Paused, the soak passing releases nothing.
	if r, err := e.admin.PauseRollout(e.ctx, e.srv.TenantID, dep.ID); err != nil || r.State != v1.RolloutPaused {
		t.Fatalf("pause: %+v %v", r, err)
	}
	e.clock.Add(soak)
	checkInReleased()
	if r := e.rollout(dep.ID); r.State != v1.RolloutPaused || r.Batch != 1 {
		t.Fatalf("paused rollout moved: %+v", r)
	}
	if got := e.offers(img2, img1); len(got) != 1 {
		t.Fatalf("%d devices offered the new release while paused", len(got))
	}
	if _, err := e.admin.PauseRollout(e.ctx, e.srv.TenantID, dep.ID); !client.HasCode(err, v1.CodeConflict) {
		t.Fatalf("pausing a paused rollout: %v", err)
	}

	// Resumed, the healthy and soaked batch 1 releases batch 2, whose device moves from the
	// held director to the group's without a rollback.
	r, err := e.admin.ResumeRollout(e.ctx, e.srv.TenantID, dep.ID)
	if err != nil || r.State != v1.RolloutRunning || r.Batch != 2 || r.Batches[1].Released != 1 {
		t.Fatalf("resume: %+v %v", r, err)
	}
	if released = e.offers(img2, img1); len(released) != 2 {
		t.Fatalf("%d devices offered the new release in batch 2, want 2", len(released))
	}

	// A check-in of the healthy batch 2 after its soak releases batch 3.
	checkInReleased()
	e.clock.Add(soak + time.Second)
	checkInReleased()
	if r := e.rollout(dep.ID); r.Batch != 3 || r.Batches[2].Released != 1 {
		t.Fatalf("rollout after batch 2 soaked: %+v", r)
	}
	if released = e.offers(img2, img1); len(released) != 3 {
		t.Fatalf("%d devices offered the new release in batch 3, want 3", len(released))
	}
	checkInReleased()
	e.clock.Add(soak + time.Second)
	checkInReleased()
	if r := e.rollout(dep.ID); r.State != v1.RolloutCompleted || r.Succeeded != 3 {
		t.Fatalf("rollout after batch 3 soaked: %+v", r)
	}
	if got := e.offers(img2, img1); len(got) != 3 {
		t.Fatalf("%d devices offered the new release after completion", len(got))
	}
	e.audited(dep.ID, "deployment.create", "rollout.pause", "rollout.resume", "rollout.advance", "rollout.complete")
}

func TestE2ERolloutAbortsOnCrashes(t *testing.T) {
	e := start(t, 3)
	b1, b2 := apps(t)
	img1, img2 := e.upload(b1), e.upload(b2)
	prev := e.deploy(img1, nil)
	e.offers(img1, img2)

	const soak = 10 * time.Minute
	dep := e.deploy(img2, &v1.RolloutPolicy{Batches: []v1.RolloutBatch{{Count: 1}}, SoakSeconds: int64(soak / time.Second),
		Abort: &v1.RolloutAbort{CrashRateRatio: 2, MinCrashes: 3}})
	first := e.offers(img2, img1)
	if len(first) != 1 {
		t.Fatalf("%d devices offered the new release in batch 1, want 1", len(first))
	}
	bad := first[0]
	e.checkIn(bad, img2)
	crashes := func(n int) {
		t.Helper()
		var b v1.ReportBatch
		for range n {
			b.Events = append(b.Events, v1.ReportEvent{ID: imagepkgtest.NewUUID(t), Type: v1.EventAppCrash, Time: e.clock.Now(),
				ComponentID: img2.ComponentID, ImageID: img2.ID, Signal: 11})
		}
		if _, err := bad.cc.UploadReports(e.ctx, b); err != nil {
			t.Fatal(err)
		}
	}

	// Below the minimum sample, nothing happens.
	e.clock.Add(soak + time.Minute)
	crashes(2)
	if r := e.rollout(dep.ID); r.State != v1.RolloutRunning || r.NewCrashes != 2 {
		t.Fatalf("rollout below the minimum sample: %+v", r)
	}
	// The third crash aborts it, and the group returns to the previous release.
	crashes(1)
	r := e.rollout(dep.ID)
	if r.State != v1.RolloutAborted || r.RevertDeploymentID == "" || r.NewCrashes != 3 {
		t.Fatalf("rollout after the crashes: %+v", r)
	}
	revert, err := e.admin.GetDeployment(e.ctx, e.srv.TenantID, r.RevertDeploymentID)
	if err != nil || len(revert.ImageIDs) != 1 || revert.ImageIDs[0] != img1.ID {
		t.Fatalf("revert deployment: %+v %v", revert, err)
	}
	if got := e.offers(img1, img2); len(got) != 3 {
		t.Fatalf("%d devices offered the previous release after the abort, want 3", len(got))
	}
	for _, d := range e.devs {
		if got := e.checkIn(d, img1); got != revert.ID {
			t.Errorf("device %s checks in on deployment %s after the abort, want %s", d.id, got, revert.ID)
		}
	}
	if _, err := e.admin.AbortRollout(e.ctx, e.srv.TenantID, dep.ID); !client.HasCode(err, v1.CodeConflict) {
		t.Fatalf("aborting an aborted rollout: %v", err)
	}
	if r.PreviousDeploymentID != prev.ID {
		t.Errorf("previous deployment %s, want %s", r.PreviousDeploymentID, prev.ID)
	}
	e.audited(dep.ID, "rollout.abort")
}
