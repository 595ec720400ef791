// Package apprun is the agent's application supervisor: it runs the current image of every
// installed application in a sandbox of its own, restarts an application that exits with
// exponential backoff, rolls an application back to its previous image when a new image
// crashes as it starts, stops every application (SIGTERM, then SIGKILL after the grace period)
// when the agent stops, and keeps each application's status and a bounded log of its output for
// `rampart-agent app list` and check-in reports. It owns one file, Config.StateDir/apprun.json:
// the uid allocated to each component, which applications `app stop` stopped, and which image
// of each proved healthy.
//
// Trust: apprun trusts appinstall (its Apps), which installs only verified images and whose
// manifests it reads to build each sandbox; it trusts its own state file but parses it
// strictly. It trusts nothing an application does: an application can only exit, and how it
// exits is reported by the sandbox, not by the application. Network access is given, when
// Config.Network is set, only as the manifest grants it (internal/netpolicy). With Config.Applibs,
// each run gets its own applibs socket, whose server checks every call against the manifest
// (internal/applibs). Peripheral device nodes are not given to applications yet
// (docs/APPS-RUN.md). With Config.Denials, what Landlock refuses an application is reported as
// coalesced events, attributed by the pid of the sandbox that created the denying domain, and
// so is what the sandbox's seccomp argument filter refuses it (a raw socket), attributed by
// the application's uid; with Config.NetworkDenials, so is what an application's network
// refuses it.
package apprun

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rampart-iot/rampart/internal/appinstall"
	"github.com/rampart-iot/rampart/internal/applibs"
	"github.com/rampart-iot/rampart/internal/netpolicy"
	"github.com/rampart-iot/rampart/internal/sandbox"
	"github.com/rampart-iot/rampart/manifest"
)

// Defaults for Config.
const (
	DefaultUIDMin       = 100000
	DefaultUIDMax       = 165535
	DefaultBackoffMin   = 1 * time.Second
	DefaultBackoffMax   = 5 * time.Minute
	DefaultCrashLimit   = 3
	DefaultHealthyAfter = 30 * time.Second
	DefaultLogSize      = 64 << 10
)

// DefaultLimits are the cgroup limits of every application when Config.Limits is zero.
var DefaultLimits = sandbox.Limits{MemoryBytes: 64 << 20, Pids: 64, MilliCPU: 500}

// Apps is what the supervisor needs of the installer; *appinstall.Apps has it.
type Apps interface {
	List() []appinstall.Installed
	Path(imageID string) (dir string, ok bool)
	DataDir(componentID string) (dir string, ok bool)
	Rollback(ctx context.Context, componentID, reason string) (appinstall.RolledBack, error)
}

var _ Apps = (*appinstall.Apps)(nil)

