package console_test

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/rampart-iot/rampart/client"
	"github.com/rampart-iot/rampart/internal/server/servertest"
)

// TestBrowserManagement drives the console's management forms in headless chromium with
// JavaScript off: create a product and a device group in it, move a device from its page and a
// selection from the devices list, create an API token (its secret shown once, selected by one
// click) and revoke it, add a member and remove it, and see the last Administrator's removal
// refused; the new pages fit a phone's screen.
func TestBrowserManagement(t *testing.T) {
	srv := servertest.Start(t)
	f := newFixture(t, srv)
	c := startChrome(t)
	ctx := t.Context()
	base := srv.URL + "/console/t/" + f.tenant

	c.do("log in with the admin token",
		chromedp.Navigate(srv.URL+"/console/"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), srv.AdminToken),
		chromedp.Click(chromedp.CSS(`#token-form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.ID("counts-h")))

	// A product, without its default groups, and a group in it.
	c.do("create a product",
		chromedp.Click(chromedp.CSS(`nav a[href$="/products"]`)),
		chromedp.WaitVisible(chromedp.CSS("#new-product-box summary")),
		chromedp.Click(chromedp.CSS("#new-product-box summary")),
		chromedp.WaitVisible(chromedp.ID("product-name")),
		chromedp.SendKeys(chromedp.ID("product-name"), "Doorbell"),
		chromedp.SendKeys(chromedp.ID("product-description"), "rings twice"),
		chromedp.Click(chromedp.ID("default_groups")),
		chromedp.Click(chromedp.ID("create-product")),
		chromedp.WaitVisible(chromedp.ID("groups-h")))
	if got := c.text("#product-name-shown"); got != "Doorbell" {
		t.Fatalf("the new product's page shows %q", got)
	}
	ps, err := f.admin.AllProducts(ctx, f.tenant, client.ProductListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var pid string
	for _, p := range ps {
		if p.Name == "Doorbell" {
			pid = p.ID
		}
	}
	if gs, err := f.admin.AllProductDeviceGroups(ctx, f.tenant, pid, client.DeviceGroupListOptions{}); pid == "" || err != nil || len(gs) != 0 {
		t.Fatalf("the product %q made in the browser has groups %+v (%v); the default groups were unticked", pid, gs, err)
	}
	c.shot("m1-product")
	c.do("create a device group",
		chromedp.Click(chromedp.CSS("#new-group-box summary")),
		chromedp.WaitVisible(chromedp.ID("new-group-name")),
		chromedp.SendKeys(chromedp.ID("new-group-name"), "Lab"),
		chromedp.SetValue(chromedp.ID("new-group-update_policy"), "No3rdPartyAppUpdates"),
		chromedp.SendKeys(chromedp.ID("new-group-cert_lifetime_seconds"), "3600"),
		chromedp.Click(chromedp.ID("create-group")),
		chromedp.WaitVisible(chromedp.ID("product-groups")))
	gs, err := f.admin.AllProductDeviceGroups(ctx, f.tenant, pid, client.DeviceGroupListOptions{})
	if err != nil || len(gs) != 1 || gs[0].Name != "Lab" || gs[0].UpdatePolicy != "No3rdPartyAppUpdates" || gs[0].CertLifetimeSeconds != 3600 {
		t.Fatalf("the group made in the browser: %+v %v", gs, err)
	}
	lab := gs[0]
	c.shot("m2-group-created")
	// A refused field, shown next to it in the browser.
	c.do("a refused group name",
		chromedp.Click(chromedp.CSS(`#product-groups a[href$="/groups/`+lab.ID+`"]`)),
		chromedp.WaitVisible(chromedp.ID("edit-group")),
		chromedp.Clear(chromedp.ID("edit-name")),
		chromedp.Click(chromedp.ID("save-group")),
		chromedp.WaitVisible(chromedp.ID("edit-name-err")))
	if got := c.eval(`document.getElementById("edit-name").getAttribute("aria-describedby") + "|" + document.getElementById("edit-name").getAttribute("aria-invalid")`); got != "edit-name-err|true" {
		t.Errorf("the refused name's input: %q", got)
	}
	c.shot("m3-group-refused")

	// Move the fixture's device to Lab from its page, then back with the list's selection.
	c.do("move a device from its page",
		chromedp.Navigate(base+"/devices/"+f.device.ID),
		chromedp.WaitVisible(chromedp.ID("move-group")),
		chromedp.SetValue(chromedp.ID("move-group"), lab.ID),
		chromedp.Click(chromedp.ID("move")),
		chromedp.WaitVisible(chromedp.CSS(`#device-group a[href$="group=`+lab.ID+`"]`)))
	if d, err := f.admin.GetDevice(ctx, f.tenant, f.device.ID); err != nil || d.DeviceGroupID != lab.ID {
		t.Fatalf("after the move form the device is in %q (%v), want Lab", d.DeviceGroupID, err)
	}
	c.shot("m4-device-moved")
	c.do("move a selection from the devices list",
		chromedp.Navigate(base+"/devices"),
		chromedp.WaitVisible(chromedp.ID("bulk-move")),
		chromedp.Click(chromedp.ID("sel-"+f.device.ID)),
		chromedp.SetValue(chromedp.ID("bulk-group"), f.group.ID),
		chromedp.Click(chromedp.ID("move-selected")),
		chromedp.WaitVisible(chromedp.ID("move-results")))
	if got := c.text("#move-summary"); !strings.HasPrefix(got, "1 moved, 0 not moved") {
		t.Errorf("the bulk move's summary: %q", got)
	}
	if d, err := f.admin.GetDevice(ctx, f.tenant, f.device.ID); err != nil || d.DeviceGroupID != f.group.ID {
		t.Fatalf("after the bulk move the device is in %q (%v)", d.DeviceGroupID, err)
	}
	c.shot("m5-bulk-moved")

	// An API token: made, its secret shown once and selected whole by one click, then revoked.
	c.do("create a token",
		chromedp.Navigate(srv.URL+"/console/account"),
		chromedp.Click(chromedp.ID("tokens-link")),
		chromedp.WaitVisible(chromedp.ID("new-token")),
		chromedp.SendKeys(chromedp.ID("token-description"), "browser test"),
		chromedp.Click(chromedp.ID("create-token")),
		chromedp.WaitVisible(chromedp.ID("new-token-secret")))
	secret := c.text("#new-token-secret")
	me, err := srv.Client(t, secret).Me(ctx)
	if err != nil || me.User.Name != "dev-admin" {
		t.Fatalf("the secret shown (%q) does not work: %v", secret, err)
	}
	c.do("select the secret with one click", chromedp.Click(chromedp.ID("new-token-secret")))
	if got := c.eval(`window.getSelection().toString()`); got != secret {
		t.Errorf("one click selects %q, want the whole secret", got)
	}
	c.shot("m6-token-created")
	c.do("revoke the token",
		chromedp.Click(chromedp.ID("tokens-back")),
		chromedp.WaitVisible(chromedp.ID("revoke-"+me.TokenID)),
		chromedp.Click(chromedp.ID("revoke-"+me.TokenID)),
		chromedp.WaitNotPresent(chromedp.ID("revoke-"+me.TokenID)))
	if _, err := srv.Client(t, secret).Me(ctx); err == nil {
		t.Fatal("the token revoked in the browser still works")
	}
	if got := c.text("#token-" + me.TokenID + " .state"); got != "revoked" {
		t.Errorf("the revoked token's row says %q", got)
	}
	c.shot("m7-token-revoked")

	// A member: added as a Contributor, removed; the last Administrator's removal refused.
	c.do("add a member",
		chromedp.Navigate(base+"/"),
		chromedp.Click(chromedp.CSS(`nav a[href$="/members"]`)),
		chromedp.WaitVisible(chromedp.ID("member-user")),
		chromedp.SendKeys(chromedp.ID("member-user"), "maria"),
		chromedp.SetValue(chromedp.ID("member-role"), "Contributor"),
		chromedp.Click(chromedp.ID("add-member-submit")),
		chromedp.WaitVisible(chromedp.ID("member-maria")))
	c.shot("m8-member-added")
	rs, err := f.admin.AllRoles(ctx, f.tenant)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range rs {
		found = found || (r.User == "maria" && r.Role == "Contributor")
	}
	if !found {
		t.Fatalf("maria is not a Contributor after the form: %+v", rs)
	}
	c.do("refuse to remove the last Administrator",
		chromedp.Click(chromedp.ID("remove-dev-admin")),
		chromedp.WaitVisible(chromedp.ID("members-error")))
	if got := c.text("#members-error"); !strings.Contains(got, "last Administrator") {
		t.Errorf("the refused removal says %q", got)
	}
	c.shot("m9-last-admin-refused")
	c.do("remove the member",
		chromedp.Click(chromedp.ID("remove-maria")),
		chromedp.WaitNotPresent(chromedp.ID("member-maria")))
	rs, err = f.admin.AllRoles(ctx, f.tenant)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.User == "maria" {
			t.Fatalf("maria is still a %s", r.Role)
		}
	}
	if es := f.audit(t, "role.delete"); len(es) != 2 || es[0].Result != "success" || es[1].Result != "failure" {
		t.Fatalf("audit of the browser's removals: %+v", es)
	}

	// The new pages at phone width.
	for _, p := range []struct{ name, url string }{{"m10-phone-members", base + "/members"}, {"m11-phone-product", base + "/products/" + pid},
		{"m12-phone-group", base + "/groups/" + lab.ID}, {"m13-phone-tokens", srv.URL + "/console/account/tokens"}} {
		c.do("phone "+p.url, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile), chromedp.Navigate(p.url), chromedp.WaitVisible(chromedp.CSS("h1")))
		if fits := c.eval(`String(document.documentElement.scrollWidth <= window.innerWidth)`); fits != "true" {
			t.Errorf("%s is wider than a 390px screen", p.url)
		}
		c.shot(p.name)
	}
}
