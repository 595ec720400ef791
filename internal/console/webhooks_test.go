package console_test

import (
	"crypto/rand"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/client"
	"github.com/rampart-iot/rampart/internal/ids"
	"github.com/rampart-iot/rampart/internal/server/servertest"
	"github.com/rampart-iot/rampart/internal/store"
	"github.com/rampart-iot/rampart/internal/webhook"
)

var webhookSecretOnPage = regexp.MustCompile(`<output id="new-webhook-secret" class="secret">(whsec_[^<]+)</output>`)

// newWebhookSecret reads the secret a webhook-making or rotating POST showed, once.
func newWebhookSecret(t *testing.T, p page) string {
	t.Helper()
	m := webhookSecretOnPage.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no webhook secret on the page (status %d):\n%s", p.status, p.body)
	}
	return m[1]
}

// receiver answers 204 to every delivery and keeps each, for the test to verify.
type receiver struct {
	mu   sync.Mutex
	reqs []received
}

type received struct {
	header http.Header
	body   []byte
}

func (h *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	h.mu.Lock()
	h.reqs = append(h.reqs, received{r.Header.Clone(), body})
	h.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// wait waits (up to a minute) for the receiver's n-th request and returns it.
func (h *receiver) wait(t *testing.T, n int) received {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		h.mu.Lock()
		reqs := h.reqs
		h.mu.Unlock()
		if len(reqs) >= n {
			return reqs[n-1]
		}
	}
	t.Fatalf("the receiver got fewer than %d deliveries within a minute", n)
	return received{}
}

// verify checks that one of the request's signatures is by secret.
func (r received) verify(secret string) error {
	return webhook.Verify(secret, r.header.Get(webhook.HeaderTimestamp), r.header.Get(webhook.HeaderSignature), r.body, time.Now(), 5*time.Minute)
}

// deliveries lists a webhook's deliveries through the API, newest first.
func (f *fixture) deliveries(t *testing.T, hook string) []v1.WebhookDelivery {
	t.Helper()
	l, err := f.admin.ListWebhookDeliveries(t.Context(), f.tenant, hook, client.ListOptions{MaxPageSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	return l.Items
}

// waitDelivered waits (up to a minute) until the webhook's delivery id is delivered.
func (f *fixture) waitDelivered(t *testing.T, hook, id string) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		for _, d := range f.deliveries(t, hook) {
			if d.ID == id && d.State == store.DeliveryDelivered {
				return
			}
		}
	}
	t.Fatalf("delivery %s of webhook %s was not delivered within a minute: %+v", id, hook, f.deliveries(t, hook))
}

