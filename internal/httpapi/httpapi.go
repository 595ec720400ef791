// Package httpapi serves the security service's REST API under /v1. Each handler decodes its
// request strictly, calls the management plane (which authorizes and acts), and renders the
// result; errors become statuses in one place (writeError, through problem.Describe). The route
// table in routes.go is the single description of the API: it drives the router, the OpenAPI
// document at /v1/openapi.json, and the tests that walk every endpoint.
//
// Trust: everything in a request is hostile. Bodies are size-limited per route and decoded
// strictly (unknown fields, duplicate keys and trailing data are errors); query parameters
// not declared for a route are errors; bearer tokens are checked on every request.
package httpapi

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/attestsvc"
	"github.com/rampart-iot/rampart/internal/authz"
	"github.com/rampart-iot/rampart/internal/blob"
	"github.com/rampart-iot/rampart/internal/checkin"
	"github.com/rampart-iot/rampart/internal/manage"
	"github.com/rampart-iot/rampart/internal/problem"
	"github.com/rampart-iot/rampart/internal/push"
	"github.com/rampart-iot/rampart/internal/ratelimit"
)

// Body limits. Most requests are small; a bulk claim carries up to 1000 enrollment records.
const (
	DefaultBodyLimit   = 64 << 10
	BulkClaimBodyLimit = 24 << 20
)

// Config configures the API handler.
type Config struct {
	Manager  *manage.Manager
	Packages PackageStore       // serves image packages for download
	Attest   *attestsvc.Service // the device-facing endpoints
	CheckIn  *checkin.Service   // device check-ins
	Push     *push.Hub          // devices' push channels
	// DeviceLimit bounds the unauthenticated device endpoints per client address; nil for
	// no limit.
	DeviceLimit *ratelimit.Limiter
	// ReportLimit bounds each device's error-report uploads, keyed by device ID; nil for no
	// limit.
	ReportLimit *ratelimit.Limiter
	// AuthFailureLimit bounds failed API-token authentications per client address: once an
	// address has spent it, its requests are refused with 429 before any token is checked,
	// so tokens cannot be guessed at speed. nil for no limit.
	AuthFailureLimit *ratelimit.Limiter
	Logger           *slog.Logger          // default discards
	Registry         prometheus.Registerer // where request metrics go; nil for none
	Now              func() time.Time      // default time.Now
}

// Handler serves /v1.
type Handler struct {
	m        *manage.Manager
	packages PackageStore
	att      *attestsvc.Service
	checkin  *checkin.Service
	push     *push.Hub
	limit    *ratelimit.Limiter
	reports  *ratelimit.Limiter
	authFail *ratelimit.Limiter
	log      *slog.Logger
	now      func() time.Time
	metrics  *metrics
	router   chi.Router
	openapi  []byte
}

// New returns the /v1 API handler.
func New(cfg Config) (*Handler, error) {
	h := &Handler{m: cfg.Manager, packages: cfg.Packages, att: cfg.Attest, checkin: cfg.CheckIn, push: cfg.Push, limit: cfg.DeviceLimit, reports: cfg.ReportLimit, authFail: cfg.AuthFailureLimit, log: cfg.Logger, now: cfg.Now}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	var err error
	if h.metrics, err = newMetrics(cfg.Registry); err != nil {
		return nil, err
	}
	if h.openapi, err = OpenAPI(); err != nil {
		return nil, err
	}
	r := chi.NewRouter()
	r.NotFound(func(w http.ResponseWriter, req *http.Request) {
		h.writeError(w, req, problem.New(v1.CodeNotFound, "no such endpoint: %s %s", req.Method, req.URL.Path))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, req *http.Request) {
		h.writeError(w, req, problem.New(v1.CodeMethodNotAllowed, "method %s is not allowed on %s", req.Method, req.URL.Path))
	})
	for _, rt := range routes() {
		r.Method(rt.method, rt.path, h.serve(rt))
	}
	h.router = r
	return h, nil
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	h.router.ServeHTTP(w, r)
}

// PackageStore opens stored image packages by their SHA-256 (lowercase hex): a blob.Store.
type PackageStore interface {
	Open(ctx context.Context, digest string) (io.ReadSeekCloser, blob.Info, error)
}

// call is one request being served.
type call struct {
	h      *Handler
	r      *http.Request
	rt     *route
	p      *authz.Principal
	dev    *attestsvc.DeviceIdentity // set on device (mutual TLS) routes
	status int                       // overrides the route's success status when set
}

// rawResponse is a response body that is not JSON.
type rawResponse struct {
	contentType string
	body        []byte
}

func (c *call) param(name string) string { return chi.URLParam(c.r, name) }

