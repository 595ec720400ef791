package agentcli

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/appinstall"
	"github.com/rampart-iot/rampart/internal/applibs"
	"github.com/rampart-iot/rampart/internal/apprun"
	"github.com/rampart-iot/rampart/internal/attestclient"
	"github.com/rampart-iot/rampart/internal/board"
	"github.com/rampart-iot/rampart/internal/bootctl"
	"github.com/rampart-iot/rampart/internal/buildinfo"
	"github.com/rampart-iot/rampart/internal/checkinclient"
	"github.com/rampart-iot/rampart/internal/deferral"
	"github.com/rampart-iot/rampart/internal/deviceupdate"
	"github.com/rampart-iot/rampart/internal/kernelaudit"
	"github.com/rampart-iot/rampart/internal/localapi"
	"github.com/rampart-iot/rampart/internal/netpolicy"
	"github.com/rampart-iot/rampart/internal/osupdate"
	"github.com/rampart-iot/rampart/internal/ratelimit"
	"github.com/rampart-iot/rampart/internal/rot"
)

// Directories under the agent's state directory.
const (
	appsDir       = "apps"
	appRunDir     = "apprun"
	updateLoopDir = "update-loop"
	osUpdateDir   = "os-update"
)

// healthInterval is how often a trial boot's health is checked: a local flag, cheap to read.
const healthInterval = time.Second

// ExitReboot is the exit code with which the agent asks to be restarted to boot the slot an OS
// update armed: on an emulated device (boot control "dir") an agent start is a boot. A service
// manager restarts it (systemd: RestartForceExitStatus=75).
const ExitReboot = 75

// errReboot ends the agent so that it starts again into the armed slot.
var errReboot = errors.New("restarting the agent to boot the OS update's trial slot")

// updates is the device's update machinery: the update loop, the installed applications and,
// with boot control, the OS update state machine.
type updates struct {
	clock       trustedClock
	loop        *deviceupdate.Loop
	apps        *apprun.Supervisor
	installer   *appinstall.Apps
	development bool
	rep         *reporter
	crashFlush  *ratelimit.Limiter  // a crash is reported early, at most once a minute
	network     *netpolicy.Manager  // nil without --app-network
	board       board.Device        // nil without --board
	appsDone    chan struct{}       // closed when the supervisor has stopped every app
	denials     *kernelaudit.Reader // the kernel's Landlock denials and seccomp refusals; nil if it cannot report them
	running     atomic.Bool         // run started the supervisor
	os          *osupdate.Machine
	boot        bootctl.Controller
	attested    atomic.Bool            // since this start: the trial's health check
	refused     atomic.Pointer[string] // the verifier's latest refusal since this start
	reboot      chan struct{}
	attest      chan struct{} // asks the attestation loop to attest now
	certified   atomicString  // the components the latest attestation asked certificates for
	stateDir    string
	firstCert   chan struct{} // closed by the first attestation that installs a certificate
	firstOnce   sync.Once
}

// certificateInstalled records that an attestation installed the agent's certificate.
func (u *updates) certificateInstalled() { u.firstOnce.Do(func() { close(u.firstCert) }) }

// waitForCertificate returns once the agent holds a certificate that has not expired, so that
// the first check-in of a device that never attested (or whose certificate lapsed while it was
// off) does not go out without one and fail; false if ctx ended first.
func (u *updates) waitForCertificate(ctx context.Context) bool {
	if cert, err := attestclient.LoadCertificate(u.stateDir); err == nil && cert.Leaf != nil && u.clock.Now().Before(cert.Leaf.NotAfter) {
		return true
	}
	select {
	case <-u.firstCert:
		return true
	case <-ctx.Done():
		return false
	}
}

// atomicString is a string read and written from several goroutines.
type atomicString struct{ v atomic.Value }

func (a *atomicString) Load() string   { s, _ := a.v.Load().(string); return s }
func (a *atomicString) Store(s string) { a.v.Store(s) }

// appsChanged asks for an attestation at once when the set of apps that need their own
// certificate is not the one the last attestation certified.
func (u *updates) appsChanged() {
	if strings.Join(u.certifiedComponents(), ",") == u.certified.Load() {
		return
	}
	select {
	case u.attest <- struct{}{}:
	default:
	}
}

