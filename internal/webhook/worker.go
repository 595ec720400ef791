package webhook

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/rampart-iot/rampart/internal/authz"
	"github.com/rampart-iot/rampart/internal/store"
)

// Worker defaults.
const (
	DefaultMaxAttempts  = 8
	DefaultBaseDelay    = 10 * time.Second
	DefaultMaxDelay     = time.Hour
	DefaultTimeout      = 10 * time.Second
	DefaultPollInterval = 2 * time.Second
	DefaultBatch        = 20
	DefaultRetention    = 30 * 24 * time.Hour
	// A webhook is disabled once DefaultDisableAfterFailures deliveries in a row have failed
	// for good (every attempt failed), with no successful attempt between them, and the first
	// of them failed at least DefaultDisableAfter ago.
	DefaultDisableAfterFailures = 5
	DefaultDisableAfter         = 72 * time.Hour
	// MaxResponseRead bounds how much of a receiver's response is read.
	MaxResponseRead = 4 << 10
	maxErrorLength  = 256
)

// Config configures a Worker. Store is required; the rest have defaults.
type Config struct {
	Store store.Store
	// Owner names this worker in the leases it takes; it must differ between replicas
	// (default: the host name, process ID and a random number).
	Owner string
	// Secrets opens the webhooks' stored secrets (nil: they are stored as they are).
	Secrets *Sealer
	// AllowLoopbackHTTP lets deliveries go to http:// URLs on loopback hosts, as CheckURL.
	AllowLoopbackHTTP bool
	// DenyPrivateNetworks refuses at dial time loopback, private and other non-public
	// addresses too, besides link-local and metadata ones (webhooks.deny_private_networks).
	DenyPrivateNetworks bool
	MaxAttempts         int           // attempts before a delivery is marked failed (default 8)
	BaseDelay           time.Duration // the first retry's delay before jitter (default 10s)
	MaxDelay            time.Duration // the cap of a retry's delay (default 1h)
	Timeout             time.Duration // one attempt, connection to response (default 10s)
	PollInterval        time.Duration // how often Run looks for due deliveries (default 2s)
	Batch               int           // deliveries claimed at once (default 20)
	Retention           time.Duration // finished deliveries are kept this long (default 30 days)
	// A webhook is disabled when DisableAfterFailures deliveries in a row failed for good and
	// the first of them at least DisableAfter ago (defaults 5 and 72 hours).
	DisableAfterFailures int
	DisableAfter         time.Duration
	// Client sends the deliveries; by default one that never follows redirects, uses no
	// proxy, and refuses link-local and metadata addresses (and with DenyPrivateNetworks the
	// non-public ones) at dial time. A Client given here must do the same.
	Client *http.Client
	// RootCAs are the roots the default Client verifies receivers' certificates with (nil:
	// the system's).
	RootCAs *x509.CertPool
	Now     func() time.Time // default time.Now
	Rand    io.Reader        // jitter (default crypto/rand)
	Logger  *slog.Logger     // default discards
}

// Worker delivers due webhook deliveries. Several workers (one per server replica) may share a
// store: each claims deliveries with a lease, so no two send one delivery at once.
type Worker struct {
	cfg Config
	mu  sync.Mutex // guards cfg.Rand
}

