package httpapi_test

import (
	"strings"
	"testing"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/store"
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

// TestWebhookRotatePingRedeliverEnable: a rotation shows the new secret once and keeps the old
// sealed for the grace period asked (bounded); ping and redeliver queue deliveries (the same
// event ID for a redelivery, never of a pending one); a disabled webhook shows its state and
// reason, refuses ping, retry and redeliver, and is enabled again; all audited.
func TestWebhookRotatePingRedeliverEnable(t *testing.T) {
	e := newEnv(t)
	own := e.fixture(e.srv.TenantID, e.srv.AdminToken)
	reader := e.user(own, "rhonda", "Reader")
	base := "/v1/tenants/" + own.id + "/webhooks"
	var w v1.Webhook
	e.must(own.admin, "POST", base, v1.WebhookCreate{URL: "https://hooks.example.com/a", Events: []string{"rollout.state_changed"}}, 201, &w)
	if w.State != v1.WebhookEnabled || w.PreviousSecretUntil != nil {
		t.Errorf("a new webhook: %+v", w)
	}
	before, err := e.srv.Store.GetWebhook(t.Context(), own.id, w.ID)
	if err != nil {
		t.Fatal(err)
	}

	// Rotation: bounded grace, the new secret once, the old one kept sealed.
	for _, g := range []int64{-1, 7*24*3600 + 1} {
		r := e.do(own.admin, "POST", base+"/"+w.ID+"/rotate-secret", v1.WebhookRotateSecret{GraceSeconds: &g})
		if r.status != 422 || len(r.apiError().Details) == 0 || r.apiError().Details[0].Field != "grace_seconds" {
			t.Errorf("grace %d: %d %s", g, r.status, r.body)
		}
	}
	if r := e.do(reader, "POST", base+"/"+w.ID+"/rotate-secret", v1.WebhookRotateSecret{}); r.status != 403 {
		t.Errorf("a Reader rotated a secret: %d %s", r.status, r.body)
	}
	var rot v1.Webhook
	grace := int64(3600)
	e.must(own.admin, "POST", base+"/"+w.ID+"/rotate-secret", v1.WebhookRotateSecret{GraceSeconds: &grace}, 200, &rot)
	if !strings.HasPrefix(rot.Secret, "whsec_") || rot.Secret == w.Secret || rot.PreviousSecretUntil == nil {
		t.Fatalf("rotated: %+v", rot)
	}
	stored, err := e.srv.Store.GetWebhook(t.Context(), own.id, w.ID)
	if err != nil || stored.PreviousSecret != before.Secret || !strings.HasPrefix(stored.Secret, "sealed:v1:") || stored.Secret == before.Secret ||
		stored.PreviousSecretUntil.Sub(stored.CreatedAt) < 59*time.Minute || !stored.PreviousSecretUntil.Equal(*rot.PreviousSecretUntil) {
		t.Errorf("stored after rotation: %+v (%v)", stored, err)
	}
	var got v1.Webhook
	e.must(reader, "GET", base+"/"+w.ID, nil, 200, &got)
	if got.Secret != "" || got.PreviousSecretUntil == nil {
		t.Errorf("after a rotation a Reader sees %+v", got)
	}
	zero := int64(0)
	rot = v1.Webhook{}
	e.must(own.admin, "POST", base+"/"+w.ID+"/rotate-secret", v1.WebhookRotateSecret{GraceSeconds: &zero}, 200, &rot)
	if stored, _ := e.srv.Store.GetWebhook(t.Context(), own.id, w.ID); rot.PreviousSecretUntil != nil || stored.PreviousSecret != "" {
		t.Errorf("a rotation without grace keeps an old secret: %+v, %+v", rot, stored)
	}

	// Ping, then redeliver it (delivered or failed only).
	var ping v1.WebhookDelivery
	e.must(own.admin, "POST", base+"/"+w.ID+"/ping", nil, 202, &ping)
	if ping.EventType != "ping" || ping.State != "pending" {
		t.Errorf("ping: %+v", ping)
	}
	if r := e.do(own.admin, "POST", base+"/"+w.ID+"/deliveries/"+ping.ID+"/redeliver", nil); r.status != 409 {
		t.Errorf("redelivered a pending delivery: %d %s", r.status, r.body)
	}
	d, err := e.srv.Store.GetWebhookDelivery(t.Context(), own.id, ping.ID)
	if err != nil {
		t.Fatal(err)
	}
	d.State = "delivered"
	if err := e.srv.Store.Update(t.Context(), func(tx store.Tx) error {
		cl, err := tx.ClaimWebhookDeliveries(t.Context(), "test", time.Now(), time.Now().Add(time.Minute), 100)
		for _, c := range cl {
			if c.ID == d.ID {
				d.LeaseOwner = c.LeaseOwner
			}
		}
		if err != nil {
			return err
		}
		return tx.FinishWebhookAttempt(t.Context(), d)
	}); err != nil {
		t.Fatal(err)
	}
	var re v1.WebhookDelivery
	e.must(own.admin, "POST", base+"/"+w.ID+"/deliveries/"+ping.ID+"/redeliver", nil, 202, &re)
	if re.ID == ping.ID || re.EventID != ping.EventID || re.RedeliveryOf != ping.ID || re.State != "pending" {
		t.Errorf("redelivery %+v of %+v", re, ping)
	}
	other := v1.Webhook{}
	e.must(own.admin, "POST", base, v1.WebhookCreate{URL: "https://hooks.example.com/b", Events: []string{"rollout.state_changed"}}, 201, &other)
	e.must(own.admin, "POST", base+"/"+other.ID+"/deliveries/"+ping.ID+"/redeliver", nil, 404, nil)

	// Disabled (as the worker does): shown, refused, enabled again.
	if err := e.srv.Store.SetWebhookHealth(t.Context(), own.id, w.ID, store.WebhookHealth{FailingSince: time.Now().Add(-80 * time.Hour),
		FailedDeliveries: 5, DisabledAt: time.Now(), DisabledReason: "5 deliveries in a row failed"}); err != nil {
		t.Fatal(err)
	}
	var list v1.List[v1.Webhook]
	e.must(reader, "GET", base, nil, 200, &list)
	for _, h := range list.Items {
		if h.ID == w.ID && (h.State != v1.WebhookDisabled || h.DisabledAt == nil || h.DisabledReason == "" || h.FailedDeliveries != 5 || h.FailingSince == nil) {
			t.Errorf("a disabled webhook listed: %+v", h)
		}
	}
	for _, path := range []string{"/ping", "/deliveries/" + ping.ID + "/redeliver"} {
		if r := e.do(own.admin, "POST", base+"/"+w.ID+path, nil); r.status != 409 || !strings.Contains(r.apiError().Message, "enable it first") {
			t.Errorf("%s of a disabled webhook: %d %s", path, r.status, r.body)
		}
	}
	if r := e.do(reader, "POST", base+"/"+w.ID+"/enable", nil); r.status != 403 {
		t.Errorf("a Reader enabled a webhook: %d %s", r.status, r.body)
	}
	var en v1.Webhook
	e.must(own.admin, "POST", base+"/"+w.ID+"/enable", nil, 200, &en)
	if en.State != v1.WebhookEnabled || en.DisabledAt != nil || en.FailedDeliveries != 0 || en.FailingSince != nil {
		t.Errorf("enabled: %+v", en)
	}
	e.must(own.admin, "POST", base+"/"+w.ID+"/ping", nil, 202, nil)

	var audit v1.List[v1.AuditEntry]
	e.must(own.admin, "GET", "/v1/tenants/"+own.id+"/audit?resource_type=webhook&resource_id="+w.ID, nil, 200, &audit)
	seen := map[string]int{}
	for _, a := range audit.Items {
		for _, k := range []string{"rotate_secret", "ping", "redeliver", "enable"} {
			if strings.Contains(string(a.Details), `"`+k+`"`) {
				seen[k+"/"+a.Result]++
			}
		}
		if strings.Contains(string(a.Details), "whsec_") || strings.Contains(string(a.Details), "sealed:") {
			t.Errorf("the audit log holds a secret: %+v", a)
		}
	}
	// (A Reader's refused attempts are audited before the request is looked at: no details.)
	want := map[string]int{"rotate_secret/success": 2, "rotate_secret/failure": 2, "ping/success": 2, "ping/failure": 1,
		"redeliver/success": 1, "redeliver/failure": 2, "enable/success": 1}
	for k, n := range want {
		if seen[k] != n {
			t.Errorf("audit %s: %d entries, want %d (all: %v)", k, seen[k], n, seen)
		}
	}
}
