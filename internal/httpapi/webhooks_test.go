package httpapi_test

import (
	"strings"
	"testing"

	v1 "github.com/rampart-iot/rampart/api/v1"
)

// TestWebhooksAPI: an Administrator registers a webhook and sees its secret once; nobody sees
// it again; bad URLs and event names are refused naming the field; writes are audited.
func TestWebhooksAPI(t *testing.T) {
	e := newEnv(t)
	own := e.fixture(e.srv.TenantID, e.srv.AdminToken)
	reader := e.user(own, "rhonda", "Reader")
	base := "/v1/tenants/" + own.id + "/webhooks"

	var w v1.Webhook
	e.must(own.admin, "POST", base, v1.WebhookCreate{URL: "https://hooks.example.com/a", Events: []string{" rollout.state_changed", "error_report.bucket_created"}}, 201, &w)
	if !strings.HasPrefix(w.Secret, "whsec_") || len(w.Secret) < 40 {
		t.Fatalf("created webhook's secret: %q", w.Secret)
	}
	if strings.Join(w.Events, ",") != "error_report.bucket_created,rollout.state_changed" {
		t.Errorf("events: %v", w.Events)
	}
	// The store holds the secret sealed with the key-encryption key, not as shown.
	if stored, err := e.srv.Store.GetWebhook(t.Context(), own.id, w.ID); err != nil || !strings.HasPrefix(stored.Secret, "sealed:v1:") || strings.Contains(stored.Secret, w.Secret) {
		t.Errorf("stored secret %q (%v)", stored.Secret, err)
	}
	for _, tok := range []string{own.admin, reader} {
		for _, path := range []string{base, base + "/" + w.ID, base + "/" + w.ID + "/deliveries"} {
			r := e.do(tok, "GET", path, nil)
			if r.status != 200 || strings.Contains(string(r.body), w.Secret) || strings.Contains(string(r.body), `"secret"`) {
				t.Errorf("GET %s: %d, shows the secret or fails: %s", path, r.status, r.body)
			}
		}
	}
	// http is for loopback only (the test service runs in dev mode, which allows it).
	e.must(own.admin, "POST", base, v1.WebhookCreate{URL: "http://127.0.0.1:9/hook", Events: []string{"rollout.state_changed"}}, 201, nil)
	for _, c := range []struct {
		body       v1.WebhookCreate
		field, msg string
	}{
		{v1.WebhookCreate{URL: "http://hooks.example.com/", Events: []string{"rollout.state_changed"}}, "url", "loopback"},
		{v1.WebhookCreate{URL: "gopher://hooks.example.com/", Events: []string{"rollout.state_changed"}}, "url", "scheme"},
		{v1.WebhookCreate{URL: "https://169.254.169.254/", Events: []string{"rollout.state_changed"}}, "url", "link-local"},
		{v1.WebhookCreate{URL: "https://hooks.example.com/", Events: []string{"rollout.started"}}, "events", "not an event type"},
		{v1.WebhookCreate{URL: "https://hooks.example.com/", Events: nil}, "events", "at least one"},
	} {
		r := e.do(own.admin, "POST", base, c.body)
		if r.status != 422 || len(r.apiError().Details) == 0 || r.apiError().Details[0].Field != c.field || !strings.Contains(r.apiError().Message, c.msg) {
			t.Errorf("%+v: %d %s, want 422 naming %s", c.body, r.status, r.body, c.field)
		}
	}
	if r := e.do(reader, "POST", base, v1.WebhookCreate{URL: "https://hooks.example.com/r", Events: []string{"rollout.state_changed"}}); r.status != 403 {
		t.Errorf("a Reader created a webhook: %d %s", r.status, r.body)
	}
	if r := e.do(reader, "DELETE", base+"/"+w.ID, nil); r.status != 403 {
		t.Errorf("a Reader deleted a webhook: %d %s", r.status, r.body)
	}
	e.must(own.admin, "DELETE", base+"/"+w.ID, nil, 204, nil)
	e.must(own.admin, "GET", base+"/"+w.ID, nil, 404, nil)
	var audit v1.List[v1.AuditEntry]
	e.must(own.admin, "GET", "/v1/tenants/"+own.id+"/audit?resource_type=webhook", nil, 200, &audit)
	seen := map[string]int{}
	for _, a := range audit.Items {
		seen[a.Action+"/"+a.Result]++
		if strings.Contains(string(a.Details), "whsec_") {
			t.Errorf("the audit log holds a secret: %+v", a)
		}
	}
	if seen["webhook.manage/success"] != 3 || seen["webhook.manage/failure"] < 5 {
		t.Errorf("audit: %v", seen)
	}
}

// TestWebhookLimitPerTenant: a tenant has at most 20 webhooks.
func TestWebhookLimitPerTenant(t *testing.T) {
	e := newEnv(t)
	base := "/v1/tenants/" + e.srv.TenantID + "/webhooks"
	for range 20 {
		e.must(e.srv.AdminToken, "POST", base, v1.WebhookCreate{URL: "https://hooks.example.com/", Events: []string{"rollout.state_changed"}}, 201, nil)
	}
	r := e.do(e.srv.AdminToken, "POST", base, v1.WebhookCreate{URL: "https://hooks.example.com/", Events: []string{"rollout.state_changed"}})
	if r.status != 409 || !strings.Contains(r.apiError().Message, "20 webhooks") {
		t.Fatalf("the 21st webhook: %d %s", r.status, r.body)
	}
}
