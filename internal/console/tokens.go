package console

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/authz"
	"github.com/rampart-iot/rampart/internal/manage"
	"github.com/rampart-iot/rampart/internal/store"
)

// API tokens: a user's own (any user: manage.CreateOwnToken, ListOwnTokens, RevokeToken, as
// /v1/tokens), and a tenant's, which its Administrators see and revoke on the members page and
// make for a member (manage.ListTenantTokens, CreateTokenFor). A new token's secret is shown
// once, on the page that answers the POST; the console keeps no copy.

const tokensPage = 50

// tokenLifetimes are the choices the forms offer, in seconds ("" is the API's default).
var tokenLifetimes = []struct{ Value, Label string }{
	{"", "90 days (the default)"}, {"86400", "1 day"}, {"604800", "7 days"}, {"2592000", "30 days"}, {"31536000", "1 year"},
}

var tokenInputs = []string{"description", "expires_in_seconds"}

type tokensView struct {
	Tokens    []store.Token
	NextURL   string
	SessionID string // the ID of the token this session logged in with
	New       *form
	Lifetimes []struct{ Value, Label string }
	Now       time.Time
}

// tokens lists the caller's tokens with the form that makes one.
func (h *Handler) tokens(c *call) error {
	return h.showTokens(c, http.StatusOK, &form{Values: map[string]string{}})
}

func (h *Handler) showTokens(c *call, status int, f *form) error {
	after, err := c.query("after")
	if err != nil {
		return err
	}
	page, err := h.m.ListOwnTokens(c.r.Context(), c.p, store.ListOptions{After: after, Limit: tokensPage})
	if err != nil {
		return err
	}
	v := tokensView{Tokens: page.Items, SessionID: c.sess.tokenID, New: f, Lifetimes: tokenLifetimes, Now: h.now()}
	if page.Next != "" {
		v.NextURL = Prefix + "account/tokens?" + url.Values{"after": {page.Next}}.Encode()
	}
	vw := h.view(c, "Your API tokens", "")
	vw.Data = v
	h.render(c.w, c.r, status, "tokens", vw)
	return nil
}

// readTokenForm reads a token form into the API's request; an unreadable lifetime is a
// problem next to its field.
func readTokenForm(f *form) v1.TokenCreate {
	req := v1.TokenCreate{Description: f.V("description")}
	if s := strings.TrimSpace(f.V("expires_in_seconds")); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			f.add("expires_in_seconds", "must be a whole number of seconds")
		}
		req.ExpiresInSeconds = n
	}
	return req
}

type tokenCreatedView struct {
	Token   manage.IssuedToken
	BackURL string
}

// showSecret answers a POST that made a token: its secret, once.
func (h *Handler) showSecret(c *call, t manage.IssuedToken, back string) {
	vw := h.view(c, "New API token", "")
	if c.tenant.ID != "" {
		vw.Nav = "members"
	}
	vw.Data = tokenCreatedView{Token: t, BackURL: back}
	h.render(c.w, c.r, http.StatusCreated, "token_created", vw)
}

// createToken makes a token for the caller (limited as the caller's session is) and shows its
// secret once.
func (h *Handler) createToken(c *call) error {
	f := newForm(c, tokenInputs...)
	req := readTokenForm(f)
	if len(f.Fields) > 0 {
		f.Error = "The form has problems; no token was made."
		return h.showTokens(c, http.StatusUnprocessableEntity, f)
	}
	t, err := h.m.CreateOwnToken(c.r.Context(), c.p, req)
	if err != nil {
		status, err := f.refuse(err)
		if err != nil {
			return err
		}
		return h.showTokens(c, status, f)
	}
	h.showSecret(c, t, Prefix+"account/tokens")
	return nil
}

// revokeToken revokes one of the caller's tokens (manage decides whose it may revoke).
func (h *Handler) revokeToken(c *call) error {
	if err := h.m.RevokeToken(c.r.Context(), c.p, c.r.PathValue("token")); err != nil {
		return err
	}
	c.redirect(Prefix + "account/tokens")
	return nil
}

// revokeTenantToken revokes a token limited to the page's tenant (an Administrator's, for any
// member's token) and returns to the members page.
func (h *Handler) revokeTenantToken(c *call) error {
	if err := h.m.RevokeToken(c.r.Context(), c.p, c.r.PathValue("token")); err != nil {
		return err
	}
	c.redirect(c.tenantPath("members") + "#tokens-h")
	return nil
}

// createMemberToken makes a token for a member of the tenant (Administrators), limited to the
// tenant, and shows its secret once.
func (h *Handler) createMemberToken(c *call) error {
	f := newForm(c, "user", "description", "expires_in_seconds")
	req := readTokenForm(f)
	if bad, err := f.typed(c, authz.TokenCreate); err != nil {
		return err
	} else if bad {
		return h.showMembers(c, http.StatusUnprocessableEntity, membersForms{token: f})
	}
	t, err := h.m.CreateTokenFor(c.r.Context(), c.p, c.tenant.ID, f.V("user"), req)
	if err != nil {
		status, err := f.refuse(err)
		if err != nil {
			return err
		}
		if status == http.StatusNotFound && len(f.Fields) == 0 {
			f.add("user", f.Error) // the user is not a member
		}
		return h.showMembers(c, status, membersForms{token: f})
	}
	h.showSecret(c, t, c.tenantPath("members"))
	return nil
}
