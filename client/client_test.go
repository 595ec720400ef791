package client

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
)

// recorded is what the fake server saw of one request.
type recorded struct {
	Method, Path, RawQuery, Auth, ContentType, UserAgent string
	Body                                                 string
}

// fakeServer is a TLS server that records requests and answers with handler.
type fakeServer struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []recorded
}

func newFake(t *testing.T, handler http.HandlerFunc) (*fakeServer, *Client) {
	t.Helper()
	f := &fakeServer{}
	f.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.reqs = append(f.reqs, recorded{
			Method: r.Method, Path: r.URL.EscapedPath(), RawQuery: r.URL.RawQuery,
			Auth: r.Header.Get("Authorization"), ContentType: r.Header.Get("Content-Type"),
			UserAgent: r.Header.Get("User-Agent"), Body: string(b),
		})
		f.mu.Unlock()
		handler(w, r)
	}))
	t.Cleanup(f.Close)
	c, err := New(Config{Addr: f.URL, Token: "sekret", CACertPEM: caPEM(f.Server)})
	if err != nil {
		t.Fatal(err)
	}
	return f, c
}

func (f *fakeServer) last(t *testing.T) recorded {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.reqs) == 0 {
		t.Fatal("server saw no request")
	}
	return f.reqs[len(f.reqs)-1]
}

func caPEM(s *httptest.Server) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func TestNewAddr(t *testing.T) {
	tests := []struct {
		addr      string
		allowHTTP bool
		want      string // base, or "" if New must fail
		wantErr   string
	}{
		{addr: "https://rampart.example:8443", want: "https://rampart.example:8443"},
		{addr: "https://rampart.example:8443/", want: "https://rampart.example:8443"},
		{addr: "https://proxy.example/rampart/", want: "https://proxy.example/rampart"},
		{addr: "http://127.0.0.1:8080", allowHTTP: true, want: "http://127.0.0.1:8080"},
		{addr: "http://127.0.0.1:8080", wantErr: "plain http is refused"},
		{addr: "", wantErr: "no server address"},
		{addr: "ftp://x", wantErr: "want https://"},
		{addr: "rampart.example:8443", wantErr: "want https://"},
		{addr: "https://", wantErr: "no host"},
		{addr: "https://u:p@host", wantErr: "without user"},
		{addr: "https://host/?a=b", wantErr: "without user, query"},
		{addr: "https://host/#x", wantErr: "without user, query"},
		{addr: "https://host\x7f", wantErr: "invalid server address"},
	}
	for _, tt := range tests {
		c, err := New(Config{Addr: tt.addr, AllowHTTP: tt.allowHTTP})
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("New(%q) error = %v, want one containing %q", tt.addr, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("New(%q): %v", tt.addr, err)
			continue
		}
		if c.Addr() != tt.want {
			t.Errorf("New(%q).Addr() = %q, want %q", tt.addr, c.Addr(), tt.want)
		}
	}
}

func TestNewConfigErrors(t *testing.T) {
	if _, err := New(Config{Addr: "https://h", CACertPEM: []byte("not a certificate")}); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("garbage CA: err = %v", err)
	}
	if _, err := New(Config{Addr: "https://h", CACertPEM: []byte("x"), HTTPClient: http.DefaultClient}); err == nil || !strings.Contains(err.Error(), "both") {
		t.Errorf("CA and HTTPClient: err = %v", err)
	}
	if _, err := New(Config{Addr: "https://h", Token: "a\r\nX-Evil: 1"}); err == nil {
		t.Error("token with a line break: no error")
	}
}

