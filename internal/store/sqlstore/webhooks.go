package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/rampart-iot/rampart/internal/store"
)

const webhookCols = `id, tenant_id, url, events, secret, created_by, created_at, previous_secret, previous_secret_until,
	failing_since, failed_deliveries, disabled_at, disabled_reason`

func scanWebhook(s scanner) (store.Webhook, error) {
	var w store.Webhook
	var events string
	var created, prevUntil, failing, disabled sql.NullInt64
	if err := s.Scan(&w.ID, &w.TenantID, &w.URL, &events, &w.Secret, &w.CreatedBy, &created, &w.PreviousSecret, &prevUntil,
		&failing, &w.FailedDeliveries, &disabled, &w.DisabledReason); err != nil {
		return store.Webhook{}, err
	}
	if events != "" {
		w.Events = strings.Split(events, ",")
	}
	w.CreatedAt, w.PreviousSecretUntil, w.FailingSince, w.DisabledAt = timeOf(created), timeOf(prevUntil), timeOf(failing), timeOf(disabled)
	return w, nil
}

// CreateWebhook implements store.Tx.
func (t *tx) CreateWebhook(ctx context.Context, w store.Webhook) error {
	what := fmt.Sprintf("create webhook %q", w.ID)
	if err := t.checkTenant(ctx, w.TenantID); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	n, err := t.exec(ctx, `INSERT INTO webhooks (`+webhookCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		w.ID, w.TenantID, w.URL, strings.Join(w.Events, ","), w.Secret, w.CreatedBy, timeArg(w.CreatedAt), w.PreviousSecret,
		timeArg(w.PreviousSecretUntil), timeArg(w.FailingSince), w.FailedDeliveries, timeArg(w.DisabledAt), w.DisabledReason)
	if err != nil {
		return t.dbErr(err, what, store.ErrNotFound)
	}
	if n == 0 {
		return t.insertConflict(ctx, "webhooks", "webhook", w.ID, what)
	}
	return nil
}

// GetWebhook implements store.Tx.
func (t *tx) GetWebhook(ctx context.Context, tenantID, id string) (store.Webhook, error) {
	w, err := scanWebhook(t.queryRow(ctx, `SELECT `+webhookCols+` FROM webhooks WHERE tenant_id = ? AND id = ?`, tenantID, id))
	if err != nil {
		return store.Webhook{}, notFound(err, fmt.Sprintf("webhook %q", id))
	}
	return w, nil
}

// ListWebhooks implements store.Tx.
func (t *tx) ListWebhooks(ctx context.Context, tenantID string, opt store.ListOptions) (store.Page[store.Webhook], error) {
	opt = opt.Normalize()
	p, err := list(ctx, t, opt, `SELECT `+webhookCols+` FROM webhooks WHERE tenant_id = ? AND id > ? ORDER BY id LIMIT ?`,
		[]any{tenantID, opt.After}, scanWebhook, func(w store.Webhook) string { return w.ID })
	if err != nil {
		return p, fmt.Errorf("list webhooks: %w", err)
	}
	return p, nil
}

