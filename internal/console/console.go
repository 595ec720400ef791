// Package console serves the web console under /console/: server-rendered HTML pages (Go
// html/template, templates and CSS embedded in the binary, no JavaScript) over the management
// plane. It owns the console's login (API token, or user name and password), its sessions and
// CSRF tokens, the login rate limits, and the pages' paging; it owns no other data and makes
// no decisions about access.
//
// Trust: the console trusts the management plane to authenticate users, and to authorize and
// audit every read and write for the logged-in principal, exactly as for the REST API; the only
// records it reads and writes itself are its sessions (store.ConsoleTx), which hold no secret
// the browser has: a session is found by the SHA-256 of its ID, and its principal is rebuilt
// by the management plane on every request. Everything from the browser is hostile: a session
// cookie names a session only if the store has it and it has not expired, every POST must carry
// the session's CSRF token (and a same-origin Origin header when the browser sends one), form
// bodies are size-limited, and every value shown is escaped by html/template (charts by
// internal/console/chart), including what devices report about themselves.
package console

import (
	"bytes"
	"crypto/rand"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/authz"
	"github.com/rampart-iot/rampart/internal/manage"
	"github.com/rampart-iot/rampart/internal/problem"
	"github.com/rampart-iot/rampart/internal/store"
)

// Prefix is where the console is mounted.
const Prefix = "/console/"

// Limits on what the browser sends.
const (
	maxFormBytes  = 64 << 10
	maxQueryValue = 256
)

//go:embed templates/*.html static/*
var files embed.FS

// Config configures the console.
type Config struct {
	Manager *manage.Manager // required
	// Sessions is where the console keeps its sessions (required; the service's store), so
	// that every replica serves every session and they survive a restart.
	Sessions store.ConsoleTx
	Logger   *slog.Logger // default discards
	Now      func() time.Time
	Rand     io.Reader
	// SessionIdle ends a session unused this long, SessionMax any session this old (defaults
	// DefaultSessionIdle and DefaultSessionMax).
	SessionIdle time.Duration
	SessionMax  time.Duration
	// LoginsPerMinute bounds login attempts per user name and per remote address (defaults
	// DefaultUserLogins and DefaultAddressLogins; negative: no limit).
	UserLoginsPerMinute    int
	AddressLoginsPerMinute int
}

// Handler serves the console.
type Handler struct {
	m        *manage.Manager
	log      *slog.Logger
	now      func() time.Time
	rand     io.Reader
	sessions *sessions
	logins   *loginLimits
	pages    map[string]*template.Template
	static   http.Handler
	mux      *http.ServeMux
}

// New returns the console handler, to be mounted at Prefix.
func New(cfg Config) (*Handler, error) {
	if cfg.Manager == nil {
		return nil, errors.New("console: a manager is required")
	}
	h := &Handler{m: cfg.Manager, log: cfg.Logger, now: cfg.Now, rand: cfg.Rand}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.rand == nil {
		h.rand = rand.Reader
	}
	if cfg.Sessions == nil {
		return nil, errors.New("console: a session store is required")
	}
	idle, max := cfg.SessionIdle, cfg.SessionMax
	if idle <= 0 {
		idle = DefaultSessionIdle
	}
	if max <= 0 {
		max = DefaultSessionMax
	}
	h.sessions = &sessions{st: cfg.Sessions, idle: idle, max: max, now: h.now, rand: h.rand}
	h.logins = newLoginLimits(cfg.UserLoginsPerMinute, cfg.AddressLoginsPerMinute, h.now)
	var err error
	if h.pages, err = parsePages(); err != nil {
		return nil, err
	}
	static, err := fs.Sub(files, "static")
	if err != nil {
		return nil, err
	}
	h.static = http.StripPrefix(Prefix+"static/", http.FileServerFS(static))
	h.routes()
	return h, nil
}

