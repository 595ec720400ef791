// Package deviceupdate is the agent's update loop. It checks in over mutual TLS (reporting the
// installed images, the OS slots and the latest OS update), keeps the push channel open so that
// a new deployment starts within seconds, verifies its device group's director repository and
// its tenant's image repository (internal/tufclient), and installs what the director lists:
// applications side by side (internal/appinstall), OS bundles through the OS update state
// machine (internal/osupdate), which it feeds as that machine's Source and Verifier.
//
// Trust: what to install comes only from the verified update metadata; check-in answers and
// push events only say when to look. A package is installed only if its length and SHA-256 are
// the metadata's, its image ID, component, kind and version are the metadata's, and it is signed
// by one of the tenant's image-signing keys (handed over at check-in, over mutual TLS), or, on a
// device in development mode only, by the development key. Images the metadata marks as
// development images are refused outside development mode.
package deviceupdate

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/imagepkg"
	"github.com/rampart-iot/rampart/internal/appinstall"
	"github.com/rampart-iot/rampart/internal/atomicfile"
	"github.com/rampart-iot/rampart/internal/bootctl"
	"github.com/rampart-iot/rampart/internal/checkinclient"
	"github.com/rampart-iot/rampart/internal/deferral"
	"github.com/rampart-iot/rampart/internal/download"
	"github.com/rampart-iot/rampart/internal/osupdate"
	"github.com/rampart-iot/rampart/internal/tufclient"
)

// Defaults.
const (
	DefaultMinBackoff = 2 * time.Second
	DefaultMaxBackoff = 5 * time.Minute
	stateFile         = "state.json"
	metaDir           = "metadata"
	downloadsDir      = "downloads"
)

// Config configures a Loop.
type Config struct {
	// Client talks to the service over mutual TLS.
	Client *checkinclient.Client
	// Dir is the loop's own directory (normally STATE/update-loop): verified metadata,
	// downloads and a small state file.
	Dir string
	// Apps installs applications; nil means the device takes no applications.
	Apps *appinstall.Apps
	// Boot is the device's boot control, for reports; nil if it has none.
	Boot bootctl.Controller
	// AgentVersion is reported at check-in.
	AgentVersion string
	// Development accepts packages signed only with the development key, and development images.
	Development bool
	// Applied is called after applications were installed, so the supervisor runs the new ones.
	Applied func(ctx context.Context)
	// AppStates, if set, says how each component's app runs (running, crashed, ...), by
	// component ID, for the check-in report.
	AppStates func() map[string]AppState
	// Reboot is called when an OS update needs the device to restart (on an emulated device,
	// the agent).
	Reboot func()
	// AfterCheckIn, if set, runs after each check-in the service answered (the agent uploads
	// its error reports); its error is the cycle's too.
	AfterCheckIn func(ctx context.Context) error
	// ImageRoot, if set, is the image repository's first root metadata (1.root.json) shipped
	// with the device: on first contact the loop trusts it instead of fetching the root from
	// the service, which it then cannot choose.
	ImageRoot []byte
	// Board, if set, returns the emulated board's state for the check-in report (the console's
	// live board); OnBoardPress presses a button the service asks for.
	Board        func() *v1.BoardState
	OnBoardPress func(button string) error
	// Deferral, if set, is asked before an application or OS update is installed: apps with
	// SoftwareUpdateDeferral may hold it back, within caps counted from when the loop first
	// saw the update (kept in the state file, so a restart does not reset them).
	Deferral Deferral
	// Now is the clock for metadata expiry: pass trusted time (from attestation) on a device
	// without a real-time clock. nil means time.Now.
	Now        func() time.Time
	Rand       io.Reader
	Logger     *slog.Logger
	MinBackoff time.Duration
	MaxBackoff time.Duration
}

// Deferral lets applications defer updates; *deferral.Coordinator implements it.
type Deferral interface {
	// Hold says whether to hold back the update of type t, identified by key and first seen
	// at firstSeen, and until when at most.
	Hold(ctx context.Context, t deferral.Type, key string, firstSeen time.Time) (until time.Time, held bool)
	// Done says the update of type t was installed or is no longer offered.
	Done(t deferral.Type)
}

// AppState is how an application runs, for reports.
type AppState struct {
	State     string // v1.ImageRunning, v1.ImageStopped, v1.ImageCrashed, ...
	Restarts  int
	LastError string
}

