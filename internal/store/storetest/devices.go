package storetest

import (
	"testing"

	"github.com/rampart-iot/rampart/internal/store"
)

func testClaimDevice(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	p1 := w.product(w.a.ID, "prod-1", "Thermostat")
	g1 := w.group(w.a.ID, p1.ID, "group-1", "Field")
	pb := w.product(w.b.ID, "prod-2", "Camera")
	gb := w.group(w.b.ID, pb.ID, "group-2", "Field")

	// A new device is claimed; its product comes from its group, whatever the caller says.
	d := newDevice(w.a.ID, g1.ID, 1)
	d.ProductID = "prod-ignored"
	got, claimed, err := s.ClaimDevice(ctx, d)
	must(t, err)
	if !claimed {
		t.Fatal("a new device was not claimed")
	}
	want := d
	want.ProductID = p1.ID
	eq(t, got, norm(want))
	stored, err := s.GetDevice(ctx, w.a.ID, d.ID)
	must(t, err)
	eq(t, stored, norm(want))

	// Claiming it again for the same tenant returns the stored device, unchanged.
	again := newDevice(w.a.ID, "", 1)
	again.AgentVersion, again.ClaimedBy, again.ClaimedAt = "9.9.9", w.bob.ID, at(90)
	got, claimed, err = s.ClaimDevice(ctx, again)
	must(t, err)
	if claimed {
		t.Error("claimed = true for a device the tenant had claimed")
	}
	eq(t, got, norm(want))

	// Another tenant learns only that the device is taken.
	theft := newDevice(w.b.ID, gb.ID, 1)
	got, claimed, err = s.ClaimDevice(ctx, theft)
	isErr(t, err, store.ErrClaimedByOtherTenant)
	if claimed || got.ID != "" || got.TenantID != "" {
		t.Errorf("claim by another tenant returned claimed=%v, %+v", claimed, got)
	}
	stored, err = s.GetDevice(ctx, w.a.ID, d.ID)
	must(t, err)
	eq(t, stored, norm(want))
	_, err = s.GetDevice(ctx, w.b.ID, d.ID)
	isErr(t, err, store.ErrNotFound)

	// Unassigned devices have no product.
	d2 := newDevice(w.a.ID, "", 2)
	got, claimed, err = s.ClaimDevice(ctx, d2)
	must(t, err)
	if !claimed {
		t.Fatal("a new device was not claimed")
	}
	eq(t, got, norm(d2))

	// The group must be the tenant's.
	for _, bad := range []store.Device{newDevice(w.a.ID, gb.ID, 3), newDevice(w.a.ID, "group-x", 3), newDevice("tenant-x", "", 3)} {
		_, claimed, err = s.ClaimDevice(ctx, bad)
		isErr(t, err, store.ErrNotFound)
		if claimed {
			t.Error("claimed = true with an error")
		}
		for _, tenant := range []string{w.a.ID, w.b.ID} {
			_, err = s.GetDevice(ctx, tenant, bad.ID)
			isErr(t, err, store.ErrNotFound)
		}
	}
	_, err = s.GetDevice(ctx, w.a.ID, deviceIDOf(99))
	isErr(t, err, store.ErrNotFound)
}

func testSetDeviceGroup(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	p1 := w.product(w.a.ID, "prod-1", "Thermostat")
	p2 := w.product(w.a.ID, "prod-2", "Doorbell")
	g1 := w.group(w.a.ID, p1.ID, "group-1", "Field")
	g2 := w.group(w.a.ID, p2.ID, "group-2", "Field")
	pb := w.product(w.b.ID, "prod-3", "Camera")
	gb := w.group(w.b.ID, pb.ID, "group-3", "Field")
	d := w.claim(w.a.ID, "", 1)
	db := w.claim(w.b.ID, gb.ID, 2)

	check := func(groupID, productID string, updated int) {
		t.Helper()
		got, err := s.GetDevice(ctx, w.a.ID, d.ID)
		must(t, err)
		want := d
		want.DeviceGroupID, want.ProductID, want.UpdatedAt = groupID, productID, at(updated)
		eq(t, got, norm(want))
	}
	must(t, s.SetDeviceGroup(ctx, w.a.ID, d.ID, g1.ID, at(40)))
	check(g1.ID, p1.ID, 40)
	must(t, s.SetDeviceGroup(ctx, w.a.ID, d.ID, g2.ID, at(41)))
	check(g2.ID, p2.ID, 41)
	must(t, s.SetDeviceGroup(ctx, w.a.ID, d.ID, "", at(42)))
	check("", "", 42)
	must(t, s.SetDeviceGroup(ctx, w.a.ID, d.ID, g1.ID, at(43)))

	isErr(t, s.SetDeviceGroup(ctx, w.a.ID, d.ID, gb.ID, at(50)), store.ErrNotFound) // another tenant's group
	isErr(t, s.SetDeviceGroup(ctx, w.a.ID, d.ID, "group-x", at(50)), store.ErrNotFound)
	isErr(t, s.SetDeviceGroup(ctx, w.a.ID, db.ID, g1.ID, at(50)), store.ErrNotFound) // another tenant's device
	isErr(t, s.SetDeviceGroup(ctx, w.b.ID, d.ID, gb.ID, at(50)), store.ErrNotFound)
	isErr(t, s.SetDeviceGroup(ctx, w.a.ID, deviceIDOf(99), g1.ID, at(50)), store.ErrNotFound)
	check(g1.ID, p1.ID, 43)
	got, err := s.GetDevice(ctx, w.b.ID, db.ID)
	must(t, err)
	db.ProductID = pb.ID
	eq(t, got, norm(db))
}