// bootSlot runs boot control's Boot (on "dir", an agent start is a boot) and returns the
// booted slot's directory, which the monitor measures as the OS bundle. On a device that was
// never provisioned it provisions slot a from the OS bundle at provisionFrom.
func bootSlot(ctx context.Context, spec, state, provisionFrom string, log *slog.Logger) (bootctl.Controller, string, error) {
	boot, err := bootctl.Open(ctx, spec, state)
	if err != nil {
		return nil, "", err
	}
	slot, err := boot.Boot(ctx)
	if errors.Is(err, bootctl.ErrNotProvisioned) {
		d, ok := boot.(*bootctl.Dir)
		if !ok {
			return nil, "", fmt.Errorf("boot control %s is not provisioned: %w", spec, err)
		}
		log.Info("provisioning OS slot a from the OS bundle", "from", provisionFrom)
		if err := d.Provision(ctx, bootctl.SlotInfo{Version: "0.0.0"}, func(dir string) error {
			return os.CopyFS(dir, os.DirFS(provisionFrom))
		}); err != nil {
			return nil, "", fmt.Errorf("provisioning slot a from %s: %w", provisionFrom, err)
		}
		slot, err = boot.Boot(ctx)
	}
	if err != nil {
		return nil, "", err
	}
	log.Info("booted", "slot", slot, "boot_control", boot.Name())
	return boot, boot.Path(slot), nil
}

