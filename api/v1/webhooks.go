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
	Secret    string    `json:"secret,omitempty" doc:"the HMAC-SHA256 key that signs deliveries; shown once, at creation or rotation"`
	// PreviousSecretUntil is when the secret a rotation replaced stops signing deliveries.
	PreviousSecretUntil *time.Time `json:"previous_secret_until,omitempty" doc:"until then deliveries carry a signature by the previous secret too"`
	State               string     `json:"state" doc:"enabled or disabled"`
	DisabledAt          *time.Time `json:"disabled_at,omitempty"`
	DisabledReason      string     `json:"disabled_reason,omitempty" doc:"why the service disabled it"`
	FailingSince        *time.Time `json:"failing_since,omitempty" doc:"when the first of the current run of deliveries that failed for good did"`
	FailedDeliveries    int        `json:"failed_deliveries,omitempty" doc:"deliveries in a row that failed for good (every attempt failed)"`
}

// Webhook states.
const (
	WebhookEnabled  = "enabled"
	WebhookDisabled = "disabled"
)

// WebhookRotateSecret asks for a new secret. Until the grace period ends deliveries are signed
// with the new secret and the old one; then the old one is dropped.
type WebhookRotateSecret struct {
	GraceSeconds *int64 `json:"grace_seconds,omitempty" doc:"how long the old secret keeps signing: 0 to 604800 (7 days); default 86400"`
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
	RedeliveryOf  string     `json:"redelivery_of,omitempty" doc:"the delivery whose event this one sends again (same event ID)"`
}
