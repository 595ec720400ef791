package manage

import (
	"context"
	"errors"
	"strings"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/authz"
	"github.com/rampart-iot/rampart/internal/problem"
	"github.com/rampart-iot/rampart/internal/store"
	"github.com/rampart-iot/rampart/internal/webhook"
)

// Bounds of a secret rotation's grace period.
const (
	DefaultWebhookGrace = 24 * time.Hour
	MaxWebhookGrace     = 7 * 24 * time.Hour
)

// toWebhook renders a webhook without its secrets, as of now.
func toWebhook(w store.Webhook, now time.Time) v1.Webhook {
	out := v1.Webhook{ID: w.ID, URL: w.URL, Events: w.Events, CreatedBy: w.CreatedBy, CreatedAt: w.CreatedAt,
		State: v1.WebhookEnabled, DisabledReason: w.DisabledReason, FailedDeliveries: w.FailedDeliveries}
	if w.PreviousSecret != "" && now.Before(w.PreviousSecretUntil) {
		until := w.PreviousSecretUntil
		out.PreviousSecretUntil = &until
	}
	if !w.DisabledAt.IsZero() {
		at := w.DisabledAt
		out.State, out.DisabledAt = v1.WebhookDisabled, &at
	}
	if !w.FailingSince.IsZero() {
		since := w.FailingSince
		out.FailingSince = &since
	}
	return out
}

// disabledConflict is the answer to a request that would send to a disabled webhook.
func disabledConflict(w store.Webhook) error {
	return problem.New(v1.CodeConflict, "webhook %s is disabled (%s): enable it first (rampart webhook enable)", w.ID, w.DisabledReason)
}

func toDelivery(d store.WebhookDelivery) v1.WebhookDelivery {
	out := v1.WebhookDelivery{ID: d.ID, WebhookID: d.WebhookID, EventID: d.EventID, EventType: d.EventType, State: d.State,
		Attempts: d.Attempts, LastStatus: d.LastStatus, LastError: d.LastError, CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt,
		RedeliveryOf: d.RedeliveryOf}
	if d.State == store.DeliveryPending && !d.NextAttemptAt.IsZero() {
		next := d.NextAttemptAt
		out.NextAttemptAt = &next
	}
	return out
}

// CreateWebhook registers a webhook of the tenant (Administrator). The answer carries the
// secret that signs its deliveries, which is never shown again.
func (m *Manager) CreateWebhook(ctx context.Context, p *authz.Principal, tenantID string, req v1.WebhookCreate) (v1.Webhook, error) {
	var out v1.Webhook
	o := op{tenantID: tenantID, action: authz.WebhookManage, resourceType: "webhook"}
	err := m.write(ctx, p, o, func(tx store.Tx, n *note) error {
		var ps problems
		if _, err := webhook.CheckURL(req.URL, m.policy.AllowLoopbackHTTPWebhooks); err != nil {
			ps.add("url", "%s", strings.TrimPrefix(err.Error(), "url: "))
		}
		events, err := webhook.CheckEvents(req.Events)
		if err != nil {
			ps.add("events", "%s", strings.TrimPrefix(err.Error(), "events: "))
		}
		n.detail("url", req.URL)
		n.detail("events", req.Events)
		if err := ps.err(); err != nil {
			return err
		}
		have, err := tx.ListWebhooks(ctx, tenantID, store.ListOptions{Limit: webhook.MaxWebhooksPerTenant})
		if err != nil {
			return err
		}
		if len(have.Items) >= webhook.MaxWebhooksPerTenant {
			return problem.New(v1.CodeConflict, "the tenant has %d webhooks, the most it may have; delete one first", len(have.Items))
		}
		id, err := m.newID()
		if err != nil {
			return err
		}
		secret, err := webhook.NewSecret(m.rand)
		if err != nil {
			return err
		}
		stored, err := m.hookSeal.Seal(id, secret)
		if err != nil {
			return err
		}
		w := store.Webhook{ID: id, TenantID: tenantID, URL: req.URL, Events: events, Secret: stored, CreatedBy: p.UserID, CreatedAt: m.timestamp()}
		n.resourceID = id
		if err := tx.CreateWebhook(ctx, w); err != nil {
			return err
		}
		out = toWebhook(w, m.timestamp())
		out.Secret = secret
		return nil
	})
	return out, err
}

