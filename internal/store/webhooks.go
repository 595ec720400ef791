package store

import (
	"context"
	"time"
)

// WebhookTx is the tenants' webhooks and the durable outbox of deliveries to them. A delivery
// is created in the transaction of the change it tells of, so a committed change is delivered
// even if the service restarts before it could send it.
type WebhookTx interface {
	// CreateWebhook stores a webhook. A tenant that does not exist is ErrNotFound, an ID that
	// exists ErrConflict.
	CreateWebhook(ctx context.Context, w Webhook) error
	// GetWebhook fails with ErrNotFound unless the tenant has the webhook.
	GetWebhook(ctx context.Context, tenantID, id string) (Webhook, error)
	// ListWebhooks lists a tenant's webhooks by ID.
	ListWebhooks(ctx context.Context, tenantID string, opt ListOptions) (Page[Webhook], error)
	// DeleteWebhook deletes a webhook of the tenant and its deliveries (ErrNotFound if none).
	DeleteWebhook(ctx context.Context, tenantID, id string) error
	// SetWebhookSecret replaces a webhook's Secret, PreviousSecret and PreviousSecretUntil
	// (ErrNotFound unless the tenant has the webhook).
	SetWebhookSecret(ctx context.Context, tenantID, id, secret, previous string, previousUntil time.Time) error
	// DropWebhookSecretsBefore clears, across tenants, every PreviousSecret whose
	// PreviousSecretUntil is not after the given time, and returns how many it cleared.
	DropWebhookSecretsBefore(ctx context.Context, before time.Time) (int, error)
	// SetWebhookHealth replaces a webhook's WebhookHealth (ErrNotFound unless the tenant has
	// the webhook).
	SetWebhookHealth(ctx context.Context, tenantID, id string, h WebhookHealth) error

	// CreateWebhookDelivery adds a delivery. Its webhook must be its tenant's (ErrNotFound
	// otherwise); an existing ID, or a second delivery of one event to one webhook, is
	// ErrConflict, unless RedeliveryOf names a delivery of the same webhook and event that it
	// sends again (ErrNotFound if there is none such).
	CreateWebhookDelivery(ctx context.Context, d WebhookDelivery) error
	// GetWebhookDelivery fails with ErrNotFound unless the tenant has the delivery.
	GetWebhookDelivery(ctx context.Context, tenantID, id string) (WebhookDelivery, error)
	// ListWebhookDeliveries lists a webhook's deliveries newest first, that is by ID
	// descending (IDs are UUIDv7); After is the ID of the last delivery of the page before.
	ListWebhookDeliveries(ctx context.Context, tenantID, webhookID string, opt ListOptions) (Page[WebhookDelivery], error)
	// ClaimWebhookDeliveries leases, across tenants, at most limit pending deliveries whose
	// NextAttemptAt is not after now and whose lease (if any) has expired by now, oldest due
	// first: it sets their LeaseOwner to owner and LeaseUntil to until, and returns them. Of
	// concurrent claims, each delivery goes to one owner until its lease expires.
	ClaimWebhookDeliveries(ctx context.Context, owner string, now, until time.Time, limit int) ([]WebhookDelivery, error)
	// FinishWebhookAttempt records an attempt of a claimed delivery: it writes d's State,
	// Attempts, NextAttemptAt, LastStatus, LastError, UpdatedAt and FailureCounted and releases
	// the lease,
	// but only while d.LeaseOwner still holds the lease; otherwise (the lease expired and
	// another owner claimed it, or the delivery is gone) it fails with ErrConflict or
	// ErrNotFound and writes nothing.
	FinishWebhookAttempt(ctx context.Context, d WebhookDelivery) error
	// RetryWebhookDelivery makes a failed delivery of the tenant's webhook pending again, due at
	// the given time, with its attempts counted from zero (FailureCounted is kept, so failing
	// again does not count twice). It fails with ErrNotFound unless the
	// webhook has the delivery, and with ErrConflict unless the delivery failed.
	RetryWebhookDelivery(ctx context.Context, tenantID, webhookID, id string, at time.Time) error
	// FailPendingWebhookDeliveries marks a webhook's pending deliveries that no worker holds a
	// lease on at the given time failed, unsent: LastError is set to lastError, UpdatedAt to
	// at, attempts are kept. It returns how many it marked.
	FailPendingWebhookDeliveries(ctx context.Context, tenantID, webhookID, lastError string, at time.Time) (int, error)
	// DeleteWebhookDeliveriesBefore deletes, across tenants, at most limit delivered or failed
	// deliveries last updated before the given time, and returns how many it deleted.
	DeleteWebhookDeliveriesBefore(ctx context.Context, before time.Time, limit int) (int, error)

	// HasErrorBucket reports whether the tenant has any error report in b's bucket (its Type,
	// ComponentID, ImageID, Signal and ExitCode; the other fields are ignored): ingest asks
	// before it stores an upload, to tell webhooks of new buckets.
	HasErrorBucket(ctx context.Context, tenantID string, b ErrorBucket) (bool, error)
}

// Webhook delivery states.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed"
)

// Webhook is an endpoint a tenant registered to hear of events.
type Webhook struct {
	ID        string // UUIDv7
	TenantID  string
	URL       string
	Events    []string // the event types it hears, as given (stores return them so)
	Secret    string   // the HMAC-SHA256 key deliveries are signed with
	CreatedBy string   // user ID
	CreatedAt time.Time
	// PreviousSecret is the secret a rotation replaced: deliveries are signed with it too
	// until PreviousSecretUntil. "" for none.
	PreviousSecret      string
	PreviousSecretUntil time.Time
	WebhookHealth
}

// WebhookHealth is how a webhook's deliveries have been going, and whether it is disabled.
type WebhookHealth struct {
	// FailingSince is when the first of the current run of deliveries that failed for good
	// did (zero: the last finished delivery succeeded); FailedDeliveries counts the run.
	FailingSince     time.Time
	FailedDeliveries int
	// DisabledAt is when the webhook was disabled (zero: enabled), DisabledReason why.
	DisabledAt     time.Time
	DisabledReason string
}

// WebhookDelivery is one event on its way to one webhook, and how its attempts went.
type WebhookDelivery struct {
	ID            string // UUIDv7: the delivery ID receivers see
	TenantID      string
	WebhookID     string
	EventID       string
	EventType     string
	Payload       []byte // the JSON body, exactly as signed and sent
	State         string // DeliveryPending, DeliveryDelivered or DeliveryFailed
	Attempts      int
	NextAttemptAt time.Time // when a pending delivery is due
	LeaseOwner    string    // the worker that claimed it, "" if none
	LeaseUntil    time.Time // zero if not claimed
	LastStatus    int       // the last response's HTTP status, 0 for none
	LastError     string
	CreatedAt     time.Time
	UpdatedAt     time.Time
	RedeliveryOf  string // the delivery whose event this one sends again, "" for an event's first
	// FailureCounted says this delivery's failure for good was counted in its webhook's run of
	// failures: once per delivery, however often it is retried and fails again.
	FailureCounted bool
}
