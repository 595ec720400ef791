package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/internal/ids"
	"github.com/rampart-iot/rampart/internal/store"
	"github.com/rampart-iot/rampart/internal/store/storetest"
	"github.com/rampart-iot/rampart/internal/webhook"
)

// clock is a test clock that moves only when told.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// zeros is randomness that is always zero: jitter takes the largest amount off.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

const secret = "whsec_test-secret"

// receiver is a real HTTPS endpoint that verifies every delivery's signature against the
// clock and answers with the statuses it is given, then 204.
type receiver struct {
	t        *testing.T
	srv      *httptest.Server
	clk      *clock
	mu       sync.Mutex
	secret   string // the secret it verifies with
	statuses []int
	got      []webhook.Envelope
	ids      map[string]int // delivery ID → times received
	bad      []string
	headers  []http.Header // of every request, in order
	bodies   [][]byte
}

func newReceiver(t *testing.T, clk *clock, statuses ...int) *receiver {
	r := &receiver{t: t, clk: clk, secret: secret, statuses: statuses, ids: map[string]int{}}
	r.srv = httptest.NewTLSServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	r.mu.Lock()
	defer r.mu.Unlock()
	r.headers = append(r.headers, req.Header.Clone())
	r.bodies = append(r.bodies, body)
	err := webhook.Verify(r.secret, req.Header.Get(webhook.HeaderTimestamp), req.Header.Get(webhook.HeaderSignature), body, r.clk.Now(), 5*time.Minute)
	if err != nil {
		r.bad = append(r.bad, err.Error())
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var e webhook.Envelope
	if err := json.Unmarshal(body, &e); err != nil || e.Type != req.Header.Get(webhook.HeaderEvent) {
		r.bad = append(r.bad, fmt.Sprintf("body %s, event header %q", body, req.Header.Get(webhook.HeaderEvent)))
	}
	r.ids[req.Header.Get(webhook.HeaderID)]++
	if len(r.statuses) > 0 {
		st := r.statuses[0]
		r.statuses = r.statuses[1:]
		w.WriteHeader(st)
		_, _ = w.Write([]byte(strings.Repeat("no\x00", 10000)))
		return
	}
	r.got = append(r.got, e)
	w.WriteHeader(http.StatusNoContent)
}

// client trusts the receiver's test certificate, with the worker's other protections.
func (r *receiver) client() *http.Client {
	c := webhook.NewClient(5*time.Second, r.srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs, false)
	return c
}

// setup makes a tenant with a webhook at url hearing every event.
func setup(t *testing.T, s store.Store, url string, clk *clock) (store.Webhook, *webhook.Outbox) {
	t.Helper()
	ctx := t.Context()
	if err := s.CreateTenant(ctx, store.Tenant{ID: "tenant-a", Name: "Contoso", CreatedAt: clk.Now()}); err != nil {
		t.Fatal(err)
	}
	g := &ids.Generator{Now: clk.Now, Rand: bytes.NewReader(bytes.Repeat([]byte{7}, 1<<16))}
	h := store.Webhook{ID: g.MustNew(), TenantID: "tenant-a", URL: url, Events: webhook.Events, Secret: secret,
		CreatedBy: "user-alice", CreatedAt: clk.Now()}
	if err := s.CreateWebhook(ctx, h); err != nil {
		t.Fatal(err)
	}
	return h, &webhook.Outbox{IDs: g}
}

func enqueue(t *testing.T, s store.Store, o *webhook.Outbox, clk *clock, n int) {
	t.Helper()
	err := s.Update(t.Context(), func(tx store.Tx) error {
		for i := range n {
			data := webhook.RolloutStateChanged{DeploymentID: fmt.Sprintf("dep-%d", i), Change: webhook.ChangeStarted, State: "running", Batch: 1}
			if k, err := o.Enqueue(t.Context(), tx, "tenant-a", webhook.EventRolloutStateChanged, data, clk.Now()); err != nil || k != 1 {
				return fmt.Errorf("enqueue: %d, %w", k, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func deliveries(t *testing.T, s store.Store, h store.Webhook) []store.WebhookDelivery {
	t.Helper()
	p, err := s.ListWebhookDeliveries(t.Context(), h.TenantID, h.ID, store.ListOptions{Limit: store.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	return p.Items
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func TestDeliverSigned(t *testing.T) {
	clk := newClock()
	s := storetest.OpenSQLite(t)
	r := newReceiver(t, clk)
	h, o := setup(t, s, r.srv.URL+"/hook", clk)
	enqueue(t, s, o, clk, 2)
	w, err := webhook.NewWorker(webhook.Config{Store: s, Client: r.client(), Now: clk.Now, Rand: zeros{}})
	if err != nil {
		t.Fatal(err)
	}
	n, err := w.RunOnce(t.Context())
	if err != nil || n != 2 {
		t.Fatalf("RunOnce: %d, %v", n, err)
	}
	if len(r.bad) > 0 || len(r.got) != 2 {
		t.Fatalf("received %d, bad %v", len(r.got), r.bad)
	}
	var data webhook.RolloutStateChanged
	if err := json.Unmarshal(r.got[0].Data, &data); err != nil || data.Change != webhook.ChangeStarted || r.got[0].TenantID != "tenant-a" {
		t.Errorf("envelope %+v data %+v (%v)", r.got[0], data, err)
	}
	for _, d := range deliveries(t, s, h) {
		if d.State != store.DeliveryDelivered || d.Attempts != 1 || d.LastStatus != 204 || d.LastError != "" || d.LeaseOwner != "" {
			t.Errorf("delivery after success: %+v", d)
		}
	}
	// Nothing is left to claim.
	if n, err := w.RunOnce(t.Context()); n != 0 || err != nil {
		t.Errorf("second RunOnce: %d, %v", n, err)
	}
}

func TestWrongSecretIsRefusedByReceiver(t *testing.T) {
	clk := newClock()
	s := storetest.OpenSQLite(t)
	r := newReceiver(t, clk)
	h, o := setup(t, s, r.srv.URL, clk)
	if err := s.DeleteWebhook(t.Context(), h.TenantID, h.ID); err != nil {
		t.Fatal(err)
	}
	h.ID, h.Secret = h.ID[:len(h.ID)-1]+"f", "whsec_other"
	if err := s.CreateWebhook(t.Context(), h); err != nil {
		t.Fatal(err)
	}
	enqueue(t, s, o, clk, 1)
	w, _ := webhook.NewWorker(webhook.Config{Store: s, Client: r.client(), Now: clk.Now, Rand: zeros{}})
	if _, err := w.RunOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	if len(r.bad) != 1 || !strings.Contains(r.bad[0], "does not match") {
		t.Fatalf("receiver should refuse a signature made with another secret: %v", r.bad)
	}
	if d := deliveries(t, s, h)[0]; d.State != store.DeliveryPending || d.LastStatus != 401 {
		t.Errorf("a refused delivery stays pending for a retry: %+v", d)
	}
}

func TestRetryAfterServerError(t *testing.T) {
	clk := newClock()
	s := storetest.OpenSQLite(t)
	r := newReceiver(t, clk, 500)
	h, o := setup(t, s, r.srv.URL, clk)
	enqueue(t, s, o, clk, 1)
	w, _ := webhook.NewWorker(webhook.Config{Store: s, Client: r.client(), Now: clk.Now, Rand: zeros{}, BaseDelay: 10 * time.Second})
	if _, err := w.RunOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	d := deliveries(t, s, h)[0]
	// Zero randomness takes the whole jitter off: half the base delay.
	if d.State != store.DeliveryPending || d.Attempts != 1 || d.LastStatus != 500 || !d.NextAttemptAt.Equal(clk.Now().Add(5*time.Second)) {
		t.Fatalf("after a 500: %+v", d)
	}
	// The receiver answered a body ("no\x00" repeated): none of it is kept.
	if d.LastError != "HTTP 500 Internal Server Error" {
		t.Errorf("last error = %q, want the status and its standard text only", d.LastError)
	}
	if n, _ := w.RunOnce(t.Context()); n != 0 {
		t.Fatalf("claimed %d before the retry was due", n)
	}
	clk.Add(5 * time.Second)
	if n, err := w.RunOnce(t.Context()); n != 1 || err != nil {
		t.Fatalf("retry: %d, %v", n, err)
	}
	d = deliveries(t, s, h)[0]
	if d.State != store.DeliveryDelivered || d.Attempts != 2 || len(r.got) != 1 {
		t.Fatalf("after the retry: %+v, received %d", d, len(r.got))
	}
	if r.ids[d.ID] != 2 {
		t.Errorf("the retry must carry the same delivery ID: %v", r.ids)
	}
}

func TestGiveUpAfterMaxAttempts(t *testing.T) {
	clk := newClock()
	s := storetest.OpenSQLite(t)
	r := newReceiver(t, clk, 503, 503, 503, 503)
	h, o := setup(t, s, r.srv.URL, clk)
	enqueue(t, s, o, clk, 1)
	w, _ := webhook.NewWorker(webhook.Config{Store: s, Client: r.client(), Now: clk.Now, Rand: zeros{}, MaxAttempts: 3,
		BaseDelay: time.Second, MaxDelay: 3 * time.Second})
	var waits []time.Duration
	for range 3 {
		if n, err := w.RunOnce(t.Context()); n != 1 || err != nil {
			t.Fatalf("attempt: %d, %v", n, err)
		}
		d := deliveries(t, s, h)[0]
		if d.State == store.DeliveryPending {
			waits = append(waits, d.NextAttemptAt.Sub(clk.Now()))
		}
		clk.Add(time.Hour)
	}
	d := deliveries(t, s, h)[0]
	if d.State != store.DeliveryFailed || d.Attempts != 3 || d.LastStatus != 503 {
		t.Fatalf("after the bound: %+v", d)
	}
	// Exponential: 1s then 2s, halved by the full jitter zero randomness takes.
	if fmt.Sprint(waits) != "[500ms 1s]" {
		t.Errorf("backoff waits %v, want [500ms 1s]", waits)
	}
	if n, _ := w.RunOnce(t.Context()); n != 0 {
		t.Errorf("a failed delivery was claimed again")
	}
}

func TestRedirectIsNotFollowed(t *testing.T) {
	clk := newClock()
	s := storetest.OpenSQLite(t)
	target := newReceiver(t, clk)
	redirect := httptest.NewTLSServer(http.RedirectHandler(target.srv.URL, http.StatusFound))
	t.Cleanup(redirect.Close)
	h, o := setup(t, s, redirect.URL, clk)
	enqueue(t, s, o, clk, 1)
	w, _ := webhook.NewWorker(webhook.Config{Store: s, Client: target.client(), Now: clk.Now, Rand: zeros{}})
	if _, err := w.RunOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	d := deliveries(t, s, h)[0]
	if d.State != store.DeliveryPending || d.LastStatus != 302 || !strings.Contains(d.LastError, "redirects are not followed") {
		t.Errorf("after a redirect: %+v", d)
	}
	if len(target.ids) != 0 {
		t.Errorf("the redirect was followed")
	}
}

// TestOutboxSurvivesRestart: an event committed with its change is delivered by a worker of
// the next process, after the store was closed and opened again.
func TestOutboxSurvivesRestart(t *testing.T) {
	clk := newClock()
	r := newReceiver(t, clk)
	dsn := storetest.SQLiteDSN(t)
	s1, err := store.Open(t.Context(), "sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	h, o := setup(t, s1, r.srv.URL, clk)
	enqueue(t, s1, o, clk, 3)
	// An event whose transaction fails is not kept.
	err = s1.Update(t.Context(), func(tx store.Tx) error {
		if _, err := o.Enqueue(t.Context(), tx, "tenant-a", webhook.EventBucketCreated, webhook.BucketCreated{Type: "AppCrash"}, clk.Now()); err != nil {
			return err
		}
		return errors.New("the change failed")
	})
	if err == nil {
		t.Fatal("the failing update succeeded")
	}
	if err := s1.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := storetest.Open(t, "sqlite", dsn)
	w, _ := webhook.NewWorker(webhook.Config{Store: s2, Client: r.client(), Now: clk.Now, Rand: zeros{}})
	if n, err := w.RunOnce(t.Context()); n != 3 || err != nil {
		t.Fatalf("after reopening: %d, %v", n, err)
	}
	if len(r.got) != 3 {
		t.Fatalf("received %d, want 3", len(r.got))
	}
	for _, e := range r.got {
		if e.Type != webhook.EventRolloutStateChanged {
			t.Errorf("delivered %s from a failed transaction", e.Type)
		}
	}
	_ = h
}

// TestOnlySubscribedEvents: a webhook hears only the event types it named.
func TestOnlySubscribedEvents(t *testing.T) {
	clk := newClock()
	s := storetest.OpenSQLite(t)
	h, o := setup(t, s, "https://hooks.example.com/x", clk)
	if err := s.DeleteWebhook(t.Context(), h.TenantID, h.ID); err != nil {
		t.Fatal(err)
	}
	h.Events = []string{webhook.EventBucketCreated}
	if err := s.CreateWebhook(t.Context(), h); err != nil {
		t.Fatal(err)
	}
	err := s.Update(t.Context(), func(tx store.Tx) error {
		n, err := o.Enqueue(t.Context(), tx, "tenant-a", webhook.EventRolloutStateChanged, webhook.RolloutStateChanged{}, clk.Now())
		if n != 0 {
			return fmt.Errorf("enqueued %d deliveries of an event no webhook hears", n)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestTwoWorkersOnPostgres: two workers (as two server replicas would) share a PostgreSQL
// store and deliver every event exactly once between them.
func TestTwoWorkersOnPostgres(t *testing.T) {
	s := storetest.OpenPostgres(t)
	clk := newClock()
	r := newReceiver(t, clk)
	h, o := setup(t, s, r.srv.URL, clk)
	const events = 40
	enqueue(t, s, o, clk, events)
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for k := range 2 {
		w, err := webhook.NewWorker(webhook.Config{Store: s, Client: r.client(), Now: clk.Now, Rand: zeros{}, Batch: 3,
			Owner: fmt.Sprintf("replica-%d", k)})
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			for {
				n, err := w.RunOnce(context.Background())
				if err != nil {
					errs <- err
					return
				}
				if n == 0 {
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(r.ids) != events {
		t.Fatalf("%d distinct deliveries received, want %d", len(r.ids), events)
	}
	for id, n := range r.ids {
		if n != 1 {
			t.Errorf("delivery %s received %d times", id, n)
		}
	}
	for _, d := range deliveries(t, s, h) {
		if d.State != store.DeliveryDelivered {
			t.Errorf("not delivered: %+v", d)
		}
	}
}