// GetWebhook returns a webhook of the tenant, without its secret.
func (m *Manager) GetWebhook(ctx context.Context, p *authz.Principal, tenantID, id string) (v1.Webhook, error) {
	if err := m.read(ctx, p, tenantID, authz.WebhookRead); err != nil {
		return v1.Webhook{}, err
	}
	w, err := m.store.GetWebhook(ctx, tenantID, id)
	if err != nil {
		return v1.Webhook{}, err
	}
	m.dropExpiredSecrets(ctx, w)
	return toWebhook(w, m.timestamp()), nil
}

// dropExpiredSecrets erases every rotation's previous secret whose grace period has ended when
// one of ws, just read, still holds such a secret, so a replica that runs no delivery worker
// (whose cleanup erases them hourly) erases them too, at the first read past their end. The
// store's update is conditional on each row's end, so a concurrent rotation is never undone.
// A failure is logged: the secret no longer signs either way, and the next read tries again.
func (m *Manager) dropExpiredSecrets(ctx context.Context, ws ...store.Webhook) {
	now := m.timestamp()
	for _, w := range ws {
		if w.PreviousSecret != "" && !now.Before(w.PreviousSecretUntil) {
			if n, err := m.store.DropWebhookSecretsBefore(context.WithoutCancel(ctx), now); err != nil {
				m.log.Warn("erasing webhook secrets past their grace period", "error", err)
			} else if n > 0 {
				m.log.Info("erased the previous secrets of webhooks whose rotation's grace period ended", "count", n)
			}
			return
		}
	}
}

// ListWebhooks lists the tenant's webhooks, without their secrets.
func (m *Manager) ListWebhooks(ctx context.Context, p *authz.Principal, tenantID string, opt store.ListOptions) (store.Page[v1.Webhook], error) {
	if err := m.read(ctx, p, tenantID, authz.WebhookRead); err != nil {
		return store.Page[v1.Webhook]{}, err
	}
	page, err := m.store.ListWebhooks(ctx, tenantID, opt)
	if err != nil {
		return store.Page[v1.Webhook]{}, err
	}
	m.dropExpiredSecrets(ctx, page.Items...)
	out := store.Page[v1.Webhook]{Items: make([]v1.Webhook, 0, len(page.Items)), Next: page.Next}
	for _, w := range page.Items {
		out.Items = append(out.Items, toWebhook(w, m.timestamp()))
	}
	return out, nil
}

// DeleteWebhook deletes a webhook of the tenant and its deliveries, pending ones too
// (Administrator).
func (m *Manager) DeleteWebhook(ctx context.Context, p *authz.Principal, tenantID, id string) error {
	o := op{tenantID: tenantID, action: authz.WebhookManage, resourceType: "webhook", resourceID: id}
	return m.write(ctx, p, o, func(tx store.Tx, n *note) error {
		w, err := tx.GetWebhook(ctx, tenantID, id)
		if err != nil {
			return err
		}
		n.detail("url", w.URL)
		return tx.DeleteWebhook(ctx, tenantID, id)
	})
}

// ListWebhookDeliveries lists a webhook's deliveries, newest first.
func (m *Manager) ListWebhookDeliveries(ctx context.Context, p *authz.Principal, tenantID, id string, opt store.ListOptions) (store.Page[v1.WebhookDelivery], error) {
	if err := m.read(ctx, p, tenantID, authz.WebhookRead); err != nil {
		return store.Page[v1.WebhookDelivery]{}, err
	}
	if _, err := m.store.GetWebhook(ctx, tenantID, id); err != nil {
		return store.Page[v1.WebhookDelivery]{}, err
	}
	page, err := m.store.ListWebhookDeliveries(ctx, tenantID, id, opt)
	if err != nil {
		return store.Page[v1.WebhookDelivery]{}, err
	}
	out := store.Page[v1.WebhookDelivery]{Items: make([]v1.WebhookDelivery, 0, len(page.Items)), Next: page.Next}
	for _, d := range page.Items {
		out.Items = append(out.Items, toDelivery(d))
	}
	return out, nil
}

// RetryWebhookDelivery sends a failed delivery again, as new: pending, due now, with its
// attempts counted from zero and its delivery ID kept (Administrator).
func (m *Manager) RetryWebhookDelivery(ctx context.Context, p *authz.Principal, tenantID, webhookID, id string) (v1.WebhookDelivery, error) {
	var out v1.WebhookDelivery
	o := op{tenantID: tenantID, action: authz.WebhookManage, resourceType: "webhook", resourceID: webhookID}
	err := m.write(ctx, p, o, func(tx store.Tx, n *note) error {
		n.detail("retry_delivery", id)
		w, err := tx.GetWebhook(ctx, tenantID, webhookID)
		if err != nil {
			return err
		}
		if !w.DisabledAt.IsZero() {
			return disabledConflict(w)
		}
		if err := tx.RetryWebhookDelivery(ctx, tenantID, webhookID, id, m.timestamp()); err != nil {
			if errors.Is(err, store.ErrConflict) {
				return problem.New(v1.CodeConflict, "delivery %s has not failed: only a failed delivery is sent again", id)
			}
			return err
		}
		d, err := tx.GetWebhookDelivery(ctx, tenantID, id)
		out = toDelivery(d)
		return err
	})
	return out, err
}

