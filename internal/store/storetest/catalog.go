package storetest

import (
	"testing"
	"time"

	"github.com/rampart-iot/rampart/internal/store"
)

func testProducts(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	p1 := w.product(w.a.ID, "prod-1", "Thermostat")
	p2 := w.product(w.a.ID, "prod-2", "Doorbell")
	pb := w.product(w.b.ID, "prod-3", "thermostat") // names are unique per tenant only

	got, err := s.GetProduct(ctx, w.a.ID, p1.ID)
	must(t, err)
	eq(t, got, norm(p1))
	got, err = s.GetProduct(ctx, w.b.ID, pb.ID)
	must(t, err)
	eq(t, got, norm(pb))

	_, err = s.GetProduct(ctx, w.b.ID, p1.ID) // another tenant's
	isErr(t, err, store.ErrNotFound)
	_, err = s.GetProduct(ctx, w.a.ID, "prod-x")
	isErr(t, err, store.ErrNotFound)

	isErr(t, s.CreateProduct(ctx, newProduct(w.a.ID, "prod-4", "THERMOSTAT")), store.ErrConflict)
	isErr(t, s.CreateProduct(ctx, newProduct(w.a.ID, p2.ID, "Camera")), store.ErrConflict)
	isErr(t, s.CreateProduct(ctx, newProduct(w.b.ID, p2.ID, "Camera")), store.ErrConflict) // IDs are global
	isErr(t, s.CreateProduct(ctx, newProduct("tenant-x", "prod-5", "Camera")), store.ErrNotFound)
	for _, id := range []string{"prod-4", "prod-5"} {
		for _, tenant := range []string{w.a.ID, w.b.ID, "tenant-x"} {
			_, err := s.GetProduct(ctx, tenant, id)
			isErr(t, err, store.ErrNotFound)
		}
	}

	list := func(tenant string, f store.ProductFilter) func(store.ListOptions) (store.Page[store.Product], error) {
		return func(opt store.ListOptions) (store.Page[store.Product], error) {
			return s.ListProducts(ctx, tenant, f, opt)
		}
	}
	pg, err := s.ListProducts(ctx, w.a.ID, store.ProductFilter{}, store.ListOptions{})
	must(t, err)
	eq(t, pg.Items, norm([]store.Product{p1, p2}))
	eq(t, pg.Next, "")
	for _, tc := range []struct {
		tenant string
		filter store.ProductFilter
		want   []string
	}{
		{w.a.ID, store.ProductFilter{}, []string{p1.ID, p2.ID}},
		{w.b.ID, store.ProductFilter{}, []string{pb.ID}},
		{"tenant-x", store.ProductFilter{}, []string{}},
		{w.a.ID, store.ProductFilter{Name: "tHERMOSTAT"}, []string{p1.ID}},
		{w.b.ID, store.ProductFilter{Name: "Thermostat"}, []string{pb.ID}},
		{w.a.ID, store.ProductFilter{Name: "Thermo"}, []string{}},
	} {
		eq(t, pageAll(t, 1, list(tc.tenant, tc.filter), productID), tc.want)
		eq(t, pageAll(t, 100, list(tc.tenant, tc.filter), productID), tc.want)
	}

	// Paging over more products, including a last page that is exactly full.
	var want []string
	for _, id := range []string{"prod-9", "prod-8", "prod-7", "prod-6", "prod-5", "prod-4"} {
		w.product(w.a.ID, id, "Product "+id)
		want = append(want, id)
	}
	want = sorted(append(want, p1.ID, p2.ID)...)
	for limit := 1; limit <= 9; limit++ {
		eq(t, pageAll(t, limit, list(w.a.ID, store.ProductFilter{}), productID), want)
	}
	pg, err = s.ListProducts(ctx, w.a.ID, store.ProductFilter{}, store.ListOptions{Limit: 3, After: "prod-2"})
	must(t, err)
	eq(t, keys(pg.Items, productID), []string{"prod-4", "prod-5", "prod-6"})
	if pg.Next == "" {
		t.Error("Next is empty on a page that is not the last")
	}
}