// TestRequests checks that each method sends the method, path, query and body the API expects.
func TestRequests(t *testing.T) {
	f, c := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodDelete:
			w.WriteHeader(http.StatusNoContent)
		case r.Method == http.MethodPost:
			writeJSON(w, http.StatusCreated, map[string]any{"id": "x"})
		default:
			writeJSON(w, http.StatusOK, map[string]any{"items": []any{}})
		}
	})
	ctx := context.Background()
	since := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name                string
		call                func() error
		method, path, query string
		body                string
	}{
		{"me", func() error { _, err := c.Me(ctx); return err }, "GET", "/v1/me", "", ""},
		{"tenants", func() error { _, err := c.ListTenants(ctx, ListOptions{PageToken: "p2", MaxPageSize: 5}); return err },
			"GET", "/v1/tenants", "max_page_size=5&page_token=p2", ""},
		{"create tenant", func() error { _, err := c.CreateTenant(ctx, v1.TenantCreate{Name: "Acme"}); return err },
			"POST", "/v1/tenants", "", `{"name":"Acme"}`},
		{"delete role by name", func() error { return c.DeleteRole(ctx, "t1", "ann smith/x") },
			"DELETE", "/v1/tenants/t1/roles/ann%20smith%2Fx", "", ""},
		{"user token", func() error {
			_, err := c.CreateUserToken(ctx, "t1", "bob", v1.TokenCreate{ExpiresInSeconds: 60})
			return err
		}, "POST", "/v1/tenants/t1/users/bob/tokens", "", `{"expires_in_seconds":60}`},
		{"revoke", func() error { return c.RevokeToken(ctx, "k1") }, "DELETE", "/v1/tokens/k1", "", ""},
		{"products by name", func() error {
			_, err := c.ListProducts(ctx, "t1", ProductListOptions{Name: "Coffee Maker"})
			return err
		}, "GET", "/v1/tenants/t1/products", "name=Coffee+Maker", ""},
		{"update product", func() error {
			d := ""
			_, err := c.UpdateProduct(ctx, "t1", "p1", v1.ProductUpdate{Description: &d})
			return err
		}, "PATCH", "/v1/tenants/t1/products/p1", "", `{"description":""}`},
		{"tenant groups", func() error {
			_, err := c.ListDeviceGroups(ctx, "t1", DeviceGroupListOptions{ProductID: "p1", Name: "Field Test"})
			return err
		}, "GET", "/v1/tenants/t1/device-groups", "name=Field+Test&product_id=p1", ""},
		{"product groups", func() error {
			_, err := c.ListProductDeviceGroups(ctx, "t1", "p1", DeviceGroupListOptions{ProductID: "ignored", Name: "Dev"})
			return err
		}, "GET", "/v1/tenants/t1/products/p1/device-groups", "name=Dev", ""},
		{"defaults", func() error { _, err := c.CreateDefaultDeviceGroups(ctx, "t1", "p1"); return err },
			"POST", "/v1/tenants/t1/products/p1/device-groups/defaults", "", ""},
		{"devices", func() error {
			_, err := c.ListDevices(ctx, "t1", DeviceListOptions{DeviceFilter: DeviceFilter{DeviceGroupID: "g1", Unassigned: true}})
			return err
		}, "GET", "/v1/tenants/t1/devices", "device_group_id=g1&unassigned=true", ""},
		{"count", func() error { _, err := c.CountDevices(ctx, "t1", DeviceFilter{ProductID: "p1"}); return err },
			"GET", "/v1/tenants/t1/devices/count", "product_id=p1", ""},
		{"bulk", func() error {
			_, err := c.BulkClaimDevices(ctx, "t1", v1.DeviceBulkClaim{Enrollments: []json.RawMessage{json.RawMessage(`{"v":1}`)}})
			return err
		}, "POST", "/v1/tenants/t1/devices/bulk-claim", "", `{"enrollments":[{"v":1}]}`},
		{"audit", func() error {
			_, err := c.ListAudit(ctx, "t1", AuditListOptions{Actor: "ann", Result: "failure", Since: since})
			return err
		}, "GET", "/v1/tenants/t1/audit", "actor=ann&result=failure&since=2026-01-02T03%3A04%3A05Z", ""},
		{"service audit", func() error {
			_, err := c.ListServiceAudit(ctx, AuditListOptions{Action: "tenant.create"})
			return err
		}, "GET", "/v1/audit", "action=tenant.create", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(); err != nil {
				t.Fatal(err)
			}
			r := f.last(t)
			if r.Method != tt.method || r.Path != tt.path || r.RawQuery != tt.query {
				t.Errorf("request = %s %s?%s, want %s %s?%s", r.Method, r.Path, r.RawQuery, tt.method, tt.path, tt.query)
			}
			if strings.TrimSpace(r.Body) != tt.body {
				t.Errorf("body = %q, want %q", r.Body, tt.body)
			}
			if r.Auth != "Bearer sekret" {
				t.Errorf("Authorization = %q", r.Auth)
			}
			if r.UserAgent != DefaultUserAgent {
				t.Errorf("User-Agent = %q", r.UserAgent)
			}
			if tt.body != "" && r.ContentType != "application/json" {
				t.Errorf("Content-Type = %q", r.ContentType)
			}
		})
	}
}

