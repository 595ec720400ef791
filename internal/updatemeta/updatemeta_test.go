package updatemeta

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/internal/keyseal"
	"github.com/rampart-iot/rampart/internal/store"
	"github.com/rampart-iot/rampart/internal/store/storetest"
	"github.com/rampart-iot/rampart/internal/tufclient"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type fixture struct {
	t     testing.TB
	ctx   context.Context
	st    store.Store
	svc   *Service
	clock *clock
	n     int
	// override serves a body instead of the store's, by "repository/name".
	override map[string][]byte
}

const tenant = "tenant-a"

func newFixture(t testing.TB) *fixture {
	st := storetest.Open(t, "sqlite", storetest.SQLiteDSN(t))
	sealer, err := keyseal.New(bytes.Repeat([]byte{7}, 32), nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{t: time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)}
	f := &fixture{t: t, ctx: t.Context(), st: st, svc: New(Config{Sealer: sealer, Now: c.now}), clock: c}
	must(t, st.CreateTenant(f.ctx, store.Tenant{ID: tenant, Name: "Contoso", CreatedAt: c.now()}))
	must(t, st.CreateProduct(f.ctx, store.Product{ID: "prod", TenantID: tenant, Name: "Thermostat", CreatedAt: c.now(), UpdatedAt: c.now()}))
	return f
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) group(id string) {
	must(f.t, f.st.CreateDeviceGroup(f.ctx, store.DeviceGroup{ID: id, TenantID: tenant, ProductID: "prod", Name: id,
		OSFeed: store.OSFeedRetail, UpdatePolicy: store.UpdateAll, CreatedAt: f.clock.now(), UpdatedAt: f.clock.now()}))
}

func uuid(n int, salt byte) string {
	return fmt.Sprintf("%08x-0000-4000-8000-%012x", int(salt)<<16|n, n)
}

// image adds an image of kind and publishes the image repository, as manage does.
func (f *fixture) image(kind, version string) store.Image {
	return f.imageWith(kind, version, nil)
}

// imageWith is image with the package's metadata as the upload stored it.
func (f *fixture) imageWith(kind, version string, metadata []byte) store.Image {
	f.n++
	sum := sha256.Sum256([]byte(fmt.Sprint(f.n)))
	img := store.Image{ID: uuid(f.n, 1), TenantID: tenant, ComponentID: uuid(f.n, 2), Kind: kind, Name: "img",
		Version: version, PayloadSHA256: hex.EncodeToString(sum[:]), PayloadSize: 10, PackageSHA256: hex.EncodeToString(sum[:]),
		PackageSize: int64(100 + f.n), UploadedBy: "u", CreatedAt: f.clock.now(), Metadata: metadata}
	must(f.t, f.st.Update(f.ctx, func(tx store.Tx) error {
		if err := tx.CreateImage(f.ctx, img); err != nil {
			return err
		}
		return f.svc.PublishImages(f.ctx, tx, tenant)
	}))
	return img
}

func (f *fixture) deploy(group string, images ...store.Image) error {
	ids := []string{}
	for _, img := range images {
		ids = append(ids, img.ID)
	}
	return f.st.Update(f.ctx, func(tx store.Tx) error {
		f.n++
		id := fmt.Sprintf("01900000-0000-7000-8000-%012x", f.n)
		if err := tx.CreateDeployment(f.ctx, store.Deployment{ID: id, TenantID: tenant, DeviceGroupID: group, ImageIDs: ids,
			CreatedBy: "u", CreatedAt: f.clock.now()}); err != nil {
			return err
		}
		return f.svc.PublishDirector(f.ctx, tx, tenant, group)
	})
}

// fetcher serves a group's metadata straight from the store, as the device endpoint does.
type fetcher struct {
	f     *fixture
	group string
}

