package client

import (
	"context"
	"net/http"
	"net/url"

	v1 "github.com/rampart-iot/rampart/api/v1"
)

// CreateToken creates an API token for the caller. The returned Token's Secret is the token
// itself; the server never shows it again.
func (c *Client) CreateToken(ctx context.Context, req v1.TokenCreate) (*v1.Token, error) {
	var t v1.Token
	if _, err := c.do(ctx, http.MethodPost, []string{"tokens"}, nil, req, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// CreateUserToken creates an API token for another user of a tenant, limited to that tenant.
// user is the user's name or ID. The returned Token's Secret is shown only this once.
func (c *Client) CreateUserToken(ctx context.Context, tenant, user string, req v1.TokenCreate) (*v1.Token, error) {
	var t v1.Token
	if _, err := c.do(ctx, http.MethodPost, []string{"tenants", tenant, "users", user, "tokens"}, nil, req, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

// ListTokens lists one page of the caller's own tokens.
func (c *Client) ListTokens(ctx context.Context, o ListOptions) (v1.List[v1.Token], error) {
	var l v1.List[v1.Token]
	_, err := c.do(ctx, http.MethodGet, []string{"tokens"}, listQuery(url.Values{}, o), nil, &l)
	return l, err
}

// AllTokens lists all of the caller's own tokens.
func (c *Client) AllTokens(ctx context.Context) ([]v1.Token, error) {
	return all(ctx, ListOptions{}, c.ListTokens)
}

// RevokeToken revokes the token with the given ID.
func (c *Client) RevokeToken(ctx context.Context, id string) error {
	_, err := c.do(ctx, http.MethodDelete, []string{"tokens", id}, nil, nil, nil)
	return err
}