// NewWorker returns a Worker.
func NewWorker(cfg Config) (*Worker, error) {
	if cfg.Store == nil {
		return nil, errors.New("webhook worker: no store")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Owner == "" {
		var b [8]byte
		if _, err := io.ReadFull(cfg.Rand, b[:]); err != nil {
			return nil, fmt.Errorf("webhook worker: %w", err)
		}
		host, _ := os.Hostname()
		cfg.Owner = fmt.Sprintf("%s/%d/%x", host, os.Getpid(), b)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.BaseDelay, DefaultBaseDelay)
	def(&cfg.MaxDelay, DefaultMaxDelay)
	def(&cfg.Timeout, DefaultTimeout)
	def(&cfg.PollInterval, DefaultPollInterval)
	def(&cfg.Retention, DefaultRetention)
	def(&cfg.DisableAfter, DefaultDisableAfter)
	if cfg.DisableAfterFailures <= 0 {
		cfg.DisableAfterFailures = DefaultDisableAfterFailures
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.Batch <= 0 {
		cfg.Batch = DefaultBatch
	}
	if cfg.Client == nil {
		cfg.Client = NewClient(cfg.Timeout, cfg.RootCAs, cfg.DenyPrivateNetworks)
	}
	return &Worker{cfg: cfg}, nil
}

// NewClient returns the HTTP client deliveries use: no redirects, no proxy, refused link-local
// and metadata addresses (with denyPrivate, loopback, private and other non-public addresses
// too), and timeout for the whole attempt. Receivers' certificates are verified with roots
// (nil: the system's).
func NewClient(timeout time.Duration, roots *x509.CertPool, denyPrivate bool) *http.Client {
	d := &net.Dialer{Timeout: timeout, Control: dialControl(denyPrivate)}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		TLSClientConfig:       &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		MaxIdleConns:          16,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	return &http.Client{Transport: tr, Timeout: timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// Run delivers until ctx ends: it looks for due deliveries every PollInterval, and deletes
// finished deliveries past the retention once an hour.
func (w *Worker) Run(ctx context.Context) {
	t := time.NewTicker(w.cfg.PollInterval)
	defer t.Stop()
	var cleaned time.Time
	for {
		for {
			n, err := w.RunOnce(ctx)
			if err != nil && ctx.Err() == nil {
				w.cfg.Logger.Error("webhook deliveries", "error", err)
			}
			if n < w.cfg.Batch || err != nil {
				break
			}
		}
		if now := w.cfg.Now(); now.Sub(cleaned) >= time.Hour {
			cleaned = now
			if n, err := w.Cleanup(ctx); err != nil && ctx.Err() == nil {
				w.cfg.Logger.Error("deleting old webhook deliveries", "error", err)
			} else if n > 0 {
				w.cfg.Logger.Info("deleted webhook deliveries past their retention", "count", n)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Cleanup deletes delivered and failed deliveries last updated more than Retention ago, at
// most 10,000 in one call, and returns how many it deleted. It also drops the previous secrets
// of rotations whose grace period has ended.
func (w *Worker) Cleanup(ctx context.Context) (int, error) {
	if n, err := w.cfg.Store.DropWebhookSecretsBefore(ctx, w.cfg.Now()); err != nil {
		return 0, err
	} else if n > 0 {
		w.cfg.Logger.Info("dropped the previous secrets of webhooks whose rotation's grace period ended", "count", n)
	}
	total := 0
	for range 10 {
		n, err := w.cfg.Store.DeleteWebhookDeliveriesBefore(ctx, w.cfg.Now().Add(-w.cfg.Retention), 1000)
		total += n
		if err != nil || n < 1000 {
			return total, err
		}
	}
	return total, nil
}

// lease is how long a claim lasts: longer than one attempt can take, so a delivery is not
// claimed again while it is being sent.
func (w *Worker) lease() time.Duration { return 3*w.cfg.Timeout + 30*time.Second }

// RunOnce claims the deliveries due now (at most Batch), sends them concurrently, records each
// attempt, and returns how many it claimed.
func (w *Worker) RunOnce(ctx context.Context) (int, error) {
	now := w.cfg.Now()
	ds, err := w.cfg.Store.ClaimWebhookDeliveries(ctx, w.cfg.Owner, now, now.Add(w.lease()), w.cfg.Batch)
	if err != nil {
		return 0, err
	}
	var wg sync.WaitGroup
	errs := make([]error, len(ds))
	for i, d := range ds {
		wg.Go(func() { errs[i] = w.deliver(ctx, d) })
	}
	wg.Wait()
	return len(ds), errors.Join(errs...)
}

// deliver makes one attempt of a claimed delivery and records how it went. A delivery of a
// disabled webhook is not attempted: it is marked failed, unsent.
func (w *Worker) deliver(ctx context.Context, d store.WebhookDelivery) error {
	log := w.cfg.Logger.With("delivery", d.ID, "webhook", d.WebhookID, "tenant", d.TenantID, "event", d.EventType)
	h, err := w.cfg.Store.GetWebhook(ctx, d.TenantID, d.WebhookID)
	var status int
	var failure string
	permanent, disabled := false, false
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil // deleted with its deliveries meanwhile
	case err != nil:
		return err
	case !h.DisabledAt.IsZero():
		failure, permanent, disabled = DisabledError, true, true
	default:
		w.dropExpiredSecret(ctx, h, log)
		secrets, serr := w.secrets(h, log)
		if _, err := CheckURL(h.URL, w.cfg.AllowLoopbackHTTP); err != nil {
			failure, permanent = err.Error(), true
		} else if serr != nil {
			failure, permanent = serr.Error(), true
		} else {
			status, failure = w.post(ctx, h.URL, secrets, d)
		}
	}
	if ctx.Err() != nil {
		return ctx.Err() // shutting down: the lease expires and the attempt is made again
	}
	now := w.cfg.Now().UTC().Truncate(time.Microsecond)
	if !disabled {
		d.Attempts++
	}
	d.LastStatus, d.LastError, d.UpdatedAt = status, failure, now
	switch {
	case failure == "":
		d.State = store.DeliveryDelivered
		log.Debug("webhook delivered", "status", status, "attempts", d.Attempts)
	case disabled:
		d.State = store.DeliveryFailed
		log.Info("webhook delivery not sent: the webhook is disabled")
	case permanent || d.Attempts >= w.cfg.MaxAttempts:
		d.State = store.DeliveryFailed
		log.Warn("webhook delivery failed for good", "attempts", d.Attempts, "error", failure)
	default:
		d.NextAttemptAt = now.Add(w.backoff(d.Attempts))
		log.Info("webhook delivery will be retried", "attempts", d.Attempts, "next", d.NextAttemptAt, "error", failure)
	}
	// A delivery's failure for good counts once in its webhook's run of failures: one retried
	// (made pending again) that fails again was counted already and is not counted again.
	recount := d.State == store.DeliveryFailed && d.FailureCounted
	if d.State == store.DeliveryFailed && !disabled {
		d.FailureCounted = true
	}
	var disabledNow store.WebhookHealth
	wctx := context.WithoutCancel(ctx)
	err = w.cfg.Store.Update(wctx, func(tx store.Tx) error {
		disabledNow = store.WebhookHealth{}
		if err := tx.FinishWebhookAttempt(wctx, d); err != nil {
			return err
		}
		if d.State == store.DeliveryPending || disabled || recount {
			return nil
		}
		var err error
		disabledNow, err = w.noteOutcome(wctx, tx, d, now)
		return err
	})
	if err != nil {
		return fmt.Errorf("webhook delivery %s: %w", d.ID, err)
	}
	if !disabledNow.DisabledAt.IsZero() {
		log.Warn("webhook disabled: its deliveries kept failing", "reason", disabledNow.DisabledReason,
			"failed_deliveries", disabledNow.FailedDeliveries, "failing_since", disabledNow.FailingSince)
	}
	return nil
}

// noteOutcome records, within tx, how a finished delivery went in its webhook's health: a
// success ends a run of failures, a failure extends it, and a run long enough disables the
// webhook (the pending deliveries it has are marked failed, and the audit log says so). It
// returns the health if it disabled the webhook, else the zero value.
func (w *Worker) noteOutcome(ctx context.Context, tx store.Tx, d store.WebhookDelivery, now time.Time) (store.WebhookHealth, error) {
	h, err := tx.GetWebhook(ctx, d.TenantID, d.WebhookID)
	if err != nil {
		return store.WebhookHealth{}, err
	}
	health := h.WebhookHealth
	if d.State == store.DeliveryDelivered {
		if health.FailedDeliveries == 0 && health.FailingSince.IsZero() {
			return store.WebhookHealth{}, nil
		}
		health.FailedDeliveries, health.FailingSince = 0, time.Time{}
		return store.WebhookHealth{}, tx.SetWebhookHealth(ctx, h.TenantID, h.ID, health)
	}
	if health.FailingSince.IsZero() {
		health.FailingSince = now
	}
	health.FailedDeliveries++
	disable := health.DisabledAt.IsZero() && health.FailedDeliveries >= w.cfg.DisableAfterFailures &&
		now.Sub(health.FailingSince) >= w.cfg.DisableAfter
	if disable {
		health.DisabledAt = now
		health.DisabledReason = clip(fmt.Sprintf("%d deliveries in a row failed (every attempt) since %s; the last: %s",
			health.FailedDeliveries, health.FailingSince.Format(time.RFC3339), d.LastError), maxErrorLength)
	}
	if err := tx.SetWebhookHealth(ctx, h.TenantID, h.ID, health); err != nil {
		return store.WebhookHealth{}, err
	}
	if !disable {
		return store.WebhookHealth{}, nil
	}
	if _, err := tx.FailPendingWebhookDeliveries(ctx, h.TenantID, h.ID, DisabledError, now); err != nil {
		return store.WebhookHealth{}, err
	}
	details, err := json.Marshal(map[string]any{"disabled": health.DisabledReason, "url": h.URL})
	if err != nil {
		return store.WebhookHealth{}, err
	}
	_, err = tx.AppendAudit(ctx, store.AuditEntry{TenantID: h.TenantID, Time: now, ActorName: "system",
		Action: string(authz.WebhookManage), ResourceType: "webhook", ResourceID: h.ID, Result: store.AuditSuccess,
		Message: "webhook disabled: its deliveries kept failing", Details: string(details)})
	if err != nil {
		return store.WebhookHealth{}, err
	}
	return health, nil
}

// secrets opens the secrets a delivery of h is signed with: its secret, and while a rotation's
// grace period runs, the previous one. A previous secret that cannot be opened is left out.
// dropExpiredSecret erases the stored previous secrets whose grace period has ended when h
// still holds one, at once rather than at the next hourly cleanup. (The store's update is
// conditional on each row's end, so a concurrent rotation is never undone.)
func (w *Worker) dropExpiredSecret(ctx context.Context, h store.Webhook, log *slog.Logger) {
	now := w.cfg.Now()
	if h.PreviousSecret == "" || now.Before(h.PreviousSecretUntil) {
		return
	}
	if _, err := w.cfg.Store.DropWebhookSecretsBefore(context.WithoutCancel(ctx), now); err != nil {
		log.Warn("erasing webhook secrets past their grace period", "error", err)
	}
}

func (w *Worker) secrets(h store.Webhook, log *slog.Logger) ([]string, error) {
	secret, err := w.cfg.Secrets.Open(h.ID, h.Secret)
	if err != nil {
		return nil, err
	}
	out := []string{secret}
	if h.PreviousSecret != "" && w.cfg.Now().Before(h.PreviousSecretUntil) {
		prev, err := w.cfg.Secrets.Open(h.ID, h.PreviousSecret)
		if err != nil {
			log.Warn("signing with the new secret only: the previous one cannot be opened", "error", err)
		} else {
			out = append(out, prev)
		}
	}
	return out, nil
}

// post sends the delivery once and returns the response's status and, if it failed, why: the
// status code and its standard text, or the class of the transport failure, never anything the
// receiver sent.
func (w *Worker) post(ctx context.Context, url string, secrets []string, d store.WebhookDelivery) (int, string) {
	ts := w.cfg.Now().Unix()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(d.Payload))
	if err != nil {
		return 0, "request: the URL cannot be used"
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Rampart-Webhook/1")
	req.Header.Set(HeaderID, d.ID)
	req.Header.Set(HeaderEvent, d.EventType)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, SignAll(secrets, ts, d.Payload))
	resp, err := w.cfg.Client.Do(req)
	if err != nil {
		return 0, transportFailure(err)
	}
	defer resp.Body.Close()
	// The body is read (bounded) only so the connection can be reused; nothing of it is kept.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, MaxResponseRead))
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		return resp.StatusCode, ""
	}
	return resp.StatusCode, statusFailure(resp.StatusCode)
}

// backoff is the delay before the attempt after the given number: BaseDelay doubled for each
// attempt made beyond the first, capped at MaxDelay, of which a random half is taken off
// (jitter), so receivers that come back are not hit by every retry at once.
func (w *Worker) backoff(attempts int) time.Duration {
	d := w.cfg.BaseDelay
	for i := 1; i < attempts && d < w.cfg.MaxDelay; i++ {
		d *= 2
	}
	d = min(d, w.cfg.MaxDelay)
	half := d / 2
	var b [8]byte
	w.mu.Lock()
	_, err := io.ReadFull(w.cfg.Rand, b[:])
	w.mu.Unlock()
	if err != nil || half <= 0 {
		return d
	}
	return half + time.Duration(binary.BigEndian.Uint64(b[:])%uint64(half))
}
