package console_test

import (
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/rampart-iot/rampart/client"
	"github.com/rampart-iot/rampart/internal/server/servertest"
)

// csrfCases posts a form without a CSRF token and with a wrong one, and checks both are
// refused with 403 before anything happens.
func csrfCases(t *testing.T, b *browser, path string, form url.Values) {
	t.Helper()
	form = cloneValues(form)
	form.Del("csrf")
	mustStatus(t, path+" without CSRF", b.post(path, form), http.StatusForbidden)
	form.Set("csrf", "not-the-token")
	mustStatus(t, path+" with a wrong CSRF token", b.post(path, form), http.StatusForbidden)
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

// TestProductForms: a Contributor creates a product (with its default groups), changes it and
// adds a group; problems are shown next to their fields with what was typed kept; an
// Administrator deletes an empty group and is refused (in place, 409) for a group or product
// that holds a device; a Reader sees no controls and every forged POST is 403 and changes
// nothing; a missing or wrong CSRF token is 403. Each write is audited as the API's.
func TestProductForms(t *testing.T) {
	srv := servertest.Start(t)
	f := newFixture(t, srv)
	ctx := t.Context()
	base := "/console/t/" + f.tenant

	cb := newBrowser(t, srv)
	ctok := cb.login(f.member(t, "carla", "Contributor"))
	p := cb.get(base + "/products")
	mustStatus(t, "products", p, 200)
	if !strings.Contains(p.body, `id="new-product"`) {
		t.Fatalf("a Contributor has no new-product form:\n%s", p.body)
	}

	// A refused name: shown next to the field, the description kept, nothing created.
	bad := url.Values{"csrf": {ctok}, "name": {"bad/name"}, "description": {"kept " + hostile}, "default_groups": {"on"}}
	r := cb.post(base+"/products", bad)
	mustStatus(t, "a bad product name", r, http.StatusUnprocessableEntity)
	for _, want := range []string{`id="product-name-err"`, `aria-describedby="product-name-err"`, `aria-invalid="true"`, html.EscapeString("kept " + hostile), `value="bad/name"`} {
		if !strings.Contains(r.body, want) {
			t.Errorf("the refused product form lacks %s", want)
		}
	}
	if strings.Contains(r.body, hostile) {
		t.Error("the typed description is not escaped")
	}
	csrfCases(t, cb, base+"/products", url.Values{"name": {"Sneaky"}})
	if ps, _ := f.admin.AllProducts(ctx, f.tenant, client.ProductListOptions{}); len(ps) != 1 {
		t.Fatalf("refused forms created products: %+v", ps)
	}

	r = cb.post(base+"/products", url.Values{"csrf": {ctok}, "name": {"Doorbell"}, "description": {"rings"}, "default_groups": {"on"}})
	mustStatus(t, "create a product", r, http.StatusSeeOther)
	pid := strings.TrimPrefix(r.location, base+"/products/")
	prod, err := f.admin.GetProduct(ctx, f.tenant, pid)
	if err != nil || prod.Name != "Doorbell" || prod.Description != "rings" {
		t.Fatalf("the created product %q: %+v %v", pid, prod, err)
	}
	groups, err := f.admin.AllProductDeviceGroups(ctx, f.tenant, pid, client.DeviceGroupListOptions{})
	if err != nil || len(groups) != 5 {
		t.Fatalf("default groups: %d %v", len(groups), err)
	}
	if es := f.audit(t, "product.create"); len(es) < 2 || es[0].ResourceID != pid || es[0].Actor != "carla" || es[0].Result != "success" {
		t.Fatalf("audit of the console's product: %+v", es)
	}
	pp := cb.get(r.location)
	mustStatus(t, "product page", pp, 200)
	if !strings.Contains(pp.body, `id="edit-product"`) || !strings.Contains(pp.body, `id="new-group"`) || strings.Contains(pp.body, `id="delete-product"`) {
		t.Fatalf("a Contributor's product page: edit and new-group forms, no delete:\n%s", pp.body)
	}

	// Change the product: the same rules as the API, the audit entry records what changed.
	r = cb.post(base+"/products/"+pid, url.Values{"csrf": {ctok}, "name": {""}, "description": {"new words"}})
	mustStatus(t, "an empty name", r, http.StatusUnprocessableEntity)
	if !strings.Contains(r.body, `id="edit-name-err"`) || !strings.Contains(r.body, `value="new words"`) {
		t.Errorf("the refused edit does not say why next to the name, or lost the description:\n%s", r.body)
	}
	csrfCases(t, cb, base+"/products/"+pid, url.Values{"name": {"Stolen"}})
	mustStatus(t, "rename", cb.post(base+"/products/"+pid, url.Values{"csrf": {ctok}, "name": {"Door bell"}, "description": {"rings"}}), http.StatusSeeOther)
	if got, _ := f.admin.GetProduct(ctx, f.tenant, pid); got.Name != "Door bell" || got.Description != "rings" {
		t.Fatalf("after the edit: %+v", got)
	}
	if es := f.audit(t, "product.update"); len(es) != 2 || es[0].Result != "success" || es[1].Result != "failure" {
		t.Fatalf("audit of the edits (one refused, one made): %+v", es)
	}

	// A new group: a number the console cannot read and one manage refuses, each next to its
	// field; then one made with its feed, policy and lifetime.
	gpath := base + "/products/" + pid + "/groups"
	r = cb.post(gpath, url.Values{"csrf": {ctok}, "name": {"Lab"}, "os_feed": {"Retail"}, "update_policy": {"UpdateAll"}, "check_in_interval_seconds": {"soon"}, "cert_lifetime_seconds": {"10"}})
	mustStatus(t, "an unreadable interval", r, http.StatusUnprocessableEntity)
	if !strings.Contains(r.body, `id="new-group-check_in_interval_seconds-err"`) || !strings.Contains(r.body, `value="soon"`) {
		t.Errorf("the unreadable interval is not shown next to its field:\n%s", r.body)
	}
	r = cb.post(gpath, url.Values{"csrf": {ctok}, "name": {"Lab"}, "os_feed": {"Beta"}, "update_policy": {"UpdateAll"}, "cert_lifetime_seconds": {"10"}})
	mustStatus(t, "a bad feed and lifetime", r, http.StatusUnprocessableEntity)
	for _, id := range []string{"new-group-os_feed-err", "new-group-cert_lifetime_seconds-err"} {
		if !strings.Contains(r.body, `id="`+id+`"`) {
			t.Errorf("no %s on the refused group form", id)
		}
	}
	csrfCases(t, cb, gpath, url.Values{"name": {"Sneaky"}, "os_feed": {"Retail"}, "update_policy": {"UpdateAll"}})
	r = cb.post(gpath, url.Values{"csrf": {ctok}, "name": {"Lab"}, "description": {"bench"}, "os_feed": {"RetailEval"}, "update_policy": {"No3rdPartyAppUpdates"},
		"check_in_interval_seconds": {"120"}, "cert_lifetime_seconds": {"3600"}})
	mustStatus(t, "create a group", r, http.StatusSeeOther)
	groups, _ = f.admin.AllProductDeviceGroups(ctx, f.tenant, pid, client.DeviceGroupListOptions{})
	var lab string
	for _, g := range groups {
		if g.Name == "Lab" {
			lab = g.ID
			if g.OSFeed != "RetailEval" || g.UpdatePolicy != "No3rdPartyAppUpdates" || g.CheckInIntervalSeconds != 120 || g.CertLifetimeSeconds != 3600 || g.Description != "bench" {
				t.Errorf("the new group: %+v", g)
			}
		}
	}
	if lab == "" || len(groups) != 6 {
		t.Fatalf("after the new-group form: %+v", groups)
	}
	if es := f.audit(t, "device-group.create"); es[0].ResourceID != lab || es[0].Actor != "carla" {
		t.Fatalf("audit of the new group: %+v", es[0])
	}

	// Change the group: only what changed is sent; a refused value is shown in place.
	gp := cb.get(base + "/groups/" + lab)
	mustStatus(t, "group page", gp, 200)
	if !strings.Contains(gp.body, `id="edit-group"`) || strings.Contains(gp.body, `id="delete-group"`) {
		t.Fatalf("a Contributor's group page: edit, no delete:\n%s", gp.body)
	}
	edit := url.Values{"csrf": {ctok}, "name": {"Lab"}, "description": {"bench"}, "os_feed": {"RetailEval"}, "update_policy": {"UpdateAll"},
		"check_in_interval_seconds": {"30"}, "cert_lifetime_seconds": {"3600"}}
	r = cb.post(base+"/groups/"+lab, edit)
	mustStatus(t, "an interval too short", r, http.StatusUnprocessableEntity)
	if !strings.Contains(r.body, `id="edit-check_in_interval_seconds-err"`) || !strings.Contains(r.body, `value="30"`) {
		t.Errorf("the refused interval is not shown in place:\n%s", r.body)
	}
	if g, _ := f.admin.GetDeviceGroup(ctx, f.tenant, lab); g.UpdatePolicy != "No3rdPartyAppUpdates" {
		t.Fatalf("a refused edit changed the policy: %+v", g)
	}
	edit.Set("check_in_interval_seconds", "600")
	mustStatus(t, "edit the group", cb.post(base+"/groups/"+lab, edit), http.StatusSeeOther)
	if g, _ := f.admin.GetDeviceGroup(ctx, f.tenant, lab); g.UpdatePolicy != "UpdateAll" || g.CheckInIntervalSeconds != 600 || g.OSFeed != "RetailEval" {
		t.Fatalf("after the edit: %+v", g)
	}
	if es := f.audit(t, "device-group.update"); es[0].Result != "success" || strings.Contains(string(es[0].Details), "os_feed") || !strings.Contains(string(es[0].Details), "update_policy") {
		t.Fatalf("audit of the group edit (the policy and interval changed, not the feed): %+v", es[0])
	}
	csrfCases(t, cb, base+"/groups/"+lab, edit)

	// A Contributor may not delete; a Reader may not write at all.
	mustStatus(t, "a Contributor deletes a group", cb.post(base+"/groups/"+lab+"/delete", url.Values{"csrf": {ctok}}), http.StatusForbidden)
	rb := newBrowser(t, srv)
	rtok := rb.login(f.reader(t, "rita"))
	for _, path := range []string{base + "/products", base + "/products/" + pid, base + "/groups/" + lab} {
		pg := rb.get(path)
		mustStatus(t, "Reader "+path, pg, 200)
		for _, ctl := range []string{`id="new-product"`, `id="edit-product"`, `id="new-group"`, `id="delete-product"`, `id="edit-group"`, `id="delete-group"`} {
			if strings.Contains(pg.body, ctl) {
				t.Errorf("a Reader sees %s on %s", ctl, path)
			}
		}
	}
	for path, form := range map[string]url.Values{
		base + "/products":                    {"name": {"Forged"}},
		base + "/products/" + pid:             {"name": {"Forged"}},
		base + "/products/" + pid + "/delete": {},
		gpath:                                 {"name": {"Forged"}, "os_feed": {"Retail"}, "update_policy": {"UpdateAll"}},
		gpath + "?x":                          {"name": {"Forged"}, "check_in_interval_seconds": {"never"}},
		base + "/groups/" + lab:               {"name": {"Forged"}, "cert_lifetime_seconds": {"x"}},
		base + "/groups/" + lab + "/delete":   {},
	} {
		form.Set("csrf", rtok)
		mustStatus(t, "a Reader's forged "+path, rb.post(path, form), http.StatusForbidden)
	}
	if got, _ := f.admin.GetProduct(ctx, f.tenant, pid); got.Name != "Door bell" {
		t.Fatalf("a Reader's POST changed the product: %+v", got)
	}
	if es := f.audit(t, "product.delete"); len(es) != 1 || es[0].Result != "failure" || es[0].Actor != "rita" {
		t.Fatalf("the Reader's forged delete is not audited as a failure: %+v", es)
	}

	// An Administrator deletes: a group with a device is refused in place (the API's 409), and
	// so is its product; an empty group goes.
	ab := newBrowser(t, srv)
	atok := ab.login(srv.AdminToken)
	r = ab.post(base+"/groups/"+f.group.ID+"/delete", url.Values{"csrf": {atok}})
	mustStatus(t, "delete a group that holds a device", r, http.StatusConflict)
	if !strings.Contains(r.body, "holds devices") || !strings.Contains(r.body, `role="alert"`) {
		t.Errorf("the refused delete does not say why:\n%s", r.body)
	}
	r = ab.post(base+"/products/"+f.product.ID+"/delete", url.Values{"csrf": {atok}})
	mustStatus(t, "delete a product with a device", r, http.StatusConflict)
	if _, err := f.admin.GetDeviceGroup(ctx, f.tenant, f.group.ID); err != nil {
		t.Fatalf("a refused delete removed the group: %v", err)
	}
	csrfCases(t, ab, base+"/groups/"+lab+"/delete", url.Values{})
	r = ab.post(base+"/groups/"+lab+"/delete", url.Values{"csrf": {atok}})
	mustStatus(t, "delete an empty group", r, http.StatusSeeOther)
	if _, err := f.admin.GetDeviceGroup(ctx, f.tenant, lab); err == nil {
		t.Fatal("the group is still there")
	}
	mustStatus(t, "delete the new product", ab.post(base+"/products/"+pid+"/delete", url.Values{"csrf": {atok}}), http.StatusSeeOther)
	if _, err := f.admin.GetProduct(ctx, f.tenant, pid); err == nil {
		t.Fatal("the product is still there")
	}
	if es := f.audit(t, "device-group.delete"); es[0].Result != "success" || es[0].ResourceID != lab || es[1].Result != "failure" {
		t.Fatalf("audit of the group deletes: %+v", es)
	}
}
