package client

import (
	"context"
	"net/http"
	"net/url"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
)

// AuditListOptions filters and pages the audit log. Empty fields select everything.
type AuditListOptions struct {
	Actor        string // user name
	Action       string // such as product.create
	ResourceType string
	ResourceID   string
	Result       string // "success" or "failure"
	Since        time.Time
	Until        time.Time
	ListOptions
}

func (o AuditListOptions) query() url.Values {
	q := url.Values{}
	for k, v := range map[string]string{
		"actor":         o.Actor,
		"action":        o.Action,
		"resource_type": o.ResourceType,
		"resource_id":   o.ResourceID,
		"result":        o.Result,
	} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if !o.Since.IsZero() {
		q.Set("since", o.Since.UTC().Format(time.RFC3339Nano))
	}
	if !o.Until.IsZero() {
		q.Set("until", o.Until.UTC().Format(time.RFC3339Nano))
	}
	return listQuery(q, o.ListOptions)
}

// ListAudit lists one page of a tenant's audit log, newest first.
func (c *Client) ListAudit(ctx context.Context, tenant string, o AuditListOptions) (v1.List[v1.AuditEntry], error) {
	var l v1.List[v1.AuditEntry]
	_, err := c.do(ctx, http.MethodGet, []string{"tenants", tenant, "audit"}, o.query(), nil, &l)
	return l, err
}

// AllAudit lists every entry of a tenant's audit log that o selects, newest first.
func (c *Client) AllAudit(ctx context.Context, tenant string, o AuditListOptions) ([]v1.AuditEntry, error) {
	return all(ctx, o.ListOptions, func(ctx context.Context, lo ListOptions) (v1.List[v1.AuditEntry], error) {
		o.ListOptions = lo
		return c.ListAudit(ctx, tenant, o)
	})
}

// ListServiceAudit lists one page of the service-level audit log, newest first. Only service
// administrators may.
func (c *Client) ListServiceAudit(ctx context.Context, o AuditListOptions) (v1.List[v1.AuditEntry], error) {
	var l v1.List[v1.AuditEntry]
	_, err := c.do(ctx, http.MethodGet, []string{"audit"}, o.query(), nil, &l)
	return l, err
}

// AllServiceAudit lists every entry of the service-level audit log that o selects.
func (c *Client) AllServiceAudit(ctx context.Context, o AuditListOptions) ([]v1.AuditEntry, error) {
	return all(ctx, o.ListOptions, func(ctx context.Context, lo ListOptions) (v1.List[v1.AuditEntry], error) {
		o.ListOptions = lo
		return c.ListServiceAudit(ctx, o)
	})
}