// newUpdates opens the update machinery. boot may be nil (no OS updates); counter, the root of
// trust's anti-rollback counter, nil if it has none (the OS update state file keeps it then).
// With the privilege split, transport is the cloud broker's; nil means the monitor speaks TLS
// itself.
func newUpdates(ctx context.Context, f *runFlags, roots *x509.CertPool, transport http.RoundTripper, boot bootctl.Controller, counter rot.Counter, log *slog.Logger) (*updates, error) {
	if err := checkKernelAudit(f.kernelAudit); err != nil { // before anything is opened
		return nil, err
	}
	apps, err := appinstall.Open(appinstall.Config{Dir: filepath.Join(f.state, appsDir), Logger: log})
	if err != nil {
		return nil, err
	}
	rep, err := openReporter(f.state, log)
	if err != nil {
		return nil, err
	}
	opened := false // set once nothing can fail any more
	// A start that fails after this point releases what it opened: the queue's lock, and below
	// the board's lines, the app network and the kernel audit reader.
	defer func() {
		if !opened {
			if err := rep.q.Close(); err != nil {
				log.Warn("closing the error-report queue", "error", err)
			}
		}
	}()
	var network apprun.Network
	var netDenials apprun.NetworkDenials // what the app network refuses apps, reported
	var manager *netpolicy.Manager
	if f.appNetwork {
		cfg := netpolicy.Config{Logger: log}
		if f.appNetworkPool != "" {
			if cfg.Pool, err = netip.ParsePrefix(f.appNetworkPool); err != nil {
				return nil, &usageError{fmt.Sprintf("--app-network-pool: %v", err)}
			}
		}
		if f.appNetworkDNS != "" {
			if cfg.Resolver, err = dnsResolver(f.appNetworkDNS); err != nil {
				return nil, &usageError{fmt.Sprintf("--app-network-dns: %v", err)}
			}
		}
		nm, err := netpolicy.New(cfg)
		if err != nil {
			return nil, fmt.Errorf("app networking: %w", err)
		}
		network, netDenials, manager = nm, nm, nm
		// A later failure must not leave the host's table behind, nor forwarding turned on.
		defer func() {
			if !opened {
				if err := nm.Close(); err != nil {
					log.Warn("releasing the app network", "error", err)
				}
			}
		}()
	}
	// Apps with SystemEventNotifications see updates announced; with SoftwareUpdateDeferral
	// they may defer them, within caps, on the trusted clock.
	var u *updates
	coord := deferral.New(deferral.Config{Now: func() time.Time { return u.clock.Now() }, OnChange: func() {
		if u != nil && u.loop != nil {
			u.loop.Wake()
		}
	}})
	var dev board.Device
	var host apprun.Applibs
	if f.board != "" {
		if dev, err = board.Open(f.board, board.Options{Logger: log}); err != nil {
			return nil, err
		}
		defer func() {
			if !opened {
				closeBoard(dev, log)
			}
		}()
		runDir := f.runDir
		if runDir == "" {
			runDir = filepath.Join(f.state, "run")
		}
		h, err := applibs.NewHost(applibs.HostConfig{Dir: filepath.Join(runDir, "applibs"), Board: dev,
			Certificates: applibs.CertDir(f.state), SysEvents: coord, Logger: log})
		if err != nil {
			return nil, err
		}
		host = h
	}
	u = &updates{boot: boot, reboot: make(chan struct{}, 1), attest: make(chan struct{}, 1), installer: apps, development: f.development, rep: rep, board: dev,
		stateDir: f.state, firstCert: make(chan struct{}),
		appsDone: make(chan struct{}), network: manager, crashFlush: ratelimit.New(1.0/60, 1, 1, nil)}
	if err := os.MkdirAll(filepath.Join(f.state, appRunDir), 0o700); err != nil {
		return nil, err
	}
	// Best effort, like Landlock itself: apps' denials are reported where the kernel logs them.
	var denials apprun.Denials
	if u.denials, err = openKernelAudit(f.kernelAudit, log); err != nil {
		return nil, err
	}
	if u.denials != nil {
		denials = u.denials
		defer func() {
			if !opened {
				u.denials.Close() // run closes it; a start that fails here must too
			}
		}()
	}
	u.apps, err = apprun.New(apprun.Config{Apps: apps, StateDir: filepath.Join(f.state, appRunDir), Logger: log, Network: network,
		HealthyAfter:   f.appHealthyAfter,
		Applibs:        host,
		Denials:        denials,
		NetworkDenials: netDenials,
		Events: func(e apprun.Event) {
			log.Info("application event", "kind", e.Kind, "component", e.ComponentID, "name", e.Name, "version", e.Version,
				"exit", exitText(e), "restarts", e.Restarts, "reason", e.Reason)
			u.rep.app(e)
			if u.loop == nil {
				return
			}
			crashed := e.Kind == apprun.EventExited && e.Exit != nil && !e.Exit.Stopped
			if ok, _ := u.crashFlush.Allow("crash"); e.Kind == apprun.EventRolledBack || e.Kind == apprun.EventFailed || (crashed && ok) {
				u.loop.Wake() // report it now
			}
		}})
	if err != nil {
		return nil, err
	}
	cc := &checkinclient.Client{Server: f.server, RootCAs: roots, CertDir: f.state, Transport: transport}
	var imageRoot []byte
	if f.updateRoot != "" {
		if imageRoot, err = os.ReadFile(f.updateRoot); err != nil {
			return nil, fmt.Errorf("--update-root: %w", err)
		}
		if !json.Valid(imageRoot) {
			return nil, &usageError{fmt.Sprintf("--update-root: %s is not JSON root metadata", f.updateRoot)}
		}
	}
	u.loop, err = deviceupdate.New(deviceupdate.Config{Client: cc, Dir: filepath.Join(f.state, updateLoopDir), Apps: apps,
		Boot: boot, AgentVersion: buildinfo.Version(), Development: f.development, Logger: log, Now: u.clock.Now, Deferral: coord,
		Board: u.boardState, OnBoardPress: u.pressButton, ImageRoot: imageRoot,
		Applied: func(ctx context.Context) {
			if err := u.apps.Reconcile(ctx); err != nil {
				log.Warn("starting the installed applications", "error", err)
			}
			u.appsChanged() // a new app may need its own certificate
		},
		AppStates: u.appStates,
		AfterCheckIn: func(ctx context.Context) error {
			return u.rep.flush(ctx, func(ctx context.Context, b v1.ReportBatch) error {
				_, err := cc.UploadReports(ctx, b)
				return err
			})
		},
		Reboot: func() {
			select {
			case u.reboot <- struct{}{}:
			default:
			}
		}})
	if err != nil {
		return nil, err
	}
	if boot == nil {
		opened = true
		return u, nil
	}
	u.os, err = osupdate.Open(osupdate.Config{Dir: filepath.Join(f.state, osUpdateDir), Boot: boot, Client: cc.HTTPClient(),
		Source: u.loop, Verifier: u.loop, Logger: log, HealthInterval: healthInterval, Counter: counter,
		Health: osupdate.HealthFunc(func(context.Context) error {
			if u.attested.Load() {
				return nil
			}
			if r := u.refused.Load(); r != nil {
				return fmt.Errorf("%w: the service refused its attestation (%s)", osupdate.ErrUnhealthy, *r)
			}
			return errors.New("the new system has not attested yet")
		}),
		Sink: osupdate.SinkFunc(func(ctx context.Context, e osupdate.Event) error {
			log.Info("OS update event", "kind", e.Kind, "version", e.Version, "from", e.FromVersion, "phase", e.Phase, "reason", e.Reason)
			return u.rep.osEvent(ctx, e)
		})})
	if err != nil {
		return nil, err
	}
	u.loop.SetOS(u.os)
	opened = true
	return u, nil
}