// Config configures a Supervisor. Apps and StateDir are required; every other zero field
// takes its default.
type Config struct {
	// Apps is the installed applications.
	Apps Apps
	// StateDir holds the supervisor's state file (StateFile). It must exist.
	StateDir string
	// UIDMin and UIDMax bound the uids (and gids: each application's gid is its uid) given to
	// applications, inclusive; defaults DefaultUIDMin and DefaultUIDMax. The range must hold no
	// other user of the device. A uid, once given to a component, stays its own.
	UIDMin, UIDMax uint32
	// Logger is nil for no logging.
	Logger *slog.Logger
	// Events, if set, receives every event (see Event). It is called from the supervisor's
	// goroutines, one event at a time per application (EventDenied from a goroutine of its
	// own), never with a lock held: it must be safe for concurrent use and should not block
	// for long.
	Events func(Event)
	// Now and After are the clock (defaults time.Now and time.After): Now stamps events and
	// measures how long an application ran; After times backoff and the healthy mark.
	Now   func() time.Time
	After func(time.Duration) <-chan time.Time
	// Rand returns a number in [0, 1) for backoff jitter; default math/rand/v2's Float64.
	Rand func() float64
	// BackoffMin and BackoffMax bound the delay before a restart (defaults DefaultBackoffMin,
	// DefaultBackoffMax). The n-th restart in a row waits BackoffMin×2^(n-1), capped at
	// BackoffMax, less up to half of it at random (jitter).
	BackoffMin, BackoffMax time.Duration
	// HealthyAfter is how long an application must run without exiting to be healthy
	// (default DefaultHealthyAfter). A healthy run resets the backoff, and ends a new image's
	// probation for good.
	HealthyAfter time.Duration
	// CrashLimit is how many failed starts in a row of an image on probation make the
	// supervisor roll the component back to its previous image (default DefaultCrashLimit).
	CrashLimit int
	// Limits are every application's cgroup limits; zero means DefaultLimits.
	Limits sandbox.Limits
	// StopGrace is the time between SIGTERM and SIGKILL; 0 means sandbox.DefaultStopGrace.
	StopGrace time.Duration
	// LogSize bounds each application's kept output, in bytes (default DefaultLogSize).
	LogSize int
	// CgroupParent is passed to the sandbox (sandbox.Spec.CgroupParent).
	CgroupParent string
	// Spec, if set, may change each sandbox's spec before it starts (tests; device-specific
	// additions). It runs after the spec is built from the manifest.
	Spec func(in appinstall.Installed, spec *sandbox.Spec)
	// Network, if set, gives each application whose manifest grants network access
	// (AllowedConnections, AllowedTcpServerPorts or AllowedUdpServerPorts) its link and
	// ruleset for each run (*netpolicy.Manager; docs/SANDBOX.md, "Network"). Nil leaves every
	// application with loopback only, as does a manifest that grants none.
	Network Network
	// Applibs, if set, serves the applibs API to each run of each application on a socket of
	// its own, mounted in its sandbox at applibs.SocketPath (*applibs.Host; docs/APPLIBS.md).
	// Nil: applications get no applibs socket.
	Applibs Applibs
	// Denials, if set, is read while Run runs for the kernel's Landlock denials and seccomp
	// refusals (*kernelaudit.Reader); each denial by an application's domain, and each
	// refusal of a call by an application's uid, becomes an EventDenied, at most one per
	// application and set of blockers (system call) per DenialWindow (default
	// DefaultDenialWindow), which counts the others. Nil: they are not reported.
	Denials      Denials
	DenialWindow time.Duration
	// NetworkDenials, if set, is read while Run runs for what the applications' networks
	// refused them (*netpolicy.Manager, the same as Network): each becomes an EventDenied
	// (By "network" or "dns"), at most one per application, kind and destination or name per
	// DenialWindow, which counts the others. Nil: they are not reported.
	NetworkDenials NetworkDenials
}

// Applibs serves the applibs API to one run of an application; *applibs.Host has it. stop is
// called once the run is over.
type Applibs interface {
	Open(app applibs.App) (socket string, stop func(), err error)
}

var _ Applibs = (*applibs.Host)(nil)

// Network sets up the network of one run of an application in its sandbox's namespace, and
// tears it down after; *netpolicy.Manager has it.
type Network interface {
	Setup(ctx context.Context, netnsPath, componentID string, caps manifest.Capabilities) (teardown func() error, err error)
}

var _ Network = (*netpolicy.Manager)(nil)

// Errors.
var (
	ErrNotInstalled  = errors.New("no such application is installed")
	ErrUIDsExhausted = errors.New("no uid is left in the range")
)

// State is where an application stands.
type State string

// The states.
const (
	// StateRunning: its sandbox is up.
	StateRunning State = "running"
	// StateCrashed: its last run failed (a nonzero exit status, a signal, or a failed start)
	// and it waits out its backoff before it is started again (AppStatus.NextStart).
	StateCrashed State = "crashed"
	// StateBackoff: it exited with status 0 and waits out its backoff before it is started
	// again (AppStatus.NextStart).
	StateBackoff State = "backoff"
	// StateStopped: it is not running because the platform stopped it (`app stop`, the agent
	// stopping) or has not started it.
	StateStopped State = "stopped"
	// StateFailed: it cannot be started (AppStatus.Error says why) and is not retried until
	// the next Reconcile or Start.
	StateFailed State = "failed"
)

