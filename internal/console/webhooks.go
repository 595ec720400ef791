package console

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/authz"
	"github.com/rampart-iot/rampart/internal/manage"
	"github.com/rampart-iot/rampart/internal/problem"
	"github.com/rampart-iot/rampart/internal/store"
	"github.com/rampart-iot/rampart/internal/webhook"
)

// Webhooks: the tenant's webhooks and each one's recent deliveries (every role reads them), and
// for Administrators the forms that create and delete a webhook, rotate its secret, ping it,
// retry or redeliver a delivery and enable a webhook the service disabled. Each calls the same
// manage method as the API (CreateWebhook, DeleteWebhook, RotateWebhookSecret, PingWebhook,
// RetryWebhookDelivery, RedeliverWebhookDelivery, EnableWebhook), so its role, validation,
// conflicts and audit entry are the API's. A new secret is shown once, on the page that answers
// the POST; the console keeps no copy.

const deliveriesPage = 50

var webhookInputs = []string{"url", "events"}

type webhooksView struct {
	Webhooks  []v1.Webhook
	NextURL   string
	CanManage bool
	New       *form
	Events    []string        // every event type a webhook may hear
	Checked   map[string]bool // the new-webhook form's ticked events
	Max       int
}

// webhooks lists the tenant's webhooks with the form that makes one.
func (h *Handler) webhooks(c *call) error {
	f := &form{Values: map[string]string{}}
	return h.showWebhooks(c, http.StatusOK, f, nil)
}

func (h *Handler) showWebhooks(c *call, status int, f *form, checked []string) error {
	after, err := c.query("after")
	if err != nil {
		return err
	}
	// A tenant has at most webhook.MaxWebhooksPerTenant, so one page holds them all.
	page, err := h.m.ListWebhooks(c.r.Context(), c.p, c.tenant.ID, store.ListOptions{After: after, Limit: webhook.MaxWebhooksPerTenant})
	if err != nil {
		return err
	}
	v := webhooksView{Webhooks: page.Items, CanManage: c.can(authz.WebhookManage), New: f, Events: webhook.Events,
		Checked: map[string]bool{}, Max: webhook.MaxWebhooksPerTenant}
	for _, e := range checked {
		v.Checked[e] = true
	}
	if page.Next != "" {
		v.NextURL = c.tenantPath("webhooks") + "?" + url.Values{"after": {page.Next}}.Encode()
	}
	vw := h.view(c, "Webhooks", "webhooks")
	vw.Data = v
	h.render(c.w, c.r, status, "webhooks", vw)
	return nil
}

// createWebhook registers a webhook and shows its secret once.
func (h *Handler) createWebhook(c *call) error {
	f := newForm(c, webhookInputs...)
	events := c.r.PostForm["events"]
	f.Values["events"] = strings.Join(events, ",")
	w, err := h.m.CreateWebhook(c.r.Context(), c.p, c.tenant.ID, v1.WebhookCreate{URL: f.V("url"), Events: events})
	if err != nil {
		status, err := f.refuse(err)
		if err != nil {
			return err
		}
		return h.showWebhooks(c, status, f, events)
	}
	h.showWebhookSecret(c, w, "made")
	return nil
}

type webhookSecretView struct {
	Webhook v1.Webhook
	What    string // "made" or "rotated"
	BackURL string
}

// showWebhookSecret answers a POST that made or rotated a secret: the secret, once.
func (h *Handler) showWebhookSecret(c *call, w v1.Webhook, what string) {
	vw := h.view(c, "Webhook secret", "webhooks")
	vw.Data = webhookSecretView{Webhook: w, What: what, BackURL: c.tenantPath("webhooks/" + url.PathEscape(w.ID))}
	h.render(c.w, c.r, http.StatusCreated, "webhook_secret", vw)
}

type webhookView struct {
	Webhook    v1.Webhook
	Deliveries []v1.WebhookDelivery
	NextURL    string
	CanManage  bool
	Rotate     *form // the rotation form
	Action     *form // a refused ping, enable, delete, retry or redelivery
	Grace      struct{ Default, Max int64 }
}

// webhookPage shows a webhook, its recent deliveries and its controls.
func (h *Handler) webhookPage(c *call) error {
	return h.showWebhook(c, http.StatusOK, nil, nil)
}

