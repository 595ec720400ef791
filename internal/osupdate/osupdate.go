// Package osupdate is the device's OS update state machine, after Mender's: it takes a target
// OS bundle from a Source, downloads it by digest, has it verified, installs it into the
// inactive slot through boot control, boots it as a trial, and commits it only when the new
// system reports, within a deadline, that it attested and is healthy; otherwise it rolls back
// and reports why. Every transition is saved atomically to the state file before the step it
// starts counts as done, so after a power cut at any point Resume either continues the update
// or rolls it back, and the device always keeps a committed, verified slot to boot. OS updates
// never touch app data: the machine writes only its own directory and boot control's.
//
// Trust: osupdate trusts the Verifier to decide whether a downloaded bundle may be installed,
// the Health check to say whether the new system attested, boot control to keep its state and
// the Floor to keep the anti-rollback floor. The target's digest and size bind the download;
// its version is checked against the running version and the floor.
package osupdate

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/rampart-iot/rampart/imagepkg"
	"github.com/rampart-iot/rampart/internal/bootctl"
)

// Target is an OS bundle the device should run.
type Target struct {
	// Version is the bundle's semantic version.
	Version string `json:"version"`
	// SHA256 is the lowercase hex SHA-256 of the bundle file, and Size its length in bytes.
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	// URL is where to download it (https).
	URL string `json:"url"`
	// Measurement, if not empty, is the lowercase hex digest the installed slot must measure to
	// (the release's golden OS-bundle measurement); the slot is not selectable otherwise.
	Measurement string `json:"measurement,omitempty"`
	// SecurityVersion is the release's security version (imagepkg.Metadata.SecurityVersion):
	// a target below the anti-rollback counter is refused, and committing one advances the
	// counter to it.
	SecurityVersion uint64 `json:"security_version,omitempty"`
}

// MaxBundleSize bounds Target.Size.
const MaxBundleSize = 16 << 30

func (t *Target) check() error {
	var errs []error
	if _, err := imagepkg.ParseVersion(t.Version); err != nil {
		errs = append(errs, err)
	}
	if !isDigest(t.SHA256) {
		errs = append(errs, fmt.Errorf("sha256 %q is not 64 lowercase hex digits", t.SHA256))
	}
	if t.Size <= 0 || t.Size > MaxBundleSize {
		errs = append(errs, fmt.Errorf("size %d is outside 1 to %d", t.Size, int64(MaxBundleSize)))
	}
	if u, err := url.Parse(t.URL); err != nil || u.Scheme != "https" || u.Host == "" {
		errs = append(errs, fmt.Errorf("url %q is not an https URL", t.URL))
	}
	if t.Measurement != "" && !isDigest(t.Measurement) {
		errs = append(errs, fmt.Errorf("measurement %q is not 64 lowercase hex digits", t.Measurement))
	}
	if t.SecurityVersion > imagepkg.MaxSecurityVersion {
		errs = append(errs, fmt.Errorf("security version %d is above %d", t.SecurityVersion, imagepkg.MaxSecurityVersion))
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid target: %w", errors.Join(errs...))
	}
	return nil
}

func isDigest(s string) bool {
	b, err := hex.DecodeString(s)
	return err == nil && len(b) == 32 && hex.EncodeToString(b) == s
}

// Source says which OS bundle the device should run: the update metadata, once verified.
type Source interface {
	// Target returns the bundle to run, or nil if there is none.
	Target(ctx context.Context) (*Target, error)
}

// Verifier decides whether a downloaded bundle, whose size and SHA-256 already match the
// target, may be installed (signature, package format, metadata). An error fails the update.
// PackageVerifier verifies image packages.
type Verifier interface {
	Verify(ctx context.Context, bundle string, t Target) error
}

// VerifierFunc adapts a function to Verifier.
type VerifierFunc func(ctx context.Context, bundle string, t Target) error

// Verify implements Verifier.
func (f VerifierFunc) Verify(ctx context.Context, bundle string, t Target) error {
	return f(ctx, bundle, t)
}

// Health says whether the system booted as a trial attested and is healthy. The machine asks
// until it says yes or the deadline passes; an error wrapping ErrUnhealthy ends the trial at
// once.
type Health interface {
	Check(ctx context.Context) error
}

// HealthFunc adapts a function to Health.
type HealthFunc func(ctx context.Context) error

// Check implements Health.
func (f HealthFunc) Check(ctx context.Context) error { return f(ctx) }

// ErrUnhealthy marks a health verdict that waiting will not change.
var ErrUnhealthy = errors.New("the new system is not healthy")

