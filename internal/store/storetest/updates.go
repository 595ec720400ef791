package storetest

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/internal/store"
)

// componentOf returns the UUID of component n.
func componentOf(n int) string { return fmt.Sprintf("c0c0c0c0-0000-4000-8000-%012d", n) }

// imageIDOf returns the UUID of image n.
func imageIDOf(n int) string { return fmt.Sprintf("1a1a1a1a-0000-4000-8000-%012d", n) }

// hexOf returns the lowercase hex SHA-256 of s.
func hexOf(s string) string { return hex.EncodeToString(hashOf(s)) }

// newImage returns image n of a component, to be uploaded by a tenant.
func newImage(tenantID string, component, n int) store.Image {
	id := imageIDOf(n)
	return store.Image{
		ID: id, TenantID: tenantID, ComponentID: componentOf(component), Kind: store.ImageApplication,
		Name: fmt.Sprintf("app-%d", component), Version: fmt.Sprintf("1.%d.0", n),
		PayloadSHA256: hexOf("payload " + id), PayloadSize: int64(1000 + n),
		PackageSHA256: hexOf("package " + id), PackageSize: int64(2000 + n),
		Metadata:   []byte(`{"image_id":"` + id + `","signed":"as is"}`),
		UploadedBy: "user-alice", CreatedAt: at(40 + n),
	}
}

func (w *world) image(tenantID string, component, n int) store.Image {
	w.t.Helper()
	img := newImage(tenantID, component, n)
	must(w.t, w.s.CreateImage(w.ctx, img))
	return img
}

// newDeployment returns deployment n (whose ID is uuid7(n)) of a group.
func newDeployment(tenantID, groupID string, n int, imageIDs ...string) store.Deployment {
	return store.Deployment{ID: uuid7(n), TenantID: tenantID, DeviceGroupID: groupID, ImageIDs: imageIDs,
		CreatedBy: "user-alice", CreatedAt: at(60 + n)}
}

func newSigningKey(tenantID, purpose string, n, created int) store.SigningKey {
	id := hexOf(fmt.Sprint("key ", n))
	return store.SigningKey{ID: id, TenantID: tenantID, Purpose: purpose, PublicDER: []byte("spki " + id),
		KeyCiphertext: []byte("sealed " + id), CreatedAt: at(created)}
}

func imageID(x store.Image) string           { return x.ID }
func deploymentID(x store.Deployment) string { return x.ID }

// images lists every image of a tenant.
func (w *world) images(tenantID string, filter store.ImageFilter) []string {
	w.t.Helper()
	return pageAll(w.t, 100, func(opt store.ListOptions) (store.Page[store.Image], error) {
		return w.s.ListImages(w.ctx, tenantID, filter, opt)
	}, imageID)
}

// current returns the ID of a group's current deployment, or "" if it has none.
func (w *world) current(tenantID, groupID string) string {
	w.t.Helper()
	d, err := w.s.CurrentDeployment(w.ctx, tenantID, groupID)
	if errors.Is(err, store.ErrNotFound) {
		return ""
	}
	must(w.t, err)
	return d.ID
}