func (h *Handler) showWebhook(c *call, status int, rotate, action *form) error {
	ctx := c.r.Context()
	id := c.r.PathValue("webhook")
	after, err := c.query("after")
	if err != nil {
		return err
	}
	w, err := h.m.GetWebhook(ctx, c.p, c.tenant.ID, id)
	if err != nil {
		return err
	}
	page, err := h.m.ListWebhookDeliveries(ctx, c.p, c.tenant.ID, id, store.ListOptions{After: after, Limit: deliveriesPage})
	if err != nil {
		return err
	}
	v := webhookView{Webhook: w, Deliveries: page.Items, CanManage: c.can(authz.WebhookManage), Rotate: rotate, Action: action}
	v.Grace.Default, v.Grace.Max = int64(manage.DefaultWebhookGrace/time.Second), int64(manage.MaxWebhookGrace/time.Second)
	if v.Rotate == nil {
		v.Rotate = &form{Values: map[string]string{}}
	}
	if page.Next != "" {
		v.NextURL = c.tenantPath("webhooks/"+url.PathEscape(id)) + "?" + url.Values{"after": {page.Next}}.Encode() + "#deliveries-h"
	}
	vw := h.view(c, "Webhook", "webhooks")
	vw.Data = v
	h.render(c.w, c.r, status, "webhook", vw)
	return nil
}

// webhookAction runs one of a webhook's buttons (ping, enable, delete, retry, redeliver) and
// returns to the webhook's page (the list, after a delete); a refusal the user can act on, such
// as pinging a disabled webhook (409), is shown above the deliveries.
func (h *Handler) webhookAction(c *call, do func() error, next string) error {
	if err := do(); err != nil {
		f := &form{Values: map[string]string{}}
		status, err := f.refuse(err)
		if err != nil {
			return err
		}
		return h.showWebhook(c, status, nil, f)
	}
	c.redirect(next)
	return nil
}

func (c *call) webhookPath() string {
	return c.tenantPath("webhooks/" + url.PathEscape(c.r.PathValue("webhook")))
}

func (h *Handler) deleteWebhook(c *call) error {
	return h.webhookAction(c, func() error {
		return h.m.DeleteWebhook(c.r.Context(), c.p, c.tenant.ID, c.r.PathValue("webhook"))
	}, c.tenantPath("webhooks"))
}

func (h *Handler) pingWebhook(c *call) error {
	return h.webhookAction(c, func() error {
		_, err := h.m.PingWebhook(c.r.Context(), c.p, c.tenant.ID, c.r.PathValue("webhook"))
		return err
	}, c.webhookPath()+"#deliveries-h")
}

func (h *Handler) enableWebhook(c *call) error {
	return h.webhookAction(c, func() error {
		_, err := h.m.EnableWebhook(c.r.Context(), c.p, c.tenant.ID, c.r.PathValue("webhook"))
		return err
	}, c.webhookPath())
}

// deliveryCommand retries a failed delivery (the same delivery, sent again) or redelivers a
// finished one's event (a new delivery).
func (h *Handler) deliveryCommand(c *call) error {
	hook, id := c.r.PathValue("webhook"), c.r.PathValue("delivery")
	var do func() error
	switch c.r.PathValue("command") {
	case "retry":
		do = func() error {
			_, err := h.m.RetryWebhookDelivery(c.r.Context(), c.p, c.tenant.ID, hook, id)
			return err
		}
	case "redeliver":
		do = func() error {
			_, err := h.m.RedeliverWebhookDelivery(c.r.Context(), c.p, c.tenant.ID, hook, id)
			return err
		}
	default:
		return problem.New(v1.CodeNotFound, "a webhook delivery has no command %q", c.r.PathValue("command"))
	}
	return h.webhookAction(c, do, c.webhookPath()+"#deliveries-h")
}

// rotateWebhookSecret gives the webhook a new secret and shows it once; the grace period is
// manage's to check (0 to 7 days, empty for a day), the console only reads the number.
func (h *Handler) rotateWebhookSecret(c *call) error {
	f := newForm(c, "grace_seconds")
	req := v1.WebhookRotateSecret{GraceSeconds: f.int64Field("grace_seconds")}
	if bad, err := f.typed(c, authz.WebhookManage); err != nil {
		return err
	} else if bad {
		return h.showWebhook(c, http.StatusUnprocessableEntity, f, nil)
	}
	w, err := h.m.RotateWebhookSecret(c.r.Context(), c.p, c.tenant.ID, c.r.PathValue("webhook"), req)
	if err != nil {
		status, err := f.refuse(err)
		if err != nil {
			return err
		}
		return h.showWebhook(c, status, f, nil)
	}
	h.showWebhookSecret(c, w, "rotated")
	return nil
}

// deliveryActions names the buttons a delivery in a state offers: retry for a failed one,
// redeliver for a delivered or failed one, none for a pending one.
func deliveryActions(state string) []string {
	switch state {
	case store.DeliveryFailed:
		return []string{"retry", "redeliver"}
	case store.DeliveryDelivered:
		return []string{"redeliver"}
	}
	return nil
}