// Status is what the loop last did, for the agent's status file.
type Status struct {
	LastCheckIn  time.Time `json:"last_check_in,omitzero"`
	DeploymentID string    `json:"deployment_id,omitempty"`
	Targets      []string  `json:"targets,omitempty"` // "<component>/<image> version"
	LastError    string    `json:"last_error,omitempty"`
	Reason       string    `json:"reason,omitempty"` // the update metadata's refusal reason
	// Deferred lists the updates applications hold back.
	Deferred []v1.DeferredUpdate `json:"deferred,omitempty"`
}

// Loop is the update loop. Its methods are safe for concurrent use; cycles are serialized.
type Loop struct {
	cfg Config
	log *slog.Logger

	cycle sync.Mutex // one cycle at a time
	os    *osupdate.Machine
	wake  chan struct{}

	mu       sync.Mutex
	keys     []crypto.PublicKey
	osTarget *osupdate.Target
	status   Status
	deferred []v1.DeferredUpdate
	started  time.Time // when the loop (the agent) started: uptime at check-in
}

// persisted is the loop's state file.
type persisted struct {
	// Group is the device group whose director the stored metadata trusts.
	Group string `json:"group"`
	// FirstSeen is when the loop first saw each pending update ("App:<images>",
	// "System:<digest>"): deferral caps count from then.
	FirstSeen map[string]time.Time `json:"first_seen,omitempty"`
}

func (l *Loop) loadState() persisted {
	var st persisted
	if b, err := os.ReadFile(filepath.Join(l.cfg.Dir, stateFile)); err == nil {
		_ = json.Unmarshal(b, &st)
	}
	return st
}

func (l *Loop) saveState(st persisted) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(l.cfg.Dir, stateFile), b, 0o600)
}