func (x fetcher) Fetch(ctx context.Context, repo tufclient.Repo, name string, max int64) (io.ReadCloser, error) {
	r := store.TUFImages
	if repo == tufclient.Director {
		r = DirectorRepository(x.group)
	}
	if b, ok := x.f.override[r+"/"+name]; ok {
		return io.NopCloser(bytes.NewReader(b)), nil
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

// device is a device of group that first trusted rootGroup's director (normally the same).
func (f *fixture) device(group, rootGroup string, now func() time.Time) *tufclient.Client {
	f.t.Helper()
	dirRoot, err := File(f.ctx, f.st, tenant, DirectorRepository(rootGroup), "1.root.json")
	must(f.t, err)
	imgRoot, err := File(f.ctx, f.st, tenant, store.TUFImages, "1.root.json")
	must(f.t, err)
	c, err := tufclient.New(tufclient.Config{Dir: f.t.TempDir(), Fetcher: fetcher{f, group}, Now: now,
		DirectorRoot: dirRoot, ImageRoot: imgRoot})
	must(f.t, err)
	return c
}

func ids(ts []tufclient.Target) []string {
	out := []string{}
	for _, t := range ts {
		out = append(out, t.ImageID)
	}
	return out
}

func TestPublishedMetadataVerifiesOnTheDevice(t *testing.T) {
	f := newFixture(t)
	f.group("g1")
	app, osImg, other := f.image(store.ImageApplication, "1.0.0"), f.image(store.ImageOS, "2.0.0"), f.image(store.ImageApplication, "3.0.0")
	must(t, f.deploy("g1", app, osImg))
	dev := f.device("g1", "g1", f.clock.now)
	got, err := dev.Refresh(f.ctx)
	must(t, err)
	want := []string{app.ID, osImg.ID}
	if app.ComponentID > osImg.ComponentID {
		want = []string{osImg.ID, app.ID}
	}
	if fmt.Sprint(ids(got)) != fmt.Sprint(want) {
		t.Fatalf("targets %v, want the deployment %v (not %s)", ids(got), want, other.ID)
	}
	for _, tg := range got {
		img := app
		if tg.ImageID == osImg.ID {
			img = osImg
		}
		if tg.SHA256 != img.PackageSHA256 || tg.Length != img.PackageSize || tg.Version != img.Version || string(tg.Kind) != img.Kind {
			t.Errorf("target %+v does not describe image %+v", tg, img)
		}
	}

	// A new deployment moves the device to it.
	must(t, f.deploy("g1", other))
	got, err = dev.Refresh(f.ctx)
	must(t, err)
	if fmt.Sprint(ids(got)) != fmt.Sprint([]string{other.ID}) {
		t.Fatalf("after the new deployment: %v", ids(got))
	}

	// The update policy applies at delivery: No3rdPartyAppUpdates gets OS images only.
	must(t, f.st.Update(f.ctx, func(tx store.Tx) error {
		g, err := tx.GetDeviceGroup(f.ctx, tenant, "g1")
		if err != nil {
			return err
		}
		g.UpdatePolicy = store.No3rdPartyAppUpdates
		if err := tx.UpdateDeviceGroup(f.ctx, g); err != nil {
			return err
		}
		return nil
	}))
	must(t, f.deploy("g1", app, osImg))
	got, err = dev.Refresh(f.ctx)
	must(t, err)
	if fmt.Sprint(ids(got)) != fmt.Sprint([]string{osImg.ID}) {
		t.Fatalf("No3rdPartyAppUpdates delivered %v, want only the OS image %s", ids(got), osImg.ID)
	}
}

func TestAnotherGroupsDirectorIsRefused(t *testing.T) {
	f := newFixture(t)
	f.group("g1")
	f.group("g2")
	a, b := f.image(store.ImageApplication, "1.0.0"), f.image(store.ImageApplication, "1.0.0")
	must(t, f.deploy("g1", a))
	must(t, f.deploy("g2", b))
	// A device that trusts g1's director, served g2's (a misrouted or malicious server).
	dev := f.device("g2", "g1", f.clock.now)
	if got, err := dev.Refresh(f.ctx); err == nil {
		t.Fatalf("a device of group g1 accepted group g2's director: %v", ids(got))
	}
}

func TestRenewKeepsAFleetFromFreezing(t *testing.T) {
	f := newFixture(t)
	f.group("g1")
	a := f.image(store.ImageApplication, "1.0.0")
	must(t, f.deploy("g1", a))
	before, err := f.st.GetTUFMetadata(f.ctx, tenant, DirectorRepository("g1"), store.TUFTimestamp, 0)
	must(t, err)
	if n, err := f.svc.RenewAll(f.ctx, f.st, 100); err != nil || n != 0 {
		t.Fatalf("RenewAll on fresh metadata renewed %d: %v", n, err)
	}

	// 13 hours on, less than half the timestamp's day is left: both repositories renew.
	f.clock.add(13 * time.Hour)
	n, err := f.svc.RenewAll(f.ctx, f.st, 100)
	must(t, err)
	if n != 2 {
		t.Fatalf("renewed %d repositories, want 2 (images and the director)", n)
	}
	after, err := f.st.GetTUFMetadata(f.ctx, tenant, DirectorRepository("g1"), store.TUFTimestamp, 0)
	must(t, err)
	if after.Version != before.Version+1 || !after.ExpiresAt.After(before.ExpiresAt) {
		t.Fatalf("timestamp %d (expires %s) after renewal of %d (expires %s)", after.Version, after.ExpiresAt, before.Version, before.ExpiresAt)
	}
	// A device whose clock is past the old timestamp's expiry still updates.
	late := func() time.Time { return before.ExpiresAt.Add(time.Hour) }
	got, err := f.device("g1", "g1", late).Refresh(f.ctx)
	must(t, err)
	if fmt.Sprint(ids(got)) != fmt.Sprint([]string{a.ID}) {
		t.Fatalf("targets %v", ids(got))
	}
	// Without renewal, that device would refuse: prove the check bites.
	f.clock.add(48 * time.Hour)
	stale := func() time.Time { return f.clock.now().Add(72 * time.Hour) }
	if _, err := f.device("g1", "g1", stale).Refresh(f.ctx); tufclient.ReasonOf(err) == "" {
		t.Fatalf("expired metadata was accepted: %v", err)
	}
}

func TestRootKeyOffline(t *testing.T) {
	f := newFixture(t)
	f.group("g1")
	f.group("g2")
	a := f.image(store.ImageApplication, "1.0.0")
	must(t, f.deploy("g1", a))

	var exported []byte
	must(t, f.st.Update(f.ctx, func(tx store.Tx) error {
		var err error
		exported, err = f.svc.ExportRoot(f.ctx, tx, tenant, "")
		return err
	}))
	keys, err := f.st.ListSigningKeys(f.ctx, tenant, KeyRoot)
	must(t, err)
	if len(keys) != 1 || keys[0].KeyCiphertext != nil || len(keys[0].PublicDER) == 0 {
		t.Fatalf("after export the store holds %+v", keys)
	}
	// Existing repositories go on with their online keys.
	b := f.image(store.ImageApplication, "1.0.0")
	must(t, f.deploy("g1", b))
	// A new repository needs the root key.
	err = f.deploy("g2", a)
	if !errors.Is(err, ErrRootOffline) || !errors.Is(err, store.ErrConflict) {
		t.Fatalf("a new group's first deployment with the root offline: %v", err)
	}
	if _, err := f.st.CurrentDeployment(f.ctx, tenant, "g2"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the refused deployment was half-applied: %v", err)
	}
	// Another key is not the root key.
	wrong := pemKey(t)
	err = f.st.Update(f.ctx, func(tx store.Tx) error { return f.svc.ImportRoot(f.ctx, tx, tenant, wrong) })
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("importing another key: %v", err)
	}
	if err := f.st.Update(f.ctx, func(tx store.Tx) error { return f.svc.ImportRoot(f.ctx, tx, tenant, []byte("junk")) }); err == nil {
		t.Fatal("importing junk passed")
	}
	must(t, f.st.Update(f.ctx, func(tx store.Tx) error { return f.svc.ImportRoot(f.ctx, tx, tenant, exported) }))
	must(t, f.deploy("g2", a))
	if err := f.st.Update(f.ctx, func(tx store.Tx) error { return f.svc.ImportRoot(f.ctx, tx, tenant, exported) }); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("importing an online key again: %v", err)
	}
	// The same root key signs both groups' roots.
	got, err := f.device("g2", "g2", f.clock.now).Refresh(f.ctx)
	must(t, err)
	if fmt.Sprint(ids(got)) != fmt.Sprint([]string{a.ID}) {
		t.Fatalf("targets %v", ids(got))
	}
}

