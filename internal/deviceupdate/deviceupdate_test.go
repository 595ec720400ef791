package deviceupdate_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/client"
	"github.com/rampart-iot/rampart/imagepkg/imagepkgtest"
	"github.com/rampart-iot/rampart/internal/appinstall"
	"github.com/rampart-iot/rampart/internal/bootctl"
	"github.com/rampart-iot/rampart/internal/checkinclient"
	"github.com/rampart-iot/rampart/internal/deferral"
	"github.com/rampart-iot/rampart/internal/deviceupdate"
	"github.com/rampart-iot/rampart/internal/osupdate"
	"github.com/rampart-iot/rampart/internal/server/servertest"
)

type fleet struct {
	t     *testing.T
	ctx   context.Context
	srv   *servertest.Server
	admin *client.Client
	group string
}

func newFleet(t *testing.T) *fleet {
	ctx := t.Context()
	srv := servertest.Start(t, servertest.AllowSoftwareRootOfTrust(true))
	admin := srv.Client(t, srv.AdminToken)
	prod, err := admin.CreateProduct(ctx, srv.TenantID, v1.ProductCreate{Name: "Lamp"})
	if err != nil {
		t.Fatal(err)
	}
	g, err := admin.CreateDeviceGroup(ctx, srv.TenantID, prod.ID, v1.DeviceGroupCreate{Name: "Field"})
	if err != nil {
		t.Fatal(err)
	}
	return &fleet{t: t, ctx: ctx, srv: srv, admin: admin, group: g.ID}
}

