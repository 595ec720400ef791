// Package appinstall is the device's application installer: it installs verified application
// image packages side by side with the version that runs, switches to the new one only once it
// is completely in place, keeps the previous version for rollback, and never touches an
// application's mutable storage except when asked to purge it.
//
// It owns one directory (STATE/apps):
//
//	apps.json              the state file, replaced atomically (internal/atomicfile)
//	images/<image-id>/     an extracted, verified image, read-only once installed
//	images/<image-id>.tmp-*  an extraction in progress, removed on error and by Open
//	data/<component-id>/   the application's mutable storage
//
// A directory under images/ is trusted to be complete only while the state file names it as a
// component's current or previous image: the state file is written only after the image is
// extracted, verified, made read-only, synced and renamed into place, and an image is deleted
// only after the state file stops naming it. Open deletes everything else under images/.
//
// Trust: appinstall trusts nothing in a package until the caller's Verify accepts it (the
// agent's trust decision: the update metadata's hashes, signatures by keys it trusts, the
// development key only in development mode); the payload is trusted only once its digest, which
// the verified metadata gives, has matched during extraction. It trusts the state file and the
// directories it wrote, parsing the state file strictly all the same. It checks what a device
// must refuse on its own: packages that are not applications, manifests that do not parse, a
// peripheral another installed application holds, and versions that go back without a
// deployment or a developer asking for them.
package appinstall

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/rampart-iot/rampart/manifest"
)

// Names inside Config.Dir.
const (
	StateFile = "apps.json"
	ImagesDir = "images"
	DataDir   = "data"
)

// Config configures Apps.
type Config struct {
	// Dir is the installer's own directory (normally STATE/apps). It must not hold anything
	// else.
	Dir string
	// Logger is nil for no logging.
	Logger *slog.Logger
	// Now is nil for time.Now; it only stamps records.
	Now func() time.Time
	// Step, if set, is called after every durable step with its name; tests stop the process
	// there.
	Step func(step string)

	// wrap, if set, wraps the package file as it is read (the tests' byte-offset kills).
	wrap func(io.ReaderAt) io.ReaderAt
}

// Origin says who asked for an image, which decides whether it may go back in version.
type Origin string

// The origins.
const (
	// OriginUpdate is the default: only a version newer than the one installed is accepted.
	OriginUpdate Origin = "update"
	// OriginDeployment is an image the verified update metadata (the director) names for the
	// device: any version is accepted, an older one too, because the tenant may deploy an
	// older release and the update metadata's own version rules are what resists rollback.
	OriginDeployment Origin = "deployment"
	// OriginSideload is a developer's install on a device in development mode: any version,
	// the same one again, and an image that was rolled back from.
	OriginSideload Origin = "sideload"
)

var origins = []Origin{OriginUpdate, OriginDeployment, OriginSideload}

// Status is where a component stands.
type Status string

// The statuses.
const (
	// StatusInstalled: the current image was installed and has not failed.
	StatusInstalled Status = "installed"
	// StatusRolledBack: the image in Failed failed and the component went back to Current.
	StatusRolledBack Status = "rolled-back"
)

// Image is one installed image of a component.
type Image struct {
	// ID is the image ID and Version its semantic version, from the verified metadata.
	ID      string `json:"id"`
	Version string `json:"version"`
	// SHA256 is the payload's digest (lower-case hex), checked when it was extracted.
	SHA256 string `json:"sha256"`
	// Development is true if the package was signed with the development key alone.
	Development bool   `json:"development,omitempty"`
	Origin      Origin `json:"origin"`
	// At is when it was installed (or rolled back from, in Installed.Failed).
	At time.Time `json:"at"`
	// Manifest is the application manifest the image was packaged with.
	Manifest *manifest.Manifest `json:"-"`
}

// Installed is an installed component.
type Installed struct {
	ComponentID string
	// Name is the current manifest's Name.
	Name string
	// Current is the image that runs; its root is Path(Current.ID).
	Current Image
	// Previous is the image that ran before Current, kept for Rollback; nil if none.
	Previous *Image
	Status   Status
	// Failed is the image the component rolled back from, and Reason why; it is not installed
	// again until another image has been (except by a sideload).
	Failed *Image
	Reason string
}

