package webhook_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/internal/store"
	"github.com/rampart-iot/rampart/internal/store/storetest"
	"github.com/rampart-iot/rampart/internal/webhook"
)

// TestRotationSignsWithBothSecrets: during a rotation's grace period a delivery carries the
// new secret's signature and the old one's, each of which verifies; after it, only the new
// one, and the old secret is dropped from the store. Both are sealed at rest.
func TestRotationSignsWithBothSecrets(t *testing.T) {
	clk := newClock()
	s := storetest.OpenSQLite(t)
	r := newReceiver(t, clk)
	const newSecret = "whsec_rotated"
	r.secret = newSecret
	h, o := setup(t, s, r.srv.URL, clk)
	sealer, err := webhook.NewSealer(bytes.Repeat([]byte{9}, 32), bytes.NewReader(bytes.Repeat([]byte{1}, 1<<10)))
	if err != nil {
		t.Fatal(err)
	}
	sealedNew, err := sealer.Seal(h.ID, newSecret)
	if err != nil {
		t.Fatal(err)
	}
	sealedOld, err := sealer.Seal(h.ID, secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetWebhookSecret(t.Context(), h.TenantID, h.ID, sealedNew, sealedOld, clk.Now().Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	w, err := webhook.NewWorker(webhook.Config{Store: s, Secrets: sealer, Client: r.client(), Now: clk.Now, Rand: zeros{}})
	if err != nil {
		t.Fatal(err)
	}
	verify := func(i int, sec string) error {
		return webhook.Verify(sec, r.headers[i].Get(webhook.HeaderTimestamp), r.headers[i].Get(webhook.HeaderSignature), r.bodies[i], clk.Now(), time.Minute)
	}
	enqueue(t, s, o, clk, 1)
	if n, err := w.RunOnce(t.Context()); n != 1 || err != nil {
		t.Fatalf("RunOnce: %d, %v", n, err)
	}
	if len(r.bad) > 0 || len(r.got) != 1 {
		t.Fatalf("received %d, bad %v", len(r.got), r.bad)
	}
	if sig := r.headers[0].Get(webhook.HeaderSignature); strings.Count(sig, "v1=") != 2 || !strings.HasPrefix(sig, webhook.Sign(newSecret, clk.Now().Unix(), r.bodies[0])+",") {
		t.Errorf("during the grace period the header is the new signature, then the old: %q", sig)
	}
	for _, sec := range []string{newSecret, secret} {
		if err := verify(0, sec); err != nil {
			t.Errorf("during the grace period, secret %s: %v", sec, err)
		}
	}
	// Cleanup before the end keeps the old secret; after, it drops it.
	if _, err := w.Cleanup(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetWebhook(t.Context(), h.TenantID, h.ID); got.PreviousSecret != sealedOld {
		t.Errorf("the previous secret was dropped before the grace period ended: %q", got.PreviousSecret)
	}
	clk.Add(24 * time.Hour)
	enqueue(t, s, o, clk, 1)
	if n, err := w.RunOnce(t.Context()); n != 1 || err != nil {
		t.Fatalf("RunOnce: %d, %v", n, err)
	}
	if sig := r.headers[1].Get(webhook.HeaderSignature); strings.Count(sig, "v1=") != 1 {
		t.Errorf("after the grace period one signature: %q", sig)
	}
	if err := verify(1, newSecret); err != nil {
		t.Errorf("after the grace period, the new secret: %v", err)
	}
	if err := verify(1, secret); !errors.Is(err, webhook.ErrBadSignature) {
		t.Errorf("after the grace period, the old secret verifies: %v", err)
	}
	// The delivery past the end erased the old secret without waiting for the cleanup.
	got, err := s.GetWebhook(t.Context(), h.TenantID, h.ID)
	if err != nil || got.PreviousSecret != "" || !got.PreviousSecretUntil.IsZero() || got.Secret != sealedNew {
		t.Errorf("after a delivery past the grace period: %+v, %v", got, err)
	}
	// The hourly cleanup erases one no delivery read.
	if err := s.SetWebhookSecret(t.Context(), h.TenantID, h.ID, sealedNew, sealedOld, clk.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Hour)
	if _, err := w.Cleanup(t.Context()); err != nil {
		t.Fatal(err)
	}
	got, err = s.GetWebhook(t.Context(), h.TenantID, h.ID)
	if err != nil || got.PreviousSecret != "" || !got.PreviousSecretUntil.IsZero() || got.Secret != sealedNew {
		t.Errorf("after the cleanup: %+v, %v", got, err)
	}
}

// TestPingAndRedeliver: a ping reaches a webhook that hears no ping; a delivered event sent
// again arrives as a new delivery with the same body, so the same event ID.
func TestPingAndRedeliver(t *testing.T) {
	clk := newClock()
	s := storetest.OpenSQLite(t)
	r := newReceiver(t, clk)
	h, o := setup(t, s, r.srv.URL, clk)
	var ping store.WebhookDelivery
	err := s.Update(t.Context(), func(tx store.Tx) error {
		var err error
		ping, err = o.EnqueueTo(t.Context(), tx, h, webhook.EventPing, webhook.Ping{WebhookID: h.ID, RequestedBy: "0197a1c2-7d2e-7c3b-9f00-000000000001"}, clk.Now())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	w, _ := webhook.NewWorker(webhook.Config{Store: s, Client: r.client(), Now: clk.Now, Rand: zeros{}})
	if n, err := w.RunOnce(t.Context()); n != 1 || err != nil {
		t.Fatalf("RunOnce: %d, %v", n, err)
	}
	if len(r.bad) > 0 || len(r.got) != 1 || r.got[0].Type != webhook.EventPing || r.headers[0].Get(webhook.HeaderEvent) != "ping" {
		t.Fatalf("ping: received %+v, bad %v", r.got, r.bad)
	}
	var data webhook.Ping
	if err := json.Unmarshal(r.got[0].Data, &data); err != nil || data.WebhookID != h.ID || data.RequestedBy != "0197a1c2-7d2e-7c3b-9f00-000000000001" {
		t.Errorf("ping data %s (%v)", r.got[0].Data, err)
	}

	// Send the delivered ping again, twice: new delivery IDs, the same event.
	first, err := s.GetWebhookDelivery(t.Context(), h.TenantID, ping.ID)
	if err != nil || first.State != store.DeliveryDelivered {
		t.Fatalf("the ping's delivery: %+v, %v", first, err)
	}
	var again []store.WebhookDelivery
	for range 2 {
		err = s.Update(t.Context(), func(tx store.Tx) error {
			d, err := o.Redeliver(t.Context(), tx, h, first, clk.Now())
			again = append(again, d)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if n, err := w.RunOnce(t.Context()); n != 2 || err != nil {
		t.Fatalf("RunOnce: %d, %v", n, err)
	}
	if len(r.got) != 3 || len(r.ids) != 3 {
		t.Fatalf("received %d events in %d deliveries, want 3 and 3", len(r.got), len(r.ids))
	}
	for i := 1; i < 3; i++ {
		if r.got[i].ID != r.got[0].ID || !bytes.Equal(r.bodies[i], r.bodies[0]) || r.headers[i].Get(webhook.HeaderID) == ping.ID {
			t.Errorf("redelivery %d: event %s (want %s), delivery %s", i, r.got[i].ID, r.got[0].ID, r.headers[i].Get(webhook.HeaderID))
		}
	}
	for _, d := range again {
		got, err := s.GetWebhookDelivery(t.Context(), h.TenantID, d.ID)
		if err != nil || got.State != store.DeliveryDelivered || got.RedeliveryOf != ping.ID || got.EventID != ping.EventID {
			t.Errorf("redelivery %+v, %v", got, err)
		}
	}
}

// logBuffer is a slog handler's output that tests read while workers write.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *logBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// TestAutoDisable: a success ends a run of failed deliveries; a run of enough failed
// deliveries over long enough disables the webhook (recorded with its reason, audited and
// logged); its pending deliveries are failed unsent, as are new events' and any claimed while
// it is disabled; once enabled, a retried delivery goes out again.
func TestAutoDisable(t *testing.T) {
	t.Run("SQLite", func(t *testing.T) { testAutoDisable(t, storetest.OpenSQLite(t)) })
	t.Run("PostgreSQL", func(t *testing.T) { testAutoDisable(t, storetest.OpenPostgres(t)) })
}

func testAutoDisable(t *testing.T, s store.Store) {
	clk := newClock()
	r := newReceiver(t, clk, 500, 204, 500, 500, 500, 500)
	h, o := setup(t, s, r.srv.URL, clk)
	logs := &logBuffer{}
	w, _ := webhook.NewWorker(webhook.Config{Store: s, Client: r.client(), Now: clk.Now, Rand: zeros{}, MaxAttempts: 1,
		DisableAfterFailures: 3, DisableAfter: 72 * time.Hour, Logger: slog.New(slog.NewTextHandler(logs, nil))})
	health := func() store.WebhookHealth {
		t.Helper()
		got, err := s.GetWebhook(t.Context(), h.TenantID, h.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got.WebhookHealth
	}
	step := func(after time.Duration) {
		t.Helper()
		clk.Add(after)
		enqueue(t, s, o, clk, 1)
		if n, err := w.RunOnce(t.Context()); n != 1 || err != nil {
			t.Fatalf("RunOnce: %d, %v", n, err)
		}
	}
	start := clk.Now()
	step(0) // 500: failed for good (one attempt)
	if got := health(); got.FailedDeliveries != 1 || !got.FailingSince.Equal(start) || !got.DisabledAt.IsZero() {
		t.Fatalf("after a failed delivery: %+v", got)
	}
	step(time.Minute) // 204 ends the run
	if got := health(); got != (store.WebhookHealth{}) {
		t.Fatalf("after a success: %+v", got)
	}
	step(time.Minute)
	since := clk.Now()
	step(time.Hour)
	step(time.Hour) // three in a row, but over two hours: not yet
	if got := health(); got.FailedDeliveries != 3 || !got.FailingSince.Equal(since) || !got.DisabledAt.IsZero() {
		t.Fatalf("three failures in two hours: %+v", got)
	}
	// One more, 72 hours after the run began, disables it; a later event, not yet due, is
	// pending then and is failed unsent.
	clk.Add(70 * time.Hour)
	err := s.Update(t.Context(), func(tx store.Tx) error {
		_, err := o.Enqueue(t.Context(), tx, h.TenantID, webhook.EventRolloutStateChanged, webhook.RolloutStateChanged{}, clk.Now().Add(time.Hour))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	step(0)
	got := health()
	if got.DisabledAt.IsZero() || !got.DisabledAt.Equal(clk.Now()) || got.FailedDeliveries != 4 || !strings.Contains(got.DisabledReason, "4 deliveries in a row failed") || !strings.Contains(got.DisabledReason, "HTTP 500") {
		t.Fatalf("after 72 hours of failures: %+v", got)
	}
	sent := len(r.headers)
	notDue := 0
	for _, d := range deliveries(t, s, h) {
		if d.CreatedAt.After(clk.Now()) { // the one that was not yet due
			notDue++
			if d.State != store.DeliveryFailed || d.LastError != webhook.DisabledError || d.Attempts != 0 {
				t.Errorf("a pending delivery of a disabled webhook: %+v", d)
			}
		}
	}
	if notDue != 1 {
		t.Errorf("%d deliveries not yet due, want 1", notDue)
	}
	audit, err := s.ListAudit(t.Context(), store.AuditFilter{TenantID: h.TenantID, ResourceID: h.ID}, store.ListOptions{})
	if err != nil || len(audit.Items) != 1 || audit.Items[0].ActorName != "system" || audit.Items[0].Action != "webhook.manage" ||
		!strings.Contains(audit.Items[0].Details, "4 deliveries in a row") {
		t.Errorf("audit: %+v, %v", audit.Items, err)
	}
	if !strings.Contains(logs.String(), "webhook disabled") || !strings.Contains(logs.String(), h.ID) {
		t.Errorf("no log line of the disabling:\n%s", logs)
	}

	// While disabled: a new event's delivery is failed at once, unsent; a delivery made
	// pending meanwhile (a retry) is claimed and failed, unsent, its attempts kept.
	enqueue(t, s, o, clk, 1)
	newest := deliveries(t, s, h)[0]
	if newest.State != store.DeliveryFailed || newest.LastError != webhook.DisabledError {
		t.Errorf("an event's delivery to a disabled webhook: %+v", newest)
	}
	if err := s.RetryWebhookDelivery(t.Context(), h.TenantID, h.ID, newest.ID, clk.Now()); err != nil {
		t.Fatal(err)
	}
	if n, err := w.RunOnce(t.Context()); n != 1 || err != nil {
		t.Fatalf("RunOnce: %d, %v", n, err)
	}
	if d, _ := s.GetWebhookDelivery(t.Context(), h.TenantID, newest.ID); d.State != store.DeliveryFailed || d.LastError != webhook.DisabledError || d.Attempts != 0 {
		t.Errorf("a delivery claimed while disabled: %+v", d)
	}
	if len(r.headers) != sent {
		t.Fatalf("%d requests sent to a disabled webhook", len(r.headers)-sent)
	}

	// Enabled again (as `webhook enable` does: a clean health), a retry is sent.
	if err := s.SetWebhookHealth(t.Context(), h.TenantID, h.ID, store.WebhookHealth{}); err != nil {
		t.Fatal(err)
	}
	if err := s.RetryWebhookDelivery(t.Context(), h.TenantID, h.ID, newest.ID, clk.Now()); err != nil {
		t.Fatal(err)
	}
	if n, err := w.RunOnce(t.Context()); n != 1 || err != nil {
		t.Fatalf("RunOnce: %d, %v", n, err)
	}
	if d, _ := s.GetWebhookDelivery(t.Context(), h.TenantID, newest.ID); d.State != store.DeliveryDelivered || len(r.headers) != sent+1 {
		t.Errorf("after enabling: %+v, %d requests", d, len(r.headers)-sent)
	}
}

// TestFailureRunCountsConcurrentDeliveries: deliveries of one webhook failing for good at once
// (sent concurrently, recorded in concurrent transactions) are each counted once, and the
// webhook is disabled once.
func TestFailureRunCountsConcurrentDeliveries(t *testing.T) {
	t.Run("SQLite", func(t *testing.T) { testFailureRunCounts(t, storetest.OpenSQLite(t)) })
	t.Run("PostgreSQL", func(t *testing.T) { testFailureRunCounts(t, storetest.OpenPostgres(t)) })
}

func testFailureRunCounts(t *testing.T, s store.Store) {
	clk := newClock()
	statuses := make([]int, 40)
	for i := range statuses {
		statuses[i] = 500
	}
	r := newReceiver(t, clk, statuses...)
	h, o := setup(t, s, r.srv.URL, clk)
	w, _ := webhook.NewWorker(webhook.Config{Store: s, Client: r.client(), Now: clk.Now, Rand: zeros{}, MaxAttempts: 1,
		DisableAfterFailures: 15, DisableAfter: time.Hour})
	enqueue(t, s, o, clk, 10)
	if n, err := w.RunOnce(t.Context()); n != 10 || err != nil {
		t.Fatalf("RunOnce: %d, %v", n, err)
	}
	got, err := s.GetWebhook(t.Context(), h.TenantID, h.ID)
	if err != nil || got.FailedDeliveries != 10 || !got.DisabledAt.IsZero() {
		t.Fatalf("after 10 concurrent failures: %+v, %v", got.WebhookHealth, err)
	}
	clk.Add(time.Hour)
	enqueue(t, s, o, clk, 10)
	if n, err := w.RunOnce(t.Context()); n != 10 || err != nil {
		t.Fatalf("RunOnce: %d, %v", n, err)
	}
	got, err = s.GetWebhook(t.Context(), h.TenantID, h.ID)
	if err != nil || got.FailedDeliveries != 20 || got.DisabledAt.IsZero() {
		t.Fatalf("after 20 failures over an hour: %+v, %v", got.WebhookHealth, err)
	}
	audit, err := s.ListAudit(t.Context(), store.AuditFilter{TenantID: h.TenantID, ResourceID: h.ID}, store.ListOptions{})
	if err != nil || len(audit.Items) != 1 {
		t.Errorf("disabled once? audit %+v, %v", audit.Items, err)
	}
}

// TestRetriedFailureCountsOnce: a delivery that failed for good counts once in its webhook's
// run of failures however often it is retried and fails again, so retrying one delivery
// cannot disable a webhook; another delivery failing for good counts.
func TestRetriedFailureCountsOnce(t *testing.T) {
	t.Run("SQLite", func(t *testing.T) { testRetriedFailureCountsOnce(t, storetest.OpenSQLite(t)) })
	t.Run("PostgreSQL", func(t *testing.T) { testRetriedFailureCountsOnce(t, storetest.OpenPostgres(t)) })
}

func testRetriedFailureCountsOnce(t *testing.T, s store.Store) {
	clk := newClock()
	r := newReceiver(t, clk, 500, 500, 500, 500, 500, 500, 500, 500)
	h, o := setup(t, s, r.srv.URL, clk)
	w, _ := webhook.NewWorker(webhook.Config{Store: s, Client: r.client(), Now: clk.Now, Rand: zeros{}, MaxAttempts: 1,
		DisableAfterFailures: 3, DisableAfter: time.Hour})
	run := func() {
		t.Helper()
		if n, err := w.RunOnce(t.Context()); n != 1 || err != nil {
			t.Fatalf("RunOnce: %d, %v", n, err)
		}
	}
	health := func() store.WebhookHealth {
		t.Helper()
		got, err := s.GetWebhook(t.Context(), h.TenantID, h.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got.WebhookHealth
	}
	enqueue(t, s, o, clk, 1)
	run()
	d := deliveries(t, s, h)[0]
	if d.State != store.DeliveryFailed || !d.FailureCounted || health().FailedDeliveries != 1 {
		t.Fatalf("after the first failure: %+v, %+v", d, health())
	}
	for i := range 5 {
		clk.Add(2 * time.Hour)
		if err := s.RetryWebhookDelivery(t.Context(), h.TenantID, h.ID, d.ID, clk.Now()); err != nil {
			t.Fatal(err)
		}
		run()
		if got := health(); got.FailedDeliveries != 1 || !got.DisabledAt.IsZero() {
			t.Fatalf("after retry %d failed again: %+v", i+1, got)
		}
	}
	if r.ids[d.ID] != 6 {
		t.Errorf("the delivery was sent %d times, want 6", r.ids[d.ID])
	}
	clk.Add(time.Hour)
	enqueue(t, s, o, clk, 1)
	run()
	if got := health(); got.FailedDeliveries != 2 || !got.DisabledAt.IsZero() {
		t.Errorf("another delivery failing for good: %+v, want a run of 2", got)
	}
}