func testUpdateProduct(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	p1 := w.product(w.a.ID, "prod-1", "Thermostat")
	p2 := w.product(w.a.ID, "prod-2", "Doorbell")
	pb := w.product(w.b.ID, "prod-3", "Camera")

	upd := p1
	upd.Name, upd.Description, upd.UpdatedAt = "Smart Thermostat", "v2", at(100)
	upd.CreatedAt = at(99) // not written
	must(t, s.UpdateProduct(ctx, upd))
	got, err := s.GetProduct(ctx, w.a.ID, p1.ID)
	must(t, err)
	want := upd
	want.CreatedAt = p1.CreatedAt
	eq(t, got, norm(want))

	// Only the case of its own name changes: no conflict with itself.
	upd.Name = "SMART thermostat"
	must(t, s.UpdateProduct(ctx, upd))
	_, err = s.ListProducts(ctx, w.a.ID, store.ProductFilter{Name: "smart thermostat"}, store.ListOptions{})
	must(t, err)

	// The old name is free again; the new one is taken, in its tenant only.
	must(t, s.CreateProduct(ctx, newProduct(w.a.ID, "prod-4", "thermostat")))
	taken := p2
	taken.Name = "Smart Thermostat"
	isErr(t, s.UpdateProduct(ctx, taken), store.ErrConflict)
	got, err = s.GetProduct(ctx, w.a.ID, p2.ID)
	must(t, err)
	eq(t, got, norm(p2))
	free := pb
	free.Name = "smart thermostat"
	must(t, s.UpdateProduct(ctx, free))

	missing := newProduct(w.a.ID, "prod-x", "Ghost")
	isErr(t, s.UpdateProduct(ctx, missing), store.ErrNotFound)
	other := p1
	other.TenantID = w.b.ID // another tenant's product
	other.Name = "Stolen"
	isErr(t, s.UpdateProduct(ctx, other), store.ErrNotFound)
	got, err = s.GetProduct(ctx, w.a.ID, p1.ID)
	must(t, err)
	if got.Name != "SMART thermostat" {
		t.Errorf("product renamed through another tenant: %+v", got)
	}
}

func testDeleteProduct(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	p1 := w.product(w.a.ID, "prod-1", "Thermostat")
	p2 := w.product(w.a.ID, "prod-2", "Doorbell")
	g1 := w.group(w.a.ID, p1.ID, "group-1", "Field")
	g2 := w.group(w.a.ID, p1.ID, "group-2", "Lab")
	g3 := w.group(w.a.ID, p2.ID, "group-3", "Field")
	w.claim(w.a.ID, g3.ID, 1)

	isErr(t, s.DeleteProduct(ctx, w.b.ID, p1.ID), store.ErrNotFound) // another tenant's
	isErr(t, s.DeleteProduct(ctx, w.a.ID, "prod-x"), store.ErrNotFound)

	// A group of the product holds a device: nothing is deleted.
	isErr(t, s.DeleteProduct(ctx, w.a.ID, p2.ID), store.ErrNotEmpty)
	_, err := s.GetProduct(ctx, w.a.ID, p2.ID)
	must(t, err)
	_, err = s.GetDeviceGroup(ctx, w.a.ID, g3.ID)
	must(t, err)

	// Its groups are empty: they go with it.
	must(t, s.DeleteProduct(ctx, w.a.ID, p1.ID))
	_, err = s.GetProduct(ctx, w.a.ID, p1.ID)
	isErr(t, err, store.ErrNotFound)
	for _, g := range []store.DeviceGroup{g1, g2} {
		_, err = s.GetDeviceGroup(ctx, w.a.ID, g.ID)
		isErr(t, err, store.ErrNotFound)
	}
	isErr(t, s.DeleteProduct(ctx, w.a.ID, p1.ID), store.ErrNotFound)
	pg, err := s.ListDeviceGroups(ctx, w.a.ID, store.DeviceGroupFilter{}, store.ListOptions{})
	must(t, err)
	eq(t, keys(pg.Items, groupID), []string{g3.ID})
	// Its name and its groups' names are free again.
	w.product(w.a.ID, "prod-3", "THERMOSTAT")
	w.group(w.a.ID, "prod-3", "group-4", "field")

	// Once the device leaves, the product can go.
	must(t, s.SetDeviceGroup(ctx, w.a.ID, deviceIDOf(1), "", at(40)))
	must(t, s.DeleteProduct(ctx, w.a.ID, p2.ID))
	_, err = s.GetDeviceGroup(ctx, w.a.ID, g3.ID)
	isErr(t, err, store.ErrNotFound)
	_, err = s.GetDevice(ctx, w.a.ID, deviceIDOf(1))
	must(t, err)
}

