package agentcli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"unicode"
	"unicode/utf8"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/apprun"
	"github.com/rampart-iot/rampart/internal/atomicfile"
	"github.com/rampart-iot/rampart/internal/eventqueue"
	"github.com/rampart-iot/rampart/internal/osupdate"
)

// Error reporting on the device: what happens to apps, updates and attestation goes into a
// durable queue (STATE/events), which the update loop uploads after each check-in.

const (
	eventsDir    = "events"
	runningMark  = "agent.running" // present while an agent runs; found at start, the last one did not stop cleanly
	watchdogMark = "watchdog.boot" // the boot whose watchdog reset was reported, so it is reported once
)

// Where the kernel tells of watchdogs and of this boot; tests point them elsewhere.
var (
	sysRoot    = "/sys"
	bootIDFile = "/proc/sys/kernel/random/boot_id"
)

// wdiofCardReset is WDIOF_CARDRESET: the watchdog reset the machine last time.
const wdiofCardReset = 0x0020

// reporter turns the agent's happenings into error-report events.
type reporter struct {
	q   *eventqueue.Queue
	log *slog.Logger
}

func openReporter(state string, log *slog.Logger) (*reporter, error) {
	q, err := eventqueue.Open(eventqueue.Config{Dir: filepath.Join(state, eventsDir)})
	if err != nil {
		return nil, fmt.Errorf("opening the error-report queue: %w", err)
	}
	return &reporter{q: q, log: log}, nil
}

func (r *reporter) add(e v1.ReportEvent) {
	if _, err := r.q.Add(e); err != nil {
		r.log.Warn("cannot queue an error-report event", "type", e.Type, "error", err)
	}
}

// started records an AgentRestart if the last agent did not stop cleanly, and marks this one
// running; stopped clears the mark.
func (r *reporter) started(state string) {
	mark := filepath.Join(state, runningMark)
	if _, err := os.Stat(mark); err == nil {
		r.add(v1.ReportEvent{Type: v1.EventAgentRestart, Message: "the agent started again after it stopped without shutting down"})
	}
	if err := os.WriteFile(mark, []byte(fmt.Sprintln(os.Getpid())), 0o600); err != nil {
		r.log.Warn("cannot mark the agent running", "error", err)
	}
	r.watchdog(state)
}

// watchdog records a WatchdogReset, once per boot, when a hardware watchdog says it reset the
// device (WDIOF_CARDRESET in /sys/class/watchdog/*/bootstatus).
func (r *reporter) watchdog(state string) {
	files, _ := filepath.Glob(filepath.Join(sysRoot, "class", "watchdog", "*", "bootstatus"))
	var which string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 0, 32)
		if err == nil && v&wdiofCardReset != 0 {
			which = filepath.Base(filepath.Dir(f))
			break
		}
	}
	if which == "" {
		return
	}
	boot, err := os.ReadFile(bootIDFile)
	if err != nil {
		r.log.Warn("cannot read the boot ID: the watchdog reset may be reported again", "error", err)
	}
	mark := filepath.Join(state, watchdogMark)
	if prev, err := os.ReadFile(mark); err == nil && len(boot) > 0 && string(prev) == string(boot) {
		return // this boot's reset is reported already
	}
	r.add(v1.ReportEvent{Type: v1.EventWatchdogReset, Message: which + " reset the device"})
	if err := atomicfile.WriteFile(mark, boot, 0o600); err != nil {
		r.log.Warn("cannot record the reported watchdog reset", "error", err)
	}
}

// A stop the agent chose (a signal, or a restart into an OS trial) is planned, not a crash. It
// closes the queue: everything added is on disk already.
func (r *reporter) stopped(state string) {
	_ = os.Remove(filepath.Join(state, runningMark))
	if err := r.q.Close(); err != nil {
		r.log.Warn("closing the error-report queue", "error", err)
	}
}

