package httpapi

import (
	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/authz"
	"github.com/rampart-iot/rampart/internal/store"
)

// webhookRoutes are the tenant's webhooks and their deliveries (docs/WEBHOOKS.md).
func webhookRoutes() []route {
	p := tenantPath + "/webhooks"
	return []route{
		{method: "GET", path: p, op: "listWebhooks", summary: "The tenant's webhooks (never their secrets).",
			action: authz.WebhookRead, out: v1.List[v1.Webhook]{}, status: 200, list: true, handle: listWebhooks},
		{method: "POST", path: p, op: "createWebhook",
			summary: "Register a webhook: an https URL and the event types it hears (error_report.bucket_created, rollout.state_changed). The answer carries the signing secret, shown once.",
			action:  authz.WebhookManage, in: v1.WebhookCreate{}, out: v1.Webhook{}, status: 201, handle: createWebhook},
		{method: "GET", path: p + "/{webhook}", op: "getWebhook", summary: "A webhook (without its secret).",
			action: authz.WebhookRead, out: v1.Webhook{}, status: 200, handle: getWebhook},
		{method: "DELETE", path: p + "/{webhook}", op: "deleteWebhook", summary: "Delete a webhook and its deliveries, pending ones too.",
			action: authz.WebhookManage, status: 204, handle: deleteWebhook},
		{method: "GET", path: p + "/{webhook}/deliveries", op: "listWebhookDeliveries",
			summary: "The webhook's recent deliveries, newest first: state (pending, delivered, failed), attempts, the last status and error.",
			action:  authz.WebhookRead, out: v1.List[v1.WebhookDelivery]{}, status: 200, list: true, handle: listWebhookDeliveries},
		{method: "POST", path: p + "/{webhook}/deliveries/{delivery}/retry", op: "retryWebhookDelivery",
			summary: "Send a failed delivery again: pending, due now, attempts from zero, the same delivery ID (409 unless it failed).",
			action:  authz.WebhookManage, out: v1.WebhookDelivery{}, status: 200, handle: retryWebhookDelivery},
		{method: "POST", path: p + "/{webhook}/deliveries/{delivery}/redeliver", op: "redeliverWebhookDelivery",
			summary: "Send a delivered or failed delivery's event again: a new delivery, the same event ID (409 if it is pending or the webhook disabled).",
			action:  authz.WebhookManage, out: v1.WebhookDelivery{}, status: 202, handle: redeliverWebhookDelivery},
		{method: "POST", path: p + "/{webhook}/ping", op: "pingWebhook",
			summary: "Queue a ping event for the webhook, whatever events it hears, to test its receiver (409 if the webhook is disabled).",
			action:  authz.WebhookManage, out: v1.WebhookDelivery{}, status: 202, handle: pingWebhook},
		{method: "POST", path: p + "/{webhook}/rotate-secret", op: "rotateWebhookSecret",
			summary: "Give the webhook a new secret, shown once; deliveries carry signatures by the new and the old secret for the grace period (default 24 hours, at most 7 days).",
			action:  authz.WebhookManage, in: v1.WebhookRotateSecret{}, out: v1.Webhook{}, status: 200, handle: rotateWebhookSecret},
		{method: "POST", path: p + "/{webhook}/enable", op: "enableWebhook",
			summary: "Enable a webhook the service disabled because its deliveries kept failing, and start its count of failures afresh.",
			action:  authz.WebhookManage, out: v1.Webhook{}, status: 200, handle: enableWebhook},
	}
}

func same[T any](v T) T { return v }

func listWebhooks(c *call) (any, error) {
	return listWith(c, func(o store.ListOptions) (store.Page[v1.Webhook], error) {
		return c.h.m.ListWebhooks(c.r.Context(), c.p, c.param("tenant"), o)
	}, same[v1.Webhook])
}

func createWebhook(c *call) (any, error) {
	var req v1.WebhookCreate
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	return c.h.m.CreateWebhook(c.r.Context(), c.p, c.param("tenant"), req)
}

func getWebhook(c *call) (any, error) {
	return c.h.m.GetWebhook(c.r.Context(), c.p, c.param("tenant"), c.param("webhook"))
}

func deleteWebhook(c *call) (any, error) {
	return nil, c.h.m.DeleteWebhook(c.r.Context(), c.p, c.param("tenant"), c.param("webhook"))
}

func retryWebhookDelivery(c *call) (any, error) {
	return c.h.m.RetryWebhookDelivery(c.r.Context(), c.p, c.param("tenant"), c.param("webhook"), c.param("delivery"))
}

func redeliverWebhookDelivery(c *call) (any, error) {
	return c.h.m.RedeliverWebhookDelivery(c.r.Context(), c.p, c.param("tenant"), c.param("webhook"), c.param("delivery"))
}

func pingWebhook(c *call) (any, error) {
	return c.h.m.PingWebhook(c.r.Context(), c.p, c.param("tenant"), c.param("webhook"))
}

func rotateWebhookSecret(c *call) (any, error) {
	var req v1.WebhookRotateSecret
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	return c.h.m.RotateWebhookSecret(c.r.Context(), c.p, c.param("tenant"), c.param("webhook"), req)
}

func enableWebhook(c *call) (any, error) {
	return c.h.m.EnableWebhook(c.r.Context(), c.p, c.param("tenant"), c.param("webhook"))
}

func listWebhookDeliveries(c *call) (any, error) {
	return listWith(c, func(o store.ListOptions) (store.Page[v1.WebhookDelivery], error) {
		return c.h.m.ListWebhookDeliveries(c.r.Context(), c.p, c.param("tenant"), c.param("webhook"), o)
	}, same[v1.WebhookDelivery])
}
