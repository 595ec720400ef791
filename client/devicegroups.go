package client

import (
	"context"
	"net/http"
	"net/url"

	v1 "github.com/rampart-iot/rampart/api/v1"
)

// DeviceGroupListOptions filters and pages a list of device groups.
type DeviceGroupListOptions struct {
	// ProductID, if set, selects the groups of one product. ListProductDeviceGroups ignores
	// it: the product is in its path.
	ProductID string
	// Name, if set, selects groups with this name, compared case-insensitively. Names are
	// unique within a product, not within a tenant.
	Name string
	ListOptions
}

// ListDeviceGroups lists one page of a tenant's device groups across its products.
func (c *Client) ListDeviceGroups(ctx context.Context, tenant string, o DeviceGroupListOptions) (v1.List[v1.DeviceGroup], error) {
	q := url.Values{}
	if o.ProductID != "" {
		q.Set("product_id", o.ProductID)
	}
	if o.Name != "" {
		q.Set("name", o.Name)
	}
	var l v1.List[v1.DeviceGroup]
	_, err := c.do(ctx, http.MethodGet, []string{"tenants", tenant, "device-groups"}, listQuery(q, o.ListOptions), nil, &l)
	return l, err
}

// AllDeviceGroups lists every device group of a tenant that o selects.
func (c *Client) AllDeviceGroups(ctx context.Context, tenant string, o DeviceGroupListOptions) ([]v1.DeviceGroup, error) {
	return all(ctx, o.ListOptions, func(ctx context.Context, lo ListOptions) (v1.List[v1.DeviceGroup], error) {
		o.ListOptions = lo
		return c.ListDeviceGroups(ctx, tenant, o)
	})
}

// ListProductDeviceGroups lists one page of the device groups of one product.
func (c *Client) ListProductDeviceGroups(ctx context.Context, tenant, product string, o DeviceGroupListOptions) (v1.List[v1.DeviceGroup], error) {
	q := url.Values{}
	if o.Name != "" {
		q.Set("name", o.Name)
	}
	var l v1.List[v1.DeviceGroup]
	_, err := c.do(ctx, http.MethodGet, []string{"tenants", tenant, "products", product, "device-groups"}, listQuery(q, o.ListOptions), nil, &l)
	return l, err
}

// AllProductDeviceGroups lists every device group of one product that o selects.
func (c *Client) AllProductDeviceGroups(ctx context.Context, tenant, product string, o DeviceGroupListOptions) ([]v1.DeviceGroup, error) {
	return all(ctx, o.ListOptions, func(ctx context.Context, lo ListOptions) (v1.List[v1.DeviceGroup], error) {
		o.ListOptions = lo
		return c.ListProductDeviceGroups(ctx, tenant, product, o)
	})
}

// CreateDeviceGroup creates a device group in a product.
func (c *Client) CreateDeviceGroup(ctx context.Context, tenant, product string, req v1.DeviceGroupCreate) (*v1.DeviceGroup, error) {
	var g v1.DeviceGroup
	if _, err := c.do(ctx, http.MethodPost, []string{"tenants", tenant, "products", product, "device-groups"}, nil, req, &g); err != nil {
		return nil, err
	}
	return &g, nil
}

// CreateDefaultDeviceGroups creates whichever of a product's five default device groups are
// missing, and reports the ones that already existed.
func (c *Client) CreateDefaultDeviceGroups(ctx context.Context, tenant, product string) (*v1.DefaultDeviceGroups, error) {
	var d v1.DefaultDeviceGroups
	if _, err := c.do(ctx, http.MethodPost, []string{"tenants", tenant, "products", product, "device-groups", "defaults"}, nil, nil, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// GetDeviceGroup returns the device group with the given ID.
func (c *Client) GetDeviceGroup(ctx context.Context, tenant, group string) (*v1.DeviceGroup, error) {
	var g v1.DeviceGroup
	if _, err := c.do(ctx, http.MethodGet, []string{"tenants", tenant, "device-groups", group}, nil, nil, &g); err != nil {
		return nil, err
	}
	return &g, nil
}

// UpdateDeviceGroup changes the fields of req that are not nil.
func (c *Client) UpdateDeviceGroup(ctx context.Context, tenant, group string, req v1.DeviceGroupUpdate) (*v1.DeviceGroup, error) {
	var g v1.DeviceGroup
	if _, err := c.do(ctx, http.MethodPatch, []string{"tenants", tenant, "device-groups", group}, nil, req, &g); err != nil {
		return nil, err
	}
	return &g, nil
}

// DeleteDeviceGroup deletes a device group. The server refuses if it still holds a device.
func (c *Client) DeleteDeviceGroup(ctx context.Context, tenant, group string) error {
	_, err := c.do(ctx, http.MethodDelete, []string{"tenants", tenant, "device-groups", group}, nil, nil, nil)
	return err
}
