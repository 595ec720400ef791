package manage

import (
	"context"
	"errors"
	"fmt"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/authz"
	"github.com/rampart-iot/rampart/internal/ids"
	"github.com/rampart-iot/rampart/internal/problem"
	"github.com/rampart-iot/rampart/internal/store"
)

// ListRoles lists the users that hold a role in a tenant.
func (m *Manager) ListRoles(ctx context.Context, p *authz.Principal, tenantID string, opt store.ListOptions) (store.Page[store.RoleAssignment], error) {
	if err := m.read(ctx, p, tenantID, authz.RoleRead); err != nil {
		return store.Page[store.RoleAssignment]{}, err
	}
	return m.store.ListRoles(ctx, tenantID, opt)
}

// AddRole gives a user a role in a tenant, creating the user if the name is new and replacing
// any role the user held there. The last Administrator cannot be demoted.
func (m *Manager) AddRole(ctx context.Context, p *authz.Principal, tenantID string, req v1.RoleAdd) (store.RoleAssignment, error) {
	var out store.RoleAssignment
	o := op{tenantID: tenantID, action: authz.RoleAdd, resourceType: "role"}
	err := m.write(ctx, p, o, func(tx store.Tx, n *note) error {
		var ps problems
		ps.checkUserName("user", req.User)
		role, ok := authz.ParseRole(req.Role)
		if !ok {
			ps.add("role", "must be Administrator, Contributor or Reader, not %q", req.Role)
		}
		n.detail("user", req.User)
		n.detail("role", req.Role)
		if err := ps.err(); err != nil {
			return err
		}
		now := m.timestamp()
		u, err := tx.GetUserByName(ctx, req.User)
		if errors.Is(err, store.ErrNotFound) {
			id, err := m.newID()
			if err != nil {
				return err
			}
			u = store.User{ID: id, Name: req.User, CreatedAt: now}
			if err := tx.CreateUser(ctx, u); err != nil {
				return err
			}
			n.detail("user_created", true)
		} else if err != nil {
			return err
		}
		n.resourceID = u.ID
		created := now
		prev, err := tx.GetRole(ctx, tenantID, u.ID)
		switch {
		case err == nil:
			created = prev.CreatedAt
			n.detail("previous_role", string(prev.Role))
			if prev.Role == store.RoleAdministrator && role != store.RoleAdministrator {
				if err := lastAdminGuard(ctx, tx, tenantID); err != nil {
					return err
				}
			}
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		out = store.RoleAssignment{TenantID: tenantID, UserID: u.ID, UserName: u.Name, Role: role, CreatedAt: created, UpdatedAt: now}
		return tx.PutRole(ctx, out)
	})
	return out, err
}

// DeleteRole removes a user's role in a tenant; userRef is the user's name or ID.
func (m *Manager) DeleteRole(ctx context.Context, p *authz.Principal, tenantID, userRef string) error {
	o := op{tenantID: tenantID, action: authz.RoleDelete, resourceType: "role"}
	return m.write(ctx, p, o, func(tx store.Tx, n *note) error {
		n.detail("user", userRef)
		u, err := m.lookupUser(ctx, tx, userRef)
		if err != nil {
			return err
		}
		n.resourceID = u.ID
		ra, err := tx.GetRole(ctx, tenantID, u.ID)
		if errors.Is(err, store.ErrNotFound) {
			return problem.New(v1.CodeNotFound, "user %q has no role in this tenant", userRef)
		}
		if err != nil {
			return err
		}
		n.detail("role", string(ra.Role))
		if ra.Role == store.RoleAdministrator {
			if err := lastAdminGuard(ctx, tx, tenantID); err != nil {
				return err
			}
		}
		return tx.DeleteRole(ctx, tenantID, u.ID)
	})
}

func lastAdminGuard(ctx context.Context, tx store.Tx, tenantID string) error {
	n, err := tx.CountRoles(ctx, tenantID, store.RoleAdministrator)
	if err != nil {
		return err
	}
	if n <= 1 {
		return problem.New(v1.CodeConflict, "cannot remove the tenant's last Administrator; add another Administrator first")
	}
	return nil
}

// lookupUser finds a user by ID or name.
func (m *Manager) lookupUser(ctx context.Context, tx store.Tx, ref string) (store.User, error) {
	var u store.User
	var err error
	if ids.Valid(ref) {
		u, err = tx.GetUser(ctx, ref)
	} else {
		u, err = tx.GetUserByName(ctx, ref)
	}
	if errors.Is(err, store.ErrNotFound) {
		return store.User{}, fmt.Errorf("user %q: %w", ref, store.ErrNotFound)
	}
	return u, err
}
