package cli

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/store"
	"github.com/rampart-iot/rampart/internal/webhook"
)

// recordingReceiver answers 204 to everything and keeps each request, for the test to verify.
type recordingReceiver struct {
	mu   sync.Mutex
	reqs []recorded
}

type recorded struct {
	header http.Header
	body   []byte
}

func (h *recordingReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	h.mu.Lock()
	h.reqs = append(h.reqs, recorded{r.Header.Clone(), body})
	h.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// wait waits for the receiver's n-th request and returns it.
func (h *recordingReceiver) wait(t *testing.T, n int) recorded {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		h.mu.Lock()
		reqs := h.reqs
		h.mu.Unlock()
		if len(reqs) >= n {
			return reqs[n-1]
		}
	}
	t.Fatalf("the receiver got fewer than %d deliveries within a minute", n)
	return recorded{}
}

func (r recorded) verify(secret string) error {
	return webhook.Verify(secret, r.header.Get(webhook.HeaderTimestamp), r.header.Get(webhook.HeaderSignature), r.body, time.Now(), 5*time.Minute)
}

// TestE2EWebhookLifecycle drives the real CLI and service: ping; a rotation whose grace period
// signs with both secrets, then one with no grace signing with the new one only; redeliver
// (same event ID, new delivery ID); a disabled webhook shown as such, refusing ping, and
// enabled again.
func TestE2EWebhookLifecycle(t *testing.T) {
	e := startE2E(t)
	r := e.admin
	recv := &recordingReceiver{}
	srv := httptest.NewServer(recv)
	t.Cleanup(srv.Close)
	var w v1.Webhook
	r.json(t, &w, "webhook", "create", "--url", srv.URL+"/hook", "--events", "error_report.bucket_created")
	if out := r.ok(t, "webhook", "list"); !strings.Contains(out, "enabled") {
		t.Errorf("list:\n%s", out)
	}

	// Ping: a ping event, signed with the secret.
	if out := r.ok(t, "webhook", "ping", w.ID); !strings.Contains(out, "Queued ping delivery") {
		t.Errorf("ping:\n%s", out)
	}
	ping := recv.wait(t, 1)
	if err := ping.verify(w.Secret); err != nil || ping.header.Get(webhook.HeaderEvent) != "ping" || !strings.Contains(string(ping.body), w.ID) {
		t.Fatalf("ping: %v, %v %s", err, ping.header, ping.body)
	}

	// Rotate with an hour's grace: both secrets verify the next delivery.
	res := r.run(t, "webhook", "rotate-secret", w.ID, "--grace", "1h")
	if res.code != 0 || !strings.Contains(res.err, "only time the new secret is shown") || !strings.Contains(res.out, "Previous secret") {
		t.Fatalf("rotate-secret: exit %d\n%s\n%s", res.code, res.out, res.err)
	}
	var rot v1.Webhook
	r.json(t, &rot, "webhook", "rotate-secret", w.ID, "--grace", "2h")
	if !strings.HasPrefix(rot.Secret, "whsec_") || rot.Secret == w.Secret || rot.PreviousSecretUntil == nil {
		t.Fatalf("rotated: %+v", rot)
	}
	// The second rotation dropped the first's old secret: w.Secret signs no more; the first
	// rotation's secret is the previous one now. Find it by what verifies.
	r.ok(t, "webhook", "ping", w.ID)
	both := recv.wait(t, 2)
	if err := both.verify(rot.Secret); err != nil {
		t.Errorf("the new secret: %v", err)
	}
	if err := both.verify(w.Secret); !errors.Is(err, webhook.ErrBadSignature) {
		t.Errorf("the secret two rotations ago: %v", err)
	}
	if n := strings.Count(both.header.Get(webhook.HeaderSignature), "v1="); n != 2 {
		t.Errorf("during the grace period %d signatures: %q", n, both.header.Get(webhook.HeaderSignature))
	}
	if out := r.ok(t, "webhook", "show", w.ID); !strings.Contains(out, "signs deliveries too until") || strings.Contains(out, rot.Secret) {
		t.Errorf("show during the grace period:\n%s", out)
	}
	var last v1.Webhook
	r.json(t, &last, "webhook", "rotate-secret", w.ID, "--grace", "0s")
	r.ok(t, "webhook", "ping", w.ID)
	one := recv.wait(t, 3)
	if err := one.verify(last.Secret); err != nil {
		t.Errorf("the newest secret: %v", err)
	}
	if err := one.verify(rot.Secret); !errors.Is(err, webhook.ErrBadSignature) {
		t.Errorf("a secret rotated without grace still signs: %v", err)
	}
	if res := r.run(t, "webhook", "rotate-secret", w.ID, "--grace", "200h"); res.code != 2 || !strings.Contains(res.err, "--grace 200h0m0s is not") {
		t.Errorf("--grace 200h: exit %d, %q", res.code, res.err)
	}

	// Redeliver the first ping: a new delivery ID, the same body (so event ID).
	var ds []v1.WebhookDelivery
	r.json(t, &ds, "webhook", "deliveries", w.ID)
	first := ds[len(ds)-1]
	if first.ID != ping.header.Get(webhook.HeaderID) || first.State != "delivered" {
		t.Fatalf("the first ping's delivery: %+v", first)
	}
	var re v1.WebhookDelivery
	r.json(t, &re, "webhook", "redeliver", w.ID, first.ID)
	again := recv.wait(t, 4)
	if again.header.Get(webhook.HeaderID) != re.ID || re.ID == first.ID || re.EventID != first.EventID || string(again.body) != string(ping.body) {
		t.Errorf("redelivery %+v: header %s, body %s", re, again.header.Get(webhook.HeaderID), again.body)
	}
	if err := again.verify(last.Secret); err != nil {
		t.Errorf("the redelivery is signed with the current secret: %v", err)
	}

	// Disabled (as the delivery worker does after days of failures): shown, refused, enabled.
	if err := e.srv.Store.SetWebhookHealth(t.Context(), e.srv.TenantID, w.ID, store.WebhookHealth{FailingSince: time.Now().Add(-73 * time.Hour),
		FailedDeliveries: 5, DisabledAt: time.Now(), DisabledReason: "5 deliveries in a row failed (every attempt)"}); err != nil {
		t.Fatal(err)
	}
	if out := r.ok(t, "webhook", "show", w.ID); !strings.Contains(out, "disabled since") || !strings.Contains(out, "5 deliveries in a row failed") {
		t.Errorf("show of a disabled webhook:\n%s", out)
	}
	if out := r.ok(t, "webhook", "list"); !strings.Contains(out, "disabled") {
		t.Errorf("list:\n%s", out)
	}
	r.fails(t, "enable it first", "webhook", "ping", w.ID)
	r.fails(t, "enable it first", "webhook", "redeliver", w.ID, first.ID)
	if out := r.ok(t, "webhook", "enable", w.ID); !strings.Contains(out, "enabled") || strings.Contains(out, "disabled") {
		t.Errorf("enable:\n%s", out)
	}
	r.ok(t, "webhook", "ping", w.ID)
	if err := recv.wait(t, 5).verify(last.Secret); err != nil {
		t.Errorf("a ping after enabling: %v", err)
	}
}
