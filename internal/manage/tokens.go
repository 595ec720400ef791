package manage

import (
	"context"
	"errors"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/apitoken"
	"github.com/rampart-iot/rampart/internal/authz"
	"github.com/rampart-iot/rampart/internal/problem"
	"github.com/rampart-iot/rampart/internal/store"
)

// Authenticate turns a bearer token's secret into a Principal, refusing malformed, unknown,
// revoked and expired tokens with an unauthenticated error that says which.
func (m *Manager) Authenticate(ctx context.Context, secret string) (*authz.Principal, error) {
	hash, err := apitoken.Hash(secret)
	if err != nil {
		return nil, problem.New(v1.CodeUnauthenticated, "invalid API token")
	}
	t, err := m.store.GetTokenByHash(ctx, hash)
	if errors.Is(err, store.ErrNotFound) {
		return nil, problem.New(v1.CodeUnauthenticated, "invalid API token")
	}
	if err != nil {
		return nil, err
	}
	if !t.RevokedAt.IsZero() {
		return nil, problem.New(v1.CodeUnauthenticated, "API token %s has been revoked", t.ID)
	}
	if !m.now().Before(t.ExpiresAt) {
		return nil, problem.New(v1.CodeUnauthenticated, "API token %s expired at %s", t.ID, t.ExpiresAt.Format(time.RFC3339))
	}
	u, err := m.store.GetUser(ctx, t.UserID)
	if err != nil {
		return nil, err
	}
	return &authz.Principal{
		UserID: u.ID, UserName: u.Name, ServiceAdmin: u.ServiceAdmin,
		TokenID: t.ID, TokenTenantID: t.TenantID, ExpiresAt: t.ExpiresAt,
	}, nil
}

// Me returns the caller's user record.
func (m *Manager) Me(ctx context.Context, p *authz.Principal) (store.User, error) {
	if p == nil {
		return store.User{}, problem.New(v1.CodeUnauthenticated, "authentication required")
	}
	return m.store.GetUser(ctx, p.UserID)
}

// IssuedToken is a new token and its secret, which is shown once.
type IssuedToken struct {
	store.Token
	UserName string
	Secret   string
}

func tokenTTL(req v1.TokenCreate) (time.Duration, error) {
	if req.ExpiresInSeconds == 0 {
		return DefaultTokenTTL, nil
	}
	d := time.Duration(req.ExpiresInSeconds) * time.Second
	if req.ExpiresInSeconds < 0 || d < MinTokenTTL || d > MaxTokenTTL {
		return 0, problem.Invalid(v1.ErrorDetail{Field: "expires_in_seconds",
			Message: "must be between 60 seconds and one year"})
	}
	return d, nil
}

func (m *Manager) newToken(userID, tenantID, createdBy string, req v1.TokenCreate) (store.Token, string, error) {
	var ps problems
	ps.checkDescription("description", req.Description)
	if err := ps.err(); err != nil {
		return store.Token{}, "", err
	}
	ttl, err := tokenTTL(req)
	if err != nil {
		return store.Token{}, "", err
	}
	id, err := m.newID()
	if err != nil {
		return store.Token{}, "", err
	}
	secret, hash, err := apitoken.New(m.rand)
	if err != nil {
		return store.Token{}, "", err
	}
	now := m.timestamp()
	return store.Token{ID: id, UserID: userID, TenantID: tenantID, Hash: hash, Description: req.Description,
		CreatedBy: createdBy, CreatedAt: now, ExpiresAt: now.Add(ttl)}, secret, nil
}

// CreateOwnToken makes a token for the caller, limited to the same tenant as the caller's.
func (m *Manager) CreateOwnToken(ctx context.Context, p *authz.Principal, req v1.TokenCreate) (IssuedToken, error) {
	if p == nil {
		return IssuedToken{}, problem.New(v1.CodeUnauthenticated, "authentication required")
	}
	var out IssuedToken
	o := op{tenantID: p.TokenTenantID, action: authz.SelfTokenCreate, resourceType: "token"}
	err := m.writeAuthorized(ctx, p, o, func(tx store.Tx, n *note) error {
		t, secret, err := m.newToken(p.UserID, p.TokenTenantID, p.UserID, req)
		if err != nil {
			return err
		}
		n.resourceID = t.ID
		n.detail("user", p.UserName)
		n.detail("expires_at", t.ExpiresAt)
		out = IssuedToken{Token: t, UserName: p.UserName, Secret: secret}
		return tx.CreateToken(ctx, t)
	})
	return out, err
}

