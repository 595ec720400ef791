package agentcli

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/rampart-iot/rampart/internal/appinstall"
	"github.com/rampart-iot/rampart/internal/bootctl"
	"github.com/rampart-iot/rampart/internal/buildinfo"
	"github.com/rampart-iot/rampart/internal/checkinclient"
	"github.com/rampart-iot/rampart/internal/deviceupdate"
	"github.com/rampart-iot/rampart/internal/osupdate"
)

// Directories under the agent's state directory.
const (
	appsDir       = "apps"
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
	loop     *deviceupdate.Loop
	os       *osupdate.Machine
	boot     bootctl.Controller
	attested atomic.Bool            // since this start: the trial's health check
	refused  atomic.Pointer[string] // the verifier's latest refusal since this start
	reboot   chan struct{}
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

// newUpdates opens the update machinery. boot may be nil (no OS updates).
func newUpdates(ctx context.Context, f *runFlags, roots *x509.CertPool, boot bootctl.Controller, log *slog.Logger) (*updates, error) {
	apps, err := appinstall.Open(appinstall.Config{Dir: filepath.Join(f.state, appsDir), Logger: log})
	if err != nil {
		return nil, err
	}
	u := &updates{boot: boot, reboot: make(chan struct{}, 1)}
	cc := &checkinclient.Client{Server: f.server, RootCAs: roots, CertDir: f.state}
	u.loop, err = deviceupdate.New(deviceupdate.Config{Client: cc, Dir: filepath.Join(f.state, updateLoopDir), Apps: apps,
		Boot: boot, AgentVersion: buildinfo.Version(), Development: f.development, Logger: log,
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
		return u, nil
	}
	u.os, err = osupdate.Open(osupdate.Config{Dir: filepath.Join(f.state, osUpdateDir), Boot: boot, Client: cc.HTTPClient(),
		Source: u.loop, Verifier: u.loop, Logger: log, HealthInterval: healthInterval,
		Health: osupdate.HealthFunc(func(context.Context) error {
			if u.attested.Load() {
				return nil
			}
			if r := u.refused.Load(); r != nil {
				return fmt.Errorf("%w: the service refused its attestation (%s)", osupdate.ErrUnhealthy, *r)
			}
			return errors.New("the new system has not attested yet")
		}),
		Sink: osupdate.SinkFunc(func(_ context.Context, e osupdate.Event) error {
			log.Info("OS update event", "kind", e.Kind, "version", e.Version, "from", e.FromVersion, "phase", e.Phase, "reason", e.Reason)
			return nil
		})})
	if err != nil {
		return nil, err
	}
	u.loop.SetOS(u.os)
	return u, nil
}

// run resumes an OS update in flight (a trial waits here until the new system attested, which
// runs beside it), then runs the update loop until ctx ends or a reboot is needed. The OS
// update machine is used by one goroutine at a time: first here, then by the loop.
func (u *updates) run(ctx context.Context, log *slog.Logger) error {
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
	errc := make(chan error, 1)
	go func() { errc <- u.loop.Run(ctx) }()
	select {
	case <-u.reboot:
		return errReboot
	case err := <-errc:
		return err
	}
}
