package client

import (
	"context"
	"net/http"
	"net/url"

	v1 "github.com/rampart-iot/rampart/api/v1"
)

// ProductListOptions filters and pages a list of products.
type ProductListOptions struct {
	// Name, if set, selects the product with this name, compared case-insensitively.
	Name string
	ListOptions
}

// ListProducts lists one page of a tenant's products.
func (c *Client) ListProducts(ctx context.Context, tenant string, o ProductListOptions) (v1.List[v1.Product], error) {
	q := url.Values{}
	if o.Name != "" {
		q.Set("name", o.Name)
	}
	var l v1.List[v1.Product]
	_, err := c.do(ctx, http.MethodGet, []string{"tenants", tenant, "products"}, listQuery(q, o.ListOptions), nil, &l)
	return l, err
}

// AllProducts lists every product of a tenant that o selects, starting at o's page.
func (c *Client) AllProducts(ctx context.Context, tenant string, o ProductListOptions) ([]v1.Product, error) {
	return all(ctx, o.ListOptions, func(ctx context.Context, lo ListOptions) (v1.List[v1.Product], error) {
		o.ListOptions = lo
		return c.ListProducts(ctx, tenant, o)
	})
}

// CreateProduct creates a product and, unless req.NoDefaultDeviceGroups is set, its five
// default device groups.
func (c *Client) CreateProduct(ctx context.Context, tenant string, req v1.ProductCreate) (*v1.Product, error) {
	var p v1.Product
	if _, err := c.do(ctx, http.MethodPost, []string{"tenants", tenant, "products"}, nil, req, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// GetProduct returns the product with the given ID.
func (c *Client) GetProduct(ctx context.Context, tenant, product string) (*v1.Product, error) {
	var p v1.Product
	if _, err := c.do(ctx, http.MethodGet, []string{"tenants", tenant, "products", product}, nil, nil, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// UpdateProduct changes the fields of req that are not nil.
func (c *Client) UpdateProduct(ctx context.Context, tenant, product string, req v1.ProductUpdate) (*v1.Product, error) {
	var p v1.Product
	if _, err := c.do(ctx, http.MethodPatch, []string{"tenants", tenant, "products", product}, nil, req, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

// DeleteProduct deletes a product and its device groups. The server refuses if a group still
// holds a device.
func (c *Client) DeleteProduct(ctx context.Context, tenant, product string) error {
	_, err := c.do(ctx, http.MethodDelete, []string{"tenants", tenant, "products", product}, nil, nil, nil)
	return err
}