func (h *Handler) routes() {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /console/{$}", h.authed(h.home))
	mux.HandleFunc("GET /console/login", h.loginPage)
	mux.HandleFunc("POST /console/login", h.login)
	mux.HandleFunc("POST /console/logout", h.authedForm(h.logout))
	mux.HandleFunc("GET /console/account", h.authed(h.account))
	mux.HandleFunc("POST /console/account/password", h.authedForm(h.setPassword))
	mux.HandleFunc("GET /console/account/tokens", h.authed(h.tokens))
	mux.HandleFunc("POST /console/account/tokens", h.authedForm(h.createToken))
	mux.HandleFunc("POST /console/account/tokens/{token}/revoke", h.authedForm(h.revokeToken))
	mux.Handle("GET /console/static/", h.static)
	t := "/console/t/{tenant}"
	mux.HandleFunc("GET "+t+"/{$}", h.tenant(h.overview))
	mux.HandleFunc("GET "+t+"/products", h.tenant(h.products))
	mux.HandleFunc("POST "+t+"/products", h.tenantForm(h.createProduct))
	mux.HandleFunc("GET "+t+"/products/{product}", h.tenant(h.product))
	mux.HandleFunc("POST "+t+"/products/{product}", h.tenantForm(h.updateProduct))
	mux.HandleFunc("POST "+t+"/products/{product}/delete", h.tenantForm(h.deleteProduct))
	mux.HandleFunc("POST "+t+"/products/{product}/groups", h.tenantForm(h.createGroup))
	mux.HandleFunc("GET "+t+"/groups/{group}", h.tenant(h.group))
	mux.HandleFunc("POST "+t+"/groups/{group}", h.tenantForm(h.updateGroup))
	mux.HandleFunc("POST "+t+"/groups/{group}/delete", h.tenantForm(h.deleteGroup))
	mux.HandleFunc("GET "+t+"/devices", h.tenant(h.devices))
	mux.HandleFunc("GET "+t+"/devices/{device}", h.tenant(h.device))
	mux.HandleFunc("POST "+t+"/devices/claim", h.tenantForm(h.claimDevice))
	mux.HandleFunc("POST "+t+"/devices/move", h.tenantForm(h.moveDevices))
	mux.HandleFunc("POST "+t+"/devices/{device}/state", h.tenantForm(h.setDeviceState))
	mux.HandleFunc("POST "+t+"/devices/{device}/group", h.tenantForm(h.moveDevice))
	mux.HandleFunc("POST "+t+"/devices/{device}/board/press", h.tenantForm(h.pressButton))
	mux.HandleFunc("GET "+t+"/images", h.tenant(h.images))
	mux.HandleFunc("GET "+t+"/deployments", h.tenant(h.deployments))
	mux.HandleFunc("GET "+t+"/deployments/new", h.tenant(h.newDeployment))
	mux.HandleFunc("POST "+t+"/deployments", h.tenantForm(h.createDeployment))
	mux.HandleFunc("GET "+t+"/deployments/{deployment}", h.tenant(h.deployment))
	mux.HandleFunc("POST "+t+"/deployments/{deployment}/rollout/{command}", h.tenantForm(h.rolloutCommand))
	mux.HandleFunc("GET "+t+"/error-reports", h.tenant(h.errorReports))
	mux.HandleFunc("GET "+t+"/error-reports/bucket", h.tenant(h.errorBucket))
	mux.HandleFunc("GET "+t+"/audit", h.tenant(h.audit))
	mux.HandleFunc("GET "+t+"/members", h.tenant(h.members))
	mux.HandleFunc("POST "+t+"/members", h.tenantForm(h.addMember))
	mux.HandleFunc("POST "+t+"/members/role", h.tenantForm(h.changeRole))
	mux.HandleFunc("POST "+t+"/members/remove", h.tenantForm(h.removeMember))
	mux.HandleFunc("POST "+t+"/members/tokens", h.tenantForm(h.createMemberToken))
	mux.HandleFunc("POST "+t+"/tokens/{token}/revoke", h.tenantForm(h.revokeTenantToken))
	mux.HandleFunc("GET "+t+"/webhooks", h.tenant(h.webhooks))
	mux.HandleFunc("POST "+t+"/webhooks", h.tenantForm(h.createWebhook))
	mux.HandleFunc("GET "+t+"/webhooks/{webhook}", h.tenant(h.webhookPage))
	mux.HandleFunc("POST "+t+"/webhooks/{webhook}/delete", h.tenantForm(h.deleteWebhook))
	mux.HandleFunc("POST "+t+"/webhooks/{webhook}/rotate-secret", h.tenantForm(h.rotateWebhookSecret))
	mux.HandleFunc("POST "+t+"/webhooks/{webhook}/ping", h.tenantForm(h.pingWebhook))
	mux.HandleFunc("POST "+t+"/webhooks/{webhook}/enable", h.tenantForm(h.enableWebhook))
	mux.HandleFunc("POST "+t+"/webhooks/{webhook}/deliveries/{delivery}/{command}", h.tenantForm(h.deliveryCommand))
	mux.HandleFunc("/console/", func(w http.ResponseWriter, r *http.Request) {
		h.render(w, r, http.StatusNotFound, "error", &view{Title: "Not found", Data: errorView{Message: "There is no console page at " + r.URL.Path + "."}})
	})
	h.mux = mux
}

// ServeHTTP serves the console with headers that keep its pages out of caches, frames and
// other origins' reach.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "same-origin")
	hd.Set("Cache-Control", "no-store")
	h.mux.ServeHTTP(w, r)
}

// call is one request from a logged-in browser.
type call struct {
	w      http.ResponseWriter
	r      *http.Request
	p      *authz.Principal
	sess   *session
	sid    string
	tenant manage.TenantView // tenant pages only
}