func testImages(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	i1 := w.image(w.a.ID, 1, 1)
	i2 := newImage(w.a.ID, 1, 2) // a second image of the component
	i2.Kind, i2.Development, i2.Metadata = store.ImageOS, true, nil
	must(t, s.CreateImage(ctx, i2))
	i3 := newImage(w.a.ID, 2, 3)
	i3.Kind, i3.Metadata, i3.CreatedAt = store.ImageBoardConfig, []byte{}, time.Time{}
	must(t, s.CreateImage(ctx, i3))
	ib := w.image(w.b.ID, 3, 4)

	for _, img := range []store.Image{i1, i2, i3, ib} {
		got, err := s.GetImage(ctx, img.TenantID, img.ID)
		must(t, err)
		eq(t, got, norm(img))
	}
	got, err := s.GetImage(ctx, w.a.ID, i3.ID)
	must(t, err)
	if got.Metadata != nil {
		t.Errorf("empty Metadata came back as %#v", got.Metadata)
	}
	got, err = s.GetImage(ctx, w.a.ID, i1.ID)
	must(t, err)
	eq(t, got.Metadata, i1.Metadata)

	for _, tc := range []struct{ tenant, id string }{
		{w.b.ID, i1.ID}, // another tenant's
		{w.a.ID, ib.ID},
		{w.a.ID, imageIDOf(99)},
		{"tenant-x", i1.ID},
	} {
		_, err := s.GetImage(ctx, tc.tenant, tc.id)
		isErr(t, err, store.ErrNotFound)
	}

	// Image IDs are unique across tenants. A failed upload writes nothing: not even the claim
	// of a new component.
	isErr(t, s.CreateImage(ctx, newImage(w.a.ID, 1, 1)), store.ErrConflict)
	isErr(t, s.CreateImage(ctx, newImage(w.a.ID, 5, 1)), store.ErrConflict)
	isErr(t, s.CreateImage(ctx, newImage(w.b.ID, 3, 1)), store.ErrConflict) // b's component, a's image ID
	isErr(t, s.CreateImage(ctx, newImage(w.b.ID, 6, 2)), store.ErrConflict)
	isErr(t, s.CreateImage(ctx, newImage("tenant-x", 7, 7)), store.ErrNotFound)
	eq(t, w.images(w.a.ID, store.ImageFilter{}), []string{i1.ID, i2.ID, i3.ID})
	eq(t, w.images(w.b.ID, store.ImageFilter{}), []string{ib.ID})
	_, err = s.GetImage(ctx, w.a.ID, i1.ID)
	must(t, err)
	// Components 5, 6 and 7 are free: other tenants claim them.
	w.image(w.b.ID, 5, 5)
	w.image(w.a.ID, 6, 6)
	w.image(w.b.ID, 7, 7)
	eq(t, w.images(w.a.ID, store.ImageFilter{ComponentID: componentOf(6)}), []string{imageIDOf(6)})
	eq(t, w.images(w.b.ID, store.ImageFilter{}), []string{ib.ID, imageIDOf(5), imageIDOf(7)})
}

func testComponentOwnership(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	a1 := w.image(w.a.ID, 1, 1) // the first image claims the component for tenant a
	a2 := w.image(w.a.ID, 1, 2) // which may add more
	a2again := newImage(w.a.ID, 1, 3)
	a2again.Kind, a2again.Version = store.ImageOS, a2.Version // the store checks neither kind nor version
	must(t, s.CreateImage(ctx, a2again))

	// Another tenant is refused, learns nothing about the owner, and nothing is written.
	theft := newImage(w.b.ID, 1, 4)
	err := s.CreateImage(ctx, theft)
	isErr(t, err, store.ErrComponentOwned)
	for _, leak := range []string{w.a.ID, w.a.Name, a1.ID, a2.ID} {
		if strings.Contains(err.Error(), leak) {
			t.Errorf("error %q names %q of the owner", err, leak)
		}
	}
	for _, tenant := range []string{w.a.ID, w.b.ID} {
		_, err := s.GetImage(ctx, tenant, theft.ID)
		isErr(t, err, store.ErrNotFound)
	}
	eq(t, w.images(w.b.ID, store.ImageFilter{}), []string{})
	eq(t, w.images(w.b.ID, store.ImageFilter{ComponentID: componentOf(1)}), []string{})

	// Ownership is checked before the image ID: re-uploading a's package is ErrComponentOwned.
	isErr(t, s.CreateImage(ctx, newImage(w.b.ID, 1, 1)), store.ErrComponentOwned)

	// b owns a component of its own, which a cannot add to either; the refused image ID is
	// free for b's own component.
	w.image(w.b.ID, 2, 4)
	isErr(t, s.CreateImage(ctx, newImage(w.a.ID, 2, 5)), store.ErrComponentOwned)
	w.image(w.b.ID, 2, 5)
	eq(t, w.images(w.a.ID, store.ImageFilter{}), []string{a1.ID, a2.ID, a2again.ID})
	eq(t, w.images(w.b.ID, store.ImageFilter{}), []string{imageIDOf(4), imageIDOf(5)})

	// A failing transaction claims nothing.
	errStop := errors.New("stop")
	err = s.Update(ctx, func(tx store.Tx) error {
		if err := tx.CreateImage(ctx, newImage(w.a.ID, 3, 6)); err != nil {
			return err
		}
		return errStop
	})
	if !errors.Is(err, errStop) {
		t.Fatalf("Update returned %v, want the function's error", err)
	}
	w.image(w.b.ID, 3, 6)
}

