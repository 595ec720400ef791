package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// The headers of a delivery.
const (
	HeaderID        = "Rampart-Webhook-Id"        // the delivery's ID: the same on every retry
	HeaderEvent     = "Rampart-Webhook-Event"     // the event type
	HeaderTimestamp = "Rampart-Webhook-Timestamp" // Unix seconds when this attempt was signed
	HeaderSignature = "Rampart-Webhook-Signature" // "v1=" and the hex HMAC-SHA256
)

// secretPrefix marks a webhook secret.
const secretPrefix = "whsec_"

// NewSecret returns a new webhook secret: "whsec_" and 32 random bytes in unpadded base64url.
func NewSecret(rnd io.Reader) (string, error) {
	var b [32]byte
	if _, err := io.ReadFull(rnd, b[:]); err != nil {
		return "", fmt.Errorf("reading randomness for a webhook secret: %w", err)
	}
	return secretPrefix + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// Sign returns the signature header value of body sent at timestamp (Unix seconds): "v1=" and
// the lowercase hex HMAC-SHA256, keyed with the secret as given (the whole "whsec_…" string),
// of the decimal timestamp, a dot, and the body.
func Sign(secret string, timestamp int64, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(strconv.FormatInt(timestamp, 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return "v1=" + hex.EncodeToString(m.Sum(nil))
}

// SignAll returns the signature header value of body sent at timestamp signed with each of
// the secrets, in order: Sign's "v1=…" values joined by commas. During a rotation's grace
// period a delivery carries the new secret's signature first, then the old one's.
func SignAll(secrets []string, timestamp int64, body []byte) string {
	sigs := make([]string, len(secrets))
	for i, s := range secrets {
		sigs[i] = Sign(s, timestamp, body)
	}
	return strings.Join(sigs, ",")
}

// Verification errors.
var (
	ErrNoSignature  = errors.New("webhook: no v1 signature")
	ErrBadSignature = errors.New("webhook: signature does not match")
	ErrStale        = errors.New("webhook: timestamp outside the tolerance")
)

// Verify checks a delivery as a receiver should: the signature header (one or more
// comma-separated "v1=…" values; one must match) over the timestamp header and the raw body,
// and the timestamp within tolerance of now, so a captured delivery cannot be replayed later.
// Receivers should also remember recent delivery IDs, since a retry repeats one.
func Verify(secret, timestampHeader, signatureHeader string, body []byte, now time.Time, tolerance time.Duration) error {
	ts, err := strconv.ParseInt(timestampHeader, 10, 64)
	if err != nil {
		return fmt.Errorf("webhook: timestamp %q: %w", clip(timestampHeader, 32), ErrNoSignature)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("webhook: signed %s from now: %w", d.Round(time.Second), ErrStale)
	}
	want := Sign(secret, ts, body)
	found := false
	for _, s := range strings.Split(signatureHeader, ",") {
		s = strings.TrimSpace(s)
		if !strings.HasPrefix(s, "v1=") {
			continue
		}
		found = true
		if hmac.Equal([]byte(s), []byte(want)) {
			return nil
		}
	}
	if !found {
		return ErrNoSignature
	}
	return ErrBadSignature
}
