package manage

import (
	"context"
	"errors"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/authz"
	"github.com/rampart-iot/rampart/internal/store"
)

// Bootstrap describes the first user (and optionally tenant) of a new service.
type Bootstrap struct {
	UserName   string        // a service administrator; created if missing
	TenantName string        // created if missing and not empty; the user becomes its Administrator
	TokenTTL   time.Duration // of the new token; 0 means DefaultTokenTTL
}

// BootstrapResult is what Bootstrap made.
type BootstrapResult struct {
	User   store.User
	Tenant store.Tenant // zero if no tenant was asked for
	Token  IssuedToken  // a new token, not limited to one tenant
}

// Bootstrap creates the service's first administrator (and tenant) if they do not exist, and
// issues the administrator a new token. It is idempotent apart from the new token, and it is
// for operators (`rampart server init`, dev mode), not for the API. The audit log records it
// as done by "system".
func (m *Manager) Bootstrap(ctx context.Context, b Bootstrap) (BootstrapResult, error) {
	var res BootstrapResult
	var ps problems
	ps.checkUserName("user", b.UserName)
	if b.TenantName != "" {
		ps.checkName("tenant", b.TenantName)
	}
	if err := ps.err(); err != nil {
		return res, err
	}
	ttl := b.TokenTTL
	if ttl == 0 {
		ttl = DefaultTokenTTL
	}
	err := m.store.Update(ctx, func(tx store.Tx) error {
		now := m.timestamp()
		u, err := tx.GetUserByName(ctx, b.UserName)
		if errors.Is(err, store.ErrNotFound) {
			id, err := m.newID()
			if err != nil {
				return err
			}
			u = store.User{ID: id, Name: b.UserName, ServiceAdmin: true, CreatedAt: now}
			if err := tx.CreateUser(ctx, u); err != nil {
				return err
			}
		} else if err != nil {
			return err
		} else if !u.ServiceAdmin {
			return errors.New("user " + b.UserName + " exists and is not a service administrator")
		}
		res.User = u
		if b.TenantName != "" {
			t, err := tx.GetTenantByName(ctx, b.TenantName)
			if errors.Is(err, store.ErrNotFound) {
				id, err := m.newID()
				if err != nil {
					return err
				}
				t = store.Tenant{ID: id, Name: b.TenantName, CreatedAt: now}
				if err := tx.CreateTenant(ctx, t); err != nil {
					return err
				}
				if _, err := tx.AppendAudit(ctx, m.auditEntry(nil, op{tenantID: id, action: authz.TenantCreate, resourceType: "tenant"}, &note{resourceID: id, message: "bootstrap"}, nil)); err != nil {
					return err
				}
			} else if err != nil {
				return err
			}
			res.Tenant = t
			if _, err := tx.GetRole(ctx, t.ID, u.ID); errors.Is(err, store.ErrNotFound) {
				if err := tx.PutRole(ctx, store.RoleAssignment{TenantID: t.ID, UserID: u.ID, Role: store.RoleAdministrator, CreatedAt: now, UpdatedAt: now}); err != nil {
					return err
				}
			} else if err != nil {
				return err
			}
		}
		tok, secret, err := m.newToken(u.ID, "", u.ID, v1.TokenCreate{Description: "bootstrap", ExpiresInSeconds: int64(ttl / time.Second)})
		if err != nil {
			return err
		}
		if err := tx.CreateToken(ctx, tok); err != nil {
			return err
		}
		res.Token = IssuedToken{Token: tok, UserName: u.Name, Secret: secret}
		_, err = tx.AppendAudit(ctx, m.auditEntry(nil, op{action: authz.SelfTokenCreate, resourceType: "token"}, &note{resourceID: tok.ID, message: "bootstrap token for " + u.Name}, nil))
		return err
	})
	return res, err
}
