package client

import (
	"context"
	"net/http"
	"net/url"

	v1 "github.com/rampart-iot/rampart/api/v1"
)

// CreateWebhook registers a webhook of the tenant; the answer's Secret is shown only now.
func (c *Client) CreateWebhook(ctx context.Context, tenant string, req v1.WebhookCreate) (*v1.Webhook, error) {
	var w v1.Webhook
	if _, err := c.do(ctx, http.MethodPost, []string{"tenants", tenant, "webhooks"}, nil, req, &w); err != nil {
		return nil, err
	}
	return &w, nil
}

// GetWebhook returns a webhook of the tenant, without its secret.
func (c *Client) GetWebhook(ctx context.Context, tenant, id string) (*v1.Webhook, error) {
	var w v1.Webhook
	if _, err := c.do(ctx, http.MethodGet, []string{"tenants", tenant, "webhooks", id}, nil, nil, &w); err != nil {
		return nil, err
	}
	return &w, nil
}

// ListWebhooks lists one page of the tenant's webhooks.
func (c *Client) ListWebhooks(ctx context.Context, tenant string, o ListOptions) (v1.List[v1.Webhook], error) {
	var l v1.List[v1.Webhook]
	_, err := c.do(ctx, http.MethodGet, []string{"tenants", tenant, "webhooks"}, listQuery(url.Values{}, o), nil, &l)
	return l, err
}

// AllWebhooks lists every webhook of the tenant, starting at o's page.
func (c *Client) AllWebhooks(ctx context.Context, tenant string, o ListOptions) ([]v1.Webhook, error) {
	return all(ctx, o, func(ctx context.Context, lo ListOptions) (v1.List[v1.Webhook], error) {
		return c.ListWebhooks(ctx, tenant, lo)
	})
}

// DeleteWebhook deletes a webhook and its deliveries.
func (c *Client) DeleteWebhook(ctx context.Context, tenant, id string) error {
	_, err := c.do(ctx, http.MethodDelete, []string{"tenants", tenant, "webhooks", id}, nil, nil, nil)
	return err
}

// RetryWebhookDelivery sends a failed delivery again.
func (c *Client) RetryWebhookDelivery(ctx context.Context, tenant, id, deliveryID string) (*v1.WebhookDelivery, error) {
	var d v1.WebhookDelivery
	if _, err := c.do(ctx, http.MethodPost, []string{"tenants", tenant, "webhooks", id, "deliveries", deliveryID, "retry"}, nil, nil, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// ListWebhookDeliveries lists one page of a webhook's deliveries, newest first.
func (c *Client) ListWebhookDeliveries(ctx context.Context, tenant, id string, o ListOptions) (v1.List[v1.WebhookDelivery], error) {
	var l v1.List[v1.WebhookDelivery]
	_, err := c.do(ctx, http.MethodGet, []string{"tenants", tenant, "webhooks", id, "deliveries"}, listQuery(url.Values{}, o), nil, &l)
	return l, err
}

// RedeliverWebhookDelivery queues a delivered or failed delivery's event to the webhook again:
// a new delivery with the same event ID.
func (c *Client) RedeliverWebhookDelivery(ctx context.Context, tenant, id, deliveryID string) (*v1.WebhookDelivery, error) {
	var d v1.WebhookDelivery
	if _, err := c.do(ctx, http.MethodPost, []string{"tenants", tenant, "webhooks", id, "deliveries", deliveryID, "redeliver"}, nil, nil, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// PingWebhook queues a ping event for the webhook, to test its receiver.
func (c *Client) PingWebhook(ctx context.Context, tenant, id string) (*v1.WebhookDelivery, error) {
	var d v1.WebhookDelivery
	if _, err := c.do(ctx, http.MethodPost, []string{"tenants", tenant, "webhooks", id, "ping"}, nil, nil, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// RotateWebhookSecret gives the webhook a new secret, in the answer (shown only then).
func (c *Client) RotateWebhookSecret(ctx context.Context, tenant, id string, req v1.WebhookRotateSecret) (*v1.Webhook, error) {
	var w v1.Webhook
	if _, err := c.do(ctx, http.MethodPost, []string{"tenants", tenant, "webhooks", id, "rotate-secret"}, nil, req, &w); err != nil {
		return nil, err
	}
	return &w, nil
}

// EnableWebhook enables a webhook the service disabled.
func (c *Client) EnableWebhook(ctx context.Context, tenant, id string) (*v1.Webhook, error) {
	var w v1.Webhook
	if _, err := c.do(ctx, http.MethodPost, []string{"tenants", tenant, "webhooks", id, "enable"}, nil, nil, &w); err != nil {
		return nil, err
	}
	return &w, nil
}