// view is what every page template gets.
type view struct {
	Title  string
	Nav    string
	User   string
	Tenant *manage.TenantView
	CSRF   string
	Data   any
}

type errorView struct {
	Status  int
	Message string
	Details []v1.ErrorDetail
}

// can reports whether the caller's role in the page's tenant allows an action; pages use it
// only to decide which controls to show, never to decide access, which manage does.
func (c *call) can(a authz.Action) bool { return authz.Allowed(c.tenant.Role, a) }

// start authenticates the request's session: nil (after redirecting to the login page) when
// there is none or its token no longer works.
func (h *Handler) start(w http.ResponseWriter, r *http.Request) *call {
	sid := cookieValue(r, sessionCookie)
	ss, err := h.sessions.get(r.Context(), sid)
	if err != nil {
		h.log.Error("console: reading a session", "error", err)
		http.Error(w, "internal error; the server log has details", http.StatusInternalServerError)
		return nil
	}
	if ss == nil {
		msg := ""
		if sid != "" {
			msg = msgEnded
		}
		h.toLogin(w, r, msg)
		return nil
	}
	p, err := h.m.SessionPrincipal(r.Context(), ss.userID, ss.tokenID)
	if err != nil {
		if _, _, internal := problem.Describe(err); internal {
			h.log.Error("console: authenticating a session", "error", err)
			http.Error(w, "internal error; the server log has details", http.StatusInternalServerError)
			return nil
		}
		if err := h.sessions.drop(r.Context(), sid); err != nil {
			h.log.Error("console: ending a session", "error", err)
		}
		setCookie(w, sessionCookie, "", -1)
		h.toLogin(w, r, msgEnded)
		return nil
	}
	return &call{w: w, r: r, p: p, sess: ss, sid: sid}
}

// toLogin sends a GET to the login page (msg is a login message code, "" for none), and
// refuses anything else.
func (h *Handler) toLogin(w http.ResponseWriter, r *http.Request, msg string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.render(w, r, http.StatusUnauthorized, "error", &view{Title: "Logged out", Data: errorView{Status: http.StatusUnauthorized,
			Message: "You are not logged in, so nothing was changed. Log in and try again."}})
		return
	}
	q := url.Values{}
	if r.URL.Path != Prefix {
		q.Set("next", r.URL.RequestURI())
	}
	if msg != "" {
		q.Set("msg", msg)
	}
	target := Prefix + "login"
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

func (h *Handler) authed(fn func(*call) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if c := h.start(w, r); c != nil {
			h.finish(c, fn(c))
		}
	}
}

// authedForm is authed for POSTs: same origin, bounded body, and the session's CSRF token.
func (h *Handler) authedForm(fn func(*call) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c := h.start(w, r)
		if c == nil {
			return
		}
		if err := h.checkForm(w, r, c.sess.csrf); err != nil {
			h.finish(c, err)
			return
		}
		h.finish(c, fn(c))
	}
}

// checkForm parses a POSTed form and checks its origin and CSRF token.
func (h *Handler) checkForm(w http.ResponseWriter, r *http.Request, csrf string) error {
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return problem.New(v1.CodeForbidden, "forbidden: the form was posted from another origin")
		}
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return problem.New(v1.CodeBadRequest, "the form could not be read: %v", err)
	}
	if !sameToken(r.PostForm.Get("csrf"), csrf) {
		return problem.New(v1.CodeForbidden, "forbidden: %v", errCSRF)
	}
	return nil
}

func (h *Handler) tenant(fn func(*call) error) http.HandlerFunc {
	return h.authed(func(c *call) error {
		if err := h.loadTenant(c); err != nil {
			return err
		}
		return fn(c)
	})
}

func (h *Handler) tenantForm(fn func(*call) error) http.HandlerFunc {
	return h.authedForm(func(c *call) error {
		if err := h.loadTenant(c); err != nil {
			return err
		}
		return fn(c)
	})
}

func (h *Handler) loadTenant(c *call) error {
	tv, err := h.m.GetTenant(c.r.Context(), c.p, c.r.PathValue("tenant"))
	if err != nil {
		return err
	}
	c.tenant = tv
	return nil
}

// finish renders err, if any, as an error page with the status the API would give it.
func (h *Handler) finish(c *call, err error) {
	if err == nil {
		return
	}
	status, body, internal := problem.Describe(err)
	if errors.Is(err, errBadQuery) {
		status, body = http.StatusBadRequest, v1.Error{Message: err.Error()}
	}
	if internal {
		h.log.Error("console request failed", "method", c.r.Method, "path", c.r.URL.Path, "error", err)
	}
	v := h.view(c, "Error", "")
	v.Data = errorView{Status: status, Message: body.Message, Details: body.Details}
	h.render(c.w, c.r, status, "error", v)
}