// Clock tells the time and waits; tests inject a fake one.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time                         { return time.Now() }
func (systemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Sink takes the machine's reports; normally the agent's durable event queue. Report may be
// called again with the same event (same ID) after a power cut; the sink keeps one.
type Sink interface {
	Report(ctx context.Context, e Event) error
}

// SinkFunc adapts a function to Sink.
type SinkFunc func(ctx context.Context, e Event) error

// Report implements Sink.
func (f SinkFunc) Report(ctx context.Context, e Event) error { return f(ctx, e) }

// EventKind names a report.
type EventKind string

// Reports.
const (
	UpdateFailed      EventKind = "UpdateFailed"
	RollbackPerformed EventKind = "RollbackPerformed"
	UpdateCommitted   EventKind = "UpdateCommitted"
)

// Phases in which an update fails.
const (
	PhaseCheck     = "check"      // refused before download: older than the running version or the floor
	PhaseDownload  = "download"   // the server's answers were wrong MaxDownloadFailures times
	PhaseVerify    = "verify"     // the Verifier refused the bundle
	PhaseInstall   = "install"    // unpacking failed, or the slot did not measure as the target says
	PhaseTrialBoot = "trial-boot" // the new system did not get as far as being verified
	PhaseHealth    = "health"     // not attested and healthy by the deadline, or measured wrong
)

// Event is a report about an update.
type Event struct {
	// ID is the same every time the same event is reported.
	ID          string       `json:"id"`
	Kind        EventKind    `json:"kind"`
	Time        time.Time    `json:"time"`
	Version     string       `json:"version"`      // the target's
	FromVersion string       `json:"from_version"` // the version running when the update began
	Slot        bootctl.Slot `json:"slot"`         // the slot the target went to
	Phase       string       `json:"phase,omitempty"`
	Reason      string       `json:"reason,omitempty"`
}

// Floor is the version floor: no version older than it is installed. It is kept in the state
// file (Config.Floor nil); the hardware-backed part of anti-rollback is the Counter.
type Floor interface {
	// Get returns the floor, "" if none was ever set.
	Get(ctx context.Context) (string, error)
	// Raise raises the floor to version; a version not above the floor changes nothing.
	Raise(ctx context.Context, version string) error
}

// Counter is the anti-rollback counter, in security versions: no target whose
// SecurityVersion is below it is installed, and a committed target advances it. rot.Counter
// satisfies it: the TPM backends keep it in an NV counter, which no write to the state
// directory can lower.
type Counter interface {
	ReadCounter(ctx context.Context) (uint64, error)
	AdvanceCounter(ctx context.Context, v uint64) error
}

// Defaults.
const (
	DefaultTrialTries          = 3
	DefaultVerifyTimeout       = 10 * time.Minute
	DefaultHealthInterval      = 10 * time.Second
	DefaultMaxDownloadFailures = 3
)

// Config configures a Machine.
type Config struct {
	// Dir is the machine's own directory (normally STATE/update): the state file and the
	// download. It must not hold anything else.
	Dir  string
	Boot bootctl.Controller
	// Client downloads bundles; nil means http.DefaultClient.
	Client   *http.Client
	Source   Source
	Verifier Verifier
	Health   Health
	Sink     Sink
	// Floor is the version floor; nil keeps it in the state file.
	Floor Floor
	// Counter is the anti-rollback counter; nil keeps it in the state file
	// (Status.SecurityCounter), which only a root of trust's counter makes tamper-proof.
	Counter Counter
	// Clock is nil for the system clock.
	Clock Clock
	// Unpack fills an empty slot directory from a verified bundle; nil means UnpackPackage.
	Unpack func(ctx context.Context, bundle, dir string) error
	// Logger is nil for no logging.
	Logger *slog.Logger
	// TrialTries is how many boots the new system gets to be verified (DefaultTrialTries).
	TrialTries int
	// VerifyTimeout is how long the new system has, from its first boot, to be verified
	// (DefaultVerifyTimeout); HealthInterval is how often Health is asked meanwhile.
	VerifyTimeout  time.Duration
	HealthInterval time.Duration
	// MaxDownloadFailures is how many wrong answers from the server (not cut connections)
	// fail the update (DefaultMaxDownloadFailures).
	MaxDownloadFailures int
	// Progress, if set, follows the download.
	Progress func(done, total int64)
	// Step, if set, is called after every durable step with its name; tests stop the process
	// there.
	Step func(step string)
}

func (c *Config) defaults() error {
	var errs []error
	for _, f := range []struct {
		name    string
		missing bool
	}{
		{"Dir", c.Dir == ""}, {"Boot", c.Boot == nil}, {"Source", c.Source == nil},
		{"Verifier", c.Verifier == nil}, {"Health", c.Health == nil}, {"Sink", c.Sink == nil},
	} {
		if f.missing {
			errs = append(errs, fmt.Errorf("osupdate: Config.%s is required", f.name))
		}
	}
	if c.TrialTries < 0 || c.TrialTries > bootctl.MaxTries {
		errs = append(errs, fmt.Errorf("osupdate: Config.TrialTries %d is outside 1 to %d", c.TrialTries, bootctl.MaxTries))
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if c.Client == nil {
		c.Client = http.DefaultClient
	}
	if c.Clock == nil {
		c.Clock = systemClock{}
	}
	if c.Unpack == nil {
		c.Unpack = UnpackPackage
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.TrialTries == 0 {
		c.TrialTries = DefaultTrialTries
	}
	if c.VerifyTimeout <= 0 {
		c.VerifyTimeout = DefaultVerifyTimeout
	}
	if c.HealthInterval <= 0 {
		c.HealthInterval = DefaultHealthInterval
	}
	if c.MaxDownloadFailures <= 0 {
		c.MaxDownloadFailures = DefaultMaxDownloadFailures
	}
	return nil
}
