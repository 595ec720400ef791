package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"

	v1 "github.com/rampart-iot/rampart/api/v1"
)

// AddImage uploads an image package of the given size. progress, if not nil, is called with the
// bytes sent so far.
func (c *Client) AddImage(ctx context.Context, tenant string, pkg io.Reader, size int64, progress func(sent int64)) (*v1.Image, error) {
	body := pkg
	if progress != nil {
		body = &progressReader{r: pkg, f: progress}
	}
	resp, where, err := c.send(ctx, http.MethodPost, []string{"tenants", tenant, "images"}, nil, body, "application/octet-stream", size)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var img v1.Image
	if err := decodeBody(resp, where, &img); err != nil {
		return nil, err
	}
	return &img, nil
}

// DownloadImage writes the countersigned package of an image to w. progress, if not nil, is
// called with the bytes received so far and the total (or -1).
func (c *Client) DownloadImage(ctx context.Context, tenant, id string, w io.Writer, progress func(got, total int64)) (int64, error) {
	resp, where, err := c.send(ctx, http.MethodGet, []string{"tenants", tenant, "images", id, "package"}, nil, nil, "", -1)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	r := io.Reader(resp.Body)
	if progress != nil {
		r = &progressReader{r: resp.Body, f: func(n int64) { progress(n, resp.ContentLength) }}
	}
	n, err := io.Copy(w, r)
	if err != nil {
		return n, fmt.Errorf("reading %s: %w", where, err)
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return n, fmt.Errorf("%s: got %d of %d bytes", where, n, resp.ContentLength)
	}
	return n, nil
}

// ImageListOptions filters and pages a list of images.
type ImageListOptions struct {
	ComponentID string
	Kind        string
	ListOptions
}

// ListImages lists one page of the tenant's images.
func (c *Client) ListImages(ctx context.Context, tenant string, o ImageListOptions) (v1.List[v1.Image], error) {
	q := url.Values{}
	if o.ComponentID != "" {
		q.Set("component_id", o.ComponentID)
	}
	if o.Kind != "" {
		q.Set("kind", o.Kind)
	}
	var l v1.List[v1.Image]
	_, err := c.do(ctx, http.MethodGet, []string{"tenants", tenant, "images"}, listQuery(q, o.ListOptions), nil, &l)
	return l, err
}

// AllImages lists every image o selects.
func (c *Client) AllImages(ctx context.Context, tenant string, o ImageListOptions) ([]v1.Image, error) {
	return all(ctx, o.ListOptions, func(ctx context.Context, lo ListOptions) (v1.List[v1.Image], error) {
		o.ListOptions = lo
		return c.ListImages(ctx, tenant, o)
	})
}

// GetImage returns an image.
func (c *Client) GetImage(ctx context.Context, tenant, id string) (*v1.Image, error) {
	var img v1.Image
	if _, err := c.do(ctx, http.MethodGet, []string{"tenants", tenant, "images", id}, nil, nil, &img); err != nil {
		return nil, err
	}
	return &img, nil
}

