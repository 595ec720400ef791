package client

import (
	"context"
	"net/http"
	"net/url"

	v1 "github.com/rampart-iot/rampart/api/v1"
)

// Me describes the caller: its user, its token, and the tenant the token is limited to, if any.
func (c *Client) Me(ctx context.Context) (*v1.Me, error) {
	var me v1.Me
	if _, err := c.do(ctx, http.MethodGet, []string{"me"}, nil, nil, &me); err != nil {
		return nil, err
	}
	return &me, nil
}

// ListTenants lists one page of the tenants in which the caller holds a role; each Tenant's
// Role is the caller's role there.
func (c *Client) ListTenants(ctx context.Context, o ListOptions) (v1.List[v1.Tenant], error) {
	var l v1.List[v1.Tenant]
	_, err := c.do(ctx, http.MethodGet, []string{"tenants"}, listQuery(url.Values{}, o), nil, &l)
	return l, err
}

// AllTenants lists every tenant in which the caller holds a role.
func (c *Client) AllTenants(ctx context.Context) ([]v1.Tenant, error) {
	return all(ctx, ListOptions{}, c.ListTenants)
}

// CreateTenant creates a tenant whose Administrator is the caller. Only service administrators
// may.
func (c *Client) CreateTenant(ctx context.Context, req v1.TenantCreate) (*v1.Tenant, error) {
	var t v1.Tenant
	if _, err := c.do(ctx, http.MethodPost, []string{"tenants"}, nil, req, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// GetTenant returns the tenant with the given ID.
func (c *Client) GetTenant(ctx context.Context, tenant string) (*v1.Tenant, error) {
	var t v1.Tenant
	if _, err := c.do(ctx, http.MethodGet, []string{"tenants", tenant}, nil, nil, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// ListRoles lists one page of the role assignments of a tenant.
func (c *Client) ListRoles(ctx context.Context, tenant string, o ListOptions) (v1.List[v1.RoleAssignment], error) {
	var l v1.List[v1.RoleAssignment]
	_, err := c.do(ctx, http.MethodGet, []string{"tenants", tenant, "roles"}, listQuery(url.Values{}, o), nil, &l)
	return l, err
}

// AllRoles lists every role assignment of a tenant.
func (c *Client) AllRoles(ctx context.Context, tenant string) ([]v1.RoleAssignment, error) {
	return all(ctx, ListOptions{}, func(ctx context.Context, o ListOptions) (v1.List[v1.RoleAssignment], error) {
		return c.ListRoles(ctx, tenant, o)
	})
}

// AddRole gives a user a role in a tenant, creating the user if the name is new and replacing
// any role the user held there.
func (c *Client) AddRole(ctx context.Context, tenant string, req v1.RoleAdd) (*v1.RoleAssignment, error) {
	var r v1.RoleAssignment
	if _, err := c.do(ctx, http.MethodPost, []string{"tenants", tenant, "roles"}, nil, req, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// DeleteRole removes a user's role in a tenant. user is the user's name or ID.
func (c *Client) DeleteRole(ctx context.Context, tenant, user string) error {
	_, err := c.do(ctx, http.MethodDelete, []string{"tenants", tenant, "roles", user}, nil, nil, nil)
	return err
}
