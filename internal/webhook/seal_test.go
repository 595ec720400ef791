package webhook_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"github.com/rampart-iot/rampart/internal/store"
	"github.com/rampart-iot/rampart/internal/store/storetest"
	"github.com/rampart-iot/rampart/internal/webhook"
)

func TestSealer(t *testing.T) {
	kek := bytes.Repeat([]byte{9}, 32)
	s, err := webhook.NewSealer(kek, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := s.Seal("hook-1", secret)
	if err != nil || !strings.HasPrefix(sealed, "sealed:v1:") || strings.Contains(sealed, secret) {
		t.Fatalf("Seal = %q, %v", sealed, err)
	}
	if got, err := s.Open("hook-1", sealed); err != nil || got != secret {
		t.Fatalf("Open = %q, %v", got, err)
	}
	// Bound to the webhook, the key and the bytes.
	other, _ := webhook.NewSealer(bytes.Repeat([]byte{8}, 32), rand.Reader)
	flipped := sealed[:len(sealed)-2] + map[bool]string{true: "AA", false: "BB"}[!strings.HasSuffix(sealed, "AA")]
	for name, open := range map[string]func() (string, error){
		"another webhook": func() (string, error) { return s.Open("hook-2", sealed) },
		"another key":     func() (string, error) { return other.Open("hook-1", sealed) },
		"damaged":         func() (string, error) { return s.Open("hook-1", flipped) },
		"not base64":      func() (string, error) { return s.Open("hook-1", "sealed:v1:***") },
		"no sealer":       func() (string, error) { return (*webhook.Sealer)(nil).Open("hook-1", sealed) },
	} {
		if _, err := open(); !errors.Is(err, webhook.ErrSealed) {
			t.Errorf("%s: %v, want ErrSealed", name, err)
		}
	}
	// Without a sealer, and for secrets stored before sealing, the secret is as stored.
	if got, _ := (*webhook.Sealer)(nil).Seal("hook-1", secret); got != secret {
		t.Errorf("nil Seal = %q", got)
	}
	if got, err := s.Open("hook-1", secret); err != nil || got != secret {
		t.Errorf("Open of an unsealed secret = %q, %v", got, err)
	}
}

// TestDeliverSealedSecret: a webhook whose secret is stored sealed is signed with the secret
// itself; one whose secret cannot be opened fails at once without being sent.
func TestDeliverSealedSecret(t *testing.T) {
	clk := newClock()
	s := storetest.OpenSQLite(t)
	r := newReceiver(t, clk)
	h, o := setup(t, s, r.srv.URL, clk)
	sealer, _ := webhook.NewSealer(bytes.Repeat([]byte{9}, 32), rand.Reader)
	if err := s.DeleteWebhook(t.Context(), h.TenantID, h.ID); err != nil {
		t.Fatal(err)
	}
	h.Secret, _ = sealer.Seal(h.ID, secret)
	if err := s.CreateWebhook(t.Context(), h); err != nil {
		t.Fatal(err)
	}
	enqueue(t, s, o, clk, 1)
	w, _ := webhook.NewWorker(webhook.Config{Store: s, Secrets: sealer, Client: r.client(), Now: clk.Now, Rand: zeros{}})
	if n, err := w.RunOnce(t.Context()); n != 1 || err != nil || len(r.got) != 1 || len(r.bad) != 0 {
		t.Fatalf("sealed secret: %d, %v, received %d, bad %v", n, err, len(r.got), r.bad)
	}
	// A worker with the wrong key cannot sign: the delivery fails for good, unsent.
	enqueue(t, s, o, clk, 1)
	wrong, _ := webhook.NewSealer(bytes.Repeat([]byte{1}, 32), rand.Reader)
	w, _ = webhook.NewWorker(webhook.Config{Store: s, Secrets: wrong, Client: r.client(), Now: clk.Now, Rand: zeros{}})
	if n, err := w.RunOnce(t.Context()); n != 1 || err != nil {
		t.Fatalf("wrong key: %d, %v", n, err)
	}
	d := deliveries(t, s, h)[0]
	if d.State != store.DeliveryFailed || !strings.Contains(d.LastError, "cannot be opened") || len(r.ids) != 1 {
		t.Errorf("wrong key: %+v, receiver saw %d", d, len(r.ids))
	}
}
