package console_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/rampart-iot/rampart/internal/server/servertest"
	"github.com/rampart-iot/rampart/internal/store"
)

// TestMembers: an Administrator adds a user with a role, changes it, makes the member a token
// (shown once) and revokes it, and removes the member, each audited as through the API's
// /roles and tokens; refused names and roles are shown next to their fields with what was
// typed kept; the tenant's last Administrator can be neither demoted nor removed (manage's
// 409, shown above the members); a Reader and a Contributor see the members but no controls,
// and their forged POSTs are 403 and change nothing; a missing or wrong CSRF token is 403.
func TestMembers(t *testing.T) {
	srv := servertest.Start(t)
	f := newFixture(t, srv)
	ctx := t.Context()
	base := "/console/t/" + f.tenant
	roleOf := func(name string) string {
		t.Helper()
		rs, err := f.admin.AllRoles(ctx, f.tenant)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if r.User == name {
				return r.Role
			}
		}
		return ""
	}

	ab := newBrowser(t, srv)
	atok := ab.login(srv.AdminToken)
	p := ab.get(base + "/members")
	mustStatus(t, "members", p, 200)
	for _, want := range []string{`id="add-member"`, `id="member-dev-admin"`, `id="tokens-h"`, `id="member-token"`, `aria-current="page">Members`} {
		if !strings.Contains(p.body, want) {
			t.Errorf("an Administrator's members page lacks %s", want)
		}
	}

	r := ab.post(base+"/members", url.Values{"csrf": {atok}, "user": {"maria lopez"}, "role": {"Contributor"}})
	mustStatus(t, "a bad user name", r, http.StatusUnprocessableEntity)
	if !strings.Contains(r.body, `id="member-user-err"`) || !strings.Contains(r.body, `value="maria lopez"`) || !strings.Contains(r.body, `value="Contributor" selected`) {
		t.Errorf("the refused name is not shown next to its field with the form kept:\n%s", r.body)
	}
	r = ab.post(base+"/members", url.Values{"csrf": {atok}, "user": {"maria"}, "role": {"Boss"}})
	mustStatus(t, "a bad role", r, http.StatusUnprocessableEntity)
	if !strings.Contains(r.body, `id="member-role-err"`) {
		t.Errorf("the refused role is not shown next to its field:\n%s", r.body)
	}
	csrfCases(t, ab, base+"/members", url.Values{"user": {"mallory"}, "role": {"Administrator"}})
	if roleOf("maria") != "" || roleOf("mallory") != "" {
		t.Fatal("a refused form added a member")
	}
	mustStatus(t, "add maria", ab.post(base+"/members", url.Values{"csrf": {atok}, "user": {"maria"}, "role": {"Contributor"}}), http.StatusSeeOther)
	if got := roleOf("maria"); got != "Contributor" {
		t.Fatalf("maria's role after the add: %q", got)
	}
	csrfCases(t, ab, base+"/members/role", url.Values{"user": {"maria"}, "role": {"Administrator"}})
	mustStatus(t, "change maria's role", ab.post(base+"/members/role", url.Values{"csrf": {atok}, "user": {"maria"}, "role": {"Reader"}}), http.StatusSeeOther)
	if got := roleOf("maria"); got != "Reader" {
		t.Fatalf("maria's role after the change: %q", got)
	}
	if es := f.audit(t, "role.add"); es[0].Result != "success" || !strings.Contains(string(es[0].Details), `"previous_role":"Contributor"`) {
		t.Fatalf("audit of the role change: %+v", es[0])
	}

	// A token for the member: a user who is not one is refused next to the field.
	r = ab.post(base+"/members/tokens", url.Values{"csrf": {atok}, "user": {"nobody"}, "description": {"x"}})
	mustStatus(t, "a token for a non-member", r, http.StatusNotFound)
	if !strings.Contains(r.body, `id="mtoken-user-err"`) {
		t.Errorf("the non-member is not shown next to the field:\n%s", r.body)
	}
	csrfCases(t, ab, base+"/members/tokens", url.Values{"user": {"maria"}})
	r = ab.post(base+"/members/tokens", url.Values{"csrf": {atok}, "user": {"maria"}, "description": {"first login"}})
	mustStatus(t, "a token for maria", r, http.StatusCreated)
	secret := newSecret(t, r)
	me, err := srv.Client(t, secret).Me(ctx)
	if err != nil || me.User.Name != "maria" || me.TenantID != f.tenant {
		t.Fatalf("maria's token: %+v %v", me, err)
	}
	p = ab.get(base + "/members")
	if !strings.Contains(p.body, `id="trevoke-`+me.TokenID+`"`) {
		t.Fatalf("maria's token is not among the tenant's:\n%s", p.body)
	}
	csrfCases(t, ab, base+"/tokens/"+me.TokenID+"/revoke", url.Values{})
	mustStatus(t, "revoke maria's token", ab.post(base+"/tokens/"+me.TokenID+"/revoke", url.Values{"csrf": {atok}}), http.StatusSeeOther)
	if _, err := srv.Client(t, secret).Me(ctx); err == nil {
		t.Fatal("the revoked token still works")
	}
	if es := f.audit(t, "token.revoke"); len(es) != 1 || es[0].ResourceID != me.TokenID || es[0].Result != "success" {
		t.Fatalf("audit of the revocation: %+v", es)
	}

	// The last Administrator stays.
	for _, post := range []struct{ path, role string }{{"/members/role", "Reader"}, {"/members/remove", ""}} {
		r = ab.post(base+post.path, url.Values{"csrf": {atok}, "user": {"dev-admin"}, "role": {post.role}})
		mustStatus(t, "the last Administrator "+post.path, r, http.StatusConflict)
		if !strings.Contains(r.body, `id="members-error"`) || !strings.Contains(r.body, "last Administrator") {
			t.Errorf("%s of the last Administrator does not say why:\n%s", post.path, r.body)
		}
	}
	if got := roleOf("dev-admin"); got != "Administrator" {
		t.Fatalf("the last Administrator is now %q", got)
	}

	// Readers and Contributors: no controls, and forged POSTs are refused.
	cb := newBrowser(t, srv)
	ctok := cb.login(f.member(t, "carla", "Contributor"))
	rb := newBrowser(t, srv)
	rtok := rb.login(f.reader(t, "rita"))
	for who, b := range map[string]*browser{"Contributor": cb, "Reader": rb} {
		pg := b.get(base + "/members")
		mustStatus(t, who+" members", pg, 200)
		if !strings.Contains(pg.body, `id="member-maria"`) {
			t.Errorf("a %s does not see the members", who)
		}
		for _, ctl := range []string{`id="add-member"`, `/members/role"`, `/members/remove"`, `id="tokens-h"`, `id="member-token"`} {
			if strings.Contains(pg.body, ctl) {
				t.Errorf("a %s sees %s", who, ctl)
			}
		}
	}
	// The token the fixture made for rita, for a forged revocation.
	ts, err := srv.Store.ListTokens(ctx, store.TokenFilter{TenantID: f.tenant}, store.ListOptions{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var carlas string
	for _, x := range ts.Items {
		if u, _ := srv.Store.GetUser(ctx, x.UserID); u.Name == "carla" {
			carlas = x.ID
		}
	}
	for who, pair := range map[string][2]any{"Contributor": {cb, ctok}, "Reader": {rb, rtok}} {
		b, tok := pair[0].(*browser), pair[1].(string)
		for path, form := range map[string]url.Values{
			base + "/members":                      {"user": {"mallory"}, "role": {"Administrator"}},
			base + "/members/role":                 {"user": {"maria"}, "role": {"Administrator"}},
			base + "/members/remove":               {"user": {"maria"}},
			base + "/members/tokens":               {"user": {"maria"}},
			base + "/members/tokens?x":             {"user": {"maria"}, "expires_in_seconds": {"soon"}},
			base + "/tokens/" + carlas + "/revoke": {},
		} {
			if who == "Contributor" && strings.HasSuffix(path, carlas+"/revoke") {
				continue // carla's own token: hers to revoke
			}
			form.Set("csrf", tok)
			mustStatus(t, who+"'s forged "+path, b.post(path, form), http.StatusForbidden)
		}
	}
	if roleOf("mallory") != "" || roleOf("maria") != "Reader" {
		t.Fatal("a forged POST changed the members")
	}
	if x, _ := srv.Store.GetToken(ctx, carlas); !x.RevokedAt.IsZero() {
		t.Fatal("a Reader revoked carla's token")
	}
	if es := f.audit(t, "role.delete"); len(es) < 3 || es[0].Result != "failure" {
		t.Fatalf("the forged removals are not audited as failures: %+v", es)
	}

	// The Administrator removes maria.
	csrfCases(t, ab, base+"/members/remove", url.Values{"user": {"maria"}})
	mustStatus(t, "remove maria", ab.post(base+"/members/remove", url.Values{"csrf": {atok}, "user": {"maria"}}), http.StatusSeeOther)
	if got := roleOf("maria"); got != "" {
		t.Fatalf("maria is still a %s", got)
	}
	if es := f.audit(t, "role.delete"); es[0].Result != "success" || es[0].Actor != "dev-admin" {
		t.Fatalf("audit of the removal: %+v", es[0])
	}
}
