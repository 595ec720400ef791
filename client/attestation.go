package client

import (
	"context"
	"net/http"
	"net/url"

	v1 "github.com/rampart-iot/rampart/api/v1"
)

// DisableDevice disables a device: it is refused at its next attestation and on mutual TLS.
func (c *Client) DisableDevice(ctx context.Context, tenant, device string) (*v1.Device, error) {
	var d v1.Device
	if _, err := c.do(ctx, http.MethodPost, []string{"tenants", tenant, "devices", device, "disable"}, nil, nil, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// EnableDevice enables a disabled device.
func (c *Client) EnableDevice(ctx context.Context, tenant, device string) (*v1.Device, error) {
	var d v1.Device
	if _, err := c.do(ctx, http.MethodPost, []string{"tenants", tenant, "devices", device, "enable"}, nil, nil, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// ListAttestations lists one page of a device's attestations, newest first.
func (c *Client) ListAttestations(ctx context.Context, tenant, device string, o ListOptions) (v1.List[v1.Attestation], error) {
	var l v1.List[v1.Attestation]
	_, err := c.do(ctx, http.MethodGet, []string{"tenants", tenant, "devices", device, "attestations"}, listQuery(url.Values{}, o), nil, &l)
	return l, err
}

// ListOSReleases lists one page of a tenant's OS releases.
func (c *Client) ListOSReleases(ctx context.Context, tenant string, o ListOptions) (v1.List[v1.OSRelease], error) {
	var l v1.List[v1.OSRelease]
	_, err := c.do(ctx, http.MethodGet, []string{"tenants", tenant, "os-releases"}, listQuery(url.Values{}, o), nil, &l)
	return l, err
}

// AllOSReleases lists every OS release of a tenant.
func (c *Client) AllOSReleases(ctx context.Context, tenant string) ([]v1.OSRelease, error) {
	return all(ctx, ListOptions{}, func(ctx context.Context, lo ListOptions) (v1.List[v1.OSRelease], error) {
		return c.ListOSReleases(ctx, tenant, lo)
	})
}

// CreateOSRelease registers an OS release's golden measurements.
func (c *Client) CreateOSRelease(ctx context.Context, tenant string, req v1.OSReleaseCreate) (*v1.OSRelease, error) {
	var r v1.OSRelease
	if _, err := c.do(ctx, http.MethodPost, []string{"tenants", tenant, "os-releases"}, nil, req, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// DeleteOSRelease removes an OS release.
func (c *Client) DeleteOSRelease(ctx context.Context, tenant, id string) error {
	_, err := c.do(ctx, http.MethodDelete, []string{"tenants", tenant, "os-releases", id}, nil, nil, nil)
	return err
}

// ListCACertificates lists the tenant's CA certificates.
func (c *Client) ListCACertificates(ctx context.Context, tenant string) ([]v1.CACertificate, error) {
	var l v1.List[v1.CACertificate]
	if _, err := c.do(ctx, http.MethodGet, []string{"tenants", tenant, "ca-certificates"}, nil, nil, &l); err != nil {
		return nil, err
	}
	return l.Items, nil
}

// CACertificateChain returns the PEM bundle that verifies the tenant's device certificates.
func (c *Client) CACertificateChain(ctx context.Context, tenant string) (string, error) {
	var b v1.PEMBundle
	if _, err := c.do(ctx, http.MethodGet, []string{"tenants", tenant, "ca-certificates", "chain"}, nil, nil, &b); err != nil {
		return "", err
	}
	return b.PEM, nil
}

// ProofOfPossession returns a PEM certificate whose CN is the verification code, signed by
// the CA (caID "" means the active one).
func (c *Client) ProofOfPossession(ctx context.Context, tenant, caID, code string) (string, error) {
	if caID == "" {
		caID = "active"
	}
	var b v1.PEMBundle
	if _, err := c.do(ctx, http.MethodPost, []string{"tenants", tenant, "ca-certificates", caID, "proof"}, nil,
		v1.ProofOfPossessionRequest{VerificationCode: code}, &b); err != nil {
		return "", err
	}
	return b.PEM, nil
}

// PublishOSRelease publishes a release made from an OS image to a feed (Retail, RetailEval) or
// takes it back (Unpublished).
func (c *Client) PublishOSRelease(ctx context.Context, tenant, id, feed string) (*v1.OSRelease, error) {
	var r v1.OSRelease
	if _, err := c.do(ctx, http.MethodPost, []string{"tenants", tenant, "os-releases", id, "publish"}, nil, v1.OSReleasePublish{Feed: feed}, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// WithdrawOSRelease takes a release out of its feed: no group is offered it any more.
func (c *Client) WithdrawOSRelease(ctx context.Context, tenant, id string) (*v1.OSRelease, error) {
	var r v1.OSRelease
	if _, err := c.do(ctx, http.MethodPost, []string{"tenants", tenant, "os-releases", id, "withdraw"}, nil, nil, &r); err != nil {
		return nil, err
	}
	return &r, nil
}