// openKernelAudit opens the reader of the kernel's denials as --kernel-audit says: on (turning
// the kernel's audit on if it is off), auto (only if it is on) or off. It returns nil, and logs
// why, when they cannot be read; an error only for a bad flag.
func openKernelAudit(mode string, log *slog.Logger) (*kernelaudit.Reader, error) {
	if err := checkKernelAudit(mode); err != nil {
		return nil, err
	}
	if mode == "off" {
		log.Info("denials of applications are not reported: --kernel-audit off")
		return nil, nil
	}
	r, err := kernelaudit.Open(kernelaudit.Config{EnableAudit: mode == "on", Logger: log})
	if err != nil {
		log.Info("Landlock denials and seccomp refusals of applications are not reported", "reason", err)
		return nil, nil
	}
	if landlock, seccomp := r.Logged(); !landlock {
		log.Info("Landlock denials of applications are not reported: the kernel does not log them (Landlock ABI 7, Linux 6.15)")
	} else if !seccomp {
		log.Info("seccomp refusals of applications are not reported: the kernel does not log them (no errno in /proc/sys/kernel/seccomp/actions_logged)")
	}
	return r, nil
}

// checkKernelAudit checks --kernel-audit.
func checkKernelAudit(mode string) error {
	switch mode {
	case "on", "auto", "off":
		return nil
	}
	return &usageError{fmt.Sprintf("--kernel-audit %q: want on, auto or off", mode)}
}

// dnsResolver is a resolver that asks only the DNS server at hostport (--app-network-dns).
func dnsResolver(hostport string) (*net.Resolver, error) {
	if _, err := netip.ParseAddrPort(hostport); err != nil {
		return nil, fmt.Errorf("%q is not an IP address and port: %w", hostport, err)
	}
	var d net.Dialer
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return d.DialContext(ctx, network, hostport)
	}}, nil
}

// run resumes an OS update in flight (a trial waits here until the new system attested, which
// runs beside it), then runs the update loop until ctx ends or a reboot is needed. The OS
// update machine is used by one goroutine at a time: first here, then by the loop.
func (u *updates) run(ctx context.Context, log *slog.Logger) error {
	// Apps start at boot, also during an OS trial (the new system runs them).
	u.running.Store(true)
	go func() {
		defer close(u.appsDone)
		if u.denials != nil {
			defer u.denials.Close()
		}
		if err := u.apps.Run(ctx); err != nil && ctx.Err() == nil {
			log.Error("the application supervisor stopped", "error", err)
		}
	}()
	if u.os != nil {
		r, err := u.os.Resume(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			log.Warn("resuming the OS update", "error", err)
		}
		if r.Reboot {
			return errReboot
		}
	}
	go u.watchApps(ctx)
	go u.watchBoard(ctx)
	errc := make(chan error, 1)
	go func() {
		if !u.waitForCertificate(ctx) {
			errc <- nil
			return
		}
		errc <- u.loop.Run(ctx)
	}()
	select {
	case <-u.reboot:
		return errReboot
	case err := <-errc:
		return err
	}
}

// trustedClock is the time the update metadata's expiry is judged by. It never runs behind the
// last attestation: the certificate the service issued then was valid from (NotBefore) a moment
// the service's clock vouched for, bound to a fresh nonce, and the time since is counted on the
// monotonic clock. So a device without a real-time clock, or whose clock was set back, cannot
// be made to accept metadata that expired (a freeze attack); a clock set forward only makes
// metadata expire early, which the next renewal fixes.
type trustedClock struct {
	mu    sync.Mutex
	floor time.Time // the latest certificate's NotBefore
	at    time.Time // when it was installed, with a monotonic reading
	now   func() time.Time
}

// attested records the certificate attestation just installed.
func (c *trustedClock) attested(notBefore time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.floor, c.at = notBefore, c.clock()
}

func (c *trustedClock) clock() time.Time {
	if c.now != nil {
		return c.now()
	}
	return time.Now()
}

// Now is the later of the system clock and the trusted floor plus the time since.
func (c *trustedClock) Now() time.Time {
	now := c.clock()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.floor.IsZero() {
		return now
	}
	if t := c.floor.Add(now.Sub(c.at)); now.Before(t) {
		return t
	}
	return now
}