// AppStatus is one application as the supervisor sees it.
type AppStatus struct {
	ComponentID string `json:"componentId"`
	Name        string `json:"name"`
	ImageID     string `json:"imageId"`
	Version     string `json:"version"`
	State       State  `json:"state"`
	// UID is the application's uid and gid.
	UID uint32 `json:"uid,omitempty"`
	// Pid is the application's process ID on the host while it runs.
	Pid int `json:"pid,omitempty"`
	// Since is when it entered State.
	Since time.Time `json:"since,omitzero"`
	// Restarts counts the starts of the current image after it exited, since this
	// supervisor started it.
	Restarts int `json:"restarts"`
	// LastExit is how its last run ended, at LastExitAt; nil if it has not exited.
	LastExit   *sandbox.Exit `json:"lastExit,omitempty"`
	LastExitAt time.Time     `json:"lastExitAt,omitzero"`
	// NextStart is when it will be started again, in StateCrashed and StateBackoff.
	NextStart time.Time `json:"nextStart,omitzero"`
	// Error is why its last start failed, or why it cannot be started (StateFailed).
	Error string `json:"error,omitempty"`
}

// EventKind names an event.
type EventKind string

// The events.
const (
	// EventExited: the application exited or was stopped (Exit), or its sandbox could not be
	// started (Error). Backoff is the delay before it starts again, zero if it does not.
	EventExited EventKind = "app-exited"
	// EventRolledBack: the new image (FromImageID, FromVersion) crashed as it started
	// CrashLimit times in a row, and the component went back to its previous image (ImageID,
	// Version), which starts at once. Reason is what the installer recorded.
	EventRolledBack EventKind = "app-rolled-back"
	// EventRollbackFailed: a rollback was due but the installer refused it (Error); the new
	// image keeps restarting with backoff.
	EventRollbackFailed EventKind = "app-rollback-failed"
	// EventFailed: the application cannot be started (Error), for example because it is a
	// real-time capable application or no uid is left.
	EventFailed EventKind = "app-failed"
	// EventDenied: the application's sandbox refused it something (Denied), Denied.Count
	// times since the last such event. The application is not stopped: it got an error.
	EventDenied EventKind = "app-denied"
	// EventDenialsLost: the kernel dropped records of denials meant for Config.Denials, Lost
	// times in the DenialWindow before the event (its reader fell behind: a flood), so
	// denials of any application may have gone unreported. It names no application.
	EventDenialsLost EventKind = "denials-lost"
)

// Event is a structured event for failure reports.
type Event struct {
	Kind        EventKind `json:"kind"`
	Time        time.Time `json:"time"`
	ComponentID string    `json:"componentId"`
	Name        string    `json:"name"`
	// ImageID and Version are the image the event is about (after a rollback: the image
	// rolled back to).
	ImageID string `json:"imageId"`
	Version string `json:"version"`
	// Exit is how the application ended; nil if it never started.
	Exit *sandbox.Exit `json:"exit,omitempty"`
	// Uptime is how long it ran.
	Uptime time.Duration `json:"uptime,omitempty"`
	// Restarts is AppStatus.Restarts at the time of the event.
	Restarts int `json:"restarts"`
	// Backoff is the delay before the next start (EventExited).
	Backoff time.Duration `json:"backoff,omitempty"`
	// FromImageID and FromVersion are the image rolled back from (EventRolledBack,
	// EventRollbackFailed).
	FromImageID string `json:"fromImageId,omitempty"`
	FromVersion string `json:"fromVersion,omitempty"`
	Reason      string `json:"reason,omitempty"`
	Error       string `json:"error,omitempty"`
	// Denied is what was refused (EventDenied).
	Denied *Denied `json:"denied,omitempty"`
	// Lost is how many times denials were lost (EventDenialsLost).
	Lost int `json:"lost,omitempty"`
}