func testListImages(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	kinds := []string{store.ImageApplication, store.ImageOS, store.ImageBoardConfig}
	var all []store.Image
	byComponent, byKind, byBoth := map[int][]string{}, map[string][]string{}, map[string][]string{}
	// Created out of ID order: lists are by ID.
	for _, n := range []int{7, 3, 11, 0, 5, 9, 1, 10, 2, 8, 4, 6} {
		img := newImage(w.a.ID, n%3, n)
		img.Kind = kinds[n%2]
		must(t, s.CreateImage(ctx, img))
		all = append(all, img)
		byComponent[n%3] = append(byComponent[n%3], img.ID)
		byKind[img.Kind] = append(byKind[img.Kind], img.ID)
		key := fmt.Sprint(n%3, img.Kind)
		byBoth[key] = append(byBoth[key], img.ID)
	}
	w.image(w.b.ID, 3, 100)
	w.image(w.b.ID, 4, 101)

	p, err := s.ListImages(ctx, w.a.ID, store.ImageFilter{}, store.ListOptions{})
	must(t, err)
	eq(t, keys(p.Items, imageID), sorted(keys(all, imageID)...))
	byID := map[string]store.Image{}
	for _, img := range all {
		byID[img.ID] = img
	}
	for _, got := range p.Items {
		eq(t, got, norm(byID[got.ID]))
	}
	eq(t, p.Next, "")

	for _, tc := range []struct {
		name   string
		tenant string
		filter store.ImageFilter
		want   []string
	}{
		{"all", w.a.ID, store.ImageFilter{}, sorted(keys(all, imageID)...)},
		{"component 0", w.a.ID, store.ImageFilter{ComponentID: componentOf(0)}, sorted(byComponent[0]...)},
		{"component 2", w.a.ID, store.ImageFilter{ComponentID: componentOf(2)}, sorted(byComponent[2]...)},
		{"application", w.a.ID, store.ImageFilter{Kind: store.ImageApplication}, sorted(byKind[store.ImageApplication]...)},
		{"os", w.a.ID, store.ImageFilter{Kind: store.ImageOS}, sorted(byKind[store.ImageOS]...)},
		{"no board configs", w.a.ID, store.ImageFilter{Kind: store.ImageBoardConfig}, []string{}},
		{"component and kind", w.a.ID, store.ImageFilter{ComponentID: componentOf(1), Kind: store.ImageOS},
			sorted(byBoth[fmt.Sprint(1, store.ImageOS)]...)},
		{"other tenant's component", w.a.ID, store.ImageFilter{ComponentID: componentOf(3)}, []string{}},
		{"unknown component", w.a.ID, store.ImageFilter{ComponentID: componentOf(99)}, []string{}},
		{"tenant b", w.b.ID, store.ImageFilter{}, []string{imageIDOf(100), imageIDOf(101)}},
		{"tenant b component", w.b.ID, store.ImageFilter{ComponentID: componentOf(4)}, []string{imageIDOf(101)}},
		{"no tenant", "tenant-x", store.ImageFilter{}, []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, limit := range []int{1, 2, 3, 4, 100} {
				eq(t, pageAll(t, limit, func(opt store.ListOptions) (store.Page[store.Image], error) {
					return s.ListImages(ctx, tc.tenant, tc.filter, opt)
				}, imageID), tc.want)
			}
		})
	}
	p, err = s.ListImages(ctx, w.a.ID, store.ImageFilter{}, store.ListOptions{Limit: 2, After: imageIDOf(4)})
	must(t, err)
	eq(t, keys(p.Items, imageID), []string{imageIDOf(5), imageIDOf(6)})
	if p.Next != imageIDOf(6) {
		t.Errorf("Next = %q, want the last ID of the page", p.Next)
	}
}

