// Package agent runs the device agent's cloud-services loop: it measures the device at start,
// attests, keeps the device's certificates fresh (again at half their lifetime, at once when
// told to, and after failures with exponential backoff and full jitter), and reports its state
// in a status file that `rampart-agent status` reads.
//
// Trust: it trusts the root of trust and the service it is configured with.
package agent

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/rampart-iot/rampart/enrollment"
	"github.com/rampart-iot/rampart/internal/atomicfile"
	"github.com/rampart-iot/rampart/internal/attestclient"
	"github.com/rampart-iot/rampart/internal/eventlog"
	"github.com/rampart-iot/rampart/internal/measure"
	"github.com/rampart-iot/rampart/internal/rot"
)

// Defaults.
const (
	DefaultMinBackoff = 2 * time.Second
	DefaultMaxBackoff = 5 * time.Minute
	StatusFile        = "status.json"
	RunDir            = "run" // under the state dir unless Config.RunDir says otherwise
	MeasurementLog    = "measurements.json"
)

// Config configures the agent.
type Config struct {
	RoT      rot.RootOfTrust
	StateDir string
	// RunDir holds what must not survive a reboot (the measurement log); default STATE/run.
	// On a real device, point it at a tmpfs such as /run/rampart.
	RunDir  string
	Server  string
	RootCAs *x509.CertPool
	PCR     int // default eventlog.DefaultPCR
	Inputs  measure.Inputs
	// Components that need their own certificate (apps with DeviceAuthentication).
	Components []string
	// ComponentsFunc, if set, is asked before each attestation and replaces Components: the
	// installed apps change while the agent runs.
	ComponentsFunc func() []string
	// Trigger makes the agent attest at once (SIGHUP).
	Trigger <-chan struct{}
	// OnAttested, if set, is called after each successful attestation (the OS update's health
	// check waits for the first one after a trial boot).
	OnAttested func()
	// OnRefused, if set, is called when the service refuses an attestation, with the
	// verifier's reason (a trial boot of a system the tenant did not release is unhealthy).
	OnRefused func(reason string)
	// HTTP, if set, is the client attestation uses (the cloud broker's, without the agent's
	// certificate); default one built from RootCAs.
	HTTP       *http.Client
	MinBackoff time.Duration
	MaxBackoff time.Duration
	Logger     *slog.Logger
	Now        func() time.Time
	Rand       io.Reader
}

// Status is what the agent reports about itself.
type Status struct {
	DeviceID           string    `json:"device_id"`
	RootOfTrust        string    `json:"root_of_trust"`
	Server             string    `json:"server"`
	State              string    `json:"state"` // starting, attested, failing
	LastAttempt        time.Time `json:"last_attempt,omitzero"`
	LastSuccess        time.Time `json:"last_success,omitzero"`
	LastError          string    `json:"last_error,omitempty"`
	Reason             string    `json:"reason,omitempty"`
	OSRelease          string    `json:"os_release,omitempty"`
	CertificateExpires time.Time `json:"certificate_expires,omitzero"`
	RenewAfter         time.Time `json:"renew_after,omitzero"`
	NextAttempt        time.Time `json:"next_attempt,omitzero"`
	Failures           int       `json:"consecutive_failures"`
}

// States.
const (
	StateStarting = "starting"
	StateAttested = "attested"
	StateFailing  = "failing"
)

// ReadStatus reads the status file of the agent whose state directory is dir.
func ReadStatus(dir string) (Status, error) {
	var s Status
	b, err := os.ReadFile(filepath.Join(dir, StatusFile))
	if err != nil {
		return s, fmt.Errorf("no agent status in %s: %w", dir, err)
	}
	return s, json.Unmarshal(b, &s)
}

func writeStatus(dir string, s Status) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, StatusFile), append(b, '\n'), 0o644)
}

// Run measures, then attests until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	rnd := cfg.Rand
	if rnd == nil {
		rnd = rand.Reader
	}
	if cfg.PCR == 0 {
		cfg.PCR = eventlog.DefaultPCR
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	runDir := cfg.RunDir
	if runDir == "" {
		runDir = filepath.Join(cfg.StateDir, RunDir)
	}
	ek, _, err := cfg.RoT.Endorsement(ctx)
	if err != nil {
		return fmt.Errorf("reading the endorsement key: %w", err)
	}
	st := Status{DeviceID: enrollment.DeviceID(ek), RootOfTrust: cfg.RoT.Kind(), Server: cfg.Server, State: StateStarting}
	if err := writeStatus(cfg.StateDir, st); err != nil {
		return err
	}
	mlog, err := measure.Boot(ctx, cfg.RoT, cfg.PCR, cfg.Inputs, filepath.Join(runDir, MeasurementLog))
	if err != nil {
		return fmt.Errorf("measuring the device: %w", err)
	}
	log.Info("measured", "pcr", cfg.PCR, "measurements", mlog.Measurements())
	client := &attestclient.Client{RoT: cfg.RoT, Log: mlog, PCRs: []int{cfg.PCR}, Server: cfg.Server, RootCAs: cfg.RootCAs,
		DeviceID: st.DeviceID, Dir: cfg.StateDir, Components: cfg.Components, Rand: rnd, HTTP: cfg.HTTP}
	for {
		st.LastAttempt = now()
		if cfg.ComponentsFunc != nil {
			client.Components = cfg.ComponentsFunc()
		}
		res, err := client.Attest(ctx)
		var wait time.Duration
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			st.State, st.LastError, st.Reason = StateFailing, err.Error(), ""
			var ae *attestclient.Error
			if errors.As(err, &ae) {
				st.Reason = ae.Reason
			}
			st.Failures++
			if st.Reason != "" && cfg.OnRefused != nil {
				cfg.OnRefused(st.Reason)
			}
			wait = backoff(cfg.MinBackoff, cfg.MaxBackoff, st.Failures, rnd)
			log.Warn("attestation failed", "error", err, "retry_in", wait.Round(time.Millisecond))
		} else {
			st.State, st.LastError, st.Reason, st.Failures = StateAttested, "", "", 0
			st.LastSuccess, st.OSRelease, st.CertificateExpires, st.RenewAfter = now(), res.OSRelease, res.NotAfter, res.RenewAfter
			wait = res.RenewAfter.Sub(now())
			// Renew a little early, by up to a tenth of the wait, so a fleet spreads out.
			if wait > 0 {
				wait -= jitter(wait/10, rnd)
			}
			if wait < cfg.MinBackoff {
				wait = cfg.MinBackoff
			}
			log.Info("attested", "os_release", res.OSRelease, "certificate_expires", res.NotAfter, "next", wait.Round(time.Second))
			if cfg.OnAttested != nil {
				cfg.OnAttested()
			}
		}
		st.NextAttempt = now().Add(wait)
		if err := writeStatus(cfg.StateDir, st); err != nil {
			log.Error("cannot write the status file", "error", err)
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-cfg.Trigger:
			timer.Stop()
			log.Info("attesting now, as asked")
		case <-timer.C:
		}
	}
}

// backoff is exponential from min, capped at max, with full jitter.
func backoff(min, max time.Duration, failures int, rnd io.Reader) time.Duration {
	d := min
	for i := 1; i < failures && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	// Full jitter, but never less than half of min so a broken service is not hammered.
	j := jitter(d, rnd)
	if j < min/2 {
		j = min / 2
	}
	return j
}

func jitter(d time.Duration, rnd io.Reader) time.Duration {
	if d <= 0 {
		return 0
	}
	n, err := rand.Int(rnd, big.NewInt(int64(d)))
	if err != nil {
		return d / 2
	}
	return time.Duration(n.Int64())
}