// app reports an application event.
func (r *reporter) app(e apprun.Event) {
	ev := v1.ReportEvent{ComponentID: e.ComponentID, ImageID: e.ImageID}
	switch e.Kind {
	case apprun.EventExited:
		x := e.Exit
		if x == nil || x.Stopped {
			return // stopped by the platform: planned
		}
		switch {
		case x.OOMKilled:
			ev.Type = v1.EventAppOOM
		case x.SeccompKilled:
			ev.Type, ev.Reason = v1.EventSandboxDenied, "seccomp"
			ev.Signal = int(syscall.SIGSYS)
		case x.Signal != 0:
			ev.Type, ev.Signal = v1.EventAppCrash, int(x.Signal)
		default:
			code := x.Code
			ev.Type, ev.ExitCode = v1.EventAppExit, &code
			if code != 0 {
				ev.Type = v1.EventAppCrash
			}
		}
		ev.Message = x.String()
	case apprun.EventRolledBack:
		ev.Type, ev.ImageID, ev.Reason = v1.EventRollbackPerformed, e.FromImageID, "crash-on-start"
		ev.Message = fmt.Sprintf("rolled back from %s to %s: %s", e.FromVersion, e.Version, e.Reason)
	case apprun.EventFailed:
		ev.Type, ev.Reason, ev.Message = v1.EventSandboxDenied, "cannot-start", e.Error
	case apprun.EventDenied:
		d := e.Denied
		if d == nil {
			return
		}
		ev.Type, ev.Reason = v1.EventSandboxDenied, d.By
		switch d.By {
		case "network": // "network: tcp to 198.18.0.3:9000 refused"
			ev.Message = fmt.Sprintf("%s: %s refused", d.By, printable(d.Object))
		case "dns": // "dns: denied.test not in AllowedConnections"
			ev.Message = fmt.Sprintf("%s: %s not in %s", d.By, printable(d.Object), strings.Join(d.Blockers, ","))
		case "seccomp": // "seccomp: socket refused: raw or packet socket, or a refused address family"
			ev.Message = fmt.Sprintf("%s: %s refused", d.By, strings.Join(d.Blockers, ","))
			if d.Object != "" {
				ev.Message += ": " + printable(d.Object)
			}
		default: // "landlock: fs.write_file denied on /data/x"
			ev.Message = fmt.Sprintf("%s: %s denied", d.By, strings.Join(d.Blockers, ","))
			if d.Object != "" {
				ev.Message += " on " + printable(d.Object)
			}
		}
		if d.Count > 1 {
			ev.Message += fmt.Sprintf(" (%d times)", d.Count)
		}
		ev.Message = clipMessage(ev.Message)
	case apprun.EventDenialsLost: // the device's, no app's
		ev.Type, ev.Reason = v1.EventSandboxDenied, v1.ReasonDenialsLost
		ev.Message = fmt.Sprintf("sandbox denial reporting lost records: the kernel's audit socket overflowed %d times in the last minute; denials of any app may be missing", e.Lost)
	default:
		return
	}
	r.add(ev)
}

// printable is s, quoted if it holds anything but printable UTF-8: the app chose it.
func printable(s string) string {
	if strings.ContainsFunc(s, func(r rune) bool { return r == utf8.RuneError || !unicode.IsPrint(r) }) {
		return strconv.Quote(s)
	}
	return s
}

// maxMessage is the longest ReportEvent.Message the service takes, in bytes.
const maxMessage = 512

// clipMessage cuts m to maxMessage bytes, on a UTF-8 boundary, marking the cut.
func clipMessage(m string) string {
	if len(m) <= maxMessage {
		return m
	}
	cut := maxMessage - len("...")
	for cut > 0 && !utf8.RuneStart(m[cut]) {
		cut--
	}
	return m[:cut] + "..."
}

// osEvent reports an OS update event; it is the OS update machine's Sink.
func (r *reporter) osEvent(_ context.Context, e osupdate.Event) error {
	ev := v1.ReportEvent{Phase: e.Phase, Reason: reasonCode(e.Phase), Message: e.Reason}
	switch e.Kind {
	case osupdate.UpdateFailed:
		ev.Type = v1.EventUpdateFailed
	case osupdate.RollbackPerformed:
		ev.Type = v1.EventRollbackPerformed
	default:
		return nil // a commit is no failure
	}
	if len(ev.Message) > 0 {
		ev.Message = fmt.Sprintf("OS %s (from %s): %s", e.Version, e.FromVersion, ev.Message)
	}
	_, err := r.q.Add(ev)
	return err
}

func reasonCode(phase string) string {
	if phase == "" {
		return ""
	}
	return "os-" + phase
}

// attestationRefused reports a refused attestation.
func (r *reporter) attestationRefused(reason string) {
	r.add(v1.ReportEvent{Type: v1.EventAttestationFailed, Reason: reason})
}

// flush uploads the queue.
func (r *reporter) flush(ctx context.Context, upload func(context.Context, v1.ReportBatch) error) error {
	n, err := r.q.Flush(ctx, upload)
	if n > 0 {
		r.log.Info("uploaded error reports", "events", n)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("uploading error reports: %w", err)
	}
	return nil
}
