package manage

import (
	"context"
	"strings"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/authz"
	"github.com/rampart-iot/rampart/internal/store"
)

// CreateProduct creates a product and, unless asked not to, its five default device groups,
// all in one transaction.
func (m *Manager) CreateProduct(ctx context.Context, p *authz.Principal, tenantID string, req v1.ProductCreate) (store.Product, error) {
	var out store.Product
	o := op{tenantID: tenantID, action: authz.ProductCreate, resourceType: "product"}
	err := m.write(ctx, p, o, func(tx store.Tx, n *note) error {
		var ps problems
		ps.checkName("name", req.Name)
		ps.checkDescription("description", req.Description)
		n.detail("name", req.Name)
		if err := ps.err(); err != nil {
			return err
		}
		id, err := m.newID()
		if err != nil {
			return err
		}
		now := m.timestamp()
		out = store.Product{ID: id, TenantID: tenantID, Name: req.Name, Description: req.Description, CreatedAt: now, UpdatedAt: now}
		n.resourceID = id
		if err := tx.CreateProduct(ctx, out); err != nil {
			return err
		}
		if req.NoDefaultDeviceGroups {
			n.detail("default_device_groups", false)
			return nil
		}
		created, _, err := m.createDefaultGroups(ctx, tx, out)
		n.detail("default_device_groups", len(created))
		return err
	})
	return out, err
}

// GetProduct returns a product of the tenant.
func (m *Manager) GetProduct(ctx context.Context, p *authz.Principal, tenantID, id string) (store.Product, error) {
	if err := m.read(ctx, p, tenantID, authz.ProductRead); err != nil {
		return store.Product{}, err
	}
	return m.store.GetProduct(ctx, tenantID, id)
}

// ListProducts lists the tenant's products.
func (m *Manager) ListProducts(ctx context.Context, p *authz.Principal, tenantID string, f store.ProductFilter, opt store.ListOptions) (store.Page[store.Product], error) {
	if err := m.read(ctx, p, tenantID, authz.ProductRead); err != nil {
		return store.Page[store.Product]{}, err
	}
	return m.store.ListProducts(ctx, tenantID, f, opt)
}

// UpdateProduct changes a product's name or description.
func (m *Manager) UpdateProduct(ctx context.Context, p *authz.Principal, tenantID, id string, req v1.ProductUpdate) (store.Product, error) {
	var out store.Product
	o := op{tenantID: tenantID, action: authz.ProductUpdate, resourceType: "product", resourceID: id}
	err := m.write(ctx, p, o, func(tx store.Tx, n *note) error {
		var ps problems
		if req.Name != nil {
			ps.checkName("name", *req.Name)
			n.detail("name", *req.Name)
		}
		if req.Description != nil {
			ps.checkDescription("description", *req.Description)
			n.detail("description", *req.Description)
		}
		if err := ps.err(); err != nil {
			return err
		}
		cur, err := tx.GetProduct(ctx, tenantID, id)
		if err != nil {
			return err
		}
		if req.Name != nil {
			cur.Name = *req.Name
		}
		if req.Description != nil {
			cur.Description = *req.Description
		}
		cur.UpdatedAt = m.timestamp()
		out = cur
		return tx.UpdateProduct(ctx, cur)
	})
	return out, err
}

// DeleteProduct deletes a product and its device groups; it refuses while any group holds a
// device.
func (m *Manager) DeleteProduct(ctx context.Context, p *authz.Principal, tenantID, id string) error {
	o := op{tenantID: tenantID, action: authz.ProductDelete, resourceType: "product", resourceID: id}
	return m.write(ctx, p, o, func(tx store.Tx, n *note) error {
		cur, err := tx.GetProduct(ctx, tenantID, id)
		if err != nil {
			return err
		}
		n.detail("name", cur.Name)
		return tx.DeleteProduct(ctx, tenantID, id)
	})
}

// defaultGroup describes one of the groups every product starts with, as in Azure Sphere.
type defaultGroup struct {
	name, description string
	feed              store.OSFeed
	policy            store.UpdatePolicy
}

var defaultGroups = []defaultGroup{
	{"Development", "Devices for app development; they receive system software updates but no app updates from the cloud", store.OSFeedRetail, store.No3rdPartyAppUpdates},
	{"Field Test", "Devices in lab or field trials", store.OSFeedRetail, store.UpdateAll},
	{"Production", "Devices in production", store.OSFeedRetail, store.UpdateAll},
	{"Field Test OS Evaluation", "Field test devices that receive OS releases early, to check compatibility", store.OSFeedRetailEval, store.UpdateAll},
	{"Production OS Evaluation", "Production devices that receive OS releases early, to check compatibility", store.OSFeedRetailEval, store.UpdateAll},
}

// createDefaultGroups creates whichever default groups the product lacks (matched by name,
// case-insensitively) and reports both the new and the existing ones.
func (m *Manager) createDefaultGroups(ctx context.Context, tx store.Tx, prod store.Product) (created, existing []store.DeviceGroup, err error) {
	have := map[string]store.DeviceGroup{}
	opt := store.ListOptions{Limit: store.MaxLimit}
	for {
		page, err := tx.ListDeviceGroups(ctx, prod.TenantID, store.DeviceGroupFilter{ProductID: prod.ID}, opt)
		if err != nil {
			return nil, nil, err
		}
		for _, g := range page.Items {
			have[strings.ToLower(g.Name)] = g
		}
		if page.Next == "" {
			break
		}
		opt.After = page.Next
	}
	now := m.timestamp()
	for _, d := range defaultGroups {
		if g, ok := have[strings.ToLower(d.name)]; ok {
			existing = append(existing, g)
			continue
		}
		id, err := m.newID()
		if err != nil {
			return nil, nil, err
		}
		g := store.DeviceGroup{ID: id, TenantID: prod.TenantID, ProductID: prod.ID, Name: d.name, Description: d.description,
			OSFeed: d.feed, UpdatePolicy: d.policy, CheckInInterval: DefaultCheckInInterval, CreatedAt: now, UpdatedAt: now}
		if err := tx.CreateDeviceGroup(ctx, g); err != nil {
			return nil, nil, err
		}
		created = append(created, g)
	}
	return created, existing, nil
}