func TestBadPathSegments(t *testing.T) {
	f, c := newFake(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	ctx := context.Background()
	for _, id := range []string{"", ".", ".."} {
		if err := c.DeleteProduct(ctx, "t1", id); err == nil {
			t.Errorf("DeleteProduct(%q): no error", id)
		}
		if _, err := c.GetProduct(ctx, id, "p1"); err == nil {
			t.Errorf("GetProduct(tenant %q): no error", id)
		}
	}
	if len(f.reqs) != 0 {
		t.Errorf("server saw %d requests, want none", len(f.reqs))
	}
}

func TestAPIError(t *testing.T) {
	_, c := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/tenants/t1/products":
			writeJSON(w, http.StatusForbidden, v1.ErrorResponse{Error: v1.Error{
				Code: v1.CodeForbidden, Message: "your role Reader does not allow product.create"}})
		case "/v1/tenants/t1/device-groups/g1":
			writeJSON(w, http.StatusUnprocessableEntity, v1.ErrorResponse{Error: v1.Error{
				Code: v1.CodeValidation, Message: "invalid device group",
				Details: []v1.ErrorDetail{{Field: "name", Message: "at most 50 characters"}, {Field: "os_feed", Message: "invalid device group"}}}})
		default:
			w.WriteHeader(http.StatusBadGateway)
			io.WriteString(w, "<html>bad gateway</html>")
		}
	})
	ctx := context.Background()

	_, err := c.CreateProduct(ctx, "t1", v1.ProductCreate{Name: "x"})
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 403 || ae.Body.Code != v1.CodeForbidden {
		t.Fatalf("err = %#v, want a 403 forbidden APIError", err)
	}
	if err.Error() != "your role Reader does not allow product.create" {
		t.Errorf("Error() = %q", err.Error())
	}
	if !HasCode(fmt.Errorf("wrapped: %w", err), v1.CodeForbidden) || HasCode(err, v1.CodeNotFound) {
		t.Error("HasCode gives the wrong answer")
	}

	n := "x"
	_, err = c.UpdateDeviceGroup(ctx, "t1", "g1", v1.DeviceGroupUpdate{Name: &n})
	if want := "invalid device group (name: at most 50 characters)"; err == nil || err.Error() != want {
		t.Errorf("Error() = %v, want %q", err, want)
	}

	_, err = c.Me(ctx)
	if !errors.As(err, &ae) || ae.Status != 502 || ae.Body.Code != "" {
		t.Fatalf("err = %#v, want a 502 APIError without code", err)
	}
	if want := "server answered HTTP 502 Bad Gateway"; err.Error() != want {
		t.Errorf("Error() = %q, want %q", err.Error(), want)
	}
}

func TestResponseTooLarge(t *testing.T) {
	_, c := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, `{"user":{"name":"`)
		chunk := strings.Repeat("a", 1<<20)
		for i := 0; i <= MaxResponseBytes>>20; i++ {
			if _, err := io.WriteString(w, chunk); err != nil {
				return
			}
		}
	})
	_, err := c.Me(context.Background())
	if err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Errorf("err = %v, want a size error", err)
	}
}

