// Package webhook tells tenants' own HTTPS endpoints of events: a new error-report bucket
// (error_report.bucket_created) and a rollout's state change (rollout.state_changed). It owns
// the event names and their parser, the envelope every delivery carries, the durable outbox
// (Outbox.Enqueue writes one pending delivery per subscribed webhook inside the caller's store
// transaction), the signature (HMAC-SHA256 over "timestamp.body"), the check of a webhook's
// URL, and the Worker that claims due deliveries with a lease, posts them and retries with
// exponential backoff and jitter (docs/WEBHOOKS.md).
//
// Trust: a webhook's URL is chosen by the tenant's Administrator and is trusted to be where
// they want their events to go; the Worker still never follows a redirect, refuses to connect
// to link-local addresses (cloud metadata services among them), and with DenyPrivateNetworks
// to every non-public address, and reads a bounded part of each response. Nothing a receiver
// answers is trusted or kept beyond its status code.
package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/rampart-iot/rampart/internal/ids"
	"github.com/rampart-iot/rampart/internal/store"
)

// Event types.
const (
	EventBucketCreated       = "error_report.bucket_created"
	EventRolloutStateChanged = "rollout.state_changed"
)

// Events lists every event type a webhook may hear, in the order documentation shows them.
var Events = []string{EventBucketCreated, EventRolloutStateChanged}

// EventPing is the event `rampart webhook ping` sends to one webhook, whatever it hears, so its
// receiver can be tested. It is not in Events: no webhook subscribes to it.
const EventPing = "ping"

// Ping is the data of a ping event. It goes to a receiver outside the service, so it names
// the requester by the principal's ID (a user ID) only, never by a user name.
type Ping struct {
	WebhookID   string `json:"webhook_id"`
	RequestedBy string `json:"requested_by"` // the requesting principal's user ID
}

// DisabledError is the LastError of a delivery not attempted because its webhook is disabled.
const DisabledError = "not sent: the webhook is disabled"

// Limits of a webhook.
const (
	MaxURLLength         = 2048
	MaxWebhooksPerTenant = 20
	maxEventsListLength  = 1024
)

// ParseEvents parses a comma-separated list of event types (spaces around names are ignored):
// each must be one of Events, at most once; the list must name at least one. It returns the
// types in the order Events lists them.
func ParseEvents(s string) ([]string, error) {
	if len(s) > maxEventsListLength {
		return nil, fmt.Errorf("events: the list is %d bytes long; the limit is %d", len(s), maxEventsListLength)
	}
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("events: name at least one of %s", strings.Join(Events, ", "))
	}
	return CheckEvents(strings.Split(s, ","))
}

// CheckEvents checks a list of event types as ParseEvents does, without the splitting.
func CheckEvents(list []string) ([]string, error) {
	if len(list) == 0 {
		return nil, fmt.Errorf("events: name at least one of %s", strings.Join(Events, ", "))
	}
	seen := map[string]bool{}
	for _, e := range list {
		e = strings.TrimSpace(e)
		switch {
		case e == "":
			return nil, fmt.Errorf("events: an empty name in the list")
		case !slices.Contains(Events, e):
			return nil, fmt.Errorf("events: %q is not an event type; the types are %s", clip(e, 64), strings.Join(Events, ", "))
		case seen[e]:
			return nil, fmt.Errorf("events: %q is named twice", e)
		}
		seen[e] = true
	}
	var out []string
	for _, e := range Events {
		if seen[e] {
			out = append(out, e)
		}
	}
	return out, nil
}

// clip cuts s to at most n bytes on a character boundary, for error messages.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8Start(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func utf8Start(b byte) bool { return b&0xc0 != 0x80 }

// Envelope is the JSON body of every delivery.
type Envelope struct {
	ID        string          `json:"id"` // the event's ID: the same in every delivery of it
	Type      string          `json:"type"`
	CreatedAt time.Time       `json:"created_at"`
	TenantID  string          `json:"tenant_id"`
	Data      json.RawMessage `json:"data"`
}

// BucketCreated is the data of an error_report.bucket_created event: the first event of a
// bucket the tenant had no report in (within the retention window).
type BucketCreated struct {
	Type          string    `json:"type"`
	ComponentID   string    `json:"component_id,omitempty"`
	ImageID       string    `json:"image_id,omitempty"`
	Signal        int       `json:"signal,omitempty"`
	ExitCode      *int      `json:"exit_code,omitempty"`
	DeviceID      string    `json:"device_id"` // the device that reported it first
	DeviceGroupID string    `json:"device_group_id,omitempty"`
	ProductID     string    `json:"product_id,omitempty"`
	DeploymentID  string    `json:"deployment_id,omitempty"`
	FirstSeen     time.Time `json:"first_seen"` // by the device's clock
	ReceivedAt    time.Time `json:"received_at"`
}