// DeleteWebhook implements store.Tx.
func (t *tx) DeleteWebhook(ctx context.Context, tenantID, id string) error {
	what := fmt.Sprintf("delete webhook %q", id)
	if _, err := t.GetWebhook(ctx, tenantID, id); err != nil {
		return err
	}
	if _, err := t.exec(ctx, `DELETE FROM webhook_deliveries WHERE webhook_id = ?`, id); err != nil {
		return fmt.Errorf("%s: its deliveries: %w", what, err)
	}
	if _, err := t.exec(ctx, `DELETE FROM webhooks WHERE tenant_id = ? AND id = ?`, tenantID, id); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// SetWebhookSecret implements store.Tx.
func (t *tx) SetWebhookSecret(ctx context.Context, tenantID, id, secret, previous string, previousUntil time.Time) error {
	n, err := t.exec(ctx, `UPDATE webhooks SET secret = ?, previous_secret = ?, previous_secret_until = ? WHERE tenant_id = ? AND id = ?`,
		secret, previous, timeArg(previousUntil), tenantID, id)
	if err != nil {
		return fmt.Errorf("set the secret of webhook %q: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("webhook %q: %w", id, store.ErrNotFound)
	}
	return nil
}

// DropWebhookSecretsBefore implements store.Tx.
func (t *tx) DropWebhookSecretsBefore(ctx context.Context, before time.Time) (int, error) {
	n, err := t.exec(ctx, `UPDATE webhooks SET previous_secret = '', previous_secret_until = NULL
		WHERE previous_secret <> '' AND (previous_secret_until IS NULL OR previous_secret_until <= ?)`, timeArg(before))
	if err != nil {
		return 0, fmt.Errorf("drop expired webhook secrets: %w", err)
	}
	return int(n), nil
}

// SetWebhookHealth implements store.Tx.
func (t *tx) SetWebhookHealth(ctx context.Context, tenantID, id string, h store.WebhookHealth) error {
	n, err := t.exec(ctx, `UPDATE webhooks SET failing_since = ?, failed_deliveries = ?, disabled_at = ?, disabled_reason = ?
		WHERE tenant_id = ? AND id = ?`, timeArg(h.FailingSince), h.FailedDeliveries, timeArg(h.DisabledAt), h.DisabledReason, tenantID, id)
	if err != nil {
		return fmt.Errorf("set the health of webhook %q: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("webhook %q: %w", id, store.ErrNotFound)
	}
	return nil
}

const deliveryCols = `id, tenant_id, webhook_id, event_id, event_type, payload, state, attempts, next_attempt_at,
	lease_owner, lease_until, last_status, last_error, created_at, updated_at, redelivery_of, failure_counted`

func scanDelivery(s scanner) (store.WebhookDelivery, error) {
	var d store.WebhookDelivery
	var next, lease, created, updated sql.NullInt64
	if err := s.Scan(&d.ID, &d.TenantID, &d.WebhookID, &d.EventID, &d.EventType, &d.Payload, &d.State, &d.Attempts, &next,
		&d.LeaseOwner, &lease, &d.LastStatus, &d.LastError, &created, &updated, &d.RedeliveryOf, &d.FailureCounted); err != nil {
		return store.WebhookDelivery{}, err
	}
	d.Payload = bytesOf(d.Payload)
	d.NextAttemptAt, d.LeaseUntil, d.CreatedAt, d.UpdatedAt = timeOf(next), timeOf(lease), timeOf(created), timeOf(updated)
	return d, nil
}

// CreateWebhookDelivery implements store.Tx.
func (t *tx) CreateWebhookDelivery(ctx context.Context, d store.WebhookDelivery) error {
	what := fmt.Sprintf("create webhook delivery %q", d.ID)
	if _, err := t.GetWebhook(ctx, d.TenantID, d.WebhookID); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if d.RedeliveryOf != "" {
		ok, err := t.exists(ctx, `SELECT 1 FROM webhook_deliveries WHERE tenant_id = ? AND id = ? AND webhook_id = ? AND event_id = ?`,
			d.TenantID, d.RedeliveryOf, d.WebhookID, d.EventID)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if !ok {
			return fmt.Errorf("%s: no delivery %q of event %q to webhook %q to send again: %w", what, d.RedeliveryOf, d.EventID, d.WebhookID, store.ErrNotFound)
		}
	} else {
		dup, err := t.exists(ctx, `SELECT 1 FROM webhook_deliveries WHERE webhook_id = ? AND event_id = ? AND redelivery_of = ''`, d.WebhookID, d.EventID)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if dup {
			return fmt.Errorf("%s: event %q is already on its way to webhook %q: %w", what, d.EventID, d.WebhookID, store.ErrConflict)
		}
	}
	n, err := t.exec(ctx, `INSERT INTO webhook_deliveries (`+deliveryCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT DO NOTHING`,
		d.ID, d.TenantID, d.WebhookID, d.EventID, d.EventType, d.Payload, d.State, d.Attempts, timeArg(d.NextAttemptAt),
		d.LeaseOwner, timeArg(d.LeaseUntil), d.LastStatus, d.LastError, timeArg(d.CreatedAt), timeArg(d.UpdatedAt), d.RedeliveryOf,
		d.FailureCounted)
	if err != nil {
		return t.dbErr(err, what, store.ErrNotFound)
	}
	if n == 0 {
		return t.insertConflict(ctx, "webhook_deliveries", "webhook delivery", d.ID, what)
	}
	return nil
}

// GetWebhookDelivery implements store.Tx.
func (t *tx) GetWebhookDelivery(ctx context.Context, tenantID, id string) (store.WebhookDelivery, error) {
	d, err := scanDelivery(t.queryRow(ctx, `SELECT `+deliveryCols+` FROM webhook_deliveries WHERE tenant_id = ? AND id = ?`, tenantID, id))
	if err != nil {
		return store.WebhookDelivery{}, notFound(err, fmt.Sprintf("webhook delivery %q", id))
	}
	return d, nil
}

// ListWebhookDeliveries implements store.Tx.
func (t *tx) ListWebhookDeliveries(ctx context.Context, tenantID, webhookID string, opt store.ListOptions) (store.Page[store.WebhookDelivery], error) {
	opt = opt.Normalize()
	var w where
	w.add("tenant_id = ?", tenantID)
	w.add("webhook_id = ?", webhookID)
	if opt.After != "" {
		w.add("id < ?", opt.After)
	}
	p, err := list(ctx, t, opt, `SELECT `+deliveryCols+` FROM webhook_deliveries`+w.String()+` ORDER BY id DESC LIMIT ?`,
		w.args, scanDelivery, func(d store.WebhookDelivery) string { return d.ID })
	if err != nil {
		return p, fmt.Errorf("list the deliveries of webhook %q: %w", webhookID, err)
	}
	return p, nil
}

// ClaimWebhookDeliveries implements store.Tx. It runs in a write transaction, which holds the
// backend's write lock, so the read and the lease it writes cannot interleave with another
// claim.
func (t *tx) ClaimWebhookDeliveries(ctx context.Context, owner string, now, until time.Time, limit int) ([]store.WebhookDelivery, error) {
	limit = store.ListOptions{Limit: limit}.Normalize().Limit
	rows, err := t.query(ctx, `SELECT `+deliveryCols+` FROM webhook_deliveries
		WHERE state = ? AND next_attempt_at <= ? AND (lease_until IS NULL OR lease_until <= ?)
		ORDER BY next_attempt_at, id LIMIT ?`, store.DeliveryPending, timeArg(now), timeArg(now), limit)
	if err != nil {
		return nil, fmt.Errorf("claim webhook deliveries: %w", err)
	}
	var out []store.WebhookDelivery
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("claim webhook deliveries: %w", err)
		}
		out = append(out, d)
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return nil, fmt.Errorf("claim webhook deliveries: %w", err)
	}
	until = until.UTC().Truncate(time.Microsecond)
	for i := range out {
		if _, err := t.exec(ctx, `UPDATE webhook_deliveries SET lease_owner = ?, lease_until = ? WHERE id = ?`,
			owner, timeArg(until), out[i].ID); err != nil {
			return nil, fmt.Errorf("claim webhook delivery %q: %w", out[i].ID, err)
		}
		out[i].LeaseOwner, out[i].LeaseUntil = owner, until
	}
	return out, nil
}

// FinishWebhookAttempt implements store.Tx.
func (t *tx) FinishWebhookAttempt(ctx context.Context, d store.WebhookDelivery) error {
	what := fmt.Sprintf("record an attempt of webhook delivery %q", d.ID)
	n, err := t.exec(ctx, `UPDATE webhook_deliveries SET state = ?, attempts = ?, next_attempt_at = ?, last_status = ?,
		last_error = ?, updated_at = ?, failure_counted = ?, lease_owner = '', lease_until = NULL
		WHERE id = ? AND tenant_id = ? AND lease_owner = ? AND lease_owner <> ''`,
		d.State, d.Attempts, timeArg(d.NextAttemptAt), d.LastStatus, d.LastError, timeArg(d.UpdatedAt), d.FailureCounted,
		d.ID, d.TenantID, d.LeaseOwner)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n == 1 {
		return nil
	}
	if _, err := t.GetWebhookDelivery(ctx, d.TenantID, d.ID); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return fmt.Errorf("%s: the lease of %q is lost: %w", what, d.LeaseOwner, store.ErrConflict)
}

// RetryWebhookDelivery implements store.Tx.
func (t *tx) RetryWebhookDelivery(ctx context.Context, tenantID, webhookID, id string, at time.Time) error {
	d, err := t.GetWebhookDelivery(ctx, tenantID, id)
	if err != nil {
		return err
	}
	if d.WebhookID != webhookID {
		return fmt.Errorf("delivery %q of webhook %q: %w", id, webhookID, store.ErrNotFound)
	}
	if d.State != store.DeliveryFailed {
		return fmt.Errorf("delivery %q is %s, not failed: %w", id, d.State, store.ErrConflict)
	}
	if _, err := t.exec(ctx, `UPDATE webhook_deliveries SET state = ?, attempts = 0, next_attempt_at = ?, updated_at = ?,
		lease_owner = '', lease_until = NULL WHERE id = ?`, store.DeliveryPending, timeArg(at), timeArg(at), id); err != nil {
		return fmt.Errorf("retry webhook delivery %q: %w", id, err)
	}
	return nil
}

// FailPendingWebhookDeliveries implements store.Tx.
func (t *tx) FailPendingWebhookDeliveries(ctx context.Context, tenantID, webhookID, lastError string, at time.Time) (int, error) {
	n, err := t.exec(ctx, `UPDATE webhook_deliveries SET state = ?, last_error = ?, updated_at = ?, lease_owner = '', lease_until = NULL
		WHERE tenant_id = ? AND webhook_id = ? AND state = ? AND (lease_until IS NULL OR lease_until <= ?)`,
		store.DeliveryFailed, lastError, timeArg(at), tenantID, webhookID, store.DeliveryPending, timeArg(at))
	if err != nil {
		return 0, fmt.Errorf("fail the pending deliveries of webhook %q: %w", webhookID, err)
	}
	return int(n), nil
}

// DeleteWebhookDeliveriesBefore implements store.Tx.
func (t *tx) DeleteWebhookDeliveriesBefore(ctx context.Context, before time.Time, limit int) (int, error) {
	limit = store.ListOptions{Limit: limit}.Normalize().Limit
	n, err := t.exec(ctx, `DELETE FROM webhook_deliveries WHERE id IN (SELECT id FROM webhook_deliveries
		WHERE state IN (?, ?) AND updated_at < ? ORDER BY updated_at LIMIT ?)`,
		store.DeliveryDelivered, store.DeliveryFailed, timeArg(before), limit)
	if err != nil {
		return 0, fmt.Errorf("delete old webhook deliveries: %w", err)
	}
	return int(n), nil
}

// HasErrorBucket implements store.Tx.
func (t *tx) HasErrorBucket(ctx context.Context, tenantID string, b store.ErrorBucket) (bool, error) {
	ok, err := t.exists(ctx, `SELECT 1 FROM error_reports WHERE tenant_id = ? AND event_type = ? AND component_id = ?
		AND image_id = ? AND signo = ? AND exit_code = ? LIMIT 1`, tenantID, b.Type, b.ComponentID, b.ImageID, b.Signal, b.ExitCode)
	if err != nil {
		return false, fmt.Errorf("look for error bucket %s: %w", b.Type, err)
	}
	return ok, nil
}

// The store's direct calls of the webhook methods: reads on the reader pool, each write in its
// own write transaction.

// CreateWebhook implements store.Tx.
func (s *DB) CreateWebhook(ctx context.Context, w store.Webhook) error {
	return s.write(ctx, func(x *tx) error { return x.CreateWebhook(ctx, w) })
}

// GetWebhook implements store.Tx.
func (s *DB) GetWebhook(ctx context.Context, tenantID, id string) (store.Webhook, error) {
	return s.read.GetWebhook(ctx, tenantID, id)
}

// ListWebhooks implements store.Tx.
func (s *DB) ListWebhooks(ctx context.Context, tenantID string, opt store.ListOptions) (store.Page[store.Webhook], error) {
	return s.read.ListWebhooks(ctx, tenantID, opt)
}

// DeleteWebhook implements store.Tx.
func (s *DB) DeleteWebhook(ctx context.Context, tenantID, id string) error {
	return s.write(ctx, func(x *tx) error { return x.DeleteWebhook(ctx, tenantID, id) })
}

// SetWebhookSecret implements store.Tx.
func (s *DB) SetWebhookSecret(ctx context.Context, tenantID, id, secret, previous string, previousUntil time.Time) error {
	return s.write(ctx, func(x *tx) error { return x.SetWebhookSecret(ctx, tenantID, id, secret, previous, previousUntil) })
}

// DropWebhookSecretsBefore implements store.Tx.
func (s *DB) DropWebhookSecretsBefore(ctx context.Context, before time.Time) (int, error) {
	var n int
	err := s.write(ctx, func(x *tx) error {
		var err error
		n, err = x.DropWebhookSecretsBefore(ctx, before)
		return err
	})
	return n, err
}

// SetWebhookHealth implements store.Tx.
func (s *DB) SetWebhookHealth(ctx context.Context, tenantID, id string, h store.WebhookHealth) error {
	return s.write(ctx, func(x *tx) error { return x.SetWebhookHealth(ctx, tenantID, id, h) })
}

// FailPendingWebhookDeliveries implements store.Tx.
func (s *DB) FailPendingWebhookDeliveries(ctx context.Context, tenantID, webhookID, lastError string, at time.Time) (int, error) {
	var n int
	err := s.write(ctx, func(x *tx) error {
		var err error
		n, err = x.FailPendingWebhookDeliveries(ctx, tenantID, webhookID, lastError, at)
		return err
	})
	return n, err
}

// CreateWebhookDelivery implements store.Tx.
func (s *DB) CreateWebhookDelivery(ctx context.Context, d store.WebhookDelivery) error {
	return s.write(ctx, func(x *tx) error { return x.CreateWebhookDelivery(ctx, d) })
}

// GetWebhookDelivery implements store.Tx.
func (s *DB) GetWebhookDelivery(ctx context.Context, tenantID, id string) (store.WebhookDelivery, error) {
	return s.read.GetWebhookDelivery(ctx, tenantID, id)
}

// ListWebhookDeliveries implements store.Tx.
func (s *DB) ListWebhookDeliveries(ctx context.Context, tenantID, webhookID string, opt store.ListOptions) (store.Page[store.WebhookDelivery], error) {
	return s.read.ListWebhookDeliveries(ctx, tenantID, webhookID, opt)
}

// ClaimWebhookDeliveries implements store.Tx.
func (s *DB) ClaimWebhookDeliveries(ctx context.Context, owner string, now, until time.Time, limit int) ([]store.WebhookDelivery, error) {
	var out []store.WebhookDelivery
	err := s.write(ctx, func(x *tx) error {
		var err error
		out, err = x.ClaimWebhookDeliveries(ctx, owner, now, until, limit)
		return err
	})
	return out, err
}

// FinishWebhookAttempt implements store.Tx.
func (s *DB) FinishWebhookAttempt(ctx context.Context, d store.WebhookDelivery) error {
	return s.write(ctx, func(x *tx) error { return x.FinishWebhookAttempt(ctx, d) })
}

// RetryWebhookDelivery implements store.Tx.
func (s *DB) RetryWebhookDelivery(ctx context.Context, tenantID, webhookID, id string, at time.Time) error {
	return s.write(ctx, func(x *tx) error { return x.RetryWebhookDelivery(ctx, tenantID, webhookID, id, at) })
}

// DeleteWebhookDeliveriesBefore implements store.Tx.
func (s *DB) DeleteWebhookDeliveriesBefore(ctx context.Context, before time.Time, limit int) (int, error) {
	var n int
	err := s.write(ctx, func(x *tx) error {
		var err error
		n, err = x.DeleteWebhookDeliveriesBefore(ctx, before, limit)
		return err
	})
	return n, err
}

// HasErrorBucket implements store.Tx.
func (s *DB) HasErrorBucket(ctx context.Context, tenantID string, b store.ErrorBucket) (bool, error) {
	return s.read.HasErrorBucket(ctx, tenantID, b)
}