// RotateWebhookSecret gives a webhook a new secret, returned once in the answer
// (Administrator). For the grace period (nil: DefaultWebhookGrace; 0 to MaxWebhookGrace)
// deliveries are signed with the new secret and the one it replaces, then with the new one
// only. A secret replaced earlier and still in its grace period is dropped now.
func (m *Manager) RotateWebhookSecret(ctx context.Context, p *authz.Principal, tenantID, id string, req v1.WebhookRotateSecret) (v1.Webhook, error) {
	var out v1.Webhook
	o := op{tenantID: tenantID, action: authz.WebhookManage, resourceType: "webhook", resourceID: id}
	err := m.write(ctx, p, o, func(tx store.Tx, n *note) error {
		n.detail("rotate_secret", true)
		grace := DefaultWebhookGrace
		if req.GraceSeconds != nil {
			if g := *req.GraceSeconds; g < 0 || g > int64(MaxWebhookGrace/time.Second) {
				var ps problems
				ps.add("grace_seconds", "must be 0 to %d (7 days), not %d", int64(MaxWebhookGrace/time.Second), g)
				return ps.err()
			}
			grace = time.Duration(*req.GraceSeconds) * time.Second
		}
		n.detail("grace_seconds", int64(grace/time.Second))
		// A rotation erases every previous secret whose grace period has ended (this webhook's
		// is replaced below in any case), without waiting for a worker's hourly cleanup.
		if _, err := tx.DropWebhookSecretsBefore(ctx, m.timestamp()); err != nil {
			return err
		}
		w, err := tx.GetWebhook(ctx, tenantID, id)
		if err != nil {
			return err
		}
		secret, err := webhook.NewSecret(m.rand)
		if err != nil {
			return err
		}
		stored, err := m.hookSeal.Seal(id, secret)
		if err != nil {
			return err
		}
		now := m.timestamp()
		previous, until := w.Secret, now.Add(grace) // sealed as stored, bound to this webhook
		if grace == 0 {
			previous, until = "", time.Time{}
		}
		if err := tx.SetWebhookSecret(ctx, tenantID, id, stored, previous, until); err != nil {
			return err
		}
		w.Secret, w.PreviousSecret, w.PreviousSecretUntil = stored, previous, until
		out = toWebhook(w, now)
		out.Secret = secret
		return nil
	})
	return out, err
}

// PingWebhook queues a ping event for one webhook, whatever events it hears, through the
// outbox and the delivery worker like any event (Administrator), and returns its delivery. A
// disabled webhook is refused (409).
func (m *Manager) PingWebhook(ctx context.Context, p *authz.Principal, tenantID, id string) (v1.WebhookDelivery, error) {
	var out v1.WebhookDelivery
	o := op{tenantID: tenantID, action: authz.WebhookManage, resourceType: "webhook", resourceID: id}
	err := m.write(ctx, p, o, func(tx store.Tx, n *note) error {
		n.detail("ping", true)
		w, err := tx.GetWebhook(ctx, tenantID, id)
		if err != nil {
			return err
		}
		if !w.DisabledAt.IsZero() {
			return disabledConflict(w)
		}
		d, err := m.outbox().EnqueueTo(ctx, tx, w, webhook.EventPing, webhook.Ping{WebhookID: id, RequestedBy: p.UserID}, m.timestamp())
		if err != nil {
			return err
		}
		n.detail("delivery", d.ID)
		out = toDelivery(d)
		return nil
	})
	return out, err
}

