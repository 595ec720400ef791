package console

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/rampart-iot/rampart/internal/manage"
	"github.com/rampart-iot/rampart/internal/problem"
	"github.com/rampart-iot/rampart/internal/store"
)

type loginView struct {
	Message string
	Error   string
	Next    string
}

// loginPage shows the token form. Its CSRF token lives in a short cookie until a session
// exists, so a login cannot be forged from another site either.
func (h *Handler) loginPage(w http.ResponseWriter, r *http.Request) {
	if ss := h.sessions.get(cookieValue(r, sessionCookie)); ss != nil {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	h.showLogin(w, r, http.StatusOK, loginView{Message: loginMessages[r.URL.Query().Get("msg")], Next: safeNext(r.URL.Query().Get("next"))})
}

func (h *Handler) showLogin(w http.ResponseWriter, r *http.Request, status int, lv loginView) {
	csrf, err := randomToken(h.rand)
	if err != nil {
		h.log.Error("console: randomness", "error", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	setCookie(w, loginCookie, csrf, 3600)
	h.render(w, r, status, "login", &view{Title: "Log in", CSRF: csrf, Data: lv})
}

// login opens a session for a valid API token.
func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	if err := h.checkForm(w, r, cookieValue(r, loginCookie)); err != nil {
		_, body, _ := problem.Describe(err)
		h.showLogin(w, r, http.StatusForbidden, loginView{Error: body.Message})
		return
	}
	next := safeNext(r.PostForm.Get("next"))
	token := strings.TrimSpace(r.PostForm.Get("token"))
	if token == "" {
		h.showLogin(w, r, http.StatusUnprocessableEntity, loginView{Error: "Paste an API token.", Next: next})
		return
	}
	if _, err := h.m.Authenticate(r.Context(), token); err != nil {
		status, body, internal := problem.Describe(err)
		if internal {
			h.log.Error("console: login", "error", err)
		}
		h.showLogin(w, r, status, loginView{Error: body.Message, Next: next})
		return
	}
	// Always a new session ID, so a session can never be fixed in advance.
	if old := cookieValue(r, sessionCookie); old != "" {
		h.sessions.drop(old)
	}
	sid, _, err := h.sessions.create(token)
	if err != nil {
		h.log.Error("console: creating a session", "error", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	setCookie(w, sessionCookie, sid, int(h.sessions.max.Seconds()))
	setCookie(w, loginCookie, "", -1)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (h *Handler) logout(c *call) error {
	h.sessions.drop(c.sid)
	setCookie(c.w, sessionCookie, "", -1)
	http.Redirect(c.w, c.r, Prefix+"login?msg="+msgLoggedOut, http.StatusSeeOther)
	return nil
}

type homeView struct {
	Tenants []manage.TenantView
	More    bool
}

// home lists the caller's tenants, or opens the only one.
func (h *Handler) home(c *call) error {
	page, err := h.m.ListTenants(c.r.Context(), c.p, store.ListOptions{Limit: 200})
	if err != nil {
		return err
	}
	if len(page.Items) == 1 && page.Next == "" {
		c.redirect(Prefix + "t/" + url.PathEscape(page.Items[0].ID) + "/")
		return nil
	}
	v := h.view(c, "Tenants", "")
	v.Data = homeView{Tenants: page.Items, More: page.Next != ""}
	h.render(c.w, c.r, http.StatusOK, "home", v)
	return nil
}

// safeNext keeps a post-login redirect inside the console.
func safeNext(next string) string {
	u, err := url.Parse(next)
	if next == "" || err != nil || u.Scheme != "" || u.Host != "" || u.User != nil ||
		!strings.HasPrefix(u.Path, Prefix) || !strings.HasPrefix(u.EscapedPath(), Prefix) || strings.Contains(u.Path, "..") ||
		strings.HasPrefix(next, "//") || strings.Contains(next, "\\") ||
		len(next) > 2*maxQueryValue {
		return Prefix
	}
	return u.RequestURI()
}

// The login page's messages, chosen by code so that no link can put words on the page.
const (
	msgLoggedOut = "logged-out"
	msgEnded     = "ended"
)

var loginMessages = map[string]string{
	msgLoggedOut: "You are logged out.",
	msgEnded:     "Your session ended (it expired, or its API token was revoked or expired). Log in again.",
}
