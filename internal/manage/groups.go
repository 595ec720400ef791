package manage

import (
	"context"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/authz"
	"github.com/rampart-iot/rampart/internal/store"
)

func (ps *problems) checkFeed(field, s string) store.OSFeed {
	switch f := store.OSFeed(s); f {
	case store.OSFeedRetail, store.OSFeedRetailEval:
		return f
	}
	ps.add(field, "must be Retail or RetailEval, not %q", s)
	return ""
}

func (ps *problems) checkPolicy(field, s string) store.UpdatePolicy {
	switch u := store.UpdatePolicy(s); u {
	case store.UpdateAll, store.No3rdPartyAppUpdates:
		return u
	}
	ps.add(field, "must be UpdateAll or No3rdPartyAppUpdates, not %q", s)
	return ""
}

// checkCertLifetime checks a device-certificate lifetime: 5 minutes to 7 days.
func (ps *problems) checkCertLifetime(field string, seconds int64) time.Duration {
	min := int64(MinCertLifetime / time.Second)
	if seconds < min || seconds > MaxCertLifetime {
		ps.add(field, "must be between %d and %d seconds", min, MaxCertLifetime)
	}
	return time.Duration(seconds) * time.Second
}

// CreateDeviceGroup creates a device group in a product of the tenant.
func (m *Manager) CreateDeviceGroup(ctx context.Context, p *authz.Principal, tenantID, productID string, req v1.DeviceGroupCreate) (store.DeviceGroup, error) {
	var out store.DeviceGroup
	o := op{tenantID: tenantID, action: authz.DeviceGroupCreate, resourceType: "device-group"}
	err := m.write(ctx, p, o, func(tx store.Tx, n *note) error {
		n.detail("product_id", productID)
		n.detail("name", req.Name)
		var ps problems
		ps.checkName("name", req.Name)
		ps.checkDescription("description", req.Description)
		g := store.DeviceGroup{TenantID: tenantID, ProductID: productID, Name: req.Name, Description: req.Description,
			OSFeed: store.OSFeedRetail, UpdatePolicy: store.UpdateAll, CheckInInterval: DefaultCheckInInterval}
		if req.OSFeed != "" {
			g.OSFeed = ps.checkFeed("os_feed", req.OSFeed)
		}
		if req.UpdatePolicy != "" {
			g.UpdatePolicy = ps.checkPolicy("update_policy", req.UpdatePolicy)
		}
		if req.CheckInIntervalSeconds != 0 {
			g.CheckInInterval = ps.checkInterval("check_in_interval_seconds", req.CheckInIntervalSeconds)
		}
		if req.CertLifetimeSeconds != 0 {
			g.CertLifetime = ps.checkCertLifetime("cert_lifetime_seconds", req.CertLifetimeSeconds)
		}
		if err := ps.err(); err != nil {
			return err
		}
		if _, err := tx.GetProduct(ctx, tenantID, productID); err != nil {
			return err
		}
		id, err := m.newID()
		if err != nil {
			return err
		}
		now := m.timestamp()
		g.ID, g.CreatedAt, g.UpdatedAt = id, now, now
		n.resourceID = id
		out = g
		return tx.CreateDeviceGroup(ctx, g)
	})
	return out, err
}

// CreateDefaultGroups recreates whichever of a product's five default groups are missing.
func (m *Manager) CreateDefaultGroups(ctx context.Context, p *authz.Principal, tenantID, productID string) (created, existing []store.DeviceGroup, err error) {
	o := op{tenantID: tenantID, action: authz.DeviceGroupCreate, resourceType: "device-group"}
	err = m.write(ctx, p, o, func(tx store.Tx, n *note) error {
		n.detail("product_id", productID)
		prod, err := tx.GetProduct(ctx, tenantID, productID)
		if err != nil {
			return err
		}
		created, existing, err = m.createDefaultGroups(ctx, tx, prod)
		names := make([]string, len(created))
		for i, g := range created {
			names[i] = g.Name
		}
		n.detail("created", names)
		return err
	})
	return created, existing, err
}