func testDeviceGroups(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	p1 := w.product(w.a.ID, "prod-1", "Thermostat")
	p2 := w.product(w.a.ID, "prod-2", "Doorbell")
	pb := w.product(w.b.ID, "prod-3", "Camera")
	g1 := w.group(w.a.ID, p1.ID, "group-1", "Field")
	g2 := newGroup(w.a.ID, p1.ID, "group-2", "Lab")
	g2.OSFeed, g2.UpdatePolicy, g2.CheckInInterval = store.OSFeedRetailEval, store.No3rdPartyAppUpdates, 24*time.Hour
	must(t, s.CreateDeviceGroup(ctx, g2))
	g3 := w.group(w.a.ID, p2.ID, "group-3", "FIELD") // the same name in another product
	gb := w.group(w.b.ID, pb.ID, "group-4", "Field")

	for _, g := range []store.DeviceGroup{g1, g2, g3, gb} {
		got, err := s.GetDeviceGroup(ctx, g.TenantID, g.ID)
		must(t, err)
		eq(t, got, norm(g))
	}
	_, err := s.GetDeviceGroup(ctx, w.b.ID, g1.ID) // another tenant's
	isErr(t, err, store.ErrNotFound)
	_, err = s.GetDeviceGroup(ctx, w.a.ID, "group-x")
	isErr(t, err, store.ErrNotFound)

	isErr(t, s.CreateDeviceGroup(ctx, newGroup(w.a.ID, p1.ID, "group-5", "field")), store.ErrConflict)
	isErr(t, s.CreateDeviceGroup(ctx, newGroup(w.a.ID, p2.ID, g1.ID, "Other")), store.ErrConflict)
	isErr(t, s.CreateDeviceGroup(ctx, newGroup(w.a.ID, "prod-x", "group-6", "Other")), store.ErrNotFound)
	isErr(t, s.CreateDeviceGroup(ctx, newGroup(w.a.ID, pb.ID, "group-7", "Other")), store.ErrNotFound) // another tenant's product
	isErr(t, s.CreateDeviceGroup(ctx, newGroup("tenant-x", p1.ID, "group-8", "Other")), store.ErrNotFound)
	for _, id := range []string{"group-5", "group-6", "group-7", "group-8"} {
		for _, tenant := range []string{w.a.ID, w.b.ID} {
			_, err := s.GetDeviceGroup(ctx, tenant, id)
			isErr(t, err, store.ErrNotFound)
		}
	}

	list := func(tenant string, f store.DeviceGroupFilter) func(store.ListOptions) (store.Page[store.DeviceGroup], error) {
		return func(opt store.ListOptions) (store.Page[store.DeviceGroup], error) {
			return s.ListDeviceGroups(ctx, tenant, f, opt)
		}
	}
	pg, err := s.ListDeviceGroups(ctx, w.a.ID, store.DeviceGroupFilter{}, store.ListOptions{})
	must(t, err)
	eq(t, pg.Items, norm([]store.DeviceGroup{g1, g2, g3}))
	eq(t, pg.Next, "")
	for _, tc := range []struct {
		tenant string
		filter store.DeviceGroupFilter
		want   []string
	}{
		{w.a.ID, store.DeviceGroupFilter{}, []string{g1.ID, g2.ID, g3.ID}},
		{w.b.ID, store.DeviceGroupFilter{}, []string{gb.ID}},
		{w.a.ID, store.DeviceGroupFilter{ProductID: p1.ID}, []string{g1.ID, g2.ID}},
		{w.a.ID, store.DeviceGroupFilter{ProductID: p2.ID}, []string{g3.ID}},
		{w.a.ID, store.DeviceGroupFilter{ProductID: pb.ID}, []string{}}, // another tenant's product
		{w.a.ID, store.DeviceGroupFilter{Name: "field"}, []string{g1.ID, g3.ID}},
		{w.a.ID, store.DeviceGroupFilter{Name: "LAB"}, []string{g2.ID}},
		{w.a.ID, store.DeviceGroupFilter{Name: "Fiel"}, []string{}},
		{w.a.ID, store.DeviceGroupFilter{ProductID: p2.ID, Name: "Field"}, []string{g3.ID}},
		{w.a.ID, store.DeviceGroupFilter{ProductID: p2.ID, Name: "Lab"}, []string{}},
		{"tenant-x", store.DeviceGroupFilter{}, []string{}},
	} {
		for _, limit := range []int{1, 2, 100} {
			eq(t, pageAll(t, limit, list(tc.tenant, tc.filter), groupID), tc.want)
		}
	}
}