// RolledBack is what Rollback did, for the agent's report ("rolled back from X to Y: reason").
type RolledBack struct {
	ComponentID string
	From, To    Image
	Reason      string
}

// Errors, wrapped in the errors the operations return.
var (
	ErrNotInstalled = errors.New("no such application is installed")
	ErrUnverified   = errors.New("the package was not verified")
	ErrWrongKind    = errors.New("the package is not an application")
	ErrNotNewer     = errors.New("the version is not newer than the installed one")
	ErrFailedImage  = errors.New("the image was rolled back from")
	ErrNoPrevious   = errors.New("there is no previous image to roll back to")
	ErrImageID      = errors.New("the image ID is already installed with other contents")
)

// Apps is the installed applications in Config.Dir. One process owns the directory; Apps is
// safe for concurrent use within it. Install, Rollback and Remove run one at a time; the
// queries read the last saved state and do not wait for them.
type Apps struct {
	cfg Config
	op  sync.Mutex // held by every operation that writes

	mu sync.RWMutex // guards st
	st *state
}

// Open opens the installer's directory, creating it if needed, and recovers from a crash: it
// removes temporary files and every image that the state file does not name, and finishes
// purges of application data that a Remove had started.
func Open(cfg Config) (*Apps, error) {
	if cfg.Dir == "" {
		return nil, errors.New("appinstall: Config.Dir is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	for _, d := range []string{cfg.Dir, filepath.Join(cfg.Dir, ImagesDir), filepath.Join(cfg.Dir, DataDir)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("opening the application store: %w", err)
		}
	}
	st, err := readState(filepath.Join(cfg.Dir, StateFile))
	if err != nil {
		return nil, err
	}
	a := &Apps{cfg: cfg, st: st}
	if err := a.recover(); err != nil {
		return nil, fmt.Errorf("recovering the application store: %w", err)
	}
	return a, nil
}

func (a *Apps) step(name string) {
	if a.cfg.Step != nil {
		a.cfg.Step(name)
	}
}

// List returns every installed component, ordered by component ID.
func (a *Apps) List() []Installed {
	return a.state().list()
}

// Get returns the installed component componentID.
func (a *Apps) Get(componentID string) (Installed, bool) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	c, ok := a.st.Components[componentID]
	if !ok {
		return Installed{}, false
	}
	return c.installed(componentID), true
}

// Path returns the root directory of the installed image imageID (a component's current or
// previous image), which the sandbox mounts read-only; ok is false if no component has it.
// The directory stays until an install or rollback leaves it neither current nor previous.
func (a *Apps) Path(imageID string) (dir string, ok bool) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if !slices.Contains(a.st.images(), imageID) {
		return "", false
	}
	return a.imageDir(imageID), true
}

// DataDir returns the mutable storage directory of the installed component componentID; ok
// is false if it is not installed. The directory exists; the sandbox gives it to the
// application's user and applies the manifest's MutableStorage quota.
func (a *Apps) DataDir(componentID string) (dir string, ok bool) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if _, ok := a.st.Components[componentID]; !ok {
		return "", false
	}
	return a.dataDir(componentID), true
}

func (a *Apps) imageDir(id string) string { return filepath.Join(a.cfg.Dir, ImagesDir, id) }
func (a *Apps) dataDir(id string) string  { return filepath.Join(a.cfg.Dir, DataDir, id) }

// save writes next as the state file and makes it the state.
func (a *Apps) save(next *state, step string) error {
	if err := writeState(filepath.Join(a.cfg.Dir, StateFile), next); err != nil {
		return err
	}
	a.mu.Lock()
	a.st = next
	a.mu.Unlock()
	a.step(step)
	return nil
}

// Read returns the components recorded in the state file of the installer directory dir,
// ordered by component ID, without opening it: nothing is recovered or written. It is for
// status reports from another process, and for tests.
func Read(dir string) ([]Installed, error) {
	st, err := readState(filepath.Join(dir, StateFile))
	if err != nil {
		return nil, err
	}
	return st.list(), nil
}