func testListDevices(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	p1 := w.product(w.a.ID, "prod-1", "Thermostat")
	p2 := w.product(w.a.ID, "prod-2", "Doorbell")
	g1 := w.group(w.a.ID, p1.ID, "group-1", "Field")
	g2 := w.group(w.a.ID, p1.ID, "group-2", "Lab")
	g3 := w.group(w.a.ID, p2.ID, "group-3", "Field")
	w.group(w.a.ID, p2.ID, "group-4", "Empty")
	pb := w.product(w.b.ID, "prod-3", "Camera")
	gb := w.group(w.b.ID, pb.ID, "group-5", "Field")

	byGroup := map[string][]string{}
	var all []store.Device
	for n, g := range []string{g1.ID, g1.ID, g2.ID, g3.ID, "", "", g1.ID, g3.ID} {
		d := w.claim(w.a.ID, g, n)
		byGroup[g] = append(byGroup[g], d.ID)
		d.ProductID = map[string]string{g1.ID: p1.ID, g2.ID: p1.ID, g3.ID: p2.ID}[g]
		all = append(all, d)
	}
	w.claim(w.b.ID, gb.ID, 100)
	w.claim(w.b.ID, "", 101)

	pg, err := s.ListDevices(ctx, w.a.ID, store.DeviceFilter{}, store.ListOptions{})
	must(t, err)
	wantSorted := sorted(keys(all, deviceID)...)
	eq(t, keys(pg.Items, deviceID), wantSorted)
	byID := map[string]store.Device{}
	for _, d := range all {
		byID[d.ID] = d
	}
	for _, got := range pg.Items {
		eq(t, got, norm(byID[got.ID]))
	}

	for _, tc := range []struct {
		name   string
		tenant string
		filter store.DeviceFilter
		want   []string
	}{
		{"all", w.a.ID, store.DeviceFilter{}, wantSorted},
		{"product 1", w.a.ID, store.DeviceFilter{ProductID: p1.ID}, sorted(append(byGroup[g1.ID], byGroup[g2.ID]...)...)},
		{"product 2", w.a.ID, store.DeviceFilter{ProductID: p2.ID}, sorted(byGroup[g3.ID]...)},
		{"group 1", w.a.ID, store.DeviceFilter{DeviceGroupID: g1.ID}, sorted(byGroup[g1.ID]...)},
		{"group 2", w.a.ID, store.DeviceFilter{DeviceGroupID: g2.ID}, sorted(byGroup[g2.ID]...)},
		{"empty group", w.a.ID, store.DeviceFilter{DeviceGroupID: "group-4"}, []string{}},
		{"product and group", w.a.ID, store.DeviceFilter{ProductID: p1.ID, DeviceGroupID: g2.ID}, sorted(byGroup[g2.ID]...)},
		{"product and other product's group", w.a.ID, store.DeviceFilter{ProductID: p2.ID, DeviceGroupID: g2.ID}, []string{}},
		{"unassigned", w.a.ID, store.DeviceFilter{Unassigned: true}, sorted(byGroup[""]...)},
		{"unassigned in a group", w.a.ID, store.DeviceFilter{Unassigned: true, DeviceGroupID: g1.ID}, []string{}},
		{"other tenant's product", w.a.ID, store.DeviceFilter{ProductID: pb.ID}, []string{}},
		{"other tenant's group", w.a.ID, store.DeviceFilter{DeviceGroupID: gb.ID}, []string{}},
		{"tenant b", w.b.ID, store.DeviceFilter{}, sorted(deviceIDOf(100), deviceIDOf(101))},
		{"tenant b unassigned", w.b.ID, store.DeviceFilter{Unassigned: true}, []string{deviceIDOf(101)}},
		{"no tenant", "tenant-x", store.DeviceFilter{}, []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, limit := range []int{1, 2, 3, 100} {
				eq(t, pageAll(t, limit, func(opt store.ListOptions) (store.Page[store.Device], error) {
					return s.ListDevices(ctx, tc.tenant, tc.filter, opt)
				}, deviceID), tc.want)
			}
			n, err := s.CountDevices(ctx, tc.tenant, tc.filter)
			must(t, err)
			if n != len(tc.want) {
				t.Errorf("CountDevices = %d, want %d", n, len(tc.want))
			}
		})
	}
}

func testDeviceBytes(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	withCert := newDevice(w.a.ID, "", 1)
	withCert.EKCertificate = []byte{0x30, 0x82, 0x00, 0x00, 0xff}
	noCert := newDevice(w.a.ID, "", 2) // nil EKCertificate
	emptyCert := newDevice(w.a.ID, "", 3)
	emptyCert.EKCertificate = []byte{}
	for _, d := range []store.Device{withCert, noCert, emptyCert} {
		got, _, err := s.ClaimDevice(ctx, d)
		must(t, err)
		eq(t, got, norm(d))
		got, err = s.GetDevice(ctx, w.a.ID, d.ID)
		must(t, err)
		eq(t, got, norm(d))
	}
	got, err := s.GetDevice(ctx, w.a.ID, noCert.ID)
	must(t, err)
	if got.EKCertificate != nil {
		t.Errorf("nil EKCertificate came back as %#v", got.EKCertificate)
	}
	got, err = s.GetDevice(ctx, w.a.ID, emptyCert.ID)
	must(t, err)
	if len(got.EKCertificate) != 0 {
		t.Errorf("empty EKCertificate came back as %#v", got.EKCertificate)
	}
	got, err = s.GetDevice(ctx, w.a.ID, withCert.ID)
	must(t, err)
	eq(t, got.EKCertificate, withCert.EKCertificate)
	eq(t, got.AKPublic, []byte{0, 1, 2, 0xfe, 0xff})
}