// Supervisor runs the installed applications. It is safe for concurrent use.
type Supervisor struct {
	cfg Config
	log *slog.Logger

	// op is held by Reconcile, Start, Stop, a rollback and Run's shutdown: one change at a
	// time. It is a channel so that a runner can give up waiting when it is stopped.
	op chan struct{}

	mu      sync.Mutex // guards everything below
	st      *state
	running bool
	runCtx  context.Context
	runners map[string]*runner
	status  map[string]*AppStatus
	logs    map[string]*ring
	procs   map[int]proc // each application's sandbox init, by host pid, for Denials
}

// New returns a supervisor for cfg; it reads the state file but starts nothing until Run.
func New(cfg Config) (*Supervisor, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	st, err := readState(statePath(cfg.StateDir))
	if err != nil {
		return nil, err
	}
	return &Supervisor{
		cfg:     cfg,
		log:     cfg.Logger,
		op:      make(chan struct{}, 1),
		st:      st,
		runners: map[string]*runner{},
		status:  map[string]*AppStatus{},
		logs:    map[string]*ring{},
		procs:   map[int]proc{},
	}, nil
}

// defaults fills in the defaults and checks cfg, reporting every problem at once.
func (c *Config) defaults() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.Apps == nil {
		bad("Apps is required")
	}
	if c.StateDir == "" {
		bad("StateDir is required")
	} else if fi, err := os.Stat(c.StateDir); err != nil || !fi.IsDir() {
		bad("StateDir %q is not a directory", c.StateDir)
	}
	if c.UIDMin == 0 && c.UIDMax == 0 {
		c.UIDMin, c.UIDMax = DefaultUIDMin, DefaultUIDMax
	}
	if c.UIDMin == 0 || c.UIDMax < c.UIDMin {
		bad("uid range %d to %d: want 0 < UIDMin <= UIDMax", c.UIDMin, c.UIDMax)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.After == nil {
		c.After = time.After
	}
	if c.Rand == nil {
		c.Rand = rand.Float64
	}
	if c.BackoffMin == 0 {
		c.BackoffMin = DefaultBackoffMin
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = max(DefaultBackoffMax, c.BackoffMin)
	}
	if c.BackoffMin < 0 || c.BackoffMax < c.BackoffMin {
		bad("backoff %v to %v: want 0 < BackoffMin <= BackoffMax", c.BackoffMin, c.BackoffMax)
	}
	if c.HealthyAfter == 0 {
		c.HealthyAfter = DefaultHealthyAfter
	}
	if c.HealthyAfter < 0 {
		bad("HealthyAfter %v: negative", c.HealthyAfter)
	}
	if c.CrashLimit == 0 {
		c.CrashLimit = DefaultCrashLimit
	}
	if c.CrashLimit < 0 {
		bad("CrashLimit %d: negative", c.CrashLimit)
	}
	if c.Limits == (sandbox.Limits{}) {
		c.Limits = DefaultLimits
	}
	if c.LogSize == 0 {
		c.LogSize = DefaultLogSize
	}
	if c.DenialWindow == 0 {
		c.DenialWindow = DefaultDenialWindow
	}
	if c.DenialWindow < 0 {
		bad("DenialWindow %v: negative", c.DenialWindow)
	}
	if c.LogSize < 0 {
		bad("LogSize %d: negative", c.LogSize)
	}
	if len(errs) > 0 {
		return fmt.Errorf("apprun config: %w", errors.Join(errs...))
	}
	return nil
}

// List returns every installed application's status, ordered by component ID. Before Run has
// reconciled, it is empty.
func (s *Supervisor) List() []AppStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]AppStatus, 0, len(s.status))
	for _, id := range sortedKeys(s.status) {
		out = append(out, s.status[id].clone())
	}
	return out
}

// Get returns one application's status.
func (s *Supervisor) Get(componentID string) (AppStatus, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.status[componentID]
	if !ok {
		return AppStatus{}, false
	}
	return st.clone(), true
}