// serve wraps a route's handler with authentication, query checking, rendering and metrics.
func (h *Handler) serve(rt route) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := h.now()
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if v := recover(); v != nil {
				h.log.Error("panic serving request", "route", rt.path, "panic", v)
				h.writeError(sw, r, errors.New("panic"))
			}
			h.metrics.observe(rt.method, rt.path, sw.status, h.now().Sub(start))
		}()
		c := &call{h: h, r: r, rt: &rt}
		if rt.public && strings.HasPrefix(rt.path, "/v1/device/") {
			if ok, wait := h.limit.Allow(clientAddr(r)); !ok {
				sw.Header().Set("Retry-After", strconv.Itoa(int(wait/time.Second)+1))
				h.writeError(sw, r, problem.New(v1.CodeRateLimited, "too many device requests from %s; retry after %s", clientAddr(r), wait.Round(time.Millisecond)))
				return
			}
		}
		switch {
		case rt.device:
			var certs []*x509.Certificate
			if r.TLS != nil {
				certs = r.TLS.PeerCertificates
			}
			d, err := h.att.Authenticate(r.Context(), certs)
			if err != nil {
				h.writeError(sw, r, err)
				return
			}
			c.dev = d
			if rt.perDevice {
				if ok, wait := h.reports.Allow(d.Device.ID); !ok {
					sw.Header().Set("Retry-After", strconv.Itoa(int(wait/time.Second)+1))
					h.writeError(sw, r, problem.New(v1.CodeRateLimited, "device %s uploads too often; retry after %s", d.Device.ID, wait.Round(time.Second)))
					return
				}
			}
		case !rt.public:
			if ex, wait := h.authFail.Exhausted(clientAddr(r)); ex {
				sw.Header().Set("Retry-After", strconv.Itoa(int(wait/time.Second)+1))
				h.writeError(sw, r, problem.New(v1.CodeRateLimited, "too many failed authentications from %s; retry after %s", clientAddr(r), wait.Round(time.Second)))
				return
			}
			p, err := h.authenticate(r)
			if err != nil {
				if pe := (*problem.Error)(nil); errors.As(err, &pe) && pe.Code == v1.CodeUnauthenticated {
					h.authFail.Allow(clientAddr(r))
				}
				sw.Header().Set("WWW-Authenticate", `Bearer realm="rampart"`)
				h.writeError(sw, r, err)
				return
			}
			c.p = p
		}
		if err := checkQuery(r, &rt); err != nil {
			h.writeError(sw, r, err)
			return
		}
		body, err := rt.handle(c)
		if err != nil {
			h.writeError(sw, r, err)
			return
		}
		status := rt.status
		if c.status != 0 {
			status = c.status
		}
		if st, ok := body.(stream); ok {
			st(sw, r)
			return
		}
		if ct, ok := body.(content); ok {
			defer ct.r.Close()
			sw.Header().Set("Content-Type", "application/octet-stream")
			http.ServeContent(sw, r, ct.name, ct.modTime, ct.r)
			return
		}
		if raw, ok := body.(rawResponse); ok {
			sw.Header().Set("Content-Type", raw.contentType)
			sw.WriteHeader(status)
			_, _ = sw.Write(raw.body)
			return
		}
		if raw, ok := body.([]byte); ok {
			sw.Header().Set("Content-Type", "application/json")
			sw.WriteHeader(status)
			_, _ = sw.Write(raw)
			return
		}
		if body == nil {
			sw.WriteHeader(status)
			return
		}
		writeJSON(sw, status, body)
	}
}

// clientAddr is the client's IP address, the rate limits' key. Behind a proxy it is the
// proxy's: forwarded headers are not trusted.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// authenticate checks the bearer token.
func (h *Handler) authenticate(r *http.Request) (*authz.Principal, error) {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return nil, problem.New(v1.CodeUnauthenticated, "authentication required: send an API token as 'Authorization: Bearer <token>'")
	}
	scheme, secret, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return nil, problem.New(v1.CodeUnauthenticated, "unsupported authorization scheme; send 'Authorization: Bearer <token>'")
	}
	return h.m.Authenticate(r.Context(), strings.TrimSpace(secret))
}

// writeError renders any error in the API's error shape. It is the one place errors become
// statuses.
func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, body, internal := problem.Describe(err)
	if internal {
		h.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "error", err)
	}
	writeJSON(w, status, v1.ErrorResponse{Error: body})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		b = []byte(`{"error":{"code":"internal","message":"cannot encode the response"}}`)
		status = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection (flushing, deadlines).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rampart_api_requests_total",
			Help: "API requests served, by route, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "rampart_api_request_duration_seconds",
			Help:    "Time to serve API requests, by route and method.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"route", "method"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.requests, m.duration} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

func (m *metrics) observe(method, route string, status int, d time.Duration) {
	if status == 0 {
		status = http.StatusOK
	}
	m.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(route, method).Observe(d.Seconds())
}