func testUpdateDeviceGroup(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	p1 := w.product(w.a.ID, "prod-1", "Thermostat")
	p2 := w.product(w.a.ID, "prod-2", "Doorbell")
	g1 := w.group(w.a.ID, p1.ID, "group-1", "Field")
	g2 := w.group(w.a.ID, p1.ID, "group-2", "Lab")
	g3 := w.group(w.a.ID, p2.ID, "group-3", "Beta")

	upd := g1
	upd.Name, upd.Description = "Field Trial", "trial devices"
	upd.OSFeed, upd.UpdatePolicy, upd.CheckInInterval = store.OSFeedRetailEval, store.No3rdPartyAppUpdates, time.Hour
	upd.UpdatedAt, upd.CreatedAt = at(100), at(99)
	upd.ProductID = p2.ID // a group never moves to another product
	must(t, s.UpdateDeviceGroup(ctx, upd))
	got, err := s.GetDeviceGroup(ctx, w.a.ID, g1.ID)
	must(t, err)
	want := upd
	want.CreatedAt, want.ProductID = g1.CreatedAt, g1.ProductID
	eq(t, got, norm(want))

	upd = want
	upd.Name = "FIELD TRIAL" // only the case of its own name
	must(t, s.UpdateDeviceGroup(ctx, upd))

	taken := g2
	taken.Name = "field trial"
	isErr(t, s.UpdateDeviceGroup(ctx, taken), store.ErrConflict)
	got, err = s.GetDeviceGroup(ctx, w.a.ID, g2.ID)
	must(t, err)
	eq(t, got, norm(g2))
	free := g3 // the same name in another product is fine
	free.Name = "Field Trial"
	must(t, s.UpdateDeviceGroup(ctx, free))

	isErr(t, s.UpdateDeviceGroup(ctx, newGroup(w.a.ID, p1.ID, "group-x", "Ghost")), store.ErrNotFound)
	other := g2
	other.TenantID, other.Name = w.b.ID, "Stolen"
	isErr(t, s.UpdateDeviceGroup(ctx, other), store.ErrNotFound)
	got, err = s.GetDeviceGroup(ctx, w.a.ID, g2.ID)
	must(t, err)
	eq(t, got, norm(g2))
}

func testDeleteDeviceGroup(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	p1 := w.product(w.a.ID, "prod-1", "Thermostat")
	g1 := w.group(w.a.ID, p1.ID, "group-1", "Field")
	g2 := w.group(w.a.ID, p1.ID, "group-2", "Lab")
	w.claim(w.a.ID, g1.ID, 1)

	isErr(t, s.DeleteDeviceGroup(ctx, w.a.ID, g1.ID), store.ErrNotEmpty)
	_, err := s.GetDeviceGroup(ctx, w.a.ID, g1.ID)
	must(t, err)
	isErr(t, s.DeleteDeviceGroup(ctx, w.b.ID, g2.ID), store.ErrNotFound) // another tenant's
	isErr(t, s.DeleteDeviceGroup(ctx, w.a.ID, "group-x"), store.ErrNotFound)

	must(t, s.DeleteDeviceGroup(ctx, w.a.ID, g2.ID))
	_, err = s.GetDeviceGroup(ctx, w.a.ID, g2.ID)
	isErr(t, err, store.ErrNotFound)
	isErr(t, s.DeleteDeviceGroup(ctx, w.a.ID, g2.ID), store.ErrNotFound)
	w.group(w.a.ID, p1.ID, "group-3", "LAB") // the name is free again

	// Once the device leaves, the group can go.
	must(t, s.SetDeviceGroup(ctx, w.a.ID, deviceIDOf(1), "", at(40)))
	must(t, s.DeleteDeviceGroup(ctx, w.a.ID, g1.ID))
	_, err = s.GetDeviceGroup(ctx, w.a.ID, g1.ID)
	isErr(t, err, store.ErrNotFound)
}