// TestWebhookForms: an Administrator makes a webhook (its secret shown once), rotates its
// secret (the grace period's problems next to its field), pings it, redelivers a delivery,
// sees a refused retry and a ping of a disabled webhook in place (409), enables it and deletes
// it, each checked through the API and the audit log; a Reader and a Contributor see no
// controls and every forged POST is 403, changes nothing and is audited as a failure; a
// missing or wrong CSRF token is 403.
func TestWebhookForms(t *testing.T) {
	srv := servertest.Start(t)
	f := newFixture(t, srv)
	ctx := t.Context()
	base := "/console/t/" + f.tenant + "/webhooks"
	recv := &receiver{}
	hs := httptest.NewServer(recv) // http to a loopback host, which -dev allows
	t.Cleanup(hs.Close)

	ab := newBrowser(t, srv)
	tok := ab.login(srv.AdminToken)
	p := ab.get(base)
	mustStatus(t, "webhooks page", p, 200)
	if !strings.Contains(p.body, `id="new-webhook"`) || !strings.Contains(p.body, "has no webhooks") {
		t.Fatalf("an Administrator has no new-webhook form, or the empty list is not said:\n%s", p.body)
	}

	// Refused: a URL that is not https to a host that is not loopback, and no events; then a
	// good URL with no events, the URL kept.
	r := ab.post(base, url.Values{"csrf": {tok}, "url": {"http://example.com/" + hostile}})
	mustStatus(t, "a bad webhook", r, http.StatusUnprocessableEntity)
	for _, want := range []string{`id="webhook-url-err"`, `aria-describedby="webhook-url-err"`, `id="webhook-events-err"`,
		`aria-describedby="webhook-events-err"`, `value="` + html.EscapeString("http://example.com/"+hostile) + `"`} {
		if !strings.Contains(r.body, want) {
			t.Errorf("the refused webhook form lacks %s", want)
		}
	}
	if strings.Contains(r.body, hostile) {
		t.Error("the typed URL is not escaped")
	}
	r = ab.post(base, url.Values{"csrf": {tok}, "url": {"https://example.com/hook"}, "events": {"rollout.state_changed", "no.such_event"}})
	mustStatus(t, "an unknown event", r, http.StatusUnprocessableEntity)
	if !strings.Contains(r.body, `id="webhook-events-err"`) || strings.Contains(r.body, `id="webhook-url-err"`) ||
		!strings.Contains(r.body, `value="rollout.state_changed" checked`) || !strings.Contains(r.body, `value="https://example.com/hook"`) {
		t.Errorf("the unknown event is not shown next to the events, or what was typed was lost:\n%s", r.body)
	}
	csrfCases(t, ab, base, url.Values{"url": {hs.URL}, "events": {"rollout.state_changed"}})
	if hooks, err := f.admin.AllWebhooks(ctx, f.tenant, client.ListOptions{}); err != nil || len(hooks) != 0 {
		t.Fatalf("refused forms made webhooks: %+v %v", hooks, err)
	}

	// Made: its secret shown once.
	r = ab.post(base, url.Values{"csrf": {tok}, "url": {hs.URL + "/hook"}, "events": {"error_report.bucket_created", "rollout.state_changed"}})
	mustStatus(t, "create a webhook", r, http.StatusCreated)
	secret := newWebhookSecret(t, r)
	hooks, err := f.admin.AllWebhooks(ctx, f.tenant, client.ListOptions{})
	if err != nil || len(hooks) != 1 || hooks[0].URL != hs.URL+"/hook" || len(hooks[0].Events) != 2 {
		t.Fatalf("the webhook made in the console: %+v %v", hooks, err)
	}
	hook := hooks[0]
	hbase := base + "/" + hook.ID
	if es := f.audit(t, "webhook.manage"); len(es) != 3 || es[0].ResourceID != hook.ID || es[0].Result != "success" || es[1].Result != "failure" {
		t.Fatalf("audit of the webhook's creation (two refusals, one success): %+v", es)
	}
	p = ab.get(base)
	if strings.Contains(p.body, secret) || !strings.Contains(p.body, `id="webhook-`+hook.ID+`"`) || !strings.Contains(p.body, `href="`+hbase+`"`) {
		t.Fatalf("the list does not link the webhook, or shows its secret again:\n%s", p.body)
	}

	// Ping: the receiver gets it, signed with the secret shown.
	p = ab.get(hbase)
	mustStatus(t, "webhook page", p, 200)
	for _, want := range []string{`id="ping-webhook"`, `id="rotate-secret"`, `id="delete-webhook"`, "No deliveries yet", "none: deliveries are signed with the current secret only"} {
		if !strings.Contains(p.body, want) {
			t.Errorf("the webhook page lacks %s", want)
		}
	}
	csrfCases(t, ab, hbase+"/ping", url.Values{})
	r = ab.post(hbase+"/ping", url.Values{"csrf": {tok}})
	mustStatus(t, "ping", r, http.StatusSeeOther)
	if r.location != hbase+"#deliveries-h" {
		t.Errorf("the ping returns to %q", r.location)
	}
	ping := recv.wait(t, 1)
	if err := ping.verify(secret); err != nil || ping.header.Get(webhook.HeaderEvent) != webhook.EventPing {
		t.Fatalf("the ping: %v %v", err, ping.header)
	}
	ds := f.deliveries(t, hook.ID)
	if len(ds) != 1 {
		t.Fatalf("deliveries after the ping: %+v", ds)
	}
	f.waitDelivered(t, hook.ID, ds[0].ID)
	p = ab.get(hbase)
	if !strings.Contains(p.body, `id="delivery-`+ds[0].ID+`"`) || !strings.Contains(p.body, `id="redeliver-`+ds[0].ID+`"`) || strings.Contains(p.body, `id="retry-`+ds[0].ID+`"`) {
		t.Fatalf("the delivered ping is not listed with a redeliver button (and no retry):\n%s", p.body)
	}

	// Rotation: an unreadable grace period and one past the API's bound, each next to the
	// field; then one of a minute, whose new secret is shown once and signs the next delivery
	// with the old one.
	csrfCases(t, ab, hbase+"/rotate-secret", url.Values{"grace_seconds": {"60"}})
	r = ab.post(hbase+"/rotate-secret", url.Values{"csrf": {tok}, "grace_seconds": {"soon"}})
	mustStatus(t, "an unreadable grace period", r, http.StatusUnprocessableEntity)
	if !strings.Contains(r.body, `id="grace_seconds-err"`) || !strings.Contains(r.body, `value="soon"`) || !strings.Contains(r.body, `aria-describedby="grace_seconds-err"`) {
		t.Errorf("the unreadable grace period is not shown next to its field:\n%s", r.body)
	}
	r = ab.post(hbase+"/rotate-secret", url.Values{"csrf": {tok}, "grace_seconds": {"604801"}})
	mustStatus(t, "a grace period too long", r, http.StatusUnprocessableEntity)
	if !strings.Contains(r.body, `id="grace_seconds-err"`) || !strings.Contains(r.body, "604800") || !strings.Contains(r.body, `value="604801"`) {
		t.Errorf("the refused grace period is not shown next to its field:\n%s", r.body)
	}
	r = ab.post(hbase+"/rotate-secret", url.Values{"csrf": {tok}, "grace_seconds": {"3600"}})
	mustStatus(t, "rotate the secret", r, http.StatusCreated)
	secret2 := newWebhookSecret(t, r)
	if secret2 == secret || !strings.Contains(r.body, "Deliveries are signed with the previous secret too until") {
		t.Fatalf("the rotation's page:\n%s", r.body)
	}
	if got, err := f.admin.GetWebhook(ctx, f.tenant, hook.ID); err != nil || got.PreviousSecretUntil == nil {
		t.Fatalf("after the rotation: %+v %v", got, err)
	}
	p = ab.get(hbase)
	if !strings.Contains(p.body, "signs deliveries too until") || strings.Contains(p.body, secret2) {
		t.Errorf("the webhook page does not show the grace period, or shows the secret:\n%s", p.body)
	}

	// Redeliver the ping: a new delivery of the same event, shown as a redelivery, signed by
	// both secrets during the grace period.
	csrfCases(t, ab, hbase+"/deliveries/"+ds[0].ID+"/redeliver", url.Values{})
	mustStatus(t, "redeliver", ab.post(hbase+"/deliveries/"+ds[0].ID+"/redeliver", url.Values{"csrf": {tok}}), http.StatusSeeOther)
	again := recv.wait(t, 2)
	if err := again.verify(secret2); err != nil {
		t.Errorf("the redelivery is not signed with the new secret: %v", err)
	}
	if err := again.verify(secret); err != nil {
		t.Errorf("the redelivery in the grace period is not signed with the old secret: %v", err)
	}
	ds = f.deliveries(t, hook.ID)
	if len(ds) != 2 || ds[0].RedeliveryOf != ds[1].ID || ds[0].EventID != ds[1].EventID {
		t.Fatalf("deliveries after the redelivery: %+v", ds)
	}
	p = ab.get(hbase)
	if !strings.Contains(p.body, `<a href="#delivery-`+ds[1].ID+`">`) {
		t.Errorf("the redelivery does not name the delivery it sends again:\n%s", p.body)
	}
	// A retry of a delivered delivery is refused (409) and shown in place.
	r = ab.post(hbase+"/deliveries/"+ds[1].ID+"/retry", url.Values{"csrf": {tok}})
	mustStatus(t, "retry a delivered delivery", r, http.StatusConflict)
	if !strings.Contains(r.body, `id="webhook-error"`) || !strings.Contains(r.body, "only a failed delivery is sent again") {
		t.Errorf("the refused retry is not shown above the deliveries:\n%s", r.body)
	}
	mustStatus(t, "an unknown delivery command", ab.post(hbase+"/deliveries/"+ds[1].ID+"/explode", url.Values{"csrf": {tok}}), http.StatusNotFound)

	// A delivery that failed for good (written straight into the store, as the worker leaves
	// one after its last attempt): shown with its status and escaped error, retried under its
	// own delivery ID.
	gen := &ids.Generator{Now: time.Now, Rand: rand.Reader}
	now := time.Now().UTC().Truncate(time.Microsecond)
	stored, err := srv.Store.GetWebhookDelivery(ctx, f.tenant, ds[1].ID)
	if err != nil {
		t.Fatal(err)
	}
	failed := store.WebhookDelivery{ID: gen.MustNew(), TenantID: f.tenant, WebhookID: hook.ID, EventID: gen.MustNew(), EventType: stored.EventType,
		Payload: stored.Payload, State: store.DeliveryFailed, Attempts: 8, LastStatus: 500, LastError: "refused " + hostile, CreatedAt: now, UpdatedAt: now}
	if err := srv.Store.CreateWebhookDelivery(ctx, failed); err != nil {
		t.Fatal(err)
	}
	p = ab.get(hbase)
	if !strings.Contains(p.body, `id="retry-`+failed.ID+`"`) || !strings.Contains(p.body, `id="redeliver-`+failed.ID+`"`) ||
		!strings.Contains(p.body, html.EscapeString("refused "+hostile)) || strings.Contains(p.body, hostile) || !strings.Contains(p.body, "<td>500</td>") {
		t.Fatalf("the failed delivery's row:\n%s", p.body)
	}
	csrfCases(t, ab, hbase+"/deliveries/"+failed.ID+"/retry", url.Values{})
	mustStatus(t, "retry", ab.post(hbase+"/deliveries/"+failed.ID+"/retry", url.Values{"csrf": {tok}}), http.StatusSeeOther)
	if got := recv.wait(t, 3); got.header.Get(webhook.HeaderID) != failed.ID {
		t.Errorf("the retry was sent as delivery %q, want %s", got.header.Get(webhook.HeaderID), failed.ID)
	}
	f.waitDelivered(t, hook.ID, failed.ID)
	if es := f.audit(t, "webhook.manage"); es[0].Result != "success" || !strings.Contains(string(es[0].Details), `"retry_delivery":"`+failed.ID+`"`) {
		t.Errorf("audit of the retry: %+v", es[0])
	}
	ds = f.deliveries(t, hook.ID)

	// Disabled by the service: shown with its reason, ping refused in place, enabled again.
	disabledAt := time.Now().UTC().Truncate(time.Second)
	if err := srv.Store.SetWebhookHealth(ctx, f.tenant, hook.ID, store.WebhookHealth{FailingSince: disabledAt.Add(-time.Hour),
		FailedDeliveries: 20, DisabledAt: disabledAt, DisabledReason: "20 deliveries in a row failed " + hostile}); err != nil {
		t.Fatal(err)
	}
	p = ab.get(base)
	if !strings.Contains(p.body, html.EscapeString("20 deliveries in a row failed "+hostile)) || strings.Contains(p.body, hostile) {
		t.Errorf("the list does not show the escaped reason the webhook was disabled:\n%s", p.body)
	}
	p = ab.get(hbase)
	if !strings.Contains(p.body, `id="enable-webhook"`) || strings.Contains(p.body, `id="ping-webhook"`) || strings.Contains(p.body, `id="redeliver-`) ||
		!strings.Contains(p.body, "(since "+disabledAt.Format("2006-01-02 15:04:05Z")+")") {
		t.Errorf("a disabled webhook's page:\n%s", p.body)
	}
	r = ab.post(hbase+"/ping", url.Values{"csrf": {tok}})
	mustStatus(t, "ping a disabled webhook", r, http.StatusConflict)
	if !strings.Contains(r.body, `id="webhook-error"`) || !strings.Contains(r.body, "enable it first") {
		t.Errorf("the refused ping is not shown in place:\n%s", r.body)
	}
	csrfCases(t, ab, hbase+"/enable", url.Values{})
	mustStatus(t, "enable", ab.post(hbase+"/enable", url.Values{"csrf": {tok}}), http.StatusSeeOther)
	if got, err := f.admin.GetWebhook(ctx, f.tenant, hook.ID); err != nil || got.State != v1.WebhookEnabled || got.FailedDeliveries != 0 {
		t.Fatalf("after enabling: %+v %v", got, err)
	}

	// A Reader and a Contributor: no controls, and every forged POST refused and audited.
	before := len(f.audit(t, "webhook.manage"))
	for _, who := range []struct{ name, role string }{{"rita", "Reader"}, {"carla", "Contributor"}} {
		b := newBrowser(t, srv)
		btok := b.login(f.member(t, who.name, who.role))
		p := b.get(base)
		mustStatus(t, who.role+" webhooks page", p, 200)
		if strings.Contains(p.body, `id="new-webhook"`) || !strings.Contains(p.body, `id="webhook-`+hook.ID+`"`) {
			t.Errorf("a %s's webhooks page shows the form or not the webhook:\n%s", who.role, p.body)
		}
		p = b.get(hbase)
		mustStatus(t, who.role+" webhook page", p, 200)
		for _, ctl := range []string{`id="ping-webhook"`, `id="rotate-secret"`, `id="delete-webhook"`, `id="enable-webhook"`, `id="redeliver-`, `id="retry-`} {
			if strings.Contains(p.body, ctl) {
				t.Errorf("a %s sees %s", who.role, ctl)
			}
		}
		if !strings.Contains(p.body, `id="delivery-`+ds[0].ID+`"`) {
			t.Errorf("a %s does not see the deliveries", who.role)
		}
		for _, post := range []struct {
			path string
			form url.Values
		}{
			{base, url.Values{"url": {hs.URL}, "events": {"rollout.state_changed"}}},
			{hbase + "/rotate-secret", url.Values{"grace_seconds": {"0"}}},
			{hbase + "/rotate-secret", url.Values{"grace_seconds": {"soon"}}}, // refused before reading the number matters
			{hbase + "/ping", url.Values{}},
			{hbase + "/enable", url.Values{}},
			{hbase + "/deliveries/" + ds[0].ID + "/redeliver", url.Values{}},
			{hbase + "/deliveries/" + ds[0].ID + "/retry", url.Values{}},
			{hbase + "/delete", url.Values{}},
		} {
			post.form.Set("csrf", btok)
			mustStatus(t, who.role+" POST "+post.path, b.post(post.path, post.form), http.StatusForbidden)
		}
	}
	es := f.audit(t, "webhook.manage")
	if len(es) != before+14 { // seven of each forged POST manage saw; the unreadable grace never reached it
		t.Fatalf("audit entries of the forged POSTs: %d new, want 14", len(es)-before)
	}
	for _, e := range es[:14] {
		if e.Result != "failure" || (e.Actor != "rita" && e.Actor != "carla") {
			t.Errorf("a forged POST's audit entry: %+v", e)
		}
	}
	if hooks, err := f.admin.AllWebhooks(ctx, f.tenant, client.ListOptions{}); err != nil || len(hooks) != 1 || hooks[0].PreviousSecretUntil == nil {
		t.Fatalf("forged POSTs changed the webhooks: %+v %v", hooks, err)
	}
	if ds2 := f.deliveries(t, hook.ID); len(ds2) != len(ds) {
		t.Fatalf("forged POSTs queued deliveries: %+v", ds2)
	}

	// Deleted.
	csrfCases(t, ab, hbase+"/delete", url.Values{})
	r = ab.post(hbase+"/delete", url.Values{"csrf": {tok}})
	mustStatus(t, "delete", r, http.StatusSeeOther)
	if r.location != base {
		t.Errorf("the delete returns to %q", r.location)
	}
	if _, err := f.admin.GetWebhook(ctx, f.tenant, hook.ID); err == nil {
		t.Fatal("the webhook deleted in the console is still there")
	}
	mustStatus(t, "the deleted webhook's page", ab.get(hbase), http.StatusNotFound)
	if es := f.audit(t, "webhook.manage"); es[0].Result != "success" || es[0].ResourceID != hook.ID || es[0].Actor != "dev-admin" {
		t.Fatalf("audit of the deletion: %+v", es[0])
	}
}