// testConcurrentComponentClaims has tenants upload the first image of one component at once:
// exactly one owns it, and the others wrote nothing.
func testConcurrentComponentClaims(t *testing.T, s store.Store) {
	ctx := t.Context()
	const n = 8
	tenant := func(i int) string { return fmt.Sprintf("tenant-%d", i) }
	for i := range n {
		must(t, s.CreateTenant(ctx, store.Tenant{ID: tenant(i), Name: fmt.Sprintf("Tenant %d", i)}))
	}
	for round := range 4 {
		errs := concurrently(t, n, func(ctx context.Context, i int) error {
			return s.CreateImage(ctx, newImage(tenant(i), round, round*n+i))
		})
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil:
				if winner >= 0 {
					t.Errorf("round %d: tenants %d and %d both own the component", round, winner, i)
				}
				winner = i
			case !errors.Is(err, store.ErrComponentOwned):
				t.Errorf("round %d, tenant %d: got %v, want nil or ErrComponentOwned", round, i, err)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no tenant owns the component", round)
		}
		for i := range n {
			p, err := s.ListImages(ctx, tenant(i), store.ImageFilter{ComponentID: componentOf(round)}, store.ListOptions{})
			must(t, err)
			if i == winner {
				eq(t, keys(p.Items, imageID), []string{imageIDOf(round*n + i)})
			} else {
				eq(t, keys(p.Items, imageID), []string{})
			}
		}
		// The owner uploads more images of it at once, all kept.
		errs = concurrently(t, n, func(ctx context.Context, i int) error {
			return s.CreateImage(ctx, newImage(tenant(winner), round, 1000+round*n+i))
		})
		for i, err := range errs {
			if err != nil {
				t.Errorf("round %d: the owner's image %d: %v", round, i, err)
			}
		}
		p, err := s.ListImages(ctx, tenant(winner), store.ImageFilter{ComponentID: componentOf(round)}, store.ListOptions{})
		must(t, err)
		if len(p.Items) != n+1 {
			t.Errorf("round %d: the owner has %d images of the component, want %d", round, len(p.Items), n+1)
		}
	}
}

func testDeployments(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	p := w.product(w.a.ID, "prod-1", "Thermostat")
	g1 := w.group(w.a.ID, p.ID, "group-1", "Field")
	g2 := w.group(w.a.ID, p.ID, "group-2", "Lab")
	pb := w.product(w.b.ID, "prod-2", "Camera")
	gb := w.group(w.b.ID, pb.ID, "group-3", "Field")
	i1, i2, i3 := w.image(w.a.ID, 1, 1), w.image(w.a.ID, 2, 2), w.image(w.a.ID, 3, 3)
	ib := w.image(w.b.ID, 4, 4)

	for _, g := range []store.DeviceGroup{g1, g2, gb} {
		_, err := s.CurrentDeployment(ctx, g.TenantID, g.ID)
		isErr(t, err, store.ErrNotFound)
	}

	// The images come back in the order given, not sorted.
	d1 := newDeployment(w.a.ID, g1.ID, 1, i3.ID, i1.ID, i2.ID)
	must(t, s.CreateDeployment(ctx, d1))
	got, err := s.GetDeployment(ctx, w.a.ID, d1.ID)
	must(t, err)
	eq(t, got, norm(d1))
	eq(t, got.ImageIDs, []string{i3.ID, i1.ID, i2.ID})
	eq(t, w.current(w.a.ID, g1.ID), d1.ID)

	// A deployment of no images is stored, its list read back nil.
	d2 := newDeployment(w.a.ID, g1.ID, 2)
	d2.ImageIDs = []string{}
	must(t, s.CreateDeployment(ctx, d2))
	got, err = s.GetDeployment(ctx, w.a.ID, d2.ID)
	must(t, err)
	d2.ImageIDs = nil
	eq(t, got, norm(d2))
	cur, err := s.CurrentDeployment(ctx, w.a.ID, g1.ID)
	must(t, err)
	eq(t, cur, norm(d2))

	d3 := newDeployment(w.a.ID, g2.ID, 3, i2.ID)
	must(t, s.CreateDeployment(ctx, d3))
	db := newDeployment(w.b.ID, gb.ID, 4, ib.ID)
	must(t, s.CreateDeployment(ctx, db))
	eq(t, w.current(w.a.ID, g1.ID), d2.ID)
	eq(t, w.current(w.a.ID, g2.ID), d3.ID)
	eq(t, w.current(w.b.ID, gb.ID), db.ID)

	// Failures write nothing.
	early := newDeployment(w.a.ID, g2.ID, 0, i1.ID)
	early.ID = "01975f3a-0000-7000-7fff-ffffffffffff" // sorts before every deployment
	for _, bad := range []store.Deployment{
		newDeployment(w.a.ID, g1.ID, 10, i1.ID, ib.ID), // another tenant's image
		newDeployment(w.a.ID, g1.ID, 11, imageIDOf(99)),
		newDeployment(w.a.ID, gb.ID, 12, i1.ID), // another tenant's group
		newDeployment(w.a.ID, "group-x", 13, i1.ID),
		newDeployment("tenant-x", g1.ID, 14),
		newDeployment(w.b.ID, gb.ID, 15, i1.ID),
		newDeployment(w.b.ID, g1.ID, 16, ib.ID),
	} {
		isErr(t, s.CreateDeployment(ctx, bad), store.ErrNotFound)
		for _, tenant := range []string{w.a.ID, w.b.ID} {
			_, err := s.GetDeployment(ctx, tenant, bad.ID)
			isErr(t, err, store.ErrNotFound)
		}
	}
	for _, bad := range []store.Deployment{
		newDeployment(w.a.ID, g1.ID, 2, i1.ID), // the ID of the current deployment
		newDeployment(w.a.ID, g2.ID, 1, i1.ID), // the ID of another group's
		newDeployment(w.b.ID, gb.ID, 1, ib.ID), // IDs are unique across tenants
		newDeployment(w.a.ID, g1.ID, 0, i1.ID), // sorts before the group's current deployment
		early,
	} {
		isErr(t, s.CreateDeployment(ctx, bad), store.ErrConflict)
	}
	for _, tenant := range []string{w.a.ID, w.b.ID} {
		for _, id := range []string{uuid7(0), early.ID} {
			_, err := s.GetDeployment(ctx, tenant, id)
			isErr(t, err, store.ErrNotFound)
		}
	}
	eq(t, w.current(w.a.ID, g1.ID), d2.ID)
	eq(t, w.current(w.a.ID, g2.ID), d3.ID)
	eq(t, w.current(w.b.ID, gb.ID), db.ID)
	for _, d := range []store.Deployment{d1, d3, db} {
		got, err := s.GetDeployment(ctx, d.TenantID, d.ID)
		must(t, err)
		eq(t, got, norm(d))
	}

	// Other tenants' deployments and groups are not found.
	for _, tc := range []struct{ tenant, id string }{{w.b.ID, d1.ID}, {w.a.ID, db.ID}, {"tenant-x", d1.ID}, {w.a.ID, uuid7(99)}} {
		_, err := s.GetDeployment(ctx, tc.tenant, tc.id)
		isErr(t, err, store.ErrNotFound)
	}
	for _, tc := range []struct{ tenant, group string }{{w.b.ID, g1.ID}, {w.a.ID, gb.ID}, {w.a.ID, "group-x"}, {"tenant-x", g1.ID}} {
		_, err := s.CurrentDeployment(ctx, tc.tenant, tc.group)
		isErr(t, err, store.ErrNotFound)
	}

	// A later deployment becomes current. The store keeps the list as given, repeats and all:
	// what a valid list is, the caller decides.
	d5 := newDeployment(w.a.ID, g1.ID, 5, i1.ID, i1.ID, i2.ID)
	must(t, s.CreateDeployment(ctx, d5))
	cur, err = s.CurrentDeployment(ctx, w.a.ID, g1.ID)
	must(t, err)
	eq(t, cur, norm(d5))
	eq(t, w.current(w.a.ID, g2.ID), d3.ID)
	pg, err := s.ListDeployments(ctx, w.a.ID, store.DeploymentFilter{}, store.ListOptions{})
	must(t, err)
	d2.ImageIDs = nil
	eq(t, pg.Items, norm([]store.Deployment{d5, d3, d2, d1}))
	eq(t, pg.Next, "")
}

