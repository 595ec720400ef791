// Package localapi is the running agent's local control API: HTTP over a Unix socket in the
// agent's run directory, which the local `rampart-agent app` and `sideload` commands use to
// reach it. It lists, stops and starts applications, and, on a device in development mode only,
// installs (sideloads) and deletes application packages.
//
// Trust: the socket is created with mode 0600 in a directory only the agent's user can enter,
// so only that user (root on a device) can connect; the API trusts any caller that can. A
// sideloaded package is still verified (signature by a trusted key: the development key only
// in development mode) and installed by the same installer as a deployment. Requests are
// bounded.
package localapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	v1 "github.com/rampart-iot/rampart/api/v1"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// SocketName is the socket's name in the agent's run directory.
const SocketName = "agent.sock"

// MaxPackage bounds a sideloaded package.
const MaxPackage = 1 << 30

// App is one application, as `rampart-agent app list` shows it.
type App struct {
	ComponentID string    `json:"component_id"`
	Name        string    `json:"name"`
	ImageID     string    `json:"image_id"`
	Version     string    `json:"version"`
	State       string    `json:"state"`
	Restarts    int       `json:"restarts"`
	LastExit    string    `json:"last_exit,omitempty"`
	LastExitAt  time.Time `json:"last_exit_at,omitzero"`
	Error       string    `json:"error,omitempty"`
}

// Agent is what the API controls.
type Agent interface {
	Apps() []App
	StopApp(ctx context.Context, componentID string) error
	StartApp(ctx context.Context, componentID string) error
	// Sideload installs the application package at path; ErrNotDevelopment outside
	// development mode.
	Sideload(ctx context.Context, path string) (App, error)
	// DeleteApp stops and removes an application and its data; ErrNotDevelopment outside
	// development mode.
	DeleteApp(ctx context.Context, componentID string) error
	// Events lists the error-report events queued on the device, oldest first, and how many
	// the queue has dropped in all.
	Events() ([]v1.ReportEvent, int64)
	// Quota says how much of its MutableStorage a running application uses; ErrNotFound for
	// an application that is not installed or has no MutableStorage.
	Quota(componentID string) (Quota, error)
}

// Quota is what `rampart-agent app show-quota` shows, in KiB.
type Quota struct {
	ComponentID string `json:"component_id"`
	QuotaKB     int    `json:"quota_kb"`
	UsedKB      int64  `json:"used_kb"`
}

// Events is what `rampart-agent events list` shows.
type Events struct {
	Events  []v1.ReportEvent `json:"events"`
	Dropped int64            `json:"dropped"`
}

// Errors an Agent returns that the API maps to statuses.
var (
	ErrNotDevelopment = errors.New("the device is not in development mode: run the agent with --development to sideload")
	ErrNotFound       = errors.New("no such application")
)

// errorBody is every error's shape.
type errorBody struct {
	Error string `json:"error"`
}

// Server serves the API.
type Server struct {
	agent  Agent
	log    *slog.Logger
	spool  string
	srv    *http.Server
	ln     net.Listener
	socket string
}

// Listen creates the socket in runDir (replacing a stale one) and returns a Server; Serve runs
// it. spool is a directory for sideloaded packages while they are installed. board, if not nil,
// serves /v1/board (the emulated board's state and buttons).
func Listen(runDir, spool string, agent Agent, board http.Handler, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(runDir, 0o700); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(spool, 0o700); err != nil {
		return nil, err
	}
	p := filepath.Join(runDir, SocketName)
	_ = os.Remove(p)
	ln, err := net.Listen("unix", p)
	if err != nil {
		return nil, fmt.Errorf("local API socket: %w", err)
	}
	if err := os.Chmod(p, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	s := &Server{agent: agent, log: log, spool: spool, ln: ln, socket: p}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/apps", s.list)
	mux.HandleFunc("POST /v1/apps/{component}/stop", s.stop)
	mux.HandleFunc("POST /v1/apps/{component}/start", s.start)
	mux.HandleFunc("GET /v1/apps/{component}/quota", s.quota)
	mux.HandleFunc("POST /v1/sideload", s.sideload)
	mux.HandleFunc("DELETE /v1/sideload/{component}", s.delete)
	mux.HandleFunc("GET /v1/events", s.events)
	if board != nil {
		mux.Handle("/v1/board", board)
		mux.Handle("/v1/board/", board)
	}
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return s, nil
}

// Serve serves until ctx ends, then closes the socket.
func (s *Server) Serve(ctx context.Context) error {
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.srv.Shutdown(sctx)
	}()
	err := s.srv.Serve(s.ln)
	_ = os.Remove(s.socket)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) fail(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrNotDevelopment):
		status = http.StatusForbidden
	case errors.Is(err, ErrNotFound):
		status = http.StatusNotFound
	default:
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			status = http.StatusRequestEntityTooLarge
		} else {
			status = http.StatusUnprocessableEntity
		}
	}
	writeJSON(w, status, errorBody{Error: err.Error()})
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	apps := s.agent.Apps()
	if apps == nil {
		apps = []App{}
	}
	writeJSON(w, http.StatusOK, apps)
}