// view starts a page's view for the call.
func (h *Handler) view(c *call, title, nav string) *view {
	v := &view{Title: title, Nav: nav, CSRF: c.sess.csrf, User: c.p.UserName}
	if c.tenant.ID != "" {
		tv := c.tenant
		v.Tenant = &tv
	}
	return v
}

// render executes a page into a buffer first, so a template failure is a clean 500.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, page string, v *view) {
	t, ok := h.pages[page]
	if !ok {
		h.log.Error("console: no such page template", "page", page)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", v); err != nil {
		h.log.Error("console: rendering a page", "page", page, "path", r.URL.Path, "error", err)
		http.Error(w, "internal error; the server log has details", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// redirect answers a successful POST (303, so a reload does not repeat the write).
func (c *call) redirect(path string) {
	http.Redirect(c.w, c.r, path, http.StatusSeeOther)
}

// errBadQuery marks a query parameter the console does not accept.
var errBadQuery = errors.New("bad query parameter")

// query returns a bounded query parameter.
func (c *call) query(name string) (string, error) {
	v := c.r.URL.Query().Get(name)
	if len(v) > maxQueryValue {
		return "", fmt.Errorf("%w: %s is longer than %d bytes", errBadQuery, name, maxQueryValue)
	}
	return v, nil
}

// tenantPath is the console path of a page of the call's tenant.
func (c *call) tenantPath(rest string) string {
	return Prefix + "t/" + url.PathEscape(c.tenant.ID) + "/" + strings.TrimPrefix(rest, "/")
}

// parsePages parses each page template together with the layout.
func parsePages() (map[string]*template.Template, error) {
	base, err := template.New("layout").Funcs(funcs).ParseFS(files, "templates/layout.html")
	if err != nil {
		return nil, err
	}
	names, err := fs.Glob(files, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.Must(base.Clone()).ParseFS(files, n)
		if err != nil {
			return nil, err
		}
		pages[name] = t
	}
	return pages, nil
}

var funcs = template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"short":   shortID,
	"pathesc": url.PathEscape,
	"state":   deviceState,
	"num":     num,
	"inc":     func(i int) int { return i + 1 },
	"tokenstate": func(t store.Token, now time.Time) string {
		switch {
		case !t.RevokedAt.IsZero():
			return "revoked"
		case !now.Before(t.ExpiresAt):
			return "expired"
		}
		return "active"
	},
	"invalid":         invalidAttrs,
	"deliveryactions": deliveryActions,
	"tokenform": func(f *form, prefix string, lifetimes []struct{ Value, Label string }) tokenFields {
		return tokenFields{F: f, P: prefix, Lifetimes: lifetimes}
	},
	"groupform": func(f *form, prefix string, feeds, policies []string) groupFields {
		return groupFields{F: f, P: prefix, Feeds: feeds, Policies: policies}
	},
	"fe": func(f *form, name, id string) fieldRef {
		return fieldRef{ID: id, Errs: f.Errs(name)}
	},
}

// invalidAttrs marks an input that has problems (aria-invalid) and names the element that
// says what they are; id is a constant of a template, checked to be safe as an attribute.
func invalidAttrs(f *form, name, id string) template.HTMLAttr {
	if len(f.Errs(name)) == 0 {
		return ""
	}
	if strings.Trim(id, "abcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
		panic("console: unsafe element ID " + id)
	}
	return template.HTMLAttr(` aria-invalid="true" aria-describedby="` + id + `-err"`)
}

// groupFields is what the device group form's inputs need.
type groupFields struct {
	F               *form
	P               string
	Feeds, Policies []string
}

// tokenFields is what a token form's inputs need.
type tokenFields struct {
	F         *form
	P         string
	Lifetimes []struct{ Value, Label string }
}

// fieldRef is one input's problems and the ID of the element that shows them.
type fieldRef struct {
	ID   string
	Errs []string
}

// num formats a figure with at most two decimals.
func num(v float64) string {
	return strconv.FormatFloat(math.Round(v*100)/100, 'f', -1, 64)
}

// deviceState names the console's state of a device: disabled, never attested, failing (its
// latest attestation failed) or attested (its latest attestation passed).
func deviceState(d store.Device) string {
	switch {
	case d.Disabled:
		return stateDisabled
	case d.LastAttestation.IsZero():
		return stateNever
	case d.LastResult == store.AttestationFail:
		return stateFailing
	default:
		return stateAttested
	}
}

// Device states.
const (
	stateAttested = "attested"
	stateFailing  = "failing"
	stateNever    = "never-attested"
	stateDisabled = "disabled"
)

var deviceStates = []string{stateAttested, stateFailing, stateNever, stateDisabled}