func TestAllFollowsPages(t *testing.T) {
	_, c := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("name") != "Dev" {
			http.Error(w, "filter lost", http.StatusBadRequest)
			return
		}
		switch tok := r.URL.Query().Get("page_token"); tok {
		case "":
			writeJSON(w, 200, v1.List[v1.DeviceGroup]{Items: []v1.DeviceGroup{{ID: "1"}, {ID: "2"}}, NextPageToken: "a"})
		case "a":
			writeJSON(w, 200, v1.List[v1.DeviceGroup]{Items: []v1.DeviceGroup{{ID: "3"}}, NextPageToken: "b"})
		case "b":
			writeJSON(w, 200, v1.List[v1.DeviceGroup]{Items: []v1.DeviceGroup{{ID: "4"}}})
		}
	})
	gs, err := c.AllDeviceGroups(context.Background(), "t1", DeviceGroupListOptions{Name: "Dev"})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, g := range gs {
		ids = append(ids, g.ID)
	}
	if got := strings.Join(ids, ","); got != "1,2,3,4" {
		t.Errorf("ids = %s, want 1,2,3,4", got)
	}
}

func TestAllEmptyIsNotNil(t *testing.T) {
	_, c := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"items":null}`)
	})
	ts, err := c.AllTenants(context.Background())
	if err != nil || ts == nil || len(ts) != 0 {
		t.Errorf("AllTenants = %#v, %v; want an empty, non-nil slice", ts, err)
	}
}

func TestAllRepeatedToken(t *testing.T) {
	_, c := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, v1.List[v1.Token]{Items: []v1.Token{{ID: "x"}}, NextPageToken: "same"})
	})
	if _, err := c.AllTokens(context.Background()); err == nil || !strings.Contains(err.Error(), "repeated") {
		t.Errorf("err = %v, want a repeated-token error", err)
	}
}

func TestClaimAlready(t *testing.T) {
	status := http.StatusCreated
	_, c := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, status, v1.Device{ID: "d1"})
	})
	ctx := context.Background()
	d, already, err := c.ClaimDevice(ctx, "t1", v1.DeviceClaim{Enrollment: json.RawMessage(`{}`)})
	if err != nil || d.ID != "d1" || already {
		t.Errorf("201: %v, %v, %v", d, already, err)
	}
	status = http.StatusOK
	if _, already, err = c.ClaimDevice(ctx, "t1", v1.DeviceClaim{Enrollment: json.RawMessage(`{}`)}); err != nil || !already {
		t.Errorf("200: already = %v, err = %v", already, err)
	}
}

func TestTransportErrors(t *testing.T) {
	ctx := context.Background()

	// A server that is gone.
	s := httptest.NewTLSServer(http.NotFoundHandler())
	addr, ca := s.URL, caPEM(s)
	s.Close()
	c, err := New(Config{Addr: addr, CACertPEM: ca})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Me(ctx)
	if err == nil || !strings.HasPrefix(err.Error(), "cannot reach the Rampart server at "+addr+": ") || strings.Contains(err.Error(), `Get "`) {
		t.Errorf("err = %v", err)
	}

	// A server whose certificate the client does not trust, and then does.
	s = httptest.NewTLSServer(http.NotFoundHandler())
	defer s.Close()
	c, err = New(Config{Addr: s.URL, CACertPEM: caPEM(s)})
	if err != nil {
		t.Fatal(err)
	}
	var ae *APIError
	if _, err := c.Me(ctx); !errors.As(err, &ae) || ae.Status != http.StatusNotFound {
		t.Errorf("trusted CA: err = %v, want the server's 404", err)
	}
	c, err = New(Config{Addr: s.URL}) // system roots only
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Me(ctx)
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("untrusted server: err = %v, want a certificate error", err)
	}

	// A cancelled context.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.Me(cctx); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err = %v", err)
	}
}

func TestNoRedirects(t *testing.T) {
	var leaked string
	target := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaked = r.Header.Get("Authorization")
	}))
	defer target.Close()
	_, c := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/v1/me", http.StatusTemporaryRedirect)
	})
	if _, err := c.Me(context.Background()); err == nil || !strings.Contains(err.Error(), "redirect") {
		t.Errorf("err = %v, want a redirect error", err)
	}
	if leaked != "" {
		t.Errorf("token followed the redirect")
	}
}
