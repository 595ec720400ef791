package httpapi_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/enrollment/enrollmenttest"
	"github.com/rampart-iot/rampart/internal/server/servertest"
)

// env is a running service plus an HTTP client for raw requests.
type env struct {
	t   *testing.T
	srv *servertest.Server
	hc  *http.Client
}

func newEnv(t *testing.T, opts ...servertest.Option) *env {
	srv := servertest.Start(t, opts...)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(srv.CACertPEM)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	t.Cleanup(hc.CloseIdleConnections)
	return &env{t: t, srv: srv, hc: hc}
}

// response is a raw API response.
type response struct {
	status int
	body   []byte
}

func (r response) apiError() v1.Error {
	var e v1.ErrorResponse
	_ = json.Unmarshal(r.body, &e)
	return e.Error
}

// do sends a request. body may be nil, a []byte or string (sent as is) or a value (sent as
// JSON); a body is sent as application/json.
func (e *env) do(token, method, path string, body any) response {
	e.t.Helper()
	switch b := body.(type) {
	case nil:
		return e.doRaw(token, method, path, nil, "")
	case []byte:
		return e.doRaw(token, method, path, b, "application/json")
	case string:
		return e.doRaw(token, method, path, []byte(b), "application/json")
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		return e.doRaw(token, method, path, j, "application/json")
	}
}

// must sends a request that must succeed with status want, decoding the response into out.
func (e *env) must(token, method, path string, body any, want int, out any) {
	e.t.Helper()
	r := e.do(token, method, path, body)
	if r.status != want {
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.status, want, r.body)
	}
	if out != nil {
		if err := json.Unmarshal(r.body, out); err != nil {
			e.t.Fatalf("%s %s: decoding %s: %v", method, path, r.body, err)
		}
	}
}

// tenantFixture is a tenant with one of everything, made by an administrator.
type tenantFixture struct {
	id, admin      string
	product, group string
	group2, device string
	productName    string
}

func (e *env) newTenant(name string) *tenantFixture {
	var t v1.Tenant
	e.must(e.srv.AdminToken, "POST", "/v1/tenants", v1.TenantCreate{Name: name}, 201, &t)
	return e.fixture(t.ID, e.srv.AdminToken)
}

func (e *env) fixture(tenantID, admin string) *tenantFixture {
	f := &tenantFixture{id: tenantID, admin: admin}
	f.refresh(e)
	return f
}

var fixtureSeq int

// refresh makes a fresh product, two groups and a device in the tenant.
func (f *tenantFixture) refresh(e *env) {
	fixtureSeq++
	var p v1.Product
	f.productName = "Product " + strings.Repeat("x", fixtureSeq%7) + string(rune('A'+fixtureSeq%26)) + itoa(fixtureSeq)
	e.must(f.admin, "POST", "/v1/tenants/"+f.id+"/products", v1.ProductCreate{Name: f.productName, NoDefaultDeviceGroups: true}, 201, &p)
	f.product = p.ID
	var g, g2 v1.DeviceGroup
	e.must(f.admin, "POST", "/v1/tenants/"+f.id+"/products/"+p.ID+"/device-groups", v1.DeviceGroupCreate{Name: "One"}, 201, &g)
	e.must(f.admin, "POST", "/v1/tenants/"+f.id+"/products/"+p.ID+"/device-groups", v1.DeviceGroupCreate{Name: "Two"}, 201, &g2)
	f.group, f.group2 = g.ID, g2.ID
	var d v1.Device
	e.must(f.admin, "POST", "/v1/tenants/"+f.id+"/devices", v1.DeviceClaim{Enrollment: enrollmenttest.Record(e.t), DeviceGroupID: g.ID}, 201, &d)
	f.device = d.ID
}

// user adds a user with a role in the tenant and returns a token limited to the tenant.
func (e *env) user(f *tenantFixture, name, role string) string {
	e.must(f.admin, "POST", "/v1/tenants/"+f.id+"/roles", v1.RoleAdd{User: name, Role: role}, 200, nil)
	var tok v1.Token
	e.must(f.admin, "POST", "/v1/tenants/"+f.id+"/users/"+name+"/tokens", v1.TokenCreate{}, 201, &tok)
	return tok.Secret
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}

// doRaw sends body as is with the given content type (none if body is nil).
func (e *env) doRaw(token, method, path string, body []byte, contentType string) response {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.hc.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return response{status: resp.StatusCode, body: b}
}

func mustJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
}

// doRange sends a GET with a Range header.
func (e *env) doRange(token, path, rng string) response {
	e.t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), "GET", e.srv.URL+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Range", rng)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := e.hc.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, body: b}
}
