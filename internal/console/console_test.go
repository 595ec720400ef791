package console_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/client"
	"github.com/rampart-iot/rampart/internal/server/servertest"
)

// checkCookieFlags finds a cookie a response set and checks the flags every console cookie
// must carry.
func checkCookieFlags(t *testing.T, what string, cookies []*http.Cookie, name string) *http.Cookie {
	t.Helper()
	for _, c := range cookies {
		if c.Name != name {
			continue
		}
		if !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Domain != "" {
			t.Errorf("%s: Secure=%v HttpOnly=%v SameSite=%v Path=%q Domain=%q; want Secure, HttpOnly, SameSite=Strict, Path=/, no Domain",
				what, c.Secure, c.HttpOnly, c.SameSite, c.Path, c.Domain)
		}
		return c
	}
	t.Fatalf("%s: no %s cookie set", what, name)
	return nil
}

func hasCookie(cookies []*http.Cookie, name string) bool {
	for _, c := range cookies {
		if c.Name == name && c.MaxAge >= 0 && c.Value != "" {
			return true
		}
	}
	return false
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestLoginSessionAndLogout(t *testing.T) {
	srv := servertest.Start(t)
	b := newBrowser(t, srv)

	// Not logged in: every page sends the browser to the login page, remembering where it was.
	r := b.get("/console/t/" + srv.TenantID + "/devices")
	mustStatus(t, "devices before login", r, http.StatusSeeOther)
	if !strings.HasPrefix(r.location, "/console/login?") || !strings.Contains(r.location, "next=%2Fconsole%2Ft%2F") {
		t.Fatalf("redirect to %q", r.location)
	}

	lp := b.get("/console/login")
	mustStatus(t, "login page", lp, 200)
	for _, want := range []string{`<meta charset="utf-8">`, `<label for="token">`, `type="password"`} {
		if !strings.Contains(lp.body, want) {
			t.Errorf("login page lacks %s", want)
		}
	}
	loginCSRF := csrf(t, lp)
	checkCookieFlags(t, "login CSRF cookie", lp.cookies, "__Host-rampart_login")

	// A wrong token, a missing CSRF token and a wrong one are all refused, with no session.
	r = b.post("/console/login", url.Values{"csrf": {loginCSRF}, "token": {"rpt_not-a-real-token"}})
	mustStatus(t, "login with a bad token", r, http.StatusUnauthorized)
	if !strings.Contains(r.body, "invalid API token") {
		t.Errorf("bad token page does not say why:\n%s", r.body)
	}
	loginCSRF = csrf(t, r)
	r = b.post("/console/login", url.Values{"token": {srv.AdminToken}})
	mustStatus(t, "login without CSRF", r, http.StatusForbidden)
	r = b.post("/console/login", url.Values{"csrf": {"x" + loginCSRF}, "token": {srv.AdminToken}})
	mustStatus(t, "login with a wrong CSRF token", r, http.StatusForbidden)
	if hasCookie(r.cookies, "__Host-rampart_session") {
		t.Fatal("a refused login set a session cookie")
	}

	// The right token opens a session and returns to the page asked for.
	lp = b.get("/console/login?next=" + url.QueryEscape("/console/t/"+srv.TenantID+"/audit"))
	r = b.post("/console/login", url.Values{"csrf": {csrf(t, lp)}, "token": {srv.AdminToken}, "next": {"/console/t/" + srv.TenantID + "/audit"}})
	mustStatus(t, "login", r, http.StatusSeeOther)
	if r.location != "/console/t/"+srv.TenantID+"/audit" {
		t.Errorf("after login: redirect to %q", r.location)
	}
	session := checkCookieFlags(t, "session cookie", r.cookies, "__Host-rampart_session")
	if len(session.Value) < 40 || strings.Contains(session.Value, srv.AdminToken) {
		t.Errorf("session ID %q is not a fresh random value", session.Value)
	}
	if strings.Contains(r.body, srv.AdminToken) {
		t.Error("the token is echoed back")
	}

	// The dev admin holds one tenant, so the console opens it.
	r = b.get("/console/")
	mustStatus(t, "console home", r, http.StatusSeeOther)
	if r.location != "/console/t/"+srv.TenantID+"/" {
		t.Fatalf("home redirects to %q", r.location)
	}
	ov := b.get(r.location)
	mustStatus(t, "overview", ov, 200)
	token := csrf(t, ov)
	if strings.Contains(ov.body, srv.AdminToken) {
		t.Error("a page shows the API token")
	}

	// Logout needs the CSRF token too; then the session is gone, even if the cookie is replayed.
	mustStatus(t, "logout without CSRF", b.post("/console/logout", url.Values{}), http.StatusForbidden)
	mustStatus(t, "still logged in", b.get("/console/t/"+srv.TenantID+"/"), 200)
	r = b.post("/console/logout", url.Values{"csrf": {token}})
	mustStatus(t, "logout", r, http.StatusSeeOther)
	if !strings.HasPrefix(r.location, "/console/login") {
		t.Errorf("logout redirects to %q", r.location)
	}
	mustStatus(t, "overview after logout", b.get("/console/t/"+srv.TenantID+"/"), http.StatusSeeOther)
	replay := newBrowser(t, srv)
	replay.c.Jar.SetCookies(mustURL(t, srv.URL), []*http.Cookie{{Name: "__Host-rampart_session", Value: session.Value, Path: "/"}})
	r = replay.get("/console/t/" + srv.TenantID + "/")
	mustStatus(t, "replayed session cookie", r, http.StatusSeeOther)
	if !strings.Contains(r.location, "msg=ended") {
		t.Errorf("replayed cookie redirect %q does not say the session ended", r.location)
	}

	// A post-login redirect never leaves the console.
	for _, next := range []string{"https://evil.example/", "//evil.example/console/", "/v1/tenants", "/console/\\evil"} {
		b := newBrowser(t, srv)
		lp := b.get("/console/login")
		r := b.post("/console/login", url.Values{"csrf": {csrf(t, lp)}, "token": {srv.AdminToken}, "next": {next}})
		if r.status != http.StatusSeeOther || r.location != "/console/" {
			t.Errorf("next=%q: %d to %q", next, r.status, r.location)
		}
	}
}

func TestRevokedTokenEndsSession(t *testing.T) {
	srv := servertest.Start(t)
	f := &fixture{srv: srv, admin: srv.Client(t, srv.AdminToken), tenant: srv.TenantID}
	tok := f.reader(t, "rita")
	b := newBrowser(t, srv)
	b.login(tok)
	mustStatus(t, "overview", b.get("/console/t/"+srv.TenantID+"/"), 200)
	rita := srv.Client(t, tok)
	toks, err := rita.ListTokens(t.Context(), client.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range toks.Items {
		if err := rita.RevokeToken(t.Context(), x.ID); err != nil {
			t.Fatal(err)
		}
	}
	r := b.get("/console/t/" + srv.TenantID + "/")
	mustStatus(t, "overview after the token was revoked", r, http.StatusSeeOther)
	if !strings.Contains(r.location, "msg=ended") {
		t.Errorf("redirect %q", r.location)
	}
}

func TestCSRFAndOrigin(t *testing.T) {
	srv := servertest.Start(t)
	f := newFixture(t, srv)
	b := newBrowser(t, srv)
	token := b.login(srv.AdminToken)
	other := newBrowser(t, srv)
	otherToken := other.login(srv.AdminToken)
	if otherToken == token {
		t.Fatal("two sessions share a CSRF token")
	}
	path := "/console/t/" + f.tenant + "/devices/" + f.device.ID + "/state"
	for _, c := range []struct {
		name    string
		form    url.Values
		headers []string
	}{
		{"missing", url.Values{"action": {"disable"}}, nil},
		{"empty", url.Values{"action": {"disable"}, "csrf": {""}}, nil},
		{"wrong", url.Values{"action": {"disable"}, "csrf": {token + "x"}}, nil},
		{"another session's", url.Values{"action": {"disable"}, "csrf": {otherToken}}, nil},
		{"cross-origin", url.Values{"action": {"disable"}, "csrf": {token}}, []string{"Origin", "https://evil.example"}},
	} {
		r := b.post(path, c.form, c.headers...)
		if r.status != http.StatusForbidden {
			t.Errorf("%s CSRF token: status %d, want 403\n%s", c.name, r.status, r.body)
		}
		if f.deviceDisabled(t) {
			t.Fatalf("%s CSRF token: the device was disabled", c.name)
		}
	}
	if n := len(f.audit(t, "device.disable")); n != 0 {
		t.Errorf("refused forms reached the management plane: %d device.disable audit entries", n)
	}
	// GET never writes: there is no page there.
	mustStatus(t, "GET on the write path", b.get(path+"?action=disable&csrf="+token), http.StatusNotFound)
	if f.deviceDisabled(t) {
		t.Fatal("a GET disabled the device")
	}

	// The right token, same origin: disabled, audited like an API call.
	r := b.post(path, url.Values{"action": {"disable"}, "csrf": {token}}, "Origin", srv.URL)
	mustStatus(t, "disable", r, http.StatusSeeOther)
	if !f.deviceDisabled(t) {
		t.Fatal("the device is not disabled")
	}
	es := f.audit(t, "device.disable")
	if len(es) != 1 || es[0].Result != "success" || es[0].Actor != "dev-admin" || es[0].ResourceID != f.device.ID {
		t.Fatalf("audit after disable: %+v", es)
	}
	dp := b.get("/console/t/" + f.tenant + "/devices/" + f.device.ID)
	if !strings.Contains(dp.body, `value="enable"`) || strings.Contains(dp.body, `value="disable"`) {
		t.Error("a disabled device's page does not offer to enable it")
	}
	mustStatus(t, "enable", b.post(path, url.Values{"action": {"enable"}, "csrf": {token}}), http.StatusSeeOther)
	if f.deviceDisabled(t) {
		t.Fatal("the device is still disabled")
	}
	mustStatus(t, "unknown action", b.post(path, url.Values{"action": {"explode"}, "csrf": {token}}), http.StatusUnprocessableEntity)
}

func TestReaderSeesNoWriteControlsAndCannotForgeWrites(t *testing.T) {
	srv := servertest.Start(t)
	f := newFixture(t, srv)
	b := newBrowser(t, srv)
	token := b.login(f.reader(t, "rita"))
	base := "/console/t/" + f.tenant

	dp := b.get(base + "/devices/" + f.device.ID)
	mustStatus(t, "device page", dp, 200)
	if strings.Contains(dp.body, "/state") || strings.Contains(dp.body, "Disable device") {
		t.Errorf("a Reader sees the disable control:\n%s", dp.body)
	}
	deps := b.get(base + "/deployments")
	mustStatus(t, "deployments page", deps, 200)
	if strings.Contains(deps.body, "New deployment") {
		t.Error("a Reader sees the new-deployment control")
	}
	mustStatus(t, "new deployment form", b.get(base+"/deployments/new"), http.StatusForbidden)
	// The only form a Reader gets is logout.
	if n := strings.Count(dp.body, `method="post"`); n != 1 {
		t.Errorf("the Reader's device page has %d POST forms, want 1 (logout)", n)
	}

	// Forged writes with the Reader's own valid CSRF token: refused by the management plane.
	r := b.post(base+"/devices/"+f.device.ID+"/state", url.Values{"action": {"disable"}, "csrf": {token}})
	mustStatus(t, "forged disable", r, http.StatusForbidden)
	if !strings.Contains(r.body, "Reader") {
		t.Errorf("the refusal does not name the role:\n%s", r.body)
	}
	r = b.post(base+"/deployments", url.Values{"group": {f.group.ID}, "image": {f.image.ID}, "csrf": {token}})
	mustStatus(t, "forged deployment", r, http.StatusForbidden)

	if f.deviceDisabled(t) {
		t.Fatal("the Reader disabled the device")
	}
	list, err := f.admin.ListDeployments(t.Context(), f.tenant, f.group.ID, client.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || list.Items[0].ID != f.deploy.ID {
		t.Fatalf("deployments after the forged one: %+v", list.Items)
	}
	for _, action := range []string{"device.disable", "deployment.create"} {
		for _, e := range f.audit(t, action) {
			if e.Actor == "rita" && (e.Result != "failure" || e.ErrorCode != v1.CodeForbidden) {
				t.Errorf("audit of rita's %s: %+v", action, e)
			}
		}
	}
	if es := f.audit(t, "device.disable"); len(es) != 1 || es[0].Actor != "rita" || es[0].Result != "failure" {
		t.Errorf("the refused disable is not audited as rita's failure: %+v", es)
	}

	// A Contributor gets the controls, and its writes go through.
	cb := newBrowser(t, srv)
	ctoken := cb.login(f.member(t, "carl", "Contributor"))
	if dp := cb.get(base + "/devices/" + f.device.ID); !strings.Contains(dp.body, "Disable device") {
		t.Error("a Contributor does not see the disable control")
	}
	if deps := cb.get(base + "/deployments"); !strings.Contains(deps.body, "New deployment") {
		t.Error("a Contributor does not see the new-deployment control")
	}
	mustStatus(t, "Contributor's new deployment form", cb.get(base+"/deployments/new"), 200)
	r = cb.post(base+"/devices/"+f.device.ID+"/state", url.Values{"action": {"disable"}, "csrf": {ctoken}})
	mustStatus(t, "Contributor's disable", r, http.StatusSeeOther)
	if !f.deviceDisabled(t) {
		t.Error("the Contributor's disable did not happen")
	}
}

func TestTenantIsolation(t *testing.T) {
	srv := servertest.Start(t)
	f := newFixture(t, srv)
	ctx := t.Context()
	other, err := f.admin.CreateTenant(ctx, v1.TenantCreate{Name: "other"})
	if err != nil {
		t.Fatal(err)
	}
	foreign := srv.AttestedDevice(t, f.admin, other.ID, "")

	// The admin holds both tenants, but a device is only found under its own.
	b := newBrowser(t, srv)
	token := b.login(srv.AdminToken)
	mustStatus(t, "home lists tenants", b.get("/console/"), 200)
	mustStatus(t, "other tenant's device under ours", b.get("/console/t/"+f.tenant+"/devices/"+foreign.ID), http.StatusNotFound)
	mustStatus(t, "our device under the other tenant", b.get("/console/t/"+other.ID+"/devices/"+f.device.ID), http.StatusNotFound)
	r := b.post("/console/t/"+f.tenant+"/devices/"+foreign.ID+"/state", url.Values{"action": {"disable"}, "csrf": {token}})
	mustStatus(t, "disabling another tenant's device under ours", r, http.StatusNotFound)
	list := b.get("/console/t/" + f.tenant + "/devices?q=" + foreign.ID[:8])
	if strings.Contains(list.body, foreign.ID[:12]) {
		t.Error("the device search finds another tenant's device")
	}

	// A Reader of one tenant cannot see the other at all.
	rb := newBrowser(t, srv)
	rb.login(f.reader(t, "rita"))
	for _, p := range []string{"/", "/devices", "/devices/" + foreign.ID, "/audit", "/images", "/deployments", "/products"} {
		r := rb.get("/console/t/" + other.ID + p)
		mustStatus(t, "Reader on the other tenant's "+p, r, http.StatusNotFound)
		if strings.Contains(r.body, "other") && strings.Contains(r.body, other.ID) {
			t.Errorf("the 404 page names the other tenant")
		}
	}
	d, err := f.admin.GetDevice(ctx, other.ID, foreign.ID)
	if err != nil || d.Disabled {
		t.Fatalf("foreign device: %v %+v", err, d)
	}
}

func TestPagesRenderWithDataAndEscape(t *testing.T) {
	srv := servertest.Start(t)
	f := newFixture(t, srv)
	f.addHostileRecords(t)
	b := newBrowser(t, srv)
	b.login(srv.AdminToken)
	base := "/console/t/" + f.tenant
	pages := map[string][]string{
		"/":                                    {"Fleet overview", "failing attestation", "pcr_mismatch", "Field Test", f.deploy.ID[:12]},
		"/products":                            {"Thermostat", "Field Test", "Production OS Evaluation", "RetailEval"},
		"/devices":                             {f.device.ID[:12], "failing"},
		"/devices?state=failing":               {f.device.ID[:12]},
		"/devices?q=" + f.device.ID[:6]:        {f.device.ID[:12]},
		"/devices?group=" + f.group.ID:         {f.device.ID[:12]},
		"/devices/" + f.device.ID:              {f.device.ID, "software", "pcr_mismatch", "crashed", "Active slot", "Disable device", "Attestation history", "pass"},
		"/images":                              {"blink", "1.0.0", f.image.ID[:12]},
		"/deployments":                         {f.deploy.ID[:12], "current", "blink 1.0.0", "New deployment"},
		"/deployments?group=" + f.group.ID:     {f.deploy.ID[:12]},
		"/deployments/new?group=" + f.group.ID: {"blink", `<label for="group">`},
		"/audit":                               {"deployment.create", "device.claim", "dev-admin"},
		"/audit?resource=" + f.device.ID:       {"device.claim"},
	}
	escaped := strings.ReplaceAll(strings.ReplaceAll(hostile, "<", "&lt;"), ">", "&gt;")
	for p, wants := range pages {
		r := b.get(base + p)
		mustStatus(t, p, r, 200)
		if !strings.Contains(r.body, `<meta charset="utf-8">`) || !strings.Contains(r.body, `name="viewport"`) {
			t.Errorf("%s: no charset or viewport meta", p)
		}
		if strings.Contains(r.body, hostile) || strings.Contains(r.body, "<script") {
			t.Errorf("%s: a hostile string is rendered unescaped", p)
		}
		for _, w := range wants {
			if !strings.Contains(r.body, w) {
				t.Errorf("%s: page lacks %q", p, w)
			}
		}
	}
	for p, n := range map[string]int{"/": 1, "/products": 2, "/devices/" + f.device.ID: 3} {
		if got := strings.Count(b.get(base+p).body, escaped); got < n {
			t.Errorf("%s: the hostile string appears escaped %d times, want at least %d", p, got, n)
		}
	}
	// The CSS is served from the binary, and every response forbids scripts.
	css := b.get("/console/static/console.css")
	mustStatus(t, "stylesheet", css, 200)
	req, _ := http.NewRequest(http.MethodGet, srv.URL+base+"/", nil)
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "script-src") {
		t.Errorf("Content-Security-Policy %q", csp)
	}
	// Bad query input is refused with a clear error, not passed on.
	mustStatus(t, "bad prefix", b.get(base+"/devices?q=xyz"), http.StatusUnprocessableEntity)
	mustStatus(t, "bad state", b.get(base+"/devices?state=exploded"), http.StatusUnprocessableEntity)
	mustStatus(t, "oversized parameter", b.get(base+"/devices?after="+strings.Repeat("a", 300)), http.StatusBadRequest)
	mustStatus(t, "unknown page", b.get("/console/nope"), http.StatusNotFound)
	// A whole device ID opens the device.
	r := b.get(base + "/devices?q=" + f.device.ID)
	if r.status != http.StatusSeeOther || !strings.HasSuffix(r.location, "/devices/"+f.device.ID) {
		t.Errorf("exact ID search: %d %q", r.status, r.location)
	}
}

func TestCreateDeploymentForm(t *testing.T) {
	srv := servertest.Start(t)
	f := newFixture(t, srv)
	b := newBrowser(t, srv)
	token := b.login(srv.AdminToken)
	base := "/console/t/" + f.tenant

	// Problems are shown in place, with the choices kept.
	r := b.post(base+"/deployments", url.Values{"group": {f.group.ID}, "csrf": {token}})
	mustStatus(t, "no images", r, http.StatusUnprocessableEntity)
	if !strings.Contains(r.body, `id="form-error"`) || !strings.Contains(r.body, "image_ids") || !strings.Contains(r.body, `value="`+f.group.ID+`" selected`) {
		t.Errorf("the form does not show the problem in place:\n%s", r.body)
	}
	r = b.post(base+"/deployments", url.Values{"csrf": {token}, "image": {f.image.ID}})
	mustStatus(t, "no group", r, http.StatusUnprocessableEntity)
	if !strings.Contains(r.body, "choose a device group") || !strings.Contains(r.body, `value="`+f.image.ID+`" checked`) {
		t.Errorf("the form does not keep the chosen image:\n%s", r.body)
	}
	mustStatus(t, "unknown image", b.post(base+"/deployments", url.Values{"group": {f.group.ID}, "image": {"0190f2c4-0000-7000-8000-000000000000"}, "csrf": {token}}), http.StatusNotFound)

	before := len(f.audit(t, "deployment.create"))
	r = b.post(base+"/deployments", url.Values{"group": {f.group.ID}, "image": {f.image.ID}, "csrf": {token}})
	mustStatus(t, "create", r, http.StatusSeeOther)
	list, err := f.admin.ListDeployments(t.Context(), f.tenant, f.group.ID, client.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 2 || list.Items[0].ID == f.deploy.ID || !list.Items[0].Current {
		t.Fatalf("deployments: %+v", list.Items)
	}
	es := f.audit(t, "deployment.create")
	var ok int
	for _, e := range es {
		if e.Result == "success" && e.ResourceID == list.Items[0].ID {
			ok++
		}
	}
	if len(es) <= before || ok != 1 {
		t.Errorf("the console's deployment is not audited: %+v", es)
	}
	page := b.get(r.location)
	mustStatus(t, "deployments after create", page, 200)
	if !strings.Contains(page.body, list.Items[0].ID[:12]) {
		t.Error("the new deployment is not listed")
	}
}
