package httpapi_test

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/enrollment/enrollmenttest"
	"github.com/rampart-iot/rampart/internal/server/servertest"
	"github.com/rampart-iot/rampart/internal/store"
)

// snapshot renders every record except the audit log, to show that a refused request
// changed nothing.
func snapshot(t *testing.T, st store.Store) string {
	t.Helper()
	ctx := context.Background()
	all := store.ListOptions{Limit: store.MaxLimit}
	var out []any
	users := map[string]bool{}
	// Every tenant that any role in the dev tenant's users can see; tenants are found via roles.
	var tenants []store.Tenant
	seen := map[string]bool{}
	admin, err := st.GetUserByName(ctx, "dev-admin")
	if err != nil {
		t.Fatal(err)
	}
	tp, err := st.ListTenantsForUser(ctx, admin.ID, all)
	if err != nil {
		t.Fatal(err)
	}
	for _, tn := range tp.Items {
		if !seen[tn.ID] {
			seen[tn.ID] = true
			tenants = append(tenants, tn)
		}
	}
	for _, tn := range tenants {
		out = append(out, tn)
		roles, _ := st.ListRoles(ctx, tn.ID, all)
		for _, r := range roles.Items {
			out = append(out, r)
			users[r.UserID] = true
		}
		ps, _ := st.ListProducts(ctx, tn.ID, store.ProductFilter{}, all)
		gs, _ := st.ListDeviceGroups(ctx, tn.ID, store.DeviceGroupFilter{}, all)
		ds, _ := st.ListDevices(ctx, tn.ID, store.DeviceFilter{}, all)
		out = append(out, ps.Items, gs.Items, ds.Items)
	}
	for _, u := range slices.Sorted(maps.Keys(users)) {
		toks, _ := st.ListTokens(ctx, store.TokenFilter{UserID: u}, all)
		out = append(out, toks.Items)
	}
	b, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestBadInputIsRefusedAndChangesNothing(t *testing.T) {
	clock := &fakeClock{now: time.Now()}
	e := newEnv(t, servertest.Clock(clock.Now))
	own := e.fixture(e.srv.TenantID, e.srv.AdminToken)
	other := e.newTenant("Rival")
	admin := e.srv.AdminToken
	reader := e.user(own, "rita", "Reader")
	base := "/v1/tenants/" + own.id
	var short v1.Token
	e.must(admin, "POST", "/v1/tokens", v1.TokenCreate{ExpiresInSeconds: 60}, 201, &short)
	var revoked v1.Token
	e.must(admin, "POST", "/v1/tokens", v1.TokenCreate{}, 201, &revoked)
	e.must(admin, "DELETE", "/v1/tokens/"+revoked.ID, nil, 204, nil)
	var existing v1.Product
	e.must(admin, "GET", base+"/products/"+own.product, nil, 200, &existing)
	foreignRecord := enrollmenttest.Record(t)
	e.must(other.admin, "POST", "/v1/tenants/"+other.id+"/devices", v1.DeviceClaim{Enrollment: foreignRecord}, 201, nil)
	var ownDevice v1.Device
	e.must(admin, "GET", base+"/devices/"+own.device, nil, 200, &ownDevice)
	badRecord := strings.Replace(string(enrollmenttest.Record(t)), `"version": 1`, `"version": 9`, 1)
	tooMany := make([]json.RawMessage, 1001)
	for i := range tooMany {
		tooMany[i] = json.RawMessage(`{}`)
	}

	cases := []struct {
		name        string
		token       string
		method      string
		path        string
		body        any
		contentType string
		status      int
		code        string
		says        string
	}{
		{"malformed JSON", admin, "POST", base + "/products", `{"name":`, "", 400, v1.CodeBadRequest, "malformed JSON"},
		{"empty body", admin, "POST", base + "/products", ``, "", 400, v1.CodeBadRequest, "empty"},
		{"trailing data", admin, "POST", base + "/products", `{"name":"A"} {"name":"B"}`, "", 400, v1.CodeBadRequest, "after the JSON"},
		{"duplicate key", admin, "POST", base + "/products", `{"name":"A","name":"B"}`, "", 400, v1.CodeBadRequest, "duplicate key"},
		{"unknown field", admin, "POST", base + "/products", `{"name":"A","colour":"red"}`, "", 400, v1.CodeBadRequest, "colour"},
		{"wrong type", admin, "POST", base + "/products", `{"name":5}`, "", 400, v1.CodeBadRequest, "name"},
		{"not an object", admin, "POST", base + "/products", `["A"]`, "", 400, v1.CodeBadRequest, "object"},
		{"oversized body", admin, "POST", base + "/products", `{"name":"A","description":"` + strings.Repeat("x", 100<<10) + `"}`, "", 413, v1.CodePayloadTooLarge, "limit"},
		{"wrong content type", admin, "POST", base + "/products", `{"name":"A"}`, "text/plain", 415, v1.CodeUnsupportedMedia, "application/json"},
		{"name too long", admin, "POST", base + "/products", v1.ProductCreate{Name: strings.Repeat("n", 51)}, "", 422, v1.CodeValidation, "limit is 50"},
		{"name missing", admin, "POST", base + "/products", v1.ProductCreate{}, "", 422, v1.CodeValidation, "required"},
		{"name with bad character", admin, "POST", base + "/products", v1.ProductCreate{Name: "a/b"}, "", 422, v1.CodeValidation, "'/'"},
		{"name shaped like an ID", admin, "POST", base + "/products", v1.ProductCreate{Name: own.product}, "", 422, v1.CodeValidation, "ID"},
		{"name collides (case)", admin, "POST", base + "/products", v1.ProductCreate{Name: strings.ToUpper(existing.Name)}, "", 409, v1.CodeConflict, "already exists"},
		{"group name collides", admin, "POST", base + "/products/" + own.product + "/device-groups", v1.DeviceGroupCreate{Name: "one"}, "", 409, v1.CodeConflict, "already exists"},
		{"bad os feed", admin, "POST", base + "/products/" + own.product + "/device-groups", v1.DeviceGroupCreate{Name: "Z", OSFeed: "Beta"}, "", 422, v1.CodeValidation, "Retail"},
		{"bad interval", admin, "POST", base + "/products/" + own.product + "/device-groups", v1.DeviceGroupCreate{Name: "Z", CheckInIntervalSeconds: 5}, "", 422, v1.CodeValidation, "between"},
		{"unknown product", admin, "GET", base + "/products/01a20f2c-591d-7bdf-9a61-8a89c2319ce5", nil, "", 404, v1.CodeNotFound, "not found"},
		{"unknown device", admin, "PATCH", base + "/devices/" + strings.Repeat("ab", 32), v1.DeviceUpdate{DeviceGroupID: &own.group2}, "", 404, v1.CodeNotFound, "not found"},
		{"unknown group in move", admin, "PATCH", base + "/devices/" + own.device, map[string]any{"device_group_id": "01a20f2c-591d-7bdf-9a61-8a89c2319ce5"}, "", 404, v1.CodeNotFound, "not found"},
		{"bad group ID in move", admin, "PATCH", base + "/devices/" + own.device, map[string]any{"device_group_id": "Production"}, "", 422, v1.CodeValidation, "not an ID"},
		{"unknown tenant", admin, "GET", "/v1/tenants/01a20f2c-591d-7bdf-9a61-8a89c2319ce5/products", nil, "", 404, v1.CodeNotFound, "tenant"},
		{"no token", "", "GET", base + "/products", nil, "", 401, v1.CodeUnauthenticated, "Bearer"},
		{"garbage token", "hello", "GET", base + "/products", nil, "", 401, v1.CodeUnauthenticated, "invalid API token"},
		{"unknown token", "rpt_" + strings.Repeat("A", 43), "GET", base + "/products", nil, "", 401, v1.CodeUnauthenticated, "invalid API token"},
		{"revoked token", revoked.Secret, "GET", base + "/products", nil, "", 401, v1.CodeUnauthenticated, "revoked"},
		{"reader writes", reader, "POST", base + "/products", v1.ProductCreate{Name: "Nope"}, "", 403, v1.CodeForbidden, "Reader"},
		{"reader deletes", reader, "DELETE", base + "/products/" + own.product, nil, "", 403, v1.CodeForbidden, "Reader"},
		{"other tenant's product", reader, "GET", "/v1/tenants/" + other.id + "/products/" + other.product, nil, "", 404, v1.CodeNotFound, "not found"},
		{"claimed by another tenant", admin, "POST", base + "/devices", map[string]any{"enrollment": rawJSON(foreignRecord)}, "", 409, v1.CodeDeviceClaimed, "another tenant"},
		{"invalid record", admin, "POST", base + "/devices", map[string]any{"enrollment": rawJSON(badRecord)}, "", 422, v1.CodeValidation, "version"},
		{"record not JSON", admin, "POST", base + "/devices", map[string]any{"enrollment": "hello"}, "", 422, v1.CodeValidation, "enrollment record"},
		{"no record", admin, "POST", base + "/devices", map[string]any{}, "", 422, v1.CodeValidation, "enrollment"},
		{"bulk too many", admin, "POST", base + "/devices/bulk-claim", v1.DeviceBulkClaim{Enrollments: tooMany}, "", 422, v1.CodeValidation, "at most 1000"},
		{"bulk none", admin, "POST", base + "/devices/bulk-claim", v1.DeviceBulkClaim{}, "", 422, v1.CodeValidation, "at least one"},
		{"bulk into unknown group", admin, "POST", base + "/devices/bulk-claim", map[string]any{"enrollments": []any{rawJSON(enrollmenttest.Record(t))}, "device_group_id": "01a20f2c-591d-7bdf-9a61-8a89c2319ce5"}, "", 404, v1.CodeNotFound, "not found"},
		{"delete group with devices", admin, "DELETE", base + "/device-groups/" + own.group, nil, "", 409, v1.CodeConflict, "device"},
		{"delete product with devices", admin, "DELETE", base + "/products/" + own.product, nil, "", 409, v1.CodeConflict, "device"},
		{"demote last administrator", admin, "POST", base + "/roles", v1.RoleAdd{User: "dev-admin", Role: "Reader"}, "", 409, v1.CodeConflict, "last Administrator"},
		{"delete last administrator", admin, "DELETE", base + "/roles/dev-admin", nil, "", 409, v1.CodeConflict, "last Administrator"},
		{"bad role", admin, "POST", base + "/roles", v1.RoleAdd{User: "bob", Role: "Owner"}, "", 422, v1.CodeValidation, "Administrator, Contributor or Reader"},
		{"token too long-lived", admin, "POST", "/v1/tokens", v1.TokenCreate{ExpiresInSeconds: 10 * 365 * 86400}, "", 422, v1.CodeValidation, "one year"},
		{"token for a stranger", admin, "POST", base + "/users/nobody/tokens", v1.TokenCreate{}, "", 404, v1.CodeNotFound, "nobody"},
		{"unknown query parameter", admin, "GET", base + "/devices?prodcut_id=x", nil, "", 400, v1.CodeBadRequest, "prodcut_id"},
		{"repeated query parameter", admin, "GET", base + "/products?name=a&name=b", nil, "", 400, v1.CodeBadRequest, "repeated"},
		{"bad page size", admin, "GET", base + "/devices?max_page_size=0", nil, "", 400, v1.CodeBadRequest, "max_page_size"},
		{"huge page size", admin, "GET", base + "/devices?max_page_size=100000", nil, "", 400, v1.CodeBadRequest, "max_page_size"},
		{"malformed query", admin, "GET", base + "/devices?page_token=%%%", nil, "", 400, v1.CodeBadRequest, "malformed query"},
		{"bad page token", admin, "GET", base + "/devices?page_token=!!!", nil, "", 400, v1.CodeBadRequest, "page_token"},
		{"bad audit page token", admin, "GET", base + "/audit?page_token=" + "bm90LWEtbnVtYmVy", nil, "", 400, v1.CodeBadRequest, "page_token"},
		{"bad boolean", admin, "GET", base + "/devices?unassigned=maybe", nil, "", 400, v1.CodeBadRequest, "true or false"},
		{"bad time", admin, "GET", base + "/audit?since=yesterday", nil, "", 400, v1.CodeBadRequest, "RFC 3339"},
		{"bad audit result", admin, "GET", base + "/audit?result=meh", nil, "", 400, v1.CodeBadRequest, "success or failure"},
		{"no such endpoint", admin, "GET", "/v1/nothing", nil, "", 404, v1.CodeNotFound, "no such endpoint"},
		{"method not allowed", admin, "PUT", base + "/products", `{}`, "", 405, v1.CodeMethodNotAllowed, "not allowed"},
		{"tenant create by non-admin", reader, "POST", "/v1/tenants", v1.TenantCreate{Name: "Mine"}, "", 403, v1.CodeForbidden, "service administrators"},
		{"bad error report type", reader, "GET", base + "/error-reports?type=Crash", nil, "", 422, v1.CodeValidation, "AppCrash"},
		{"error report window backwards", reader, "GET", base + "/error-reports/buckets?since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z", nil, "", 422, v1.CodeValidation, "after since"},
		{"bad error bucket limit", reader, "GET", base + "/error-reports/buckets?limit=0", nil, "", 400, v1.CodeBadRequest, "limit"},
		{"bad error report format", reader, "GET", base + "/error-reports/download?format=xml", nil, "", 400, v1.CodeBadRequest, "csv or json"},
		{"bad error report time", reader, "GET", base + "/error-reports?since=today", nil, "", 400, v1.CodeBadRequest, "RFC 3339"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := snapshot(t, e.srv.Store)
			r := e.doCT(c.token, c.method, c.path, c.body, c.contentType)
			if r.status != c.status {
				t.Fatalf("status %d, want %d: %s", r.status, c.status, r.body)
			}
			ae := r.apiError()
			if ae.Code != c.code {
				t.Errorf("code %q, want %q: %s", ae.Code, c.code, r.body)
			}
			if !strings.Contains(ae.Message+detailText(ae), c.says) {
				t.Errorf("message %q does not say %q", ae.Message, c.says)
			}
			if strings.Contains(ae.Message, "\n") || ae.Message == "" {
				t.Errorf("message is not one line: %q", ae.Message)
			}
			if after := snapshot(t, e.srv.Store); after != before {
				t.Errorf("state changed: %s", firstDifference(before, after))
			}
		})
	}

	// An expired token, once the clock passes its expiry.
	clock.advance(2 * time.Minute)
	r := e.do(short.Secret, "GET", base+"/products", nil)
	if r.status != 401 || !strings.Contains(r.apiError().Message, "expired") {
		t.Errorf("expired token: %d %s", r.status, r.body)
	}
}

