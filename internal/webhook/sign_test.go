package webhook_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/internal/webhook"
)

// TestSignGolden pins the signature format receivers implement: HMAC-SHA256 keyed with the
// whole secret string over "timestamp.body", hex, prefixed "v1=" (computed independently with
// `printf '1700000000.{"id":"x"}' | openssl dgst -sha256 -hmac whsec_test`).
func TestSignGolden(t *testing.T) {
	got := webhook.Sign("whsec_test", 1700000000, []byte(`{"id":"x"}`))
	const want = "v1=80e8d098018f757aa814ab1abb924f35d304affa1d93d29611a54696207eb7c3"
	if !strings.HasPrefix(got, "v1=") || len(got) != 3+64 {
		t.Fatalf("Sign = %q, not v1= and 64 hex digits", got)
	}
	if got != want {
		t.Fatalf("Sign = %q, want %q", got, want)
	}
}

func TestVerify(t *testing.T) {
	now := time.Unix(1700000000, 0)
	body := []byte(`{"id":"x"}`)
	sig := webhook.Sign(secret, now.Unix(), body)
	ts := "1700000000"
	if err := webhook.Verify(secret, ts, sig, body, now.Add(time.Minute), 5*time.Minute); err != nil {
		t.Fatalf("valid: %v", err)
	}
	// Several signatures (as during a secret rotation): one matching is enough.
	if err := webhook.Verify(secret, ts, "v1=00, "+sig, body, now, time.Minute); err != nil {
		t.Fatalf("one of several: %v", err)
	}
	for _, c := range []struct {
		name, secret, ts, sig string
		body                  []byte
		at                    time.Time
		want                  error
	}{
		{"other secret", "whsec_other", ts, sig, body, now, webhook.ErrBadSignature},
		{"changed body", secret, ts, sig, []byte(`{"id":"y"}`), now, webhook.ErrBadSignature},
		{"changed timestamp", secret, "1700000001", sig, body, now, webhook.ErrBadSignature},
		{"stale", secret, ts, sig, body, now.Add(6 * time.Minute), webhook.ErrStale},
		{"future", secret, ts, sig, body, now.Add(-6 * time.Minute), webhook.ErrStale},
		{"no v1", secret, ts, "v0=abc", body, now, webhook.ErrNoSignature},
		{"empty", secret, ts, "", body, now, webhook.ErrNoSignature},
		{"bad timestamp", secret, "yesterday", sig, body, now, webhook.ErrNoSignature},
	} {
		if err := webhook.Verify(c.secret, c.ts, c.sig, c.body, c.at, 5*time.Minute); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

func TestNewSecret(t *testing.T) {
	a, err := webhook.NewSecret(bytes.NewReader(bytes.Repeat([]byte{1}, 32)))
	if err != nil || a != "whsec_AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE" {
		t.Fatalf("NewSecret = %q, %v", a, err)
	}
	if _, err := webhook.NewSecret(bytes.NewReader(nil)); err == nil {
		t.Fatal("NewSecret without randomness succeeded")
	}
}