// RedeliverWebhookDelivery queues a delivered or failed delivery's event to its webhook again
// (Administrator): a new delivery with a new delivery ID and the same body, so the same event
// ID. A pending delivery (409), or one of a disabled webhook (409), is refused.
func (m *Manager) RedeliverWebhookDelivery(ctx context.Context, p *authz.Principal, tenantID, webhookID, id string) (v1.WebhookDelivery, error) {
	var out v1.WebhookDelivery
	o := op{tenantID: tenantID, action: authz.WebhookManage, resourceType: "webhook", resourceID: webhookID}
	err := m.write(ctx, p, o, func(tx store.Tx, n *note) error {
		n.detail("redeliver", id)
		w, err := tx.GetWebhook(ctx, tenantID, webhookID)
		if err != nil {
			return err
		}
		d, err := tx.GetWebhookDelivery(ctx, tenantID, id)
		if err != nil {
			return err
		}
		if d.WebhookID != webhookID {
			return problem.New(v1.CodeNotFound, "webhook %s has no delivery %s", webhookID, id)
		}
		if d.State == store.DeliveryPending {
			return problem.New(v1.CodeConflict, "delivery %s is still pending: only a delivered or failed delivery is sent again", id)
		}
		if !w.DisabledAt.IsZero() {
			return disabledConflict(w)
		}
		nd, err := m.outbox().Redeliver(ctx, tx, w, d, m.timestamp())
		if err != nil {
			return err
		}
		n.detail("delivery", nd.ID)
		n.detail("event", nd.EventID)
		out = toDelivery(nd)
		return nil
	})
	return out, err
}

// EnableWebhook enables a webhook the service disabled, and starts its count of failed
// deliveries afresh (Administrator). Deliveries failed while it was disabled stay failed: retry
// or redeliver them. Enabling an enabled webhook changes nothing but that count.
func (m *Manager) EnableWebhook(ctx context.Context, p *authz.Principal, tenantID, id string) (v1.Webhook, error) {
	var out v1.Webhook
	o := op{tenantID: tenantID, action: authz.WebhookManage, resourceType: "webhook", resourceID: id}
	err := m.write(ctx, p, o, func(tx store.Tx, n *note) error {
		n.detail("enable", true)
		w, err := tx.GetWebhook(ctx, tenantID, id)
		if err != nil {
			return err
		}
		if w.DisabledAt.IsZero() {
			n.message = "was not disabled"
		} else {
			n.detail("was_disabled", w.DisabledReason)
		}
		w.WebhookHealth = store.WebhookHealth{}
		if err := tx.SetWebhookHealth(ctx, tenantID, id, w.WebhookHealth); err != nil {
			return err
		}
		out = toWebhook(w, m.timestamp())
		return nil
	})
	return out, err
}

// outbox writes webhook events with the manager's identifiers.
func (m *Manager) outbox() *webhook.Outbox { return &webhook.Outbox{IDs: m.ids} }

// ErrorBucketCreated is error-report ingest's errorreport.NewBucketFunc: it queues an
// error_report.bucket_created event for the tenant's webhooks in the ingest's transaction.
func (m *Manager) ErrorBucketCreated(ctx context.Context, tx store.Tx, r store.ErrorReport) error {
	data := webhook.BucketCreated{Type: r.Type, ComponentID: r.ComponentID, ImageID: r.ImageID, Signal: r.Signal,
		DeviceID: r.DeviceID, DeviceGroupID: r.DeviceGroupID, ProductID: r.ProductID, DeploymentID: r.DeploymentID,
		FirstSeen: r.Time, ReceivedAt: r.ReceivedAt}
	if r.ExitCode != store.NoExitCode {
		code := r.ExitCode
		data.ExitCode = &code
	}
	_, err := m.outbox().Enqueue(ctx, tx, r.TenantID, webhook.EventBucketCreated, data, m.timestamp())
	return err
}

// rolloutChanges maps the audit actions of rollout writes to the change a webhook hears of;
// releasing more devices of the same batch is not a state change.
var rolloutChanges = map[string]string{
	auditRolloutAdvance:  webhook.ChangeAdvanced,
	auditRolloutComplete: webhook.ChangeCompleted,
	auditRolloutAbort:    webhook.ChangeAborted,
	auditRolloutPause:    webhook.ChangePaused,
	auditRolloutResume:   webhook.ChangeResumed,
}

// rolloutChanged queues a rollout.state_changed event for the tenant's webhooks, within tx.
func (m *Manager) rolloutChanged(ctx context.Context, tx store.Tx, r store.Rollout, change string) error {
	if change == "" {
		return nil
	}
	data := webhook.RolloutStateChanged{DeploymentID: r.DeploymentID, DeviceGroupID: r.DeviceGroupID,
		PreviousDeploymentID: r.PreviousDeploymentID, Change: change, State: r.State, Batch: r.Batch + 1, Reason: r.Reason,
		RevertDeploymentID: r.RevertDeploymentID}
	_, err := m.outbox().Enqueue(ctx, tx, r.TenantID, webhook.EventRolloutStateChanged, data, m.timestamp())
	return err
}