// appStates is how each application runs, for the check-in report.
func (u *updates) appStates() map[string]deviceupdate.AppState {
	out := map[string]deviceupdate.AppState{}
	for _, a := range u.apps.List() {
		st := deviceupdate.AppState{Restarts: a.Restarts, LastError: a.Error}
		switch a.State {
		case apprun.StateRunning:
			st.State = v1.ImageRunning
		case apprun.StateStopped:
			st.State = v1.ImageStopped
		case apprun.StateFailed:
			st.State = v1.ImageFailed
		default: // crashed, backoff: waiting to start again
			st.State = v1.ImageCrashed
		}
		if a.LastExit != nil && st.LastError == "" {
			st.LastError = a.LastExit.String()
		}
		out[a.ComponentID] = st
	}
	return out
}

func exitText(e apprun.Event) string {
	if e.Exit == nil {
		return ""
	}
	return e.Exit.String()
}

// appWatchInterval is how often the agent looks for changes in how its applications run.
const appWatchInterval = 2 * time.Second

// watchApps wakes the update loop when an application's state changes (started, crashed,
// stopped), so the service hears of it at once rather than at the next check-in.
func (u *updates) watchApps(ctx context.Context) {
	t := time.NewTicker(appWatchInterval)
	defer t.Stop()
	last := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var b strings.Builder
		for _, a := range u.apps.List() { // ordered by component ID
			fmt.Fprintf(&b, "%s=%s/%s;", a.ComponentID, a.ImageID, a.State)
		}
		if cur := b.String(); cur != last {
			if last != "" || cur != "" {
				u.loop.Wake()
			}
			last = cur
		}
	}
}

// The local API (internal/localapi) over the update machinery.

// Apps implements localapi.Agent.
func (u *updates) Apps() []localapi.App {
	var out []localapi.App
	for _, a := range u.apps.List() {
		la := localapi.App{ComponentID: a.ComponentID, Name: a.Name, ImageID: a.ImageID, Version: a.Version,
			State: string(a.State), Restarts: a.Restarts, LastExitAt: a.LastExitAt, Error: a.Error}
		if a.LastExit != nil {
			la.LastExit = a.LastExit.String()
		}
		out = append(out, la)
	}
	return out
}

func (u *updates) app(componentID string) (localapi.App, bool) {
	for _, a := range u.Apps() {
		if a.ComponentID == componentID {
			return a, true
		}
	}
	return localapi.App{}, false
}

// certifiedComponents are the installed apps whose manifests ask for DeviceAuthentication:
// attestation certifies a key for each (their own certificate, which applibs hands them).
func (u *updates) certifiedComponents() []string {
	var out []string
	for _, in := range u.installer.List() { // ordered by component ID
		if m := in.Current.Manifest; m != nil && m.Capabilities.DeviceAuthentication != "" {
			out = append(out, in.ComponentID)
		}
	}
	return out
}

// componentsToCertify is the attestation loop's ComponentsFunc: it records what it asked for.
func (u *updates) componentsToCertify() []string {
	c := u.certifiedComponents()
	u.certified.Store(strings.Join(c, ","))
	return c
}

// Events implements localapi.Agent: what the error-report queue holds, up to one upload batch.
func (u *updates) Events() ([]v1.ReportEvent, int64) { return u.rep.q.Peek(v1.MaxReportEvents) }

// StopApp implements localapi.Agent.
func (u *updates) StopApp(_ context.Context, componentID string) error {
	if err := u.apps.Stop(componentID); err != nil {
		return notFound(err)
	}
	return nil
}

// Quota implements localapi.Agent.
func (u *updates) Quota(componentID string) (localapi.Quota, error) {
	used, quota, err := u.apps.StorageUsage(componentID)
	if errors.Is(err, apprun.ErrNoStorage) {
		return localapi.Quota{}, fmt.Errorf("%w: %v", localapi.ErrNotFound, err)
	}
	if err != nil {
		return localapi.Quota{}, notFound(err)
	}
	return localapi.Quota{ComponentID: componentID, QuotaKB: quota, UsedKB: used}, nil
}

// StartApp implements localapi.Agent.
func (u *updates) StartApp(_ context.Context, componentID string) error {
	if err := u.apps.Start(componentID); err != nil {
		return notFound(err)
	}
	return nil
}

func notFound(err error) error {
	if errors.Is(err, apprun.ErrNotInstalled) || errors.Is(err, appinstall.ErrNotInstalled) {
		return fmt.Errorf("%w: %v", localapi.ErrNotFound, err)
	}
	return err
}

