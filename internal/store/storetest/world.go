package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/internal/store"
)

// world is the records most tests build on: two tenants and two users, plus helpers that add
// products, device groups and devices.
type world struct {
	t          *testing.T
	ctx        context.Context
	s          store.Store
	a, b       store.Tenant
	alice, bob store.User
}

func newWorld(t *testing.T, s store.Store) *world {
	t.Helper()
	w := &world{
		t:     t,
		ctx:   t.Context(),
		s:     s,
		a:     store.Tenant{ID: "tenant-a", Name: "Contoso", CreatedAt: at(0)},
		b:     store.Tenant{ID: "tenant-b", Name: "Fabrikam", CreatedAt: at(1)},
		alice: store.User{ID: "user-alice", Name: "alice", CreatedAt: at(2)},
		bob:   store.User{ID: "user-bob", Name: "Bob", ServiceAdmin: true, CreatedAt: at(3)},
	}
	must(t, s.CreateTenant(w.ctx, w.a))
	must(t, s.CreateTenant(w.ctx, w.b))
	must(t, s.CreateUser(w.ctx, w.alice))
	must(t, s.CreateUser(w.ctx, w.bob))
	return w
}

func newProduct(tenantID, id, name string) store.Product {
	return store.Product{ID: id, TenantID: tenantID, Name: name, Description: "the " + name,
		CreatedAt: at(10), UpdatedAt: at(10)}
}

func (w *world) product(tenantID, id, name string) store.Product {
	w.t.Helper()
	p := newProduct(tenantID, id, name)
	must(w.t, w.s.CreateProduct(w.ctx, p))
	return p
}

func newGroup(tenantID, productID, id, name string) store.DeviceGroup {
	return store.DeviceGroup{ID: id, TenantID: tenantID, ProductID: productID, Name: name,
		Description: name + " devices", OSFeed: store.OSFeedRetail, UpdatePolicy: store.UpdateAll,
		CheckInInterval: 90 * time.Second, CreatedAt: at(20), UpdatedAt: at(20)}
}

func (w *world) group(tenantID, productID, id, name string) store.DeviceGroup {
	w.t.Helper()
	g := newGroup(tenantID, productID, id, name)
	must(w.t, w.s.CreateDeviceGroup(w.ctx, g))
	return g
}

// newDevice returns device n, to be claimed by a tenant into a group ("" for none).
func newDevice(tenantID, groupID string, n int) store.Device {
	id := deviceIDOf(n)
	return store.Device{
		ID: id, TenantID: tenantID, DeviceGroupID: groupID,
		RootOfTrust: "tpm", AgentVersion: "1.4.2",
		EKPublic:   []byte("ek:" + id),
		AKPublic:   []byte{0, 1, 2, 0xfe, 0xff},
		Enrollment: []byte(`{"ek":"` + id + `"}`),
		ClaimedBy:  "user-alice", ClaimedAt: at(30), UpdatedAt: at(30),
	}
}

// claim claims device n for a tenant into a group, and returns the device as stored, but for
// its ProductID, which the caller knows.
func (w *world) claim(tenantID, groupID string, n int) store.Device {
	w.t.Helper()
	d := newDevice(tenantID, groupID, n)
	_, claimed, err := w.s.ClaimDevice(w.ctx, d)
	must(w.t, err)
	if !claimed {
		w.t.Fatalf("device %d was not claimed", n)
	}
	return d
}