func testListDeployments(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	p := w.product(w.a.ID, "prod-1", "Thermostat")
	g1 := w.group(w.a.ID, p.ID, "group-1", "Field")
	g2 := w.group(w.a.ID, p.ID, "group-2", "Lab")
	w.group(w.a.ID, p.ID, "group-3", "Empty")
	pb := w.product(w.b.ID, "prod-2", "Camera")
	gb := w.group(w.b.ID, pb.ID, "group-4", "Field")
	var imgs []string
	for n := range 4 {
		imgs = append(imgs, w.image(w.a.ID, n, n).ID)
	}
	ib := w.image(w.b.ID, 9, 9)

	// Newest first, with 0 to 3 images each, so that pages end inside and between image lists.
	var all, in1, in2 []store.Deployment
	must(t, s.Update(ctx, func(tx store.Tx) error {
		for i := range 25 {
			g := []string{g1.ID, g2.ID}[i%2]
			d := newDeployment(w.a.ID, g, i, imgs[:i%4]...)
			d.CreatedAt = at(200 - i%7) // the order is the IDs', whatever the times
			if err := tx.CreateDeployment(ctx, d); err != nil {
				return err
			}
			if len(d.ImageIDs) == 0 {
				d.ImageIDs = nil
			}
			all = append([]store.Deployment{d}, all...)
			if g == g1.ID {
				in1 = append([]store.Deployment{d}, in1...)
			} else {
				in2 = append([]store.Deployment{d}, in2...)
			}
		}
		return tx.CreateDeployment(ctx, newDeployment(w.b.ID, gb.ID, 100, ib.ID))
	}))
	list := func(tenant string, f store.DeploymentFilter) func(store.ListOptions) (store.Page[store.Deployment], error) {
		return func(opt store.ListOptions) (store.Page[store.Deployment], error) {
			return s.ListDeployments(ctx, tenant, f, opt)
		}
	}
	for _, tc := range []struct {
		name   string
		tenant string
		filter store.DeploymentFilter
		want   []store.Deployment
	}{
		{"all", w.a.ID, store.DeploymentFilter{}, all},
		{"group 1", w.a.ID, store.DeploymentFilter{DeviceGroupID: g1.ID}, in1},
		{"group 2", w.a.ID, store.DeploymentFilter{DeviceGroupID: g2.ID}, in2},
		{"group without deployments", w.a.ID, store.DeploymentFilter{DeviceGroupID: "group-3"}, nil},
		{"other tenant's group", w.a.ID, store.DeploymentFilter{DeviceGroupID: gb.ID}, nil},
		{"tenant b", w.b.ID, store.DeploymentFilter{}, []store.Deployment{newDeployment(w.b.ID, gb.ID, 100, ib.ID)}},
		{"no tenant", "tenant-x", store.DeploymentFilter{}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := keys(tc.want, deploymentID)
			for _, limit := range []int{1, 3, 4, 12, 13, 14, 100} {
				eq(t, pageAll(t, limit, list(tc.tenant, tc.filter), deploymentID), want)
			}
			// Every page holds whole deployments, images in order.
			for _, limit := range []int{1, 3, 4, 100} {
				var got []store.Deployment
				opt := store.ListOptions{Limit: limit}
				for {
					p, err := s.ListDeployments(ctx, tc.tenant, tc.filter, opt)
					must(t, err)
					got = append(got, p.Items...)
					if p.Next == "" {
						break
					}
					opt.After = p.Next
				}
				eq(t, got, norm(tc.want))
			}
		})
	}
	pg, err := s.ListDeployments(ctx, w.a.ID, store.DeploymentFilter{}, store.ListOptions{Limit: 2, After: uuid7(20)})
	must(t, err)
	eq(t, keys(pg.Items, deploymentID), []string{uuid7(19), uuid7(18)})
	if pg.Next != uuid7(18) {
		t.Errorf("Next = %q, want the last ID of the page", pg.Next)
	}
	pg, err = s.ListDeployments(ctx, w.a.ID, store.DeploymentFilter{DeviceGroupID: g1.ID}, store.ListOptions{Limit: 2, After: uuid7(20)})
	must(t, err)
	eq(t, keys(pg.Items, deploymentID), []string{uuid7(18), uuid7(16)})
	eq(t, w.current(w.a.ID, g1.ID), uuid7(24))
	eq(t, w.current(w.a.ID, g2.ID), uuid7(23))
}