// GetDeviceGroup returns a device group of the tenant.
func (m *Manager) GetDeviceGroup(ctx context.Context, p *authz.Principal, tenantID, id string) (store.DeviceGroup, error) {
	if err := m.read(ctx, p, tenantID, authz.DeviceGroupRead); err != nil {
		return store.DeviceGroup{}, err
	}
	return m.store.GetDeviceGroup(ctx, tenantID, id)
}

// ListDeviceGroups lists the tenant's device groups. With a product filter, the product must
// exist in the tenant.
func (m *Manager) ListDeviceGroups(ctx context.Context, p *authz.Principal, tenantID string, f store.DeviceGroupFilter, opt store.ListOptions) (store.Page[store.DeviceGroup], error) {
	if err := m.read(ctx, p, tenantID, authz.DeviceGroupRead); err != nil {
		return store.Page[store.DeviceGroup]{}, err
	}
	if f.ProductID != "" {
		if _, err := m.store.GetProduct(ctx, tenantID, f.ProductID); err != nil {
			return store.Page[store.DeviceGroup]{}, err
		}
	}
	return m.store.ListDeviceGroups(ctx, tenantID, f, opt)
}

// UpdateDeviceGroup changes the fields of a device group that the request sets.
func (m *Manager) UpdateDeviceGroup(ctx context.Context, p *authz.Principal, tenantID, id string, req v1.DeviceGroupUpdate) (store.DeviceGroup, error) {
	var out store.DeviceGroup
	o := op{tenantID: tenantID, action: authz.DeviceGroupUpdate, resourceType: "device-group", resourceID: id}
	err := m.write(ctx, p, o, func(tx store.Tx, n *note) error {
		var ps problems
		cur, err := tx.GetDeviceGroup(ctx, tenantID, id)
		if err != nil {
			return err
		}
		if req.Name != nil {
			ps.checkName("name", *req.Name)
			cur.Name = *req.Name
			n.detail("name", *req.Name)
		}
		if req.Description != nil {
			ps.checkDescription("description", *req.Description)
			cur.Description = *req.Description
			n.detail("description", *req.Description)
		}
		if req.OSFeed != nil {
			cur.OSFeed = ps.checkFeed("os_feed", *req.OSFeed)
			n.detail("os_feed", *req.OSFeed)
		}
		if req.UpdatePolicy != nil {
			cur.UpdatePolicy = ps.checkPolicy("update_policy", *req.UpdatePolicy)
			n.detail("update_policy", *req.UpdatePolicy)
		}
		if req.CheckInIntervalSeconds != nil {
			cur.CheckInInterval = ps.checkInterval("check_in_interval_seconds", *req.CheckInIntervalSeconds)
			n.detail("check_in_interval_seconds", *req.CheckInIntervalSeconds)
		}
		if req.CertLifetimeSeconds != nil {
			cur.CertLifetime = ps.checkCertLifetime("cert_lifetime_seconds", *req.CertLifetimeSeconds)
			n.detail("cert_lifetime_seconds", *req.CertLifetimeSeconds)
		}
		if err := ps.err(); err != nil {
			return err
		}
		cur.UpdatedAt = m.timestamp()
		out = cur
		if err := tx.UpdateDeviceGroup(ctx, cur); err != nil {
			return err
		}
		if m.meta != nil && (req.UpdatePolicy != nil || req.OSFeed != nil) {
			return m.meta.PublishDirector(ctx, tx, tenantID, id)
		}
		return nil
	})
	return out, err
}

// DeleteDeviceGroup deletes an empty device group.
func (m *Manager) DeleteDeviceGroup(ctx context.Context, p *authz.Principal, tenantID, id string) error {
	o := op{tenantID: tenantID, action: authz.DeviceGroupDelete, resourceType: "device-group", resourceID: id}
	return m.write(ctx, p, o, func(tx store.Tx, n *note) error {
		g, err := tx.GetDeviceGroup(ctx, tenantID, id)
		if err != nil {
			return err
		}
		n.detail("name", g.Name)
		n.detail("product_id", g.ProductID)
		return tx.DeleteDeviceGroup(ctx, tenantID, id)
	})
}
