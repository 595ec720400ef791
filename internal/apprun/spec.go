package apprun

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	sdk "github.com/rampart-iot/rampart/applibs"
	"github.com/rampart-iot/rampart/internal/appinstall"
	"github.com/rampart-iot/rampart/internal/applibs"
	"github.com/rampart-iot/rampart/internal/netpolicy"
	"github.com/rampart-iot/rampart/internal/sandbox"
	"github.com/rampart-iot/rampart/manifest"
)

// Environment variables every application gets; nothing else of the agent's environment is
// passed on.
const (
	EnvPath         = "PATH=/bin:/usr/bin"
	EnvComponentID  = "RAMPART_COMPONENT_ID"
	EnvImageID      = "RAMPART_IMAGE_ID"
	EnvImageVersion = "RAMPART_IMAGE_VERSION"
	// EnvApplibs holds the applibs socket's path in the sandbox (with Config.Applibs).
	EnvApplibs = sdk.EnvSocket
)

// errRealTime refuses real-time capable applications, which run on a real-time core, not here.
var errRealTime = errors.New("a real-time capable application is not run by the supervisor")

// spec builds the sandbox of in's current image from its manifest. release undoes what
// starting the sandbox set up outside it (the network); call it once the run is over, whether
// the sandbox started or not.
func (s *Supervisor) spec(in appinstall.Installed, uid uint32, out *ring) (_ sandbox.Spec, release func(), _ error) {
	release = func() {}
	m := in.Current.Manifest
	if m == nil {
		return sandbox.Spec{}, release, fmt.Errorf("image %s has no manifest", in.Current.ID)
	}
	if m.ApplicationType == manifest.ApplicationTypeRealTimeCapable {
		return sandbox.Spec{}, release, errRealTime
	}
	root, ok := s.cfg.Apps.Path(in.Current.ID)
	if !ok {
		return sandbox.Spec{}, release, fmt.Errorf("image %s is not installed", in.Current.ID)
	}
	spec := sandbox.Spec{
		Name: in.ComponentID,
		Root: root,
		Path: m.EntryPoint,
		Args: append([]string(nil), m.CmdArgs...),
		Env: []string{
			EnvPath,
			EnvComponentID + "=" + in.ComponentID,
			EnvImageID + "=" + in.Current.ID,
			EnvImageVersion + "=" + in.Current.Version,
		},
		UID:          uid,
		GID:          uid,
		Hostname:     sanitizeHostname(m.Name),
		Limits:       s.cfg.Limits,
		StopGrace:    s.cfg.StopGrace,
		Stdout:       out,
		Stderr:       out,
		CgroupParent: s.cfg.CgroupParent,
		// No Devices: every peripheral is brokered by the agent through the applibs API, checked
		// against the manifest, on the emulated and the linux board alike (docs/APPS-RUN.md).
	}
	if ms := m.Capabilities.MutableStorage; ms != nil {
		dir, ok := s.cfg.Apps.DataDir(in.ComponentID)
		if !ok {
			return sandbox.Spec{}, release, fmt.Errorf("no data directory for %s", in.ComponentID)
		}
		spec.Storage = &sandbox.Storage{Dir: dir, SizeKB: ms.SizeKB}
	}
	if s.cfg.Network != nil && netpolicy.Grants(m.Capabilities) {
		spec.ConfigureNetwork, release = s.network(in.ComponentID, m.Capabilities)
	}
	if s.cfg.Applibs != nil {
		app := applibs.App{ComponentID: in.ComponentID, Manifest: m, UID: uid, Log: out}
		if m.Capabilities.MutableStorage != nil {
			app.StorageUsed = func() (int64, error) {
				used, _, err := s.StorageUsage(in.ComponentID)
				return used, err
			}
		}
		socket, stop, err := s.cfg.Applibs.Open(app)
		if err != nil {
			release()
			return sandbox.Spec{}, func() {}, fmt.Errorf("applibs: %w", err)
		}
		spec.Sockets = append(spec.Sockets, sandbox.Socket{Source: socket, Target: applibs.SocketPath})
		spec.Env = append(spec.Env, EnvApplibs+"="+applibs.SocketPath)
		netRelease := release
		release = func() { stop(); netRelease() }
	}
	if s.cfg.Spec != nil {
		s.cfg.Spec(in, &spec)
	}
	return spec, release, nil
}

// network returns the sandbox's ConfigureNetwork hook for one run of an application, and the
// release that tears down what the hook set up.
func (s *Supervisor) network(cid string, caps manifest.Capabilities) (configure func(context.Context, string) error, release func()) {
	var mu sync.Mutex
	var teardown func() error
	configure = func(ctx context.Context, netns string) error {
		td, err := s.cfg.Network.Setup(ctx, netns, cid, caps)
		if err != nil {
			return err
		}
		mu.Lock()
		teardown = td
		mu.Unlock()
		return nil
	}
	release = func() {
		mu.Lock()
		td := teardown
		teardown = nil
		mu.Unlock()
		if td != nil {
			if err := td(); err != nil {
				s.log.Warn("tearing down an application's network", "component", cid, "err", err)
			}
		}
	}
	return configure, release
}

// backoff is the delay before the n-th restart in a row (n >= 1): BackoffMin×2^(n-1) capped at
// BackoffMax, less a random part of up to half of it, so that apps that crash together do not
// restart in lockstep.
func backoff(n int, lo, hi time.Duration, rnd float64) time.Duration {
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return d - time.Duration(float64(d/2)*rnd)
}

// ring keeps the last size bytes written to it: an application's stdout and stderr.
type ring struct {
	mu   sync.Mutex
	size int
	buf  []byte
}

func newRing(size int) *ring { return &ring{size: size} }

func (r *ring) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := len(p)
	if len(p) >= r.size {
		p = p[len(p)-r.size:]
		r.buf = append(r.buf[:0], p...)
		return n, nil
	}
	if over := len(r.buf) + len(p) - r.size; over > 0 {
		r.buf = append(r.buf[:0], r.buf[over:]...)
	}
	r.buf = append(r.buf, p...)
	return n, nil
}

// Bytes returns a copy of what the ring holds.
func (r *ring) Bytes() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.buf) == 0 {
		return nil
	}
	return append([]byte(nil), r.buf...)
}