// testDeleteDeployedGroup checks that a group with deployments, or a product with such a
// group, is not deleted: deployments are history.
func testDeleteDeployedGroup(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	p1 := w.product(w.a.ID, "prod-1", "Thermostat")
	g1 := w.group(w.a.ID, p1.ID, "group-1", "Field")
	g2 := w.group(w.a.ID, p1.ID, "group-2", "Lab")
	p2 := w.product(w.a.ID, "prod-2", "Doorbell")
	g3 := w.group(w.a.ID, p2.ID, "group-3", "Field")
	img := w.image(w.a.ID, 1, 1)
	d1 := newDeployment(w.a.ID, g1.ID, 1, img.ID)
	must(t, s.CreateDeployment(ctx, d1))
	d2 := newDeployment(w.a.ID, g3.ID, 2)
	must(t, s.CreateDeployment(ctx, d2))

	isErr(t, s.DeleteDeviceGroup(ctx, w.a.ID, g1.ID), store.ErrNotEmpty)
	isErr(t, s.DeleteProduct(ctx, w.a.ID, p2.ID), store.ErrNotEmpty)
	// The refusals are checks, not failed statements: the transaction goes on.
	must(t, s.Update(ctx, func(tx store.Tx) error {
		if err := tx.DeleteDeviceGroup(ctx, w.a.ID, g1.ID); !errors.Is(err, store.ErrNotEmpty) {
			return fmt.Errorf("delete a deployed group: got %v, want ErrNotEmpty", err)
		}
		if err := tx.DeleteProduct(ctx, w.a.ID, p2.ID); !errors.Is(err, store.ErrNotEmpty) {
			return fmt.Errorf("delete the product of a deployed group: got %v, want ErrNotEmpty", err)
		}
		return tx.DeleteDeviceGroup(ctx, w.a.ID, g2.ID) // never deployed to
	}))
	isErr(t, s.DeleteProduct(ctx, w.a.ID, p1.ID), store.ErrNotEmpty)
	for _, g := range []store.DeviceGroup{g1, g3} {
		got, err := s.GetDeviceGroup(ctx, w.a.ID, g.ID)
		must(t, err)
		eq(t, got, norm(g))
	}
	for _, p := range []store.Product{p1, p2} {
		_, err := s.GetProduct(ctx, w.a.ID, p.ID)
		must(t, err)
	}
	eq(t, w.current(w.a.ID, g1.ID), d1.ID)
	eq(t, w.current(w.a.ID, g3.ID), d2.ID)
	_, err := s.GetDeviceGroup(ctx, w.a.ID, g2.ID)
	isErr(t, err, store.ErrNotFound)
}

