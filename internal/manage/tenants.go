package manage

import (
	"context"
	"errors"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/authz"
	"github.com/rampart-iot/rampart/internal/problem"
	"github.com/rampart-iot/rampart/internal/store"
)

// TenantView is a tenant with the caller's role in it.
type TenantView struct {
	store.Tenant
	Role store.Role
}

// CreateTenant creates a tenant whose Administrator is the caller. Only service
// administrators using a token not limited to one tenant may.
func (m *Manager) CreateTenant(ctx context.Context, p *authz.Principal, req v1.TenantCreate) (TenantView, error) {
	if p == nil {
		return TenantView{}, problem.New(v1.CodeUnauthenticated, "authentication required")
	}
	o := op{action: authz.TenantCreate, resourceType: "tenant"}
	if !p.ServiceAdmin || p.TokenTenantID != "" {
		err := problem.New(v1.CodeForbidden, "forbidden: only service administrators, with a token not limited to one tenant, may create tenants")
		m.auditFailure(ctx, p, o, &note{}, err)
		return TenantView{}, err
	}
	var ps problems
	ps.checkName("name", req.Name)
	if err := ps.err(); err != nil {
		m.auditFailure(ctx, p, o, &note{}, err)
		return TenantView{}, err
	}
	id, err := m.newID()
	if err != nil {
		return TenantView{}, err
	}
	now := m.timestamp()
	t := store.Tenant{ID: id, Name: req.Name, CreatedAt: now}
	o.tenantID = id // the entry belongs to the new tenant's log
	err = m.writeAuthorized(ctx, p, o, func(tx store.Tx, n *note) error {
		n.resourceID = id
		n.detail("name", req.Name)
		if err := tx.CreateTenant(ctx, t); err != nil {
			return err
		}
		return tx.PutRole(ctx, store.RoleAssignment{TenantID: id, UserID: p.UserID, Role: store.RoleAdministrator, CreatedAt: now, UpdatedAt: now})
	})
	if err != nil {
		return TenantView{}, err
	}
	return TenantView{Tenant: t, Role: store.RoleAdministrator}, nil
}

// ListTenants lists the tenants in which the caller holds a role (only the token's tenant for
// a token limited to one).
func (m *Manager) ListTenants(ctx context.Context, p *authz.Principal, opt store.ListOptions) (store.Page[TenantView], error) {
	if p == nil {
		return store.Page[TenantView]{}, problem.New(v1.CodeUnauthenticated, "authentication required")
	}
	if p.TokenTenantID != "" {
		t, err := m.GetTenant(ctx, p, p.TokenTenantID)
		if err != nil {
			return store.Page[TenantView]{}, err
		}
		if opt.After != "" {
			return store.Page[TenantView]{Items: []TenantView{}}, nil
		}
		return store.Page[TenantView]{Items: []TenantView{t}}, nil
	}
	page, err := m.store.ListTenantsForUser(ctx, p.UserID, opt)
	if err != nil {
		return store.Page[TenantView]{}, err
	}
	out := store.Page[TenantView]{Items: make([]TenantView, 0, len(page.Items)), Next: page.Next}
	for _, t := range page.Items {
		ra, err := m.store.GetRole(ctx, t.ID, p.UserID)
		if errors.Is(err, store.ErrNotFound) {
			continue // the role went away between the two reads
		}
		if err != nil {
			return store.Page[TenantView]{}, err
		}
		out.Items = append(out.Items, TenantView{Tenant: t, Role: ra.Role})
	}
	return out, nil
}

// GetTenant returns a tenant the caller can see.
func (m *Manager) GetTenant(ctx context.Context, p *authz.Principal, id string) (TenantView, error) {
	role, err := m.authorize(ctx, p, id, authz.TenantRead)
	if err != nil {
		return TenantView{}, err
	}
	t, err := m.store.GetTenant(ctx, id)
	if err != nil {
		return TenantView{}, err
	}
	return TenantView{Tenant: t, Role: role}, nil
}
