package httpapi_test

import (
	"net/http"
	"testing"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/server/servertest"
)

// TestDeviceEndpointsAreRateLimited: past its burst, one address gets 429 with Retry-After on
// the unauthenticated device endpoints, and nothing else is limited by it.
func TestDeviceEndpointsAreRateLimited(t *testing.T) {
	e := newEnv(t, servertest.DeviceLimits(0.001, 3))
	nonce := func() (int, http.Header) {
		req, _ := http.NewRequest("POST", e.srv.URL+"/v1/device/attestation/nonce", nil)
		req.Header.Set("Content-Type", "application/json")
		req.Body = http.NoBody
		resp, err := e.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header
	}
	for i := range 3 {
		if code, _ := nonce(); code == http.StatusTooManyRequests {
			t.Fatalf("request %d of the burst was limited", i)
		}
	}
	code, h := nonce()
	if code != http.StatusTooManyRequests || h.Get("Retry-After") == "" {
		t.Fatalf("past the burst: %d (Retry-After %q), want 429 with Retry-After", code, h.Get("Retry-After"))
	}
	r := e.do("", "POST", "/v1/device/attestation", map[string]any{})
	if r.status != http.StatusTooManyRequests || r.apiError().Code != v1.CodeRateLimited {
		t.Fatalf("attest past the burst: %d %s", r.status, r.body)
	}
	// Management calls are not limited by the device limit.
	if r := e.do(e.srv.AdminToken, "GET", "/v1/me", nil); r.status != 200 {
		t.Fatalf("GET /v1/me: %d %s", r.status, r.body)
	}
}