func testSigningKeys(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	const other = "tuf-root"
	k1 := newSigningKey(w.a.ID, store.KeyImageSigning, 1, 10)
	k2 := newSigningKey(w.a.ID, store.KeyImageSigning, 2, 5) // older than k1
	k3 := newSigningKey(w.a.ID, store.KeyImageSigning, 3, 10)
	kZero := newSigningKey(w.a.ID, store.KeyImageSigning, 4, 0)
	kZero.CreatedAt = time.Time{} // a zero time sorts first
	kOffline := newSigningKey(w.a.ID, store.KeyImageSigning, 5, 20)
	kOffline.KeyCiphertext = nil
	kRevoked := newSigningKey(w.a.ID, store.KeyImageSigning, 6, 30)
	kRevoked.RevokedAt, kRevoked.PublicDER = at(31), []byte{}
	kOther := newSigningKey(w.a.ID, other, 7, 1)
	kb := newSigningKey(w.b.ID, store.KeyImageSigning, 8, 1)
	for _, k := range []store.SigningKey{k3, kb, kOffline, k1, kOther, kRevoked, kZero, k2} {
		must(t, s.CreateSigningKey(ctx, k))
	}
	// k1 and k3 are as old: their IDs decide.
	same := []store.SigningKey{k1, k3}
	if k3.ID < k1.ID {
		same = []store.SigningKey{k3, k1}
	}
	imageKeys := append(append([]store.SigningKey{kZero, k2}, same...), kOffline, kRevoked)
	list := func(tenantID, purpose string) []store.SigningKey {
		t.Helper()
		got, err := s.ListSigningKeys(ctx, tenantID, purpose)
		must(t, err)
		return got
	}
	check := func() {
		t.Helper()
		eq(t, list(w.a.ID, store.KeyImageSigning), norm(imageKeys))
		eq(t, list(w.a.ID, other), norm([]store.SigningKey{kOther}))
		eq(t, list(w.b.ID, store.KeyImageSigning), norm([]store.SigningKey{kb}))
		eq(t, list(w.b.ID, other), []store.SigningKey{})
		eq(t, list(w.a.ID, ""), []store.SigningKey{}) // purposes match exactly
		eq(t, list(w.a.ID, "IMAGE-SIGNING"), []store.SigningKey{})
		eq(t, list("tenant-x", store.KeyImageSigning), []store.SigningKey{})
	}
	check()
	got := list(w.a.ID, store.KeyImageSigning)
	if got[2].KeyCiphertext == nil || got[4].KeyCiphertext != nil || got[5].PublicDER != nil {
		t.Errorf("keys came back as %+v", got)
	}

	// IDs are unique across tenants; the tenant must exist. Nothing is written.
	isErr(t, s.CreateSigningKey(ctx, newSigningKey(w.a.ID, store.KeyImageSigning, 1, 99)), store.ErrConflict)
	isErr(t, s.CreateSigningKey(ctx, newSigningKey(w.a.ID, other, 1, 99)), store.ErrConflict)
	isErr(t, s.CreateSigningKey(ctx, newSigningKey(w.b.ID, store.KeyImageSigning, 1, 99)), store.ErrConflict)
	isErr(t, s.CreateSigningKey(ctx, newSigningKey("tenant-x", store.KeyImageSigning, 9, 99)), store.ErrNotFound)
	check()

	// Revoking a key drops its private half; only the two fields change.
	upd := k1
	upd.KeyCiphertext, upd.RevokedAt = nil, at(50)
	upd.Purpose, upd.PublicDER, upd.CreatedAt = other, []byte("ignored"), at(99)
	must(t, s.UpdateSigningKey(ctx, upd))
	k1.KeyCiphertext, k1.RevokedAt = nil, at(50)
	replace := func(k store.SigningKey) {
		for i := range imageKeys {
			if imageKeys[i].ID == k.ID {
				imageKeys[i] = k
			}
		}
	}
	replace(k1)
	check()
	for _, k := range list(w.a.ID, store.KeyImageSigning) {
		if k.ID == k1.ID && (k.KeyCiphertext != nil || !k.RevokedAt.Equal(stored(at(50)))) {
			t.Errorf("revoked key came back as %+v", k)
		}
	}
	upd = kOffline // empty is nil too
	upd.KeyCiphertext = []byte{}
	must(t, s.UpdateSigningKey(ctx, upd))
	check()

	// Fields are written as given: a key is sealed again and un-revoked.
	upd = kRevoked
	upd.KeyCiphertext, upd.RevokedAt = []byte("sealed again"), time.Time{}
	must(t, s.UpdateSigningKey(ctx, upd))
	kRevoked.KeyCiphertext, kRevoked.RevokedAt = upd.KeyCiphertext, time.Time{}
	replace(kRevoked)
	check()

	// A key is found by its ID and its tenant.
	for _, bad := range []store.SigningKey{
		{ID: k2.ID, TenantID: w.b.ID, KeyCiphertext: []byte("stolen")},
		{ID: kb.ID, TenantID: w.a.ID, RevokedAt: at(60)},
		{ID: k2.ID, TenantID: "tenant-x"},
		{ID: k2.ID, TenantID: ""},
		{ID: hexOf("unknown"), TenantID: w.a.ID},
	} {
		isErr(t, s.UpdateSigningKey(ctx, bad), store.ErrNotFound)
	}
	check()
}

