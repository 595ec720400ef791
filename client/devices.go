package client

import (
	"context"
	"net/http"
	"net/url"

	v1 "github.com/rampart-iot/rampart/api/v1"
)

// DeviceFilter selects devices. Empty fields select everything.
type DeviceFilter struct {
	ProductID     string
	DeviceGroupID string
	// Unassigned selects devices that are in no device group.
	Unassigned bool
}

func (f DeviceFilter) query() url.Values {
	q := url.Values{}
	if f.ProductID != "" {
		q.Set("product_id", f.ProductID)
	}
	if f.DeviceGroupID != "" {
		q.Set("device_group_id", f.DeviceGroupID)
	}
	if f.Unassigned {
		q.Set("unassigned", "true")
	}
	return q
}

// DeviceListOptions filters and pages a list of devices.
type DeviceListOptions struct {
	DeviceFilter
	ListOptions
}

// ListDevices lists one page of a tenant's devices.
func (c *Client) ListDevices(ctx context.Context, tenant string, o DeviceListOptions) (v1.List[v1.Device], error) {
	var l v1.List[v1.Device]
	_, err := c.do(ctx, http.MethodGet, []string{"tenants", tenant, "devices"}, listQuery(o.query(), o.ListOptions), nil, &l)
	return l, err
}

// AllDevices lists every device of a tenant that o selects.
func (c *Client) AllDevices(ctx context.Context, tenant string, o DeviceListOptions) ([]v1.Device, error) {
	return all(ctx, o.ListOptions, func(ctx context.Context, lo ListOptions) (v1.List[v1.Device], error) {
		o.ListOptions = lo
		return c.ListDevices(ctx, tenant, o)
	})
}

// CountDevices counts a tenant's devices that f selects.
func (c *Client) CountDevices(ctx context.Context, tenant string, f DeviceFilter) (*v1.DeviceCount, error) {
	var n v1.DeviceCount
	if _, err := c.do(ctx, http.MethodGet, []string{"tenants", tenant, "devices", "count"}, f.query(), nil, &n); err != nil {
		return nil, err
	}
	return &n, nil
}

// ClaimDevice claims one device from its enrollment record. already is true if this tenant had
// claimed the device before; the device is then returned as it is.
func (c *Client) ClaimDevice(ctx context.Context, tenant string, req v1.DeviceClaim) (d *v1.Device, already bool, err error) {
	var dev v1.Device
	status, err := c.do(ctx, http.MethodPost, []string{"tenants", tenant, "devices"}, nil, req, &dev)
	if err != nil {
		return nil, false, err
	}
	return &dev, status == http.StatusOK, nil
}

// BulkClaimDevices claims up to 1000 devices in one request. A record that fails does not undo
// the others; the result reports each record.
func (c *Client) BulkClaimDevices(ctx context.Context, tenant string, req v1.DeviceBulkClaim) (*v1.DeviceBulkClaimResult, error) {
	var r v1.DeviceBulkClaimResult
	if _, err := c.do(ctx, http.MethodPost, []string{"tenants", tenant, "devices", "bulk-claim"}, nil, req, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// GetDevice returns the device with the given ID (64 lowercase hex characters).
func (c *Client) GetDevice(ctx context.Context, tenant, device string) (*v1.Device, error) {
	var d v1.Device
	if _, err := c.do(ctx, http.MethodGet, []string{"tenants", tenant, "devices", device}, nil, nil, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// UpdateDevice moves a device to another device group of its tenant.
func (c *Client) UpdateDevice(ctx context.Context, tenant, device string, req v1.DeviceUpdate) (*v1.Device, error) {
	var d v1.Device
	if _, err := c.do(ctx, http.MethodPatch, []string{"tenants", tenant, "devices", device}, nil, req, &d); err != nil {
		return nil, err
	}
	return &d, nil
}
