package console_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/rampart-iot/rampart/internal/server/servertest"
	"github.com/rampart-iot/rampart/internal/store"
)

var secretOnPage = regexp.MustCompile(`<output id="new-token-secret" class="secret">(rpt_[^<]+)</output>`)

// newSecret reads the secret a token-creating POST showed, once.
func newSecret(t *testing.T, p page) string {
	t.Helper()
	m := secretOnPage.FindStringSubmatch(p.body)
	if m == nil {
		t.Fatalf("no token secret on the page (status %d):\n%s", p.status, p.body)
	}
	return m[1]
}

// TestOwnTokens: a user makes an API token (its secret shown once, limited as the session's
// token is), lists it and revokes it, each audited as through /v1/tokens; a problem with a
// field is shown next to it with what was typed kept; a missing or wrong CSRF token is 403;
// nobody revokes another member's token from this page.
func TestOwnTokens(t *testing.T) {
	srv := servertest.Start(t)
	f := newFixture(t, srv)
	ctx := t.Context()
	b := newBrowser(t, srv)
	tok := b.login(f.member(t, "carla", "Contributor"))

	p := b.get("/console/account/tokens")
	mustStatus(t, "tokens page", p, 200)
	if !strings.Contains(p.body, "(this session)") || !strings.Contains(p.body, `id="new-token"`) {
		t.Fatalf("the tokens page does not list the session's token or has no form:\n%s", p.body)
	}
	r := b.post("/console/account/tokens", url.Values{"csrf": {tok}, "description": {strings.Repeat("long ", 101)}, "expires_in_seconds": {"604800"}})
	mustStatus(t, "a description too long", r, http.StatusUnprocessableEntity)
	if !strings.Contains(r.body, `id="token-description-err"`) || !strings.Contains(r.body, `value="604800" selected`) {
		t.Errorf("the refused description is not shown next to its field, or the lifetime was lost:\n%s", r.body)
	}
	r = b.post("/console/account/tokens", url.Values{"csrf": {tok}, "description": {"ci"}, "expires_in_seconds": {"soon"}})
	mustStatus(t, "an unreadable lifetime", r, http.StatusUnprocessableEntity)
	if !strings.Contains(r.body, `id="token-expires_in_seconds-err"`) || !strings.Contains(r.body, `value="ci"`) {
		t.Errorf("the unreadable lifetime is not shown next to its field:\n%s", r.body)
	}
	r = b.post("/console/account/tokens", url.Values{"csrf": {tok}, "description": {"ci"}, "expires_in_seconds": {"10"}})
	mustStatus(t, "a lifetime too short", r, http.StatusUnprocessableEntity)
	if !strings.Contains(r.body, `id="token-expires_in_seconds-err"`) {
		t.Errorf("the refused lifetime is not shown next to its field:\n%s", r.body)
	}
	csrfCases(t, b, "/console/account/tokens", url.Values{"description": {"sneaky"}})
	if ts, err := srv.Store.ListTokens(ctx, store.TokenFilter{TenantID: f.tenant}, store.ListOptions{Limit: 100}); err != nil || len(ts.Items) != 1 {
		t.Fatalf("refused forms made tokens: %+v %v", ts.Items, err)
	}

	r = b.post("/console/account/tokens", url.Values{"csrf": {tok}, "description": {"ci runner"}, "expires_in_seconds": {"86400"}})
	mustStatus(t, "create a token", r, http.StatusCreated)
	secret := newSecret(t, r)
	me, err := srv.Client(t, secret).Me(ctx)
	if err != nil || me.User.Name != "carla" || me.TenantID != f.tenant {
		t.Fatalf("the new token: %+v %v (want carla's, limited to the tenant)", me, err)
	}
	// The two refusals manage saw are audited as failures, as through the API; the unreadable
	// lifetime never reached it.
	if es := f.audit(t, "token.create-own"); len(es) != 3 || es[0].ResourceID != me.TokenID || es[0].Actor != "carla" || es[0].Result != "success" || es[1].Result != "failure" {
		t.Fatalf("audit of the new token: %+v", es)
	}
	p = b.get("/console/account/tokens")
	if strings.Contains(p.body, secret) {
		t.Fatal("the tokens page shows a secret again")
	}
	if !strings.Contains(p.body, `id="revoke-`+me.TokenID+`"`) || !strings.Contains(p.body, "ci runner") {
		t.Fatalf("the new token is not listed with a revoke button:\n%s", p.body)
	}
	revoke := "/console/account/tokens/" + me.TokenID + "/revoke"
	csrfCases(t, b, revoke, url.Values{})
	mustStatus(t, "revoke the token", b.post(revoke, url.Values{"csrf": {tok}}), http.StatusSeeOther)
	if _, err := srv.Client(t, secret).Me(ctx); err == nil {
		t.Fatal("the revoked token still works")
	}
	if es := f.audit(t, "token.revoke-own"); len(es) != 1 || es[0].Result != "success" || es[0].ResourceID != me.TokenID {
		t.Fatalf("audit of the revocation: %+v", es)
	}
	// The session's own token is untouched, so the session goes on.
	mustStatus(t, "the session after the revocation", b.get("/console/account/tokens"), 200)

	// Another member's token is not carla's to revoke.
	rb := newBrowser(t, srv)
	rb.login(f.reader(t, "rita"))
	rts, err := srv.Store.ListTokens(ctx, store.TokenFilter{TenantID: f.tenant}, store.ListOptions{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var ritas string
	for _, x := range rts.Items {
		if x.RevokedAt.IsZero() && x.ID != me.TokenID {
			if m, _ := srv.Store.GetUser(ctx, x.UserID); m.Name == "rita" {
				ritas = x.ID
			}
		}
	}
	if ritas == "" {
		t.Fatal("no token of rita's")
	}
	mustStatus(t, "a Contributor revokes another's token", b.post("/console/account/tokens/"+ritas+"/revoke", url.Values{"csrf": {tok}}), http.StatusForbidden)
	if x, _ := srv.Store.GetToken(ctx, ritas); !x.RevokedAt.IsZero() {
		t.Fatal("a Contributor revoked another member's token")
	}
}