// CreateTokenFor makes a token for another user of a tenant, limited to that tenant, so that a
// tenant's Administrator can never mint access to any other tenant. userRef is a name or ID.
func (m *Manager) CreateTokenFor(ctx context.Context, p *authz.Principal, tenantID, userRef string, req v1.TokenCreate) (IssuedToken, error) {
	var out IssuedToken
	o := op{tenantID: tenantID, action: authz.TokenCreate, resourceType: "token"}
	err := m.write(ctx, p, o, func(tx store.Tx, n *note) error {
		n.detail("user", userRef)
		u, err := m.lookupUser(ctx, tx, userRef)
		if err != nil {
			return err
		}
		if _, err := tx.GetRole(ctx, tenantID, u.ID); errors.Is(err, store.ErrNotFound) {
			return problem.New(v1.CodeNotFound, "user %q has no role in this tenant; add one with 'rampart role add' first", userRef)
		} else if err != nil {
			return err
		}
		t, secret, err := m.newToken(u.ID, tenantID, p.UserID, req)
		if err != nil {
			return err
		}
		n.resourceID = t.ID
		n.detail("expires_at", t.ExpiresAt)
		out = IssuedToken{Token: t, UserName: u.Name, Secret: secret}
		return tx.CreateToken(ctx, t)
	})
	return out, err
}

// ListOwnTokens lists the caller's tokens.
func (m *Manager) ListOwnTokens(ctx context.Context, p *authz.Principal, opt store.ListOptions) (store.Page[store.Token], error) {
	if p == nil {
		return store.Page[store.Token]{}, problem.New(v1.CodeUnauthenticated, "authentication required")
	}
	return m.store.ListTokens(ctx, store.TokenFilter{UserID: p.UserID, TenantID: p.TokenTenantID}, opt)
}

// ListTenantTokens lists the tokens limited to a tenant, every user's, for the callers that may
// revoke them (the tenant's Administrators).
func (m *Manager) ListTenantTokens(ctx context.Context, p *authz.Principal, tenantID string, opt store.ListOptions) (store.Page[store.Token], error) {
	if err := m.read(ctx, p, tenantID, authz.TokenRevoke); err != nil {
		return store.Page[store.Token]{}, err
	}
	return m.store.ListTokens(ctx, store.TokenFilter{TenantID: tenantID}, opt)
}

// RevokeToken revokes one of the caller's tokens, or, for a tenant's Administrator, a token
// limited to that tenant.
func (m *Manager) RevokeToken(ctx context.Context, p *authz.Principal, id string) error {
	if p == nil {
		return problem.New(v1.CodeUnauthenticated, "authentication required")
	}
	notFound := problem.New(v1.CodeNotFound, "token %q not found", id)
	t, err := m.store.GetToken(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return notFound
	}
	if err != nil {
		return err
	}
	revoke := func(tx store.Tx, n *note) error {
		n.resourceID = t.ID
		return tx.RevokeToken(ctx, t.ID, m.timestamp())
	}
	if t.UserID == p.UserID && (p.TokenTenantID == "" || p.TokenTenantID == t.TenantID) {
		return m.writeAuthorized(ctx, p, op{tenantID: t.TenantID, action: authz.SelfTokenRevoke, resourceType: "token"}, revoke)
	}
	if t.TenantID == "" {
		return notFound
	}
	err = m.write(ctx, p, op{tenantID: t.TenantID, action: authz.TokenRevoke, resourceType: "token", resourceID: t.ID}, revoke)
	var pe *problem.Error
	if errors.As(err, &pe) && pe.Code == v1.CodeNotFound {
		return notFound // do not reveal the tenant
	}
	return err
}
