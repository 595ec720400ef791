package v1

import "time"

// WebhookCreate registers a webhook: an https URL (http only to a loopback host, when the
// service allows it) and the event types it hears: error_report.bucket_created,
// rollout.state_changed.
type WebhookCreate struct {
	URL    string   `json:"url"`
	Events []string `json:"events"`
}

// Webhook is an endpoint of the tenant that hears of events (docs/WEBHOOKS.md).
type Webhook struct {
	ID        string    `json:"id"`
	URL       string    `json:"url"`
	Events    []string  `json:"events"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	Secret    string    `json:"secret,omitempty" doc:"the HMAC-SHA256 key that signs deliveries; shown once, at creation"`
}

// WebhookDelivery is one event on its way to a webhook, and how its attempts went.
type WebhookDelivery struct {
	ID            string     `json:"id" doc:"the delivery ID, sent as Rampart-Webhook-Id; the same on every retry"`
	WebhookID     string     `json:"webhook_id"`
	EventID       string     `json:"event_id"`
	EventType     string     `json:"event_type"`
	State         string     `json:"state" doc:"pending, delivered or failed"`
	Attempts      int        `json:"attempts"`
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty" doc:"when a pending delivery is tried next"`
	LastStatus    int        `json:"last_status,omitempty" doc:"the last response's HTTP status"`
	LastError     string     `json:"last_error,omitempty"`
	CreatedAt     time.Time  `json:"created_at"`
	UpdatedAt     time.Time  `json:"updated_at"`
}
