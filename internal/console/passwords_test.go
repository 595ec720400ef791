package console_test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/internal/console"
	"github.com/rampart-iot/rampart/internal/manage"
	"github.com/rampart-iot/rampart/internal/server/servertest"
	"github.com/rampart-iot/rampart/internal/store"
)

// serviceAudit returns the service-level audit entries of an action, newest first.
func serviceAudit(t *testing.T, srv *servertest.Server, action string) []store.AuditEntry {
	t.Helper()
	page, err := srv.Store.ListAudit(t.Context(), store.AuditFilter{Action: action}, store.ListOptions{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	return page.Items
}

// loginPassword posts the password form from a fresh login page.
func (b *browser) loginPassword(user, pw string) page {
	b.t.Helper()
	lp := b.get("/console/login")
	return b.post("/console/login", url.Values{"csrf": {csrf(b.t, lp)}, "method": {"password"}, "user": {user}, "password": {pw}})
}

const goodPassword = "correct horse battery staple"

func TestSetPasswordAndLogInWithIt(t *testing.T) {
	srv := servertest.Start(t)
	f := &fixture{srv: srv, admin: srv.Client(t, srv.AdminToken), tenant: srv.TenantID}
	ritaToken := f.reader(t, "rita")
	b := newBrowser(t, srv)
	token := b.login(srv.AdminToken)
	other := newBrowser(t, srv) // a second session of the same user
	other.login(srv.AdminToken)

	acct := b.get("/console/account")
	mustStatus(t, "account", acct, 200)
	for _, want := range []string{"none yet", `<label for="current">An API token of yours`, `<label for="new_password">`, `<label for="confirm">`, "logged in with an API token"} {
		if !strings.Contains(acct.body, want) {
			t.Errorf("account page lacks %s", want)
		}
	}
	set := func(form url.Values) page { return b.post("/console/account/password", form) }
	form := func(current, pw, confirm string) url.Values {
		return url.Values{"csrf": {token}, "current": {current}, "new_password": {pw}, "confirm": {confirm}}
	}
	mustStatus(t, "set without CSRF", b.post("/console/account/password", url.Values{"current": {srv.AdminToken}, "new_password": {goodPassword}, "confirm": {goodPassword}}), http.StatusForbidden)
	for _, c := range []struct {
		name, current, pw, confirm, want string
	}{
		{"no proof", "", goodPassword, goodPassword, "is not a valid API token of yours"},
		{"another user's token", ritaToken, goodPassword, goodPassword, "is not a valid API token of yours"},
		{"short", srv.AdminToken, "short", "short", "must be at least 12 characters"},
		{"the user name", srv.AdminToken, "dev-admin", "dev-admin", "at least 12"},
		{"mismatch", srv.AdminToken, goodPassword, goodPassword + "x", "does not match the new password"},
	} {
		r := set(form(c.current, c.pw, c.confirm))
		mustStatus(t, c.name, r, http.StatusUnprocessableEntity)
		if !strings.Contains(r.body, `<p class="field-error">`) || !strings.Contains(r.body, c.want) {
			t.Errorf("%s: no %q shown in place:\n%s", c.name, c.want, r.body)
		}
		if strings.Contains(r.body, c.pw) && len(c.pw) > 9 || strings.Contains(r.body, srv.AdminToken) {
			t.Errorf("%s: the page echoes a secret", c.name)
		}
	}
	if es := serviceAudit(t, srv, "user.set-password"); len(es) != 2 || es[0].Result != "failure" || es[0].ActorName != "dev-admin" {
		t.Errorf("refused proofs are not audited: %+v", es)
	}

	r := set(form(srv.AdminToken, goodPassword, goodPassword))
	mustStatus(t, "set password", r, http.StatusSeeOther)
	if es := serviceAudit(t, srv, "user.set-password"); len(es) != 3 || es[0].Result != "success" {
		t.Errorf("the new password is not audited: %+v", es)
	}
	if p := b.get(r.location); !strings.Contains(p.body, `id="password-set"`) || !strings.Contains(p.body, "<dd>set</dd>") {
		t.Errorf("after setting:\n%s", p.body)
	}
	// The user's other session ended; this one goes on.
	if p := other.get("/console/account"); p.status != http.StatusSeeOther || !strings.Contains(p.location, "msg=ended") {
		t.Errorf("the other session survived a password change: %d %s", p.status, p.location)
	}
	mustStatus(t, "this session", b.get("/console/account"), 200)
	// Now the current password is the proof, not a token.
	r = set(form(srv.AdminToken, goodPassword+"2", goodPassword+"2"))
	mustStatus(t, "token as proof once a password is set", r, http.StatusUnprocessableEntity)
	if !strings.Contains(r.body, "is not your current password") {
		t.Errorf("no reason:\n%s", r.body)
	}

	// Password login: a wrong password and an unknown user get the same answer, audited.
	pb := newBrowser(t, srv)
	for _, c := range []struct{ user, pw string }{{"dev-admin", "wrong password!"}, {"nobody", goodPassword}, {"rita", goodPassword}} {
		r := pb.loginPassword(c.user, c.pw)
		mustStatus(t, "bad login "+c.user, r, http.StatusUnauthorized)
		if !strings.Contains(r.body, "invalid user name or password") || hasCookie(r.cookies, "__Host-rampart_session") {
			t.Errorf("bad login %s:\n%s", c.user, r.body)
		}
		if !strings.Contains(r.body, `value="`+c.user+`"`) {
			t.Errorf("the user name is not kept in the form")
		}
	}
	es := serviceAudit(t, srv, "console.login")
	if len(es) != 3 || es[0].Result != "failure" || es[2].ActorName != "dev-admin" || es[1].ActorName != "nobody" ||
		!strings.Contains(es[2].Details, `"reason":"wrong password"`) || !strings.Contains(es[2].Details, `"remote":"127.0.0.1"`) ||
		!strings.Contains(es[1].Details, "no such user") || !strings.Contains(es[0].Details, "has no password") {
		t.Errorf("failed logins audit: %+v", es)
	}
	r = pb.loginPassword("DEV-ADMIN", goodPassword) // names are case-insensitive, as in the API
	mustStatus(t, "password login", r, http.StatusSeeOther)
	checkCookieFlags(t, "session cookie", r.cookies, "__Host-rampart_session")
	ov := pb.get("/console/t/" + srv.TenantID + "/")
	mustStatus(t, "overview after password login", ov, 200)
	if !strings.Contains(ov.body, "dev-admin") {
		t.Error("the page does not name the user")
	}
	if p := pb.get("/console/account"); !strings.Contains(p.body, "logged in with your password") {
		t.Error("the account page does not say how the session logged in")
	}
}

func TestLoginRateLimits(t *testing.T) {
	// A clock that stands still, so no bucket refills while the test runs.
	frozen := time.Now()
	srv := servertest.Start(t, servertest.Clock(func() time.Time { return frozen }))
	b := newBrowser(t, srv)
	// Ten attempts a minute per user name: the eleventh is refused before the password is
	// checked, even a right one.
	for i := range console.DefaultUserLogins {
		mustStatus(t, "attempt", b.loginPassword("dev-admin", "wrong password "+string(rune('a'+i))), http.StatusUnauthorized)
	}
	r := b.loginPassword("dev-admin", "anything at all")
	mustStatus(t, "eleventh attempt", r, http.StatusTooManyRequests)
	if !strings.Contains(r.body, "Too many login attempts") {
		t.Errorf("no reason:\n%s", r.body)
	}
	if n := len(serviceAudit(t, srv, "console.login")); n != console.DefaultUserLogins {
		t.Errorf("%d failures audited, want %d (a limited attempt is not checked)", n, console.DefaultUserLogins)
	}
	// Another name is not limited by that one, until the address's limit (30 a minute) is
	// reached, which also holds for tokens.
	for i := range console.DefaultAddressLogins - console.DefaultUserLogins - 1 {
		mustStatus(t, "other name", b.loginPassword(fmt.Sprintf("someone-%d", i), "wrong password"), http.StatusUnauthorized)
	}
	lp := b.get("/console/login")
	r = b.post("/console/login", url.Values{"csrf": {csrf(t, lp)}, "token": {srv.AdminToken}})
	mustStatus(t, "token login past the address limit", r, http.StatusTooManyRequests)
}

// TestSessionsSurviveConsoleRestart runs two console instances over the service's store, as
// two replicas or a restarted service would: a session opened on one is served by the other,
// and a logout on either ends it on both.
func TestSessionsSurviveConsoleRestart(t *testing.T) {
	srv := servertest.Start(t)
	start := func() *httptest.Server {
		h, err := console.New(console.Config{Manager: manage.New(manage.Config{Store: srv.Store}), Sessions: srv.Store})
		if err != nil {
			t.Fatal(err)
		}
		mux := http.NewServeMux()
		mux.Handle(console.Prefix, h)
		s := httptest.NewTLSServer(mux)
		t.Cleanup(s.Close)
		return s
	}
	a, b := start(), start()
	roots := x509.NewCertPool()
	roots.AddCert(a.Certificate())
	roots.AddCert(b.Certificate())
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(method, u string, cookies []*http.Cookie, form url.Values) (*http.Response, string) {
		t.Helper()
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, err := http.NewRequest(method, u, body)
		if err != nil {
			t.Fatal(err)
		}
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		for _, ck := range cookies {
			req.AddCookie(ck)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, body := do("GET", a.URL+"/console/login", nil, nil)
	loginCSRF := csrf(t, page{body: body})
	resp, _ = do("POST", a.URL+"/console/login", resp.Cookies(), url.Values{"csrf": {loginCSRF}, "token": {srv.AdminToken}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login on the first console: %d", resp.StatusCode)
	}
	var session []*http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == "__Host-rampart_session" {
			session = append(session, ck)
		}
	}
	path := "/console/t/" + srv.TenantID + "/"
	resp, body = do("GET", b.URL+path, session, nil)
	if resp.StatusCode != 200 || !strings.Contains(body, "dev-admin") {
		t.Fatalf("the second console does not know the session: %d", resp.StatusCode)
	}
	// The session's CSRF token is the same everywhere; logging out on the second ends it on the first.
	resp, _ = do("POST", b.URL+"/console/logout", session, url.Values{"csrf": {csrf(t, page{body: body})}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout on the second console: %d", resp.StatusCode)
	}
	if resp, _ = do("GET", a.URL+path, session, nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("the first console still serves a logged-out session: %d", resp.StatusCode)
	}
}