func detailText(e v1.Error) string {
	var b strings.Builder
	for _, d := range e.Details {
		b.WriteString(" " + d.Field + ": " + d.Message)
	}
	return b.String()
}

// doCT is do with an explicit content type ("" means application/json when there is a body).
func (e *env) doCT(token, method, path string, body any, ct string) response {
	if ct == "" {
		return e.do(token, method, path, body)
	}
	return e.doRaw(token, method, path, []byte(body.(string)), ct)
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestSoftwareRootOfTrustRefusedByPolicy(t *testing.T) {
	e := newEnv(t, servertest.AllowSoftwareRootOfTrust(false))
	before := snapshot(t, e.srv.Store)
	r := e.do(e.srv.AdminToken, "POST", "/v1/tenants/"+e.srv.TenantID+"/devices", v1.DeviceClaim{Enrollment: enrollmenttest.Record(t)})
	if r.status != 422 || r.apiError().Code != v1.CodeRootOfTrustRejected || !strings.Contains(r.apiError().Message, "software root of trust") {
		t.Fatalf("got %d %s", r.status, r.body)
	}
	if snapshot(t, e.srv.Store) != before {
		t.Fatal("state changed")
	}
	// A TPM-rooted record is accepted by the same server.
	tpm, _ := enrollmenttest.New(t, enrollmenttest.Options{RootOfTrust: "tpm", EKCertificate: true}).Record.Marshal()
	e.must(e.srv.AdminToken, "POST", "/v1/tenants/"+e.srv.TenantID+"/devices", v1.DeviceClaim{Enrollment: tpm}, 201, nil)
}

// firstDifference shows where two snapshots part, briefly.
func firstDifference(a, b string) string {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	lo := max(0, i-80)
	return "before …" + a[lo:min(len(a), i+80)] + "… after …" + b[lo:min(len(b), i+80)] + "…"
}