// Rollout changes, as rollout.state_changed events name them.
const (
	ChangeStarted   = "started"
	ChangeAdvanced  = "advanced"
	ChangePaused    = "paused"
	ChangeResumed   = "resumed"
	ChangeAborted   = "aborted"
	ChangeCompleted = "completed"
)

// RolloutStateChanged is the data of a rollout.state_changed event.
type RolloutStateChanged struct {
	DeploymentID         string `json:"deployment_id"`
	DeviceGroupID        string `json:"device_group_id"`
	PreviousDeploymentID string `json:"previous_deployment_id"`
	Change               string `json:"change"` // started, advanced, paused, resumed, aborted, completed
	State                string `json:"state"`  // running, paused, completed, aborted
	Batch                int    `json:"batch"`  // the current batch, from 1
	Reason               string `json:"reason,omitempty"`
	RevertDeploymentID   string `json:"revert_deployment_id,omitempty"`
}

// Outbox writes events into the store's delivery outbox.
type Outbox struct {
	IDs *ids.Generator // event and delivery IDs
}

// Enqueue records an event of the tenant, within tx: one delivery for each of the tenant's
// webhooks that hears eventType, pending and due at once, or, to a disabled webhook, failed at
// once and unsent (so the tenant sees what it missed and may retry it after enabling the
// webhook). It returns how many it made (none when no webhook hears it). The caller's
// transaction makes the event as durable as the change it tells of.
func (o *Outbox) Enqueue(ctx context.Context, tx store.Tx, tenantID, eventType string, data any, now time.Time) (int, error) {
	hooks, err := tx.ListWebhooks(ctx, tenantID, store.ListOptions{Limit: store.MaxLimit})
	if err != nil {
		return 0, fmt.Errorf("webhook event %s: %w", eventType, err)
	}
	var to []store.Webhook
	for _, h := range hooks.Items {
		if slices.Contains(h.Events, eventType) {
			to = append(to, h)
		}
	}
	if len(to) == 0 {
		return 0, nil
	}
	now = now.UTC().Truncate(time.Microsecond)
	eventID, body, err := o.event(tenantID, eventType, data, now)
	if err != nil {
		return 0, err
	}
	for _, h := range to {
		if _, err := o.deliver(ctx, tx, h, eventID, eventType, body, "", now); err != nil {
			return 0, err
		}
	}
	return len(to), nil
}

// EnqueueTo records an event for one webhook, whatever event types it hears (a ping), within
// tx, as Enqueue does, and returns its delivery.
func (o *Outbox) EnqueueTo(ctx context.Context, tx store.Tx, h store.Webhook, eventType string, data any, now time.Time) (store.WebhookDelivery, error) {
	now = now.UTC().Truncate(time.Microsecond)
	eventID, body, err := o.event(h.TenantID, eventType, data, now)
	if err != nil {
		return store.WebhookDelivery{}, err
	}
	return o.deliver(ctx, tx, h, eventID, eventType, body, "", now)
}

// Redeliver sends the event of a delivery to its webhook h again, within tx: a new delivery
// (a new delivery ID), due at once, with the same body, so the same event ID, which receivers
// de-duplicate by. It returns the new delivery.
func (o *Outbox) Redeliver(ctx context.Context, tx store.Tx, h store.Webhook, d store.WebhookDelivery, now time.Time) (store.WebhookDelivery, error) {
	return o.deliver(ctx, tx, h, d.EventID, d.EventType, d.Payload, d.ID, now.UTC().Truncate(time.Microsecond))
}

// event makes an event's ID and envelope.
func (o *Outbox) event(tenantID, eventType string, data any, now time.Time) (string, []byte, error) {
	eventID, err := o.IDs.New()
	if err != nil {
		return "", nil, err
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return "", nil, fmt.Errorf("webhook event %s: %w", eventType, err)
	}
	body, err := json.Marshal(Envelope{ID: eventID, Type: eventType, CreatedAt: now, TenantID: tenantID, Data: raw})
	if err != nil {
		return "", nil, fmt.Errorf("webhook event %s: %w", eventType, err)
	}
	return eventID, body, nil
}

// deliver writes one delivery of an event to h: pending and due now, or failed unsent if h is
// disabled.
func (o *Outbox) deliver(ctx context.Context, tx store.Tx, h store.Webhook, eventID, eventType string, body []byte, redeliveryOf string, now time.Time) (store.WebhookDelivery, error) {
	id, err := o.IDs.New()
	if err != nil {
		return store.WebhookDelivery{}, err
	}
	d := store.WebhookDelivery{ID: id, TenantID: h.TenantID, WebhookID: h.ID, EventID: eventID, EventType: eventType,
		Payload: body, State: store.DeliveryPending, NextAttemptAt: now, CreatedAt: now, UpdatedAt: now, RedeliveryOf: redeliveryOf}
	if !h.DisabledAt.IsZero() {
		d.State, d.LastError = store.DeliveryFailed, DisabledError
	}
	if err := tx.CreateWebhookDelivery(ctx, d); err != nil {
		return store.WebhookDelivery{}, err
	}
	return d, nil
}
