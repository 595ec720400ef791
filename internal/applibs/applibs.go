// Package applibs is the agent's side of the applibs API: for each running application, an
// HTTP server on a Unix socket of its own that the sandbox mounts at /run/rampart/applibs.sock
// (docs/APPLIBS.md). It decodes each call strictly and within named bounds, checks it against
// the capabilities the application's manifest grants (a missing one is a 403 naming it, the
// equivalent of EACCES), and carries it out on the board (internal/board), the application's
// log, or its certificate files. The wire types are the public SDK's (package applibs at the
// module root).
//
// Trust: it trusts the manifest it is given (verified at install) and the board; it trusts
// nothing the application sends. Only the application's sandbox has the socket, which is owned
// by the application's uid, mode 0600, in a directory only root can enter, and a connection
// from any other uid is closed; every request is bounded in size and time and the connections
// per application are capped.
package applibs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	sdk "github.com/rampart-iot/rampart/applibs"
	"github.com/rampart-iot/rampart/internal/board"
	"github.com/rampart-iot/rampart/internal/deferral"
	"github.com/rampart-iot/rampart/manifest"
	"golang.org/x/sys/unix"
)

// SocketPath is where the sandbox mounts an application's socket; EnvSocket=SocketPath is in
// its environment.
const SocketPath = sdk.DefaultSocket

// SocketName is the socket's name in the application's directory under HostConfig.Dir.
const SocketName = "applibs.sock"

// Bounds on each application's server.
const (
	// MaxConns bounds an application's concurrent connections.
	MaxConns = 8
	// ReadTimeout and WriteTimeout bound each request and response.
	ReadTimeout  = 10 * time.Second
	WriteTimeout = 10 * time.Second
	// IdleTimeout closes idle keep-alive connections.
	IdleTimeout = 60 * time.Second
	// MaxHeaderBytes bounds a request's headers.
	MaxHeaderBytes = 8 << 10
)

// ErrNotAvailable: the call's resource does not exist yet (device authentication before the
// device has attested and been issued the application's certificate).
var ErrNotAvailable = errors.New("not available")

// PermissionError refuses a call that needs a capability the manifest does not grant.
type PermissionError struct {
	// Capability is the manifest key ("I2cMaster").
	Capability string
	// What is the peripheral or action asked for ("ISU2", "GPIO 8"); "" for a capability
	// without values.
	What string
}

func (e *PermissionError) Error() string {
	if e.What == "" {
		return fmt.Sprintf("permission denied: the application manifest does not grant %s", e.Capability)
	}
	return fmt.Sprintf("permission denied: the application manifest does not grant %s %s", e.Capability, e.What)
}

// Certificates gives an application's own device-authentication certificate; CertDir reads
// the agent's attestation store.
type Certificates interface {
	// AppCertificate returns the component's certificate, key and chain in PEM, or an error
	// wrapping ErrNotAvailable when it has none yet.
	AppCertificate(componentID string) (sdk.Certificate, error)
}

// HostConfig configures a Host.
type HostConfig struct {
	// Dir holds one directory per application with its socket; it is made with mode 0700.
	// A Unix socket's path is at most 107 bytes: keep Dir short (the agent's run directory).
	Dir string
	// Board is the device's board.
	Board board.Board
	// Certificates gives applications their certificates; nil: none is ever available.
	Certificates Certificates
	// SysEvents gives applications system events and update deferral; nil: applications
	// that ask get no events and cannot defer.
	SysEvents SysEvents
	// Logger logs the servers' own failures (never an application's messages); nil discards.
	Logger *slog.Logger
}

// SysEvents is the device's update-deferral coordinator (*deferral.Coordinator).
type SysEvents interface {
	Register(component string, canDefer bool) (unregister func())
	Events(ctx context.Context, after uint64, wait time.Duration) []deferral.Event
	Defer(component string, t deferral.Type, minutes int) (deferral.Event, error)
	Resume(component string, t deferral.Type) error
}

// Host serves the applibs API to every running application.
type Host struct {
	cfg  HostConfig
	hw   *manifest.HardwareDefinitions
	mail mailboxes
}