func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	evs, dropped := s.agent.Events()
	if evs == nil {
		evs = []v1.ReportEvent{}
	}
	writeJSON(w, http.StatusOK, Events{Events: evs, Dropped: dropped})
}

func (s *Server) quota(w http.ResponseWriter, r *http.Request) {
	q, err := s.agent.Quota(r.PathValue("component"))
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, q)
}

func (s *Server) stop(w http.ResponseWriter, r *http.Request) {
	if err := s.agent.StopApp(r.Context(), r.PathValue("component")); err != nil {
		s.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) start(w http.ResponseWriter, r *http.Request) {
	if err := s.agent.StartApp(r.Context(), r.PathValue("component")); err != nil {
		s.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) sideload(w http.ResponseWriter, r *http.Request) {
	f, err := os.CreateTemp(s.spool, "sideload-*.rampkg")
	if err != nil {
		s.fail(w, err)
		return
	}
	defer os.Remove(f.Name())
	_, err = io.Copy(f, http.MaxBytesReader(w, r.Body, MaxPackage))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		s.fail(w, fmt.Errorf("receiving the package: %w", err))
		return
	}
	app, err := s.agent.Sideload(r.Context(), f.Name())
	if err != nil {
		s.fail(w, err)
		return
	}
	s.log.Info("sideloaded application", "component", app.ComponentID, "name", app.Name, "version", app.Version)
	writeJSON(w, http.StatusOK, app)
}

func (s *Server) delete(w http.ResponseWriter, r *http.Request) {
	if err := s.agent.DeleteApp(r.Context(), r.PathValue("component")); err != nil {
		s.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// Client talks to a running agent.
type Client struct {
	hc *http.Client
}

// Dial returns a client of the agent whose run directory is runDir.
func Dial(runDir string) *Client {
	p := filepath.Join(runDir, SocketName)
	return &Client{hc: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			c, err := d.DialContext(ctx, "unix", p)
			if err != nil {
				return nil, fmt.Errorf("is the agent running? cannot reach it at %s: %w", p, err)
			}
			return c, nil
		}}}}
}

func (c *Client) do(ctx context.Context, method, path string, body io.Reader, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://agent"+path, body)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e errorBody
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return errors.New(e.Error)
		}
		return fmt.Errorf("the agent answered %s", resp.Status)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// HTTP is the client's HTTP client, which reaches the agent over its socket (base URL
// "http://agent"), for the other handlers the local API serves.
func (c *Client) HTTP() *http.Client { return c.hc }

// Apps lists the applications.
func (c *Client) Apps(ctx context.Context) ([]App, error) {
	var out []App
	return out, c.do(ctx, "GET", "/v1/apps", nil, &out)
}

// Events lists the error-report events queued on the device.
func (c *Client) Events(ctx context.Context) (Events, error) {
	var out Events
	return out, c.do(ctx, "GET", "/v1/events", nil, &out)
}

// Quota says how much of its MutableStorage an application uses.
func (c *Client) Quota(ctx context.Context, component string) (Quota, error) {
	var out Quota
	return out, c.do(ctx, "GET", "/v1/apps/"+url.PathEscape(component)+"/quota", nil, &out)
}

// StopApp stops an application until StartApp.
func (c *Client) StopApp(ctx context.Context, component string) error {
	return c.do(ctx, "POST", "/v1/apps/"+url.PathEscape(component)+"/stop", nil, nil)
}

// StartApp starts a stopped application.
func (c *Client) StartApp(ctx context.Context, component string) error {
	return c.do(ctx, "POST", "/v1/apps/"+url.PathEscape(component)+"/start", nil, nil)
}

// Sideload installs the package file at path.
func (c *Client) Sideload(ctx context.Context, pkg []byte) (App, error) {
	var out App
	return out, c.do(ctx, "POST", "/v1/sideload", bytes.NewReader(pkg), &out)
}

// DeleteApp removes an application and its data.
func (c *Client) DeleteApp(ctx context.Context, component string) error {
	return c.do(ctx, "DELETE", "/v1/sideload/"+url.PathEscape(component), nil, nil)
}