// testUpdateRollsBackUpdates checks that the renewable-security methods write nothing when the
// transaction around them fails.
func testUpdateRollsBackUpdates(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	p := w.product(w.a.ID, "prod-1", "Thermostat")
	g := w.group(w.a.ID, p.ID, "group-1", "Field")
	kept := w.image(w.a.ID, 1, 1)
	key := newSigningKey(w.a.ID, store.KeyImageSigning, 1, 0)
	must(t, s.CreateSigningKey(ctx, key))
	errStop := errors.New("stop")
	err := s.Update(ctx, func(tx store.Tx) error {
		for _, err := range []error{
			tx.CreateImage(ctx, newImage(w.a.ID, 2, 2)),
			tx.CreateImage(ctx, newImage(w.a.ID, 1, 3)),
			tx.CreateDeployment(ctx, newDeployment(w.a.ID, g.ID, 1, kept.ID, imageIDOf(2))),
			tx.CreateSigningKey(ctx, newSigningKey(w.a.ID, store.KeyImageSigning, 2, 1)),
			tx.UpdateSigningKey(ctx, store.SigningKey{ID: key.ID, TenantID: w.a.ID, RevokedAt: at(5)}),
		} {
			if err != nil {
				return err
			}
		}
		// The transaction sees its own writes.
		if _, err := tx.GetImage(ctx, w.a.ID, imageIDOf(2)); err != nil {
			return err
		}
		cur, err := tx.CurrentDeployment(ctx, w.a.ID, g.ID)
		if err != nil {
			return err
		}
		if len(cur.ImageIDs) != 2 {
			return fmt.Errorf("the transaction does not see its writes: %+v", cur)
		}
		return errStop
	})
	if !errors.Is(err, errStop) {
		t.Fatalf("Update returned %v, want the function's error", err)
	}
	eq(t, w.images(w.a.ID, store.ImageFilter{}), []string{kept.ID})
	eq(t, w.current(w.a.ID, g.ID), "")
	ks, err := s.ListSigningKeys(ctx, w.a.ID, store.KeyImageSigning)
	must(t, err)
	eq(t, ks, norm([]store.SigningKey{key}))
	// Component 2 is free and the group was never deployed to.
	w.image(w.b.ID, 2, 2)
	must(t, s.DeleteDeviceGroup(ctx, w.a.ID, g.ID))
}