// NewHost checks cfg and loads the board's hardware definitions.
func NewHost(cfg HostConfig) (*Host, error) {
	if cfg.Dir == "" || !filepath.IsAbs(cfg.Dir) {
		return nil, fmt.Errorf("applibs: Dir %q: want an absolute path", cfg.Dir)
	}
	if cfg.Board == nil {
		return nil, errors.New("applibs: Board is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	hw, err := manifest.LoadHardwareDefinitions(cfg.Board.Hardware())
	if err != nil {
		return nil, fmt.Errorf("applibs: board %s: %w", cfg.Board.Name(), err)
	}
	return &Host{cfg: cfg, hw: hw}, nil
}

// App is one run of an application.
type App struct {
	ComponentID string
	// Manifest is its verified manifest; "$NAME" references are resolved with the board's
	// hardware definitions.
	Manifest *manifest.Manifest
	// UID is the uid it runs as, which alone may connect; 0 skips the check (tests).
	UID uint32
	// Log receives its log messages (the agent's per-application log).
	Log io.Writer
	// StorageUsed, if set, says how many KiB of its MutableStorage are used.
	StorageUsed func() (int64, error)
}

// Open starts a server for app on a fresh socket and returns the socket's host path and a
// function that stops the server and removes the socket.
func (h *Host) Open(app App) (socket string, stop func(), err error) {
	if app.Manifest == nil {
		return "", nil, errors.New("applibs: no manifest")
	}
	s, err := newServer(h, app)
	if err != nil {
		return "", nil, err
	}
	dir := filepath.Join(h.cfg.Dir, app.ComponentID)
	if !validID(app.ComponentID) {
		return "", nil, fmt.Errorf("applibs: component ID %q: want 1 to 64 letters, digits and '-'", app.ComponentID)
	}
	socket = filepath.Join(dir, SocketName)
	if len(socket) > 107 {
		return "", nil, fmt.Errorf("applibs: socket path %s is longer than 107 bytes", socket)
	}
	if err := os.MkdirAll(h.cfg.Dir, 0o700); err != nil {
		return "", nil, fmt.Errorf("applibs: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", nil, fmt.Errorf("applibs: %w", err)
	}
	_ = os.Remove(socket)
	ln, err := net.Listen("unix", socket)
	if err != nil {
		return "", nil, fmt.Errorf("applibs: %w", err)
	}
	err = os.Chmod(socket, 0o600)
	if err == nil && app.UID != 0 {
		err = os.Chown(socket, int(app.UID), int(app.UID))
	}
	if err != nil {
		ln.Close()
		return "", nil, fmt.Errorf("applibs: %w", err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(true)
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: ReadTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(h.cfg.Logger.Handler(), slog.LevelDebug),
	}
	lim := &limitListener{Listener: ln, sem: make(chan struct{}, MaxConns), uid: app.UID, log: h.cfg.Logger}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lim)
	}()
	unregister := func() {}
	if h.cfg.SysEvents != nil && s.caps.SystemEventNotifications {
		unregister = h.cfg.SysEvents.Register(app.ComponentID, s.caps.SoftwareUpdateDeferral)
	}
	closeMailbox := func() {}
	if len(s.caps.AllowedApplicationConnections) > 0 {
		closeMailbox = h.mail.open(app.ComponentID, s.caps.AllowedApplicationConnections)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			unregister()
			closeMailbox()
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil {
				_ = srv.Close()
			}
			<-done
			_ = os.Remove(socket)
			_ = os.Remove(dir)
		})
	}
	return socket, stop, nil
}

func validID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	return strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") == ""
}

// limitListener caps concurrent connections and closes those from another uid.
type limitListener struct {
	net.Listener
	sem chan struct{}
	uid uint32
	log *slog.Logger
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		l.sem <- struct{}{}
		c, err := l.Listener.Accept()
		if err != nil {
			<-l.sem
			return nil, err
		}
		if l.uid != 0 {
			if uid, ok := peerUID(c); !ok || uid != l.uid {
				l.log.Warn("applibs: closing a connection from another uid", "uid", uid, "want", l.uid)
				c.Close()
				<-l.sem
				continue
			}
		}
		return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
	}
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

func peerUID(c net.Conn) (uint32, bool) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return 0, false
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return 0, false
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) { cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) }); err != nil || cerr != nil {
		return 0, false
	}
	return cred.Uid, true
}