// New returns a Loop.
func New(cfg Config) (*Loop, error) {
	if cfg.Client == nil || cfg.Dir == "" {
		return nil, errors.New("deviceupdate: Config.Client and Config.Dir are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	for _, d := range []string{cfg.Dir, filepath.Join(cfg.Dir, metaDir), filepath.Join(cfg.Dir, downloadsDir)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	return &Loop{cfg: cfg, log: cfg.Logger, wake: make(chan struct{}, 1), started: cfg.Now()}, nil
}

// Wake makes Run check in now, for example after an application rolled back, so that the
// service hears of it at once.
func (l *Loop) Wake() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// SetOS gives the loop the OS update machine, opened with the loop as its Source and Verifier.
func (l *Loop) SetOS(m *osupdate.Machine) { l.os = m }

// Status returns what the loop last did.
func (l *Loop) Status() Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.status
	s.Targets = append([]string(nil), s.Targets...)
	s.Deferred = append([]v1.DeferredUpdate(nil), l.deferred...)
	return s
}

// Run checks in at start, then whenever the push channel says so, and at the group's interval,
// until ctx ends. Failures back off exponentially with full jitter.
func (l *Loop) Run(ctx context.Context) error {
	wake := l.wake
	go l.listen(ctx, wake)
	failures := 0
	for {
		interval, err := l.Once(ctx)
		if ctx.Err() != nil {
			return nil
		}
		wait := interval
		if err != nil {
			failures++
			wait = backoff(l.cfg.MinBackoff, l.cfg.MaxBackoff, failures, l.cfg.Rand)
			l.log.Warn("update check failed", "error", err, "retry_in", wait.Round(time.Millisecond))
		} else {
			failures = 0
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-wake:
			t.Stop()
		case <-t.C:
		}
	}
}

// listen keeps the push channel open and wakes the loop on each event.
func (l *Loop) listen(ctx context.Context, wake chan<- struct{}) {
	failures := 0
	for ctx.Err() == nil {
		start := l.cfg.Now()
		err := l.cfg.Client.Events(ctx, func(e v1.DeviceEvent) error {
			failures = 0
			l.log.Debug("push event", "type", e.Type, "deployment", e.DeploymentID)
			select {
			case wake <- struct{}{}:
			default:
			}
			return nil
		})
		if ctx.Err() != nil {
			return
		}
		if l.cfg.Now().Sub(start) > time.Minute {
			failures = 0
		}
		failures++
		wait := backoff(l.cfg.MinBackoff, l.cfg.MaxBackoff, failures, l.cfg.Rand)
		l.log.Debug("push channel closed", "error", err, "reconnect_in", wait.Round(time.Millisecond))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// Once runs one cycle: check in, verify the metadata, install what it lists. It returns how
// long to wait before the next cycle (the group's check-in interval).
func (l *Loop) Once(ctx context.Context) (time.Duration, error) {
	l.cycle.Lock()
	defer l.cycle.Unlock()
	interval, err := l.once(ctx)
	l.mu.Lock()
	l.status.LastError, l.status.Reason = "", ""
	if err != nil {
		l.status.LastError = err.Error()
		l.status.Reason = string(tufclient.ReasonOf(err))
	}
	l.mu.Unlock()
	return interval, err
}

func (l *Loop) once(ctx context.Context) (time.Duration, error) {
	sent := l.report(ctx)
	res, err := l.cfg.Client.CheckIn(ctx, sent)
	if err != nil {
		return 0, err
	}
	interval := time.Duration(res.IntervalSeconds) * time.Second
	if interval <= 0 {
		interval = time.Hour
	}
	if l.cfg.OnBoardPress != nil {
		for _, b := range res.BoardPresses {
			if err := l.cfg.OnBoardPress(b); err != nil {
				l.log.Warn("pressing a button the service asked for", "button", b, "error", err)
			}
		}
	}
	var keys []crypto.PublicKey
	for i, der := range res.ImageSigningKeys {
		k, err := x509.ParsePKIXPublicKey(der)
		if err != nil {
			return interval, fmt.Errorf("image-signing key %d from the service: %w", i, err)
		}
		keys = append(keys, k)
	}
	l.mu.Lock()
	l.keys = keys
	l.status.LastCheckIn = l.cfg.Now()
	l.status.DeploymentID = res.DeploymentID
	l.mu.Unlock()
	var errs []error
	if l.cfg.AfterCheckIn != nil {
		if err := l.cfg.AfterCheckIn(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if err := l.pinGroup(res.DeviceGroupID); err != nil {
		return interval, err
	}
	if res.DirectorPath == "" { // no deployment for this device: nothing to install
		l.setTargets(nil, nil)
		for _, t := range []deferral.Type{deferral.App, deferral.System} {
			if err := l.done(t); err != nil {
				errs = append(errs, err)
			}
		}
		return interval, errors.Join(errs...)
	}
	targets, err := l.refresh(ctx)
	if err != nil {
		return interval, errors.Join(append(errs, err)...)
	}
	var apps []tufclient.Target
	var osTarget *osupdate.Target
	for _, t := range targets {
		if t.Development && !l.cfg.Development {
			errs = append(errs, fmt.Errorf("%s (%s %s) is a development image, which only devices in development mode install", t.Path, t.Kind, t.Version))
			continue
		}
		switch t.Kind {
		case imagepkg.KindApplication:
			apps = append(apps, t)
		case imagepkg.KindOS:
			if osTarget != nil {
				errs = append(errs, fmt.Errorf("the deployment lists two OS images; installing neither"))
				osTarget = nil
				continue
			}
			osTarget = &osupdate.Target{Version: t.Version, SHA256: t.SHA256, Size: t.Length,
				URL: l.cfg.Client.PackageURL(t.ImageID), Measurement: t.Measurement, SecurityVersion: t.SecurityVersion}
		default:
			l.log.Info("skipping an image of a kind this device does not install", "target", t.Path, "kind", t.Kind)
		}
	}
	l.setTargets(targets, osTarget)
	l.mu.Lock()
	l.deferred = nil
	l.mu.Unlock()
	// Applications with SoftwareUpdateDeferral may hold back what is about to be installed,
	// within caps; the loop looks again when the deferral ends (or an app resumes it).
	next := interval
	look := func(until time.Time) {
		if d := until.Sub(l.cfg.Now()); d < next {
			next = max(d, time.Second)
		}
	}
	changed := false
	pendingApps, err := l.pendingApps(apps)
	if err != nil {
		errs = append(errs, err)
	}
	appKey := ""
	for _, t := range pendingApps {
		appKey += t.ImageID + ","
	}
	if until, held, err := l.hold(ctx, deferral.App, appKey); err != nil {
		errs = append(errs, err)
	} else if held {
		look(until)
	} else if len(pendingApps) > 0 {
		installed, err := l.installApps(ctx, pendingApps)
		if err != nil {
			errs = append(errs, err)
		} else if err := l.done(deferral.App); err != nil {
			errs = append(errs, err)
		}
		changed = installed
	}
	if changed && l.cfg.Applied != nil {
		l.cfg.Applied(ctx)
	}
	reboot := false
	if l.os != nil && osTarget != nil {
		osKey := ""
		if wants, err := l.os.Wants(ctx, osTarget); err != nil {
			errs = append(errs, fmt.Errorf("OS update: %w", err))
		} else if wants {
			osKey = osTarget.SHA256
		}
		until, held, err := l.hold(ctx, deferral.System, osKey)
		if err != nil {
			errs = append(errs, err)
		}
		if held {
			look(until)
		} else {
			before := l.os.Status()
			r, err := l.os.Update(ctx)
			if err != nil {
				errs = append(errs, fmt.Errorf("OS update: %w", err))
			}
			after := l.os.Status()
			changed = changed || after.State != before.State || after.Attempt != before.Attempt
			reboot = r.Reboot
		}
	} else if err := l.done(deferral.System); err != nil {
		errs = append(errs, err)
	}
	l.mu.Lock()
	deferralsChanged := fmt.Sprint(sent.Deferred) != fmt.Sprint(l.deferred)
	l.mu.Unlock()
	if changed || deferralsChanged { // tell the service at once what changed, rather than at the next check-in
		if _, err := l.cfg.Client.CheckIn(ctx, l.report(ctx)); err != nil {
			errs = append(errs, err)
		}
	}
	if reboot && l.cfg.Reboot != nil {
		l.cfg.Reboot()
	}
	return next, errors.Join(errs...)
}

func (l *Loop) setTargets(targets []tufclient.Target, osTarget *osupdate.Target) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.osTarget = osTarget
	l.status.Targets = nil
	for _, t := range targets {
		l.status.Targets = append(l.status.Targets, t.Path+" "+t.Version)
	}
}

// pinGroup forgets the trusted director metadata when the device changed group: the new
// group's director has its own root.
func (l *Loop) pinGroup(group string) error {
	st := l.loadState()
	if st.Group == group {
		return nil
	}
	l.log.Info("the device changed group; trusting the new group's director", "from", st.Group, "to", group)
	if err := os.RemoveAll(filepath.Join(l.cfg.Dir, metaDir, string(tufclient.Director))); err != nil {
		return err
	}
	st.Group = group
	return l.saveState(st)
}

// hold asks the deferral coordinator whether to hold back the pending update of type t
// (identified by key; "" means none is pending). It records when the update was first seen,
// and returns when to look again at the latest.
func (l *Loop) hold(ctx context.Context, t deferral.Type, key string) (until time.Time, held bool, err error) {
	if l.cfg.Deferral == nil {
		return time.Time{}, false, nil
	}
	st := l.loadState()
	prefix := string(t) + ":"
	first, ok := st.FirstSeen[prefix+key]
	dirty := false
	for k := range st.FirstSeen { // what is no longer pending is forgotten
		if strings.HasPrefix(k, prefix) && (key == "" || k != prefix+key) {
			delete(st.FirstSeen, k)
			dirty = true
		}
	}
	if key != "" && !ok {
		if st.FirstSeen == nil {
			st.FirstSeen = map[string]time.Time{}
		}
		first = l.cfg.Now().UTC()
		st.FirstSeen[prefix+key] = first
		dirty = true
	}
	if dirty {
		if err := l.saveState(st); err != nil {
			return time.Time{}, false, err
		}
	}
	if key == "" {
		l.cfg.Deferral.Done(t)
		return time.Time{}, false, nil
	}
	until, held = l.cfg.Deferral.Hold(ctx, t, key, first)
	if held {
		l.log.Info("an application defers the update", "type", t, "until", until.UTC().Format(time.RFC3339), "first_seen", first.Format(time.RFC3339))
		l.mu.Lock()
		l.deferred = append(l.deferred, v1.DeferredUpdate{UpdateType: string(t), FirstSeen: first, Until: until.UTC()})
		l.mu.Unlock()
	}
	return until, held, nil
}

// done tells the coordinator the update of type t is installed and forgets when it was seen.
func (l *Loop) done(t deferral.Type) error {
	if l.cfg.Deferral == nil {
		return nil
	}
	_, _, err := l.hold(context.Background(), t, "")
	return err
}

// refresh verifies the metadata, fetching the first roots over mutual TLS on first use.
func (l *Loop) refresh(ctx context.Context) ([]tufclient.Target, error) {
	dir := filepath.Join(l.cfg.Dir, metaDir)
	cfg := tufclient.Config{Dir: dir, Fetcher: l.cfg.Client, Now: l.cfg.Now}
	for _, r := range []struct {
		repo tufclient.Repo
		dst  *[]byte
	}{{tufclient.Director, &cfg.DirectorRoot}, {tufclient.Image, &cfg.ImageRoot}} {
		if _, err := os.Stat(filepath.Join(dir, string(r.repo), "root.json")); err == nil {
			continue
		}
		if r.repo == tufclient.Image && l.cfg.ImageRoot != nil {
			*r.dst = l.cfg.ImageRoot
			continue
		}
		root, err := l.cfg.Client.InitialRoot(ctx, r.repo)
		if err != nil {
			return nil, fmt.Errorf("fetching the first %s root: %w", r.repo, err)
		}
		*r.dst = root
	}
	tc, err := tufclient.New(cfg)
	if err != nil {
		return nil, err
	}
	return tc.Refresh(ctx)
}

// TrustedKeys are the keys a package must be signed by (one of them): the tenant's
// image-signing keys from the latest check-in, and the development key in development mode.
func (l *Loop) TrustedKeys() []crypto.PublicKey { return l.trusted() }

// trusted is the keys a package must be signed by.
func (l *Loop) trusted() []crypto.PublicKey {
	l.mu.Lock()
	defer l.mu.Unlock()
	return imagepkg.TrustedKeys(append([]crypto.PublicKey(nil), l.keys...), l.cfg.Development)
}

// pendingApps are the application targets that are not installed yet (and not the image an
// application rolled back from).
func (l *Loop) pendingApps(targets []tufclient.Target) ([]tufclient.Target, error) {
	if len(targets) == 0 {
		return nil, nil
	}
	if l.cfg.Apps == nil {
		return nil, errors.New("the deployment lists applications, and this device takes none")
	}
	var out []tufclient.Target
	for _, t := range targets {
		if in, ok := l.cfg.Apps.Get(t.ComponentID); ok {
			if in.Current.ID == t.ImageID {
				continue
			}
			if in.Failed != nil && in.Failed.ID == t.ImageID {
				continue // rolled back from; waits for another image
			}
		}
		out = append(out, t)
	}
	return out, nil
}

// installApps installs the pending application targets.
func (l *Loop) installApps(ctx context.Context, targets []tufclient.Target) (changed bool, err error) {
	var errs []error
	for _, t := range targets {
		if err := l.installApp(ctx, t); err != nil {
			errs = append(errs, fmt.Errorf("application %s %s: %w", t.Path, t.Version, err))
			continue
		}
		changed = true
	}
	return changed, errors.Join(errs...)
}

func (l *Loop) installApp(ctx context.Context, t tufclient.Target) error {
	partial := filepath.Join(l.cfg.Dir, downloadsDir, t.ImageID+download.PartialSuffix)
	path, err := download.Fetch(ctx, l.cfg.Client.HTTPClient(), l.cfg.Client.PackageURL(t.ImageID),
		download.Want{SHA256: t.SHA256, Size: t.Length}, partial)
	if err != nil {
		return err
	}
	defer os.Remove(path)
	trusted := l.trusted()
	verify := func(p *imagepkg.Package) error {
		if _, err := p.Verify(trusted, 1); err != nil {
			return err
		}
		return matches(p.Metadata, t)
	}
	in, err := l.cfg.Apps.Install(ctx, path, verify, appinstall.Options{Origin: appinstall.OriginDeployment})
	if err != nil {
		return err
	}
	l.log.Info("installed application", "component", in.ComponentID, "name", in.Name, "version", in.Current.Version, "image", in.Current.ID)
	return nil
}

// matches checks that a package is the image the metadata names.
func matches(md *imagepkg.Metadata, t tufclient.Target) error {
	switch {
	case md.ImageID != t.ImageID:
		return fmt.Errorf("the package is image %s; the update metadata names %s", md.ImageID, t.ImageID)
	case md.ComponentID != t.ComponentID:
		return fmt.Errorf("the package is of component %s; the update metadata names %s", md.ComponentID, t.ComponentID)
	case md.Kind != t.Kind:
		return fmt.Errorf("the package is a %s image; the update metadata says %s", md.Kind, t.Kind)
	case md.ImageVersion != t.Version:
		return fmt.Errorf("the package is version %s; the update metadata says %s", md.ImageVersion, t.Version)
	}
	return nil
}

// Target implements osupdate.Source: the OS image the verified metadata names, if any.
func (l *Loop) Target(ctx context.Context) (*osupdate.Target, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.osTarget == nil {
		return nil, nil
	}
	t := *l.osTarget
	return &t, nil
}

// Verify implements osupdate.Verifier: a downloaded OS package must be signed by a trusted key
// and be the image the metadata names.
func (l *Loop) Verify(ctx context.Context, bundle string, t osupdate.Target) error {
	return osupdate.PackageVerifier{Trusted: l.trusted()}.Verify(ctx, bundle, t)
}

// report is the check-in report.
func (l *Loop) report(ctx context.Context) v1.CheckIn {
	in := v1.CheckIn{AgentVersion: l.cfg.AgentVersion, Images: []v1.InstalledImage{},
		UptimeSeconds: max(int64(l.cfg.Now().Sub(l.started)/time.Second), 0)}
	var states map[string]AppState
	if l.cfg.AppStates != nil {
		states = l.cfg.AppStates()
	}
	if l.cfg.Apps != nil {
		for _, a := range l.cfg.Apps.List() {
			img := v1.InstalledImage{ComponentID: a.ComponentID, ImageID: a.Current.ID, Kind: string(imagepkg.KindApplication),
				Version: a.Current.Version, State: v1.ImageInstalled}
			if s, ok := states[a.ComponentID]; ok {
				img.State, img.Restarts, img.LastError = s.State, s.Restarts, clip(s.LastError)
			}
			if a.Failed != nil { // a rollback says more than the last exit
				img.LastError = clip(fmt.Sprintf("rolled back from %s (%s): %s", a.Failed.Version, a.Failed.ID, a.Reason))
			}
			in.Images = append(in.Images, img)
		}
	}
	if l.cfg.Boot != nil {
		if bs, err := l.cfg.Boot.State(ctx); err == nil && bs.Active != "" {
			o := &v1.OSSlots{Active: string(bs.Active), Booted: string(bs.Booted), Trial: string(bs.Trial),
				CommittedVersion: bs.Slots[bs.Active].Version}
			if o.Booted == "" {
				o.Booted = o.Active
			}
			if l.os != nil {
				c, err := l.os.SecurityCounter(ctx)
				if err != nil {
					l.log.Warn("reading the anti-rollback counter for the check-in", "error", err)
				}
				o.SecurityCounter = c
			}
			for _, s := range []bootctl.Slot{bootctl.A, bootctl.B} {
				if info, ok := bs.Slots[s]; ok {
					o.Slots = append(o.Slots, v1.OSSlot{Name: string(s), Version: info.Version, Digest: info.Digest})
				}
			}
			in.OS = o
		}
	}
	l.mu.Lock()
	in.Deferred = append([]v1.DeferredUpdate(nil), l.deferred...)
	l.mu.Unlock()
	if l.cfg.Board != nil {
		in.Board = l.cfg.Board()
	}
	if l.os != nil {
		st := l.os.Status()
		if st.State != osupdate.Idle {
			u := &v1.UpdateStatus{State: string(st.State), FromVersion: st.FromVersion, Phase: st.Phase,
				Reason: clip(st.Reason), At: st.At}
			if st.Target != nil {
				u.Version = st.Target.Version
			}
			in.Update = u
		}
	}
	return in
}

func clip(s string) string {
	if len(s) > v1.MaxCheckInText {
		return s[:v1.MaxCheckInText-3] + "..."
	}
	return s
}

// backoff is exponential from min, capped at max, with full jitter, never under min/2.
func backoff(lo, hi time.Duration, failures int, rnd io.Reader) time.Duration {
	d := lo
	for i := 1; i < failures && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	n, err := rand.Int(rnd, big.NewInt(int64(d)))
	if err != nil {
		return d / 2
	}
	return max(time.Duration(n.Int64()), lo/2)
}