// ErrNoStorage: the application's manifest grants no MutableStorage.
var ErrNoStorage = errors.New("the application has no MutableStorage")

// StorageUsage says how much of its MutableStorage a running application uses, and its quota
// (SizeKB), in KiB: `rampart-agent app show-quota` and the applibs storage call.
func (s *Supervisor) StorageUsage(componentID string) (usedKB int64, quotaKB int, err error) {
	var m *manifest.Manifest
	for _, in := range s.cfg.Apps.List() {
		if in.ComponentID == componentID {
			m = in.Current.Manifest
		}
	}
	if m == nil {
		return 0, 0, fmt.Errorf("%w: %s", ErrNotInstalled, componentID)
	}
	ms := m.Capabilities.MutableStorage
	if ms == nil {
		return 0, 0, fmt.Errorf("%s: %w", componentID, ErrNoStorage)
	}
	st, ok := s.Get(componentID)
	if !ok || st.State != StateRunning {
		return 0, ms.SizeKB, fmt.Errorf("%s: %w", componentID, sandbox.ErrNotRunning)
	}
	used, err := sandbox.StorageUsedKB(st.Pid, ms.SizeKB)
	return used, ms.SizeKB, err
}

// Log returns the last Config.LogSize bytes the application wrote to its stdout and stderr
// (across its restarts and images, since this supervisor started); nil if none.
func (s *Supervisor) Log(componentID string) []byte {
	s.mu.Lock()
	r := s.logs[componentID]
	s.mu.Unlock()
	if r == nil {
		return nil
	}
	return r.Bytes()
}

func (a AppStatus) clone() AppStatus {
	if a.LastExit != nil {
		e := *a.LastExit
		a.LastExit = &e
	}
	return a
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// emit sends ev to Config.Events and the log; never call it with s.mu held.
func (s *Supervisor) emit(ev Event) {
	ev.Time = s.cfg.Now()
	attrs := []any{"component", ev.ComponentID, "name", ev.Name, "image", ev.ImageID, "version", ev.Version, "restarts", ev.Restarts}
	if ev.Exit != nil {
		attrs = append(attrs, "exit", ev.Exit.String(), "uptime", ev.Uptime)
	}
	if ev.Backoff > 0 {
		attrs = append(attrs, "backoff", ev.Backoff)
	}
	if ev.FromImageID != "" {
		attrs = append(attrs, "from_image", ev.FromImageID, "from_version", ev.FromVersion, "reason", ev.Reason)
	}
	if ev.Error != "" {
		attrs = append(attrs, "err", ev.Error)
	}
	if d := ev.Denied; d != nil {
		attrs = append(attrs, "by", d.By, "blockers", strings.Join(d.Blockers, ","), "object", d.Object, "count", d.Count)
	}
	if ev.Lost > 0 {
		attrs = append(attrs, "lost", ev.Lost)
	}
	level := slog.LevelInfo
	if ev.Kind != EventExited || ev.Exit == nil || failed(ev.Exit) {
		level = slog.LevelWarn
	}
	s.log.Log(context.Background(), level, string(ev.Kind), attrs...)
	if s.cfg.Events != nil {
		s.cfg.Events(ev)
	}
}

// failed reports whether an exit is a failure: not asked for by the platform, and a nonzero
// status or a signal.
func failed(e *sandbox.Exit) bool {
	return !e.Stopped && (e.Code != 0 || e.Signal != 0)
}

// sanitizeHostname makes a host name of an application name: lower-case letters, digits and
// '-', at most 63 bytes; "app" if nothing is left.
func sanitizeHostname(name string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
			dash = false
		case !dash && b.Len() > 0:
			b.WriteByte('-')
			dash = true
		}
	}
	h := strings.TrimRight(b.String(), "-")
	if len(h) > 63 {
		h = strings.TrimRight(h[:63], "-")
	}
	if h == "" {
		return "app"
	}
	return h
}