func (f *fleet) upload(b imagepkgtest.Built) *v1.Image {
	f.t.Helper()
	img, err := f.admin.AddImage(f.ctx, f.srv.TenantID, bytes.NewReader(b.Bytes), -1, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	return img
}

func (f *fleet) deploy(imgs ...*v1.Image) {
	f.t.Helper()
	var ids []string
	for _, i := range imgs {
		ids = append(ids, i.ID)
	}
	if _, err := f.admin.CreateDeployment(f.ctx, f.srv.TenantID, f.group, v1.DeploymentCreate{ImageIDs: ids}); err != nil {
		f.t.Fatal(err)
	}
}

type device struct {
	dir     string
	client  *checkinclient.Client
	apps    *appinstall.Apps
	id      string
	applied atomic.Int32
}

func (f *fleet) device() *device {
	d := f.srv.AttestedDevice(f.t, f.admin, f.srv.TenantID, f.group)
	apps, err := appinstall.Open(appinstall.Config{Dir: filepath.Join(d.Dir, "apps")})
	if err != nil {
		f.t.Fatal(err)
	}
	return &device{dir: d.Dir, id: d.ID, apps: apps,
		client: &checkinclient.Client{Server: f.srv.URL, RootCAs: d.RootCAs, CertDir: d.Dir}}
}

func (d *device) loop(t *testing.T, development bool, mod func(*deviceupdate.Config)) *deviceupdate.Loop {
	cfg := deviceupdate.Config{Client: d.client, Dir: filepath.Join(d.dir, "update-loop"), Apps: d.apps,
		AgentVersion: "1.0.0", Development: development, Applied: func(context.Context) { d.applied.Add(1) }}
	if mod != nil {
		mod(&cfg)
	}
	l, err := deviceupdate.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func (d *device) current(t *testing.T, component string) string {
	t.Helper()
	in, ok := d.apps.Get(component)
	if !ok {
		return ""
	}
	return in.Current.ID
}

func TestApplicationsFollowDeployments(t *testing.T) {
	f := newFleet(t)
	dev := f.device()
	comp := imagepkgtest.NewUUID(t)
	v1pkg := imagepkgtest.Application(t, imagepkgtest.App{ComponentID: comp, Name: "lamp", Version: "1.0.0"})
	img1 := f.upload(v1pkg)
	f.deploy(img1)

	// A production device refuses images signed only with the development key.
	prod := dev.loop(t, false, nil)
	if _, err := prod.Once(f.ctx); err == nil || !strings.Contains(err.Error(), "development") {
		t.Fatalf("a production device took a development image: %v", err)
	}
	if cur := dev.current(t, comp); cur != "" {
		t.Fatalf("installed %s on a production device", cur)
	}

	// A development device installs it, and reports it at its next check-in.
	l := dev.loop(t, true, nil)
	if _, err := l.Once(f.ctx); err != nil {
		t.Fatal(err)
	}
	if cur := dev.current(t, comp); cur != img1.ID {
		t.Fatalf("current image %q, want %s", cur, img1.ID)
	}
	if dev.applied.Load() != 1 {
		t.Fatalf("Applied called %d times, want 1", dev.applied.Load())
	}
	if _, err := l.Once(f.ctx); err != nil { // nothing new: nothing installed again
		t.Fatal(err)
	}
	if dev.applied.Load() != 1 {
		t.Fatalf("Applied called %d times after a cycle with nothing new", dev.applied.Load())
	}
	d, err := f.admin.GetDevice(f.ctx, f.srv.TenantID, dev.id)
	if err != nil {
		t.Fatal(err)
	}
	if d.Status == nil || len(d.Status.Report.Images) != 1 || d.Status.Report.Images[0].ImageID != img1.ID {
		t.Fatalf("device show after the install: %+v", d.Status)
	}

	// Version 2, side by side: v1 stays as the previous image.
	img2 := f.upload(imagepkgtest.Application(t, imagepkgtest.App{ComponentID: comp, Name: "lamp", Version: "2.0.0"}))
	f.deploy(img2)
	if _, err := l.Once(f.ctx); err != nil {
		t.Fatal(err)
	}
	in, _ := dev.apps.Get(comp)
	if in.Current.ID != img2.ID || in.Previous == nil || in.Previous.ID != img1.ID {
		t.Fatalf("after v2: %+v", in)
	}
	root, ok := dev.apps.Path(img2.ID)
	if !ok {
		t.Fatal("no path for v2")
	}
	if b, err := os.ReadFile(filepath.Join(root, "bin", "app")); err != nil || !strings.Contains(string(b), "2.0.0") {
		t.Fatalf("v2's files: %q %v", b, err)
	}

	// The push channel: Run picks up a new deployment without waiting for the interval (an
	// hour by default).
	ctx, cancel := context.WithCancel(f.ctx)
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	defer func() { cancel(); <-done }()
	img3 := f.upload(imagepkgtest.Application(t, imagepkgtest.App{ComponentID: comp, Name: "lamp", Version: "3.0.0"}))
	waitFor(t, func() bool { return l.Status().DeploymentID != "" })
	f.deploy(img3)
	waitFor(t, func() bool { return dev.current(t, comp) == img3.ID })
}

func TestOSUpdateThroughTheLoop(t *testing.T) {
	f := newFleet(t)
	dev := f.device()
	bootDir := filepath.Join(dev.dir, "boot")
	boot, err := bootctl.OpenDir(bootDir)
	if err != nil {
		t.Fatal(err)
	}
	osComp := imagepkgtest.NewUUID(t)
	if err := boot.Provision(f.ctx, bootctl.SlotInfo{Version: "1.0.0"}, func(dir string) error {
		return os.WriteFile(filepath.Join(dir, "kernel"), []byte("os 1"), 0o644)
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := boot.Boot(f.ctx); err != nil {
		t.Fatal(err)
	}
	var reboots atomic.Int32
	l := dev.loop(t, true, func(c *deviceupdate.Config) {
		c.Boot = boot
		c.Reboot = func() { reboots.Add(1) }
	})
	healthy := atomic.Bool{}
	m, err := osupdate.Open(osupdate.Config{Dir: filepath.Join(dev.dir, "os-update"), Boot: boot, Client: dev.client.HTTPClient(),
		Source: l, Verifier: l, Sink: osupdate.SinkFunc(func(context.Context, osupdate.Event) error { return nil }),
		Health: osupdate.HealthFunc(func(context.Context) error {
			if healthy.Load() {
				return nil
			}
			return osupdate.ErrUnhealthy
		})})
	if err != nil {
		t.Fatal(err)
	}
	l.SetOS(m)

	os2 := f.upload(imagepkgtest.OS(t, osComp, "2.0.0", map[string]string{"kernel": "os 2"}, nil))
	f.deploy(os2)
	if _, err := l.Once(f.ctx); err != nil {
		t.Fatal(err)
	}
	if reboots.Load() != 1 {
		t.Fatalf("reboots %d, want 1 (the trial boot of OS 2)", reboots.Load())
	}
	st, err := boot.State(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Trial != bootctl.B || st.Slots[bootctl.B].Version != "2.0.0" {
		t.Fatalf("boot state after installing OS 2: %+v", st)
	}
	// The check-in reports the slots and the update in flight.
	if _, err := l.Once(f.ctx); err != nil {
		t.Fatal(err)
	}
	d, err := f.admin.GetDevice(f.ctx, f.srv.TenantID, dev.id)
	if err != nil {
		t.Fatal(err)
	}
	if d.Status == nil || d.Status.Report.OS == nil || d.Status.Report.OS.Trial != "b" || d.Status.Report.Update == nil ||
		d.Status.Report.Update.Version != "2.0.0" {
		t.Fatalf("device show during the trial: %+v", d.Status)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 30 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// attacker sits between the device and the service: it records every metadata file it sees
// and, once armed, answers with the recorded (older) copy instead of the service's.
type attacker struct {
	base     http.RoundTripper
	mu       sync.Mutex
	seen     map[string][]byte
	replay   bool
	replayed atomic.Int32
}

func (a *attacker) RoundTrip(r *http.Request) (*http.Response, error) {
	isMeta := strings.HasPrefix(r.URL.Path, "/v1/device/metadata/")
	a.mu.Lock()
	old, have := a.seen[r.URL.Path]
	replay := a.replay && isMeta && have
	a.mu.Unlock()
	if replay {
		a.replayed.Add(1)
		return &http.Response{StatusCode: 200, Status: "200 OK", Header: http.Header{}, Request: r,
			Body: io.NopCloser(bytes.NewReader(old)), ContentLength: int64(len(old))}, nil
	}
	resp, err := a.base.RoundTrip(r)
	if err != nil || !isMeta || resp.StatusCode != 200 {
		return resp, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	if _, ok := a.seen[r.URL.Path]; !ok {
		a.seen[r.URL.Path] = b
	}
	a.mu.Unlock()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return resp, nil
}

// TestReplayedDeploymentIsRefused replays the metadata of an earlier deployment to a device
// that has seen a newer one: the device refuses it as a rollback and installs nothing.
func TestReplayedDeploymentIsRefused(t *testing.T) {
	f := newFleet(t)
	dev := f.device()
	mitm := &attacker{seen: map[string][]byte{}}
	dev.client.Wrap = func(base http.RoundTripper) http.RoundTripper { mitm.base = base; return mitm }
	l := dev.loop(t, true, nil)
	comp := imagepkgtest.NewUUID(t)
	v1img := f.upload(imagepkgtest.Application(t, imagepkgtest.App{ComponentID: comp, Name: "lamp", Version: "1.0.0"}))
	f.deploy(v1img)
	if _, err := l.Once(f.ctx); err != nil { // the attacker records deployment 1's metadata
		t.Fatal(err)
	}
	v2img := f.upload(imagepkgtest.Application(t, imagepkgtest.App{ComponentID: comp, Name: "lamp", Version: "2.0.0"}))
	f.deploy(v2img)
	if _, err := l.Once(f.ctx); err != nil { // timestamp.json is the same path: the device now trusts the newer one
		t.Fatal(err)
	}
	if dev.current(t, comp) != v2img.ID {
		t.Fatal("v2 was not installed")
	}
	mitm.mu.Lock()
	mitm.replay = true
	mitm.mu.Unlock()
	_, err := l.Once(f.ctx)
	if mitm.replayed.Load() == 0 {
		t.Fatal("the attacker replayed nothing")
	}
	if err == nil || l.Status().Reason != "rollback" {
		t.Fatalf("a replayed deployment: error %v, reason %q; want a rollback refusal", err, l.Status().Reason)
	}
	if dev.current(t, comp) != v2img.ID {
		t.Fatal("the replay changed the installed application")
	}
}

// An application that defers an update holds it back, within the cap, and the service hears
// of it; a resume installs it at once. The cap counts from when the loop first saw the
// update, also in a new loop (after a restart).
func TestDeferredUpdates(t *testing.T) {
	f := newFleet(t)
	dev := f.device()
	comp := imagepkgtest.NewUUID(t)
	img1 := f.upload(imagepkgtest.Application(t, imagepkgtest.App{ComponentID: comp, Name: "lamp", Version: "1.0.0"}))
	f.deploy(img1)
	// The coordinator's clock runs ahead of the loop's by skew: the loop's clock also checks
	// the update metadata's expiry, which a jump of days would fail.
	var mu sync.Mutex
	var skew time.Duration
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return time.Now().Add(skew)
	}
	coord := deferral.New(deferral.Config{Now: clock, Grace: time.Minute})
	unregister := coord.Register("the-app", true)
	defer unregister()
	mk := func() *deviceupdate.Loop {
		return dev.loop(t, true, func(c *deviceupdate.Config) { c.Deferral = coord })
	}
	// The app defers whatever is announced by 30 minutes, each time it is announced.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		var seq uint64
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, e := range coord.Events(context.Background(), seq, 50*time.Millisecond) {
				seq = e.Seq
				if e.Status == deferral.StatusPending {
					if _, err := coord.Defer("the-app", e.Type, 30); err != nil {
						t.Error(err)
					}
				}
			}
		}
	}()
	l := mk()
	next, err := l.Once(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cur := dev.current(t, comp); cur != "" {
		t.Fatalf("installed %s while the app defers it", cur)
	}
	if next > 30*time.Minute || next < 29*time.Minute {
		t.Fatalf("the loop looks again in %v, want when the deferral ends (30 minutes)", next)
	}
	st := l.Status()
	if len(st.Deferred) != 1 || st.Deferred[0].UpdateType != "App" || st.Deferred[0].Until.Sub(st.Deferred[0].FirstSeen) > 31*time.Minute {
		t.Fatalf("status: %+v", st.Deferred)
	}
	// The service sees the deferral in the device's report.
	d, err := f.admin.GetDevice(f.ctx, f.srv.TenantID, dev.id)
	if err != nil {
		t.Fatal(err)
	}
	if d.Status == nil || len(d.Status.Report.Deferred) != 1 || d.Status.Report.Deferred[0].UpdateType != "App" {
		t.Fatalf("the service's view of the device: %+v", d.Status)
	}

	// A restarted loop keeps the first sighting: 100 hours later the app still defers it,
	// and at 167 hours the cap ends the deferral and the update installs.
	mu.Lock()
	skew = 100 * time.Hour
	mu.Unlock()
	l = mk()
	if _, err := l.Once(f.ctx); err != nil || dev.current(t, comp) != "" {
		t.Fatalf("after 100 hours: %v, current %q", err, dev.current(t, comp))
	}
	if d := l.Status().Deferred; len(d) != 1 || !d[0].FirstSeen.Equal(st.Deferred[0].FirstSeen) {
		t.Fatalf("the restarted loop's deferral %+v does not count from the first sighting %v", d, st.Deferred[0].FirstSeen)
	}
	mu.Lock()
	skew = 167*time.Hour + time.Second
	mu.Unlock()
	if _, err := l.Once(f.ctx); err != nil {
		t.Fatal(err)
	}
	if cur := dev.current(t, comp); cur != img1.ID {
		t.Fatalf("past the 167-hour cap, current %q, want %s", cur, img1.ID)
	}
	if len(l.Status().Deferred) != 0 {
		t.Fatalf("still reported deferred: %+v", l.Status().Deferred)
	}

	// The next update is deferred again, and a resume installs it at once.
	mu.Lock()
	skew = 0
	mu.Unlock()
	img2 := f.upload(imagepkgtest.Application(t, imagepkgtest.App{ComponentID: comp, Name: "lamp", Version: "2.0.0"}))
	f.deploy(img2)
	if _, err := l.Once(f.ctx); err != nil || dev.current(t, comp) != img1.ID {
		t.Fatalf("v2 was not deferred: %v, current %q", err, dev.current(t, comp))
	}
	if err := coord.Resume("the-app", deferral.App); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Once(f.ctx); err != nil {
		t.Fatal(err)
	}
	if cur := dev.current(t, comp); cur != img2.ID {
		t.Fatalf("after the resume, current %q, want %s", cur, img2.ID)
	}
}

// TestPinnedImageRoot: a device shipped with its tenant's image-repository root trusts it on
// first contact; one shipped with another root refuses the service's metadata and installs
// nothing, whatever the service answers.
func TestPinnedImageRoot(t *testing.T) {
	f := newFleet(t)
	comp := imagepkgtest.NewUUID(t)
	img := f.upload(imagepkgtest.Application(t, imagepkgtest.App{ComponentID: comp, Name: "lamp", Version: "1.0.0"}))
	f.deploy(img)
	root, err := f.admin.ImagesRootMetadata(f.ctx, f.srv.TenantID)
	if err != nil {
		t.Fatal(err)
	}
	good := f.device()
	if _, err := good.loop(t, true, func(c *deviceupdate.Config) { c.ImageRoot = root }).Once(f.ctx); err != nil {
		t.Fatalf("with the tenant's own root: %v", err)
	}
	if cur := good.current(t, comp); cur != img.ID {
		t.Fatalf("current %q, want %s", cur, img.ID)
	}

	// Another service's tenant root: the metadata this service signs does not verify.
	other := newFleet(t)
	other.upload(imagepkgtest.Application(t, imagepkgtest.App{Name: "other", Version: "1.0.0"}))
	otherRoot, err := other.admin.ImagesRootMetadata(other.ctx, other.srv.TenantID)
	if err != nil {
		t.Fatal(err)
	}
	bad := f.device()
	_, err = bad.loop(t, true, func(c *deviceupdate.Config) { c.ImageRoot = otherRoot }).Once(f.ctx)
	if err == nil {
		t.Fatal("a device pinned to another root accepted the service's metadata")
	}
	t.Logf("refused as it should be: %v", err)
	if cur := bad.current(t, comp); cur != "" {
		t.Fatalf("the pinned device installed %s", cur)
	}
}