// Sideload implements localapi.Agent: on a development device, install a package signed by a
// trusted key (the development key included), any version, and run it.
func (u *updates) Sideload(ctx context.Context, path string) (localapi.App, error) {
	if !u.development {
		return localapi.App{}, localapi.ErrNotDevelopment
	}
	in, err := u.installer.Install(ctx, path, appinstall.Signed(u.loop.TrustedKeys(), 1), appinstall.Options{Origin: appinstall.OriginSideload})
	if err != nil {
		return localapi.App{}, err
	}
	if err := u.apps.Reconcile(ctx); err != nil {
		return localapi.App{}, err
	}
	u.appsChanged()
	u.loop.Wake()
	if a, ok := u.app(in.ComponentID); ok {
		return a, nil
	}
	return localapi.App{ComponentID: in.ComponentID, Name: in.Name, ImageID: in.Current.ID, Version: in.Current.Version}, nil
}

// DeleteApp implements localapi.Agent: on a development device, stop and remove an
// application and its data.
func (u *updates) DeleteApp(ctx context.Context, componentID string) error {
	if !u.development {
		return localapi.ErrNotDevelopment
	}
	if _, ok := u.installer.Get(componentID); !ok {
		return fmt.Errorf("%w: %s is not installed", localapi.ErrNotFound, componentID)
	}
	if err := u.apps.Stop(componentID); err != nil {
		return err
	}
	if err := u.installer.Remove(componentID, true); err != nil {
		return err
	}
	if err := u.apps.Reconcile(ctx); err != nil {
		return err
	}
	u.appsChanged()
	u.loop.Wake()
	return nil
}

// close waits for the supervisor to stop every app (ctx must have ended), then releases the
// app network.
func (u *updates) close(log *slog.Logger) {
	if u.running.Load() {
		select {
		case <-u.appsDone:
		case <-time.After(30 * time.Second):
			log.Warn("the applications did not stop within 30 s")
		}
	}
	if u.network != nil {
		if err := u.network.Close(); err != nil {
			log.Warn("releasing the app network", "error", err)
		}
	}
	closeBoard(u.board, log) // after the apps, which use it
	if u.denials != nil {
		u.denials.Close() // run's goroutine closes it too; a start that failed before run did not
	}
}

// closeBoard releases a board that holds something (the Linux board's GPIO lines and devices).
func closeBoard(dev board.Device, log *slog.Logger) {
	c, ok := dev.(io.Closer)
	if !ok || dev == nil {
		return
	}
	if err := c.Close(); err != nil {
		log.Warn("closing the board", "error", err)
	}
}

// boardState is the board's LEDs and buttons for the check-in report (the console's live
// board); nil without a board.
func (u *updates) boardState() *v1.BoardState {
	if u.board == nil {
		return nil
	}
	st := u.board.State()
	out := &v1.BoardState{Board: st.Board, LEDs: []v1.BoardLED{}, Buttons: []v1.BoardButton{}}
	for i, l := range st.LEDs {
		if i < v1.MaxBoardItems {
			out.LEDs = append(out.LEDs, v1.BoardLED{Name: l.Name, GPIO: l.GPIO, On: l.On})
		}
	}
	for i, b := range st.Buttons {
		if i < v1.MaxBoardItems {
			out.Buttons = append(out.Buttons, v1.BoardButton{Name: b.Name, GPIO: b.GPIO, Presses: b.Presses})
		}
	}
	return out
}

// pressButton presses a button the service asked for (from the console).
func (u *updates) pressButton(name string) error {
	if u.board == nil {
		return errors.New("this device has no board")
	}
	return u.board.Press(name)
}

// boardPoll is how often the board's LEDs are looked at; boardReports bounds how often a change
// makes the device check in, so the console's live board follows without a flood.
const (
	boardPoll    = time.Second
	boardReports = 0.5 // per second
)

// watchBoard checks in soon after the board's LEDs change, so the service (and the console's
// live board) sees them.
func (u *updates) watchBoard(ctx context.Context) {
	if u.board == nil {
		return
	}
	limit := ratelimit.New(boardReports, 1, 1, nil)
	last := ""
	t := time.NewTicker(boardPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var b strings.Builder
		for _, l := range u.board.State().LEDs {
			fmt.Fprintf(&b, "%d=%t,", l.GPIO, l.On)
		}
		now := b.String()
		if last == "" {
			last = now // the first check-in reports it
			continue
		}
		if now != last {
			if ok, _ := limit.Allow("board"); ok {
				last = now
				if u.loop != nil {
					u.loop.Wake()
				}
			}
		}
	}
}
