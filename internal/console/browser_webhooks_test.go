package console_test

import (
	"encoding/pem"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/rampart-iot/rampart/client"
	"github.com/rampart-iot/rampart/internal/server/servertest"
	"github.com/rampart-iot/rampart/internal/webhook"
)

// receiverCA writes a TLS receiver's certificate to a PEM file, for the service's
// webhooks.ca_file (servertest.WebhookRoots): its deliveries then trust the receiver.
func receiverCA(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "receiver.pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// TestBrowserWebhooks drives the webhook pages in headless chromium with JavaScript off: make a
// webhook for a local TLS receiver (its secret shown once and selected by one click), ping it
// and see the ping arrive signed with that secret and listed as delivered, rotate the secret
// with a grace period (the next ping signed with both), read the pages at phone width, and
// delete the webhook.
func TestBrowserWebhooks(t *testing.T) {
	recv := &receiver{}
	hs := httptest.NewTLSServer(recv)
	t.Cleanup(hs.Close)
	srv := servertest.Start(t, servertest.WebhookRoots(receiverCA(t, hs)))
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
	c.do("create a webhook",
		chromedp.Click(chromedp.CSS(`nav a[href$="/webhooks"]`)),
		chromedp.WaitVisible(chromedp.CSS("#new-webhook-box summary")),
		chromedp.Click(chromedp.CSS("#new-webhook-box summary")),
		chromedp.WaitVisible(chromedp.ID("webhook-url")),
		chromedp.SendKeys(chromedp.ID("webhook-url"), hs.URL+"/hook"),
		chromedp.Click(chromedp.CSS(`input[name="events"][value="rollout.state_changed"]`)),
		chromedp.Click(chromedp.ID("create-webhook")),
		chromedp.WaitVisible(chromedp.ID("new-webhook-secret")))
	secret := c.text("#new-webhook-secret")
	if !strings.HasPrefix(secret, "whsec_") {
		t.Fatalf("the page shows %q as the secret", secret)
	}
	c.do("select the secret with one click", chromedp.Click(chromedp.ID("new-webhook-secret")))
	if got := c.eval(`window.getSelection().toString()`); got != secret {
		t.Errorf("one click selects %q, want the whole secret", got)
	}
	c.shot("w1-webhook-created")
	hooks, err := f.admin.AllWebhooks(ctx, f.tenant, client.ListOptions{})
	if err != nil || len(hooks) != 1 || hooks[0].URL != hs.URL+"/hook" || len(hooks[0].Events) != 1 || hooks[0].Events[0] != "rollout.state_changed" {
		t.Fatalf("the webhook made in the browser: %+v %v", hooks, err)
	}
	hook := hooks[0]

	ping := func(n int) received {
		t.Helper()
		c.do("ping the webhook",
			chromedp.Click(chromedp.ID("ping-webhook")),
			chromedp.WaitVisible(chromedp.ID("deliveries")))
		r := recv.wait(t, n)
		if r.header.Get(webhook.HeaderEvent) != webhook.EventPing {
			t.Fatalf("delivery %d is a %q event", n, r.header.Get(webhook.HeaderEvent))
		}
		ds := f.deliveries(t, hook.ID)
		if len(ds) != n {
			t.Fatalf("%d deliveries after %d pings: %+v", len(ds), n, ds)
		}
		f.waitDelivered(t, hook.ID, ds[0].ID)
		c.do("reload the webhook's page", chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("delivery-"+ds[0].ID)))
		if got := c.text("#delivery-" + ds[0].ID + " .state"); got != "delivered" {
			t.Errorf("the ping's row says %q", got)
		}
		return r
	}
	c.do("open the webhook", chromedp.Click(chromedp.ID("webhook-back")), chromedp.WaitVisible(chromedp.ID("ping-webhook")))
	if err := ping(1).verify(secret); err != nil {
		t.Fatalf("the ping is not signed with the secret the browser showed: %v", err)
	}
	c.shot("w2-pinged")

	c.do("rotate the secret",
		chromedp.SendKeys(chromedp.ID("grace_seconds"), "600"),
		chromedp.Click(chromedp.ID("rotate-webhook")),
		chromedp.WaitVisible(chromedp.ID("new-webhook-secret")))
	secret2 := c.text("#new-webhook-secret")
	if !strings.HasPrefix(secret2, "whsec_") || secret2 == secret {
		t.Fatalf("the rotated secret shown: %q", secret2)
	}
	c.shot("w3-secret-rotated")
	c.do("back to the webhook", chromedp.Click(chromedp.ID("webhook-back")), chromedp.WaitVisible(chromedp.ID("webhook-grace")))
	if got := c.text("#webhook-grace"); !strings.HasPrefix(got, "signs deliveries too until") {
		t.Errorf("the grace period shown: %q", got)
	}
	r := ping(2)
	if err := r.verify(secret2); err != nil {
		t.Errorf("the ping after the rotation is not signed with the new secret: %v", err)
	}
	if err := r.verify(secret); err != nil {
		t.Errorf("the ping in the grace period is not signed with the old secret: %v", err)
	}
	c.shot("w4-pinged-after-rotation")

	for _, p := range []struct{ name, url string }{{"w5-phone-webhooks", base + "/webhooks"}, {"w6-phone-webhook", base + "/webhooks/" + hook.ID}} {
		c.do("phone "+p.url, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile), chromedp.Navigate(p.url), chromedp.WaitVisible(chromedp.CSS("h1")))
		if fits := c.eval(`String(document.documentElement.scrollWidth <= window.innerWidth)`); fits != "true" {
			t.Errorf("%s is wider than a 390px screen", p.url)
		}
		c.shot(p.name)
	}

	c.do("delete the webhook",
		chromedp.Click(chromedp.ID("delete-webhook")),
		chromedp.WaitVisible(chromedp.ID("webhooks-h")))
	if got := c.text("#webhooks-h + p"); got != "The tenant has no webhooks." {
		t.Errorf("after the delete the list says %q", got)
	}
	if _, err := f.admin.GetWebhook(ctx, f.tenant, hook.ID); err == nil {
		t.Fatal("the webhook deleted in the browser is still there")
	}
	c.shot("w7-deleted")
}
