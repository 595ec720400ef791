package console

import (
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-iot/rampart/internal/authz"
	"github.com/rampart-iot/rampart/internal/manage"
	"github.com/rampart-iot/rampart/internal/problem"
	"github.com/rampart-iot/rampart/internal/ratelimit"
	"github.com/rampart-iot/rampart/internal/store"
)

// Login limits: attempts a minute per user name (password logins) and per remote address
// (every login), with a burst of as many.
const (
	DefaultUserLogins    = 10
	DefaultAddressLogins = 30
	maxUserName          = 128
)

// loginLimits bound login attempts, so passwords cannot be guessed quickly.
type loginLimits struct {
	user, addr *ratelimit.Limiter
}

func newLoginLimits(perUser, perAddr int, now func() time.Time) *loginLimits {
	if perUser == 0 {
		perUser = DefaultUserLogins
	}
	if perAddr == 0 {
		perAddr = DefaultAddressLogins
	}
	return &loginLimits{user: ratelimit.New(float64(perUser)/60, perUser, 0, now), addr: ratelimit.New(float64(perAddr)/60, perAddr, 0, now)}
}

// remoteAddr is the address the connection came from (a proxy's X-Forwarded-For is not
// trusted: behind a load balancer, the limit is the balancer's).
func remoteAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

type loginView struct {
	Message string
	Error   string
	Next    string
	User    string
	Method  string // the form that failed: "password" or "token"
}

// loginPage shows the login forms. Their CSRF token lives in a short cookie until a session
// exists, so a login cannot be forged from another site either.
func (h *Handler) loginPage(w http.ResponseWriter, r *http.Request) {
	if ss, err := h.sessions.get(r.Context(), cookieValue(r, sessionCookie)); err == nil && ss != nil {
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

// login opens a session for a valid API token, or a user name and password.
func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	if err := h.checkForm(w, r, cookieValue(r, loginCookie)); err != nil {
		_, body, _ := problem.Describe(err)
		h.showLogin(w, r, http.StatusForbidden, loginView{Error: body.Message})
		return
	}
	ctx := r.Context()
	next := safeNext(r.PostForm.Get("next"))
	method := r.PostForm.Get("method")
	lv := loginView{Next: next, Method: method}
	if ok, wait := h.logins.addr.Allow(remoteAddr(r)); !ok {
		h.tooMany(w, r, lv, wait)
		return
	}
	var p *authz.Principal
	var err error
	switch method {
	case "password":
		name := strings.TrimSpace(r.PostForm.Get("user"))
		lv.User = name
		if name == "" || r.PostForm.Get("password") == "" || len(name) > maxUserName {
			lv.Error = "Type your user name and password."
			h.showLogin(w, r, http.StatusUnprocessableEntity, lv)
			return
		}
		if ok, wait := h.logins.user.Allow(strings.ToLower(name)); !ok {
			h.tooMany(w, r, lv, wait)
			return
		}
		p, err = h.m.AuthenticatePassword(ctx, name, r.PostForm.Get("password"), remoteAddr(r))
	default:
		token := strings.TrimSpace(r.PostForm.Get("token"))
		if token == "" {
			lv.Error = "Paste an API token."
			h.showLogin(w, r, http.StatusUnprocessableEntity, lv)
			return
		}
		p, err = h.m.Authenticate(ctx, token)
	}
	if err != nil {
		status, body, internal := problem.Describe(err)
		if internal {
			h.log.Error("console: login", "error", err)
		}
		lv.Error = body.Message
		h.showLogin(w, r, status, lv)
		return
	}
	// Always a new session ID, so a session can never be fixed in advance.
	if err := h.sessions.drop(ctx, cookieValue(r, sessionCookie)); err != nil {
		h.log.Error("console: ending a session", "error", err)
	}
	sid, _, err := h.sessions.create(ctx, p.UserID, p.TokenID)
	if err != nil {
		h.log.Error("console: creating a session", "error", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	setCookie(w, sessionCookie, sid, int(h.sessions.max.Seconds()))
	setCookie(w, loginCookie, "", -1)
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (h *Handler) tooMany(w http.ResponseWriter, r *http.Request, lv loginView, wait time.Duration) {
	secs := int(wait.Seconds()) + 1
	h.log.Warn("console: login attempts limited", "remote", remoteAddr(r), "user", lv.User)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	lv.Error = "Too many login attempts. Wait " + strconv.Itoa(secs) + " seconds and try again."
	h.showLogin(w, r, http.StatusTooManyRequests, lv)
}

func (h *Handler) logout(c *call) error {
	if err := h.sessions.drop(c.r.Context(), c.sid); err != nil {
		return err
	}
	setCookie(c.w, sessionCookie, "", -1)
	http.Redirect(c.w, c.r, Prefix+"login?msg="+msgLoggedOut, http.StatusSeeOther)
	return nil
}

type accountView struct {
	HasPassword bool
	ViaToken    bool
	Done        bool
	Error       string
	Fields      map[string][]string
}

// account shows the logged-in user and the form that sets its password.
func (h *Handler) account(c *call) error {
	return h.showAccount(c, http.StatusOK, accountView{Done: c.r.URL.Query().Get("msg") == "password-set"})
}

func (h *Handler) showAccount(c *call, status int, av accountView) error {
	has, err := h.m.HasPassword(c.r.Context(), c.p)
	if err != nil {
		return err
	}
	av.HasPassword, av.ViaToken = has, c.sess.tokenID != ""
	v := h.view(c, "Your account", "")
	v.Data = av
	h.render(c.w, c.r, status, "account", v)
	return nil
}

// setPassword sets the caller's password (POST, CSRF-checked; manage checks the proof, the
// rules and audits it), then ends the user's other sessions.
func (h *Handler) setPassword(c *call) error {
	f := c.r.PostForm
	av := accountView{Fields: map[string][]string{}}
	if f.Get("new_password") != f.Get("confirm") {
		av.Fields["confirm"] = []string{"does not match the new password"}
		av.Error = "The new password and its confirmation differ."
		return h.showAccount(c, http.StatusUnprocessableEntity, av)
	}
	err := h.m.SetOwnPassword(c.r.Context(), c.p, f.Get("current"), f.Get("new_password"))
	if err != nil {
		status, body, internal := problem.Describe(err)
		if internal || status == http.StatusForbidden || status == http.StatusUnauthorized {
			return err
		}
		av.Error = body.Message
		for _, d := range body.Details {
			av.Fields[d.Field] = append(av.Fields[d.Field], d.Message)
		}
		return h.showAccount(c, status, av)
	}
	if _, err := h.sessions.st.DeleteUserConsoleSessions(c.r.Context(), c.p.UserID, c.sess.idHash); err != nil {
		return err
	}
	c.redirect(Prefix + "account?msg=password-set")
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
	msgEnded:     "Your session ended (it expired, its API token was revoked or expired, or your password was changed). Log in again.",
}