// CreateDeployment makes a group's new deployment.
func (c *Client) CreateDeployment(ctx context.Context, tenant, group string, req v1.DeploymentCreate) (*v1.Deployment, error) {
	var d v1.Deployment
	if _, err := c.do(ctx, http.MethodPost, []string{"tenants", tenant, "device-groups", group, "deployments"}, nil, req, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// ListDeployments lists one page of deployments, newest first; group "" lists every group's.
func (c *Client) ListDeployments(ctx context.Context, tenant, group string, o ListOptions) (v1.List[v1.Deployment], error) {
	q := url.Values{}
	if group != "" {
		q.Set("device_group_id", group)
	}
	var l v1.List[v1.Deployment]
	_, err := c.do(ctx, http.MethodGet, []string{"tenants", tenant, "deployments"}, listQuery(q, o), nil, &l)
	return l, err
}

// GetDeployment returns a deployment.
func (c *Client) GetDeployment(ctx context.Context, tenant, id string) (*v1.Deployment, error) {
	var d v1.Deployment
	if _, err := c.do(ctx, http.MethodGet, []string{"tenants", tenant, "deployments", id}, nil, nil, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

type progressReader struct {
	r io.Reader
	n int64
	f func(int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	p.f(p.n)
	return n, err
}

// ExportUpdateRootKey takes one of the tenant's update-metadata root keys offline (keyID; ""
// means the only online one) and returns it (PKCS #8 PEM). Keep it safe: the service no longer
// has it.
func (c *Client) ExportUpdateRootKey(ctx context.Context, tenant, keyID string) (string, error) {
	var k v1.UpdateRootKey
	var q url.Values
	if keyID != "" {
		q = url.Values{"key_id": {keyID}}
	}
	if _, err := c.do(ctx, http.MethodPost, []string{"tenants", tenant, "update-keys", "root", "export"}, q, nil, &k); err != nil {
		return "", err
	}
	return k.KeyPEM, nil
}

// ImportUpdateRootKey brings one of the tenant's exported update-metadata root keys back online.
func (c *Client) ImportUpdateRootKey(ctx context.Context, tenant, keyPEM string) error {
	_, err := c.do(ctx, http.MethodPost, []string{"tenants", tenant, "update-keys", "root", "import"}, nil, v1.UpdateRootKey{KeyPEM: keyPEM}, nil)
	return err
}

// RotateUpdateRootKey replaces the tenant's update-metadata root keys and threshold (and, with
// OnlineKeys, every repository's online key); devices follow at their next refresh.
func (c *Client) RotateUpdateRootKey(ctx context.Context, tenant string, req v1.UpdateRootRotate) (v1.UpdateRootRotation, error) {
	var out v1.UpdateRootRotation
	_, err := c.do(ctx, http.MethodPost, []string{"tenants", tenant, "update-keys", "root", "rotate"}, nil, req, &out)
	return out, err
}

// PrepareUpdateRoot returns every repository's next root, unsigned, listing new root keys
// whose holders keep them: they sign it offline, and CompleteUpdateRoot publishes it.
func (c *Client) PrepareUpdateRoot(ctx context.Context, tenant string, req v1.UpdateRootPrepare) (v1.UpdateRootPrepared, error) {
	var out v1.UpdateRootPrepared
	_, err := c.do(ctx, http.MethodPost, []string{"tenants", tenant, "update-keys", "root", "prepare"}, nil, req, &out)
	return out, err
}

// CompleteUpdateRoot publishes a prepared root rotation with its detached signatures.
func (c *Client) CompleteUpdateRoot(ctx context.Context, tenant string, req v1.UpdateRootComplete) (v1.UpdateRootRotation, error) {
	var out v1.UpdateRootRotation
	_, err := c.do(ctx, http.MethodPost, []string{"tenants", tenant, "update-keys", "root", "complete"}, nil, req, &out)
	return out, err
}

// UpdateRootStatus returns the tenant's update-metadata root key and when each repository's
// root expires.
func (c *Client) UpdateRootStatus(ctx context.Context, tenant string) (v1.UpdateRootStatus, error) {
	var out v1.UpdateRootStatus
	_, err := c.do(ctx, http.MethodGet, []string{"tenants", tenant, "update-keys", "root"}, nil, nil, &out)
	return out, err
}

// ImagesRootMetadata returns the first root metadata (1.root.json) of the tenant's image
// repository, for a device image to ship (rampart-agent run --update-root).
func (c *Client) ImagesRootMetadata(ctx context.Context, tenant string) ([]byte, error) {
	var raw json.RawMessage
	if _, err := c.do(ctx, http.MethodGet, []string{"tenants", tenant, "update-keys", "root", "metadata"}, nil, nil, &raw); err != nil {
		return nil, err
	}
	return raw, nil
}
