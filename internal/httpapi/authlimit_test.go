package httpapi_test

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"testing"

	"github.com/rampart-iot/rampart/internal/server/servertest"
)

// TestAuthFailuresAreLimitedPerAddress: an address that keeps presenting bad tokens is refused
// with 429 and Retry-After before any token is checked, even a good one; until then each bad
// token gets 401, and good ones work.
func TestAuthFailuresAreLimitedPerAddress(t *testing.T) {
	srv := servertest.Start(t, servertest.AuthFailureLimits(0.5, 3))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(srv.CACertPEM)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	get := func(token string) *http.Response {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), "GET", srv.URL+"/v1/tenants", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if r := get(srv.AdminToken); r.StatusCode != 200 {
		t.Fatalf("a good token: %d", r.StatusCode)
	}
	for i := range 3 {
		if r := get("rmp_wrong"); r.StatusCode != http.StatusUnauthorized {
			t.Fatalf("bad token %d: %d, want 401", i, r.StatusCode)
		}
	}
	r := get("rmp_wrong")
	if r.StatusCode != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" {
		t.Fatalf("after the burst of failures: %d (Retry-After %q), want 429", r.StatusCode, r.Header.Get("Retry-After"))
	}
	if r := get(srv.AdminToken); r.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("a good token from the same address while it is refused: %d, want 429", r.StatusCode)
	}
}