func TestFileNames(t *testing.T) {
	f := newFixture(t)
	f.group("g1")
	must(t, f.deploy("g1", f.image(store.ImageOS, "1.0.0")))
	for _, name := range []string{"root.json", "1.root.json", "timestamp.json", "2.snapshot.json", "2.targets.json"} {
		if _, err := File(f.ctx, f.st, tenant, DirectorRepository("g1"), name); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	for _, name := range []string{"", "x", "0.root.json", "01.root.json", "2.root.json", "-1.targets.json", "9.snapshot.json",
		"1.timestamp.json", "1.targets.json.bak", "../root.json", "99999999999999999999.root.json"} {
		if _, err := File(f.ctx, f.st, tenant, DirectorRepository("g1"), name); !errors.Is(err, ErrNoFile) {
			t.Errorf("%q: %v, want ErrNoFile", name, err)
		}
	}
	if _, err := File(f.ctx, f.st, "tenant-b", DirectorRepository("g1"), "root.json"); !errors.Is(err, ErrNoFile) {
		t.Errorf("another tenant's repository: %v", err)
	}
}

func pemKey(t *testing.T) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	der, err := x509.MarshalPKCS8PrivateKey(k)
	must(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func TestGroupsFollowTheirFeed(t *testing.T) {
	f := newFixture(t)
	f.group("retail")
	must(t, f.st.CreateDeviceGroup(f.ctx, store.DeviceGroup{ID: "eval", TenantID: tenant, ProductID: "prod", Name: "eval",
		OSFeed: store.OSFeedRetailEval, UpdatePolicy: store.UpdateAll, CreatedAt: f.clock.now(), UpdatedAt: f.clock.now()}))
	osImg := f.image(store.ImageOS, "5.0.0")
	must(t, f.st.CreateOSRelease(f.ctx, store.OSRelease{ID: "rel-5", TenantID: tenant, Version: "5.0.0",
		Measurements: map[string]string{"os-bundle": osImg.PackageSHA256}, Feed: store.FeedUnpublished, ImageID: osImg.ID,
		CreatedBy: "u", CreatedAt: f.clock.now()}))
	publishAll := func() {
		t.Helper()
		must(t, f.st.Update(f.ctx, func(tx store.Tx) error {
			for _, g := range []string{"retail", "eval"} {
				if err := f.svc.PublishDirector(f.ctx, tx, tenant, g); err != nil {
					return err
				}
			}
			return nil
		}))
	}
	hasDirector := func(g string) bool {
		_, err := File(f.ctx, f.st, tenant, DirectorRepository(g), "1.root.json")
		return err == nil
	}
	publishAll() // unpublished: no group gets it
	if hasDirector("retail") || hasDirector("eval") {
		t.Fatal("an unpublished release made a director")
	}
	must(t, f.st.SetOSReleaseFeed(f.ctx, tenant, "rel-5", store.OSFeedRetailEval))
	publishAll()
	if hasDirector("retail") {
		t.Fatal("a RetailEval release reached a Retail group")
	}
	got, err := f.device("eval", "eval", f.clock.now).Refresh(f.ctx)
	must(t, err)
	if fmt.Sprint(ids(got)) != fmt.Sprint([]string{osImg.ID}) {
		t.Fatalf("the RetailEval group's targets: %v", ids(got))
	}
	must(t, f.st.SetOSReleaseFeed(f.ctx, tenant, "rel-5", store.OSFeedRetail))
	publishAll()
	got, err = f.device("retail", "retail", f.clock.now).Refresh(f.ctx)
	must(t, err)
	if fmt.Sprint(ids(got)) != fmt.Sprint([]string{osImg.ID}) {
		t.Fatalf("the Retail group's targets after publishing to Retail: %v", ids(got))
	}
	// A deployment that names an OS image overrides the feed.
	other := f.image(store.ImageOS, "4.0.0")
	must(t, f.deploy("retail", other))
	got, err = f.device("retail", "retail", f.clock.now).Refresh(f.ctx)
	must(t, err)
	if fmt.Sprint(ids(got)) != fmt.Sprint([]string{other.ID}) {
		t.Fatalf("a deployment's OS image did not override the feed: %v", ids(got))
	}
}

// An OS image's golden measurement and security version reach the device in the signed
// targets, from the metadata the upload verified.
func TestOSTargetsCarryMeasurementAndSecurityVersion(t *testing.T) {
	f := newFixture(t)
	f.group("retail")
	golden := strings.Repeat("ab", 32)
	img := f.imageWith(store.ImageOS, "6.0.0", []byte(`{"measurements":{"os-bundle":"`+golden+`"},"security_version":3}`))
	must(t, f.deploy("retail", img))
	got, err := f.device("retail", "retail", f.clock.now).Refresh(f.ctx)
	must(t, err)
	if len(got) != 1 || got[0].Measurement != golden || got[0].SecurityVersion != 3 {
		t.Fatalf("targets %+v", got)
	}
}
