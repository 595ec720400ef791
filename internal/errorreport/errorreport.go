// Package errorreport is failure reporting's shared rules and its service side: which event
// types exist and what each must carry (Validate, which the device's queue applies too, so that
// it never holds an event the service would refuse), how events are classed and described as
// Azure Sphere's error reports are, the ingest of a device's upload, the error-report download
// (CSV or JSON), and retention.
//
// Trust: the device's identity comes from mutual TLS, checked by the caller; every event is the
// device's word, checked only for shape and bounds and stored as said, except that a time later
// than the service's clock is recorded as the time of receipt. The device's group, product and
// deployment are the service's own, read when the upload arrives.
package errorreport

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/problem"
	"github.com/rampart-iot/rampart/manifest"
)

// kind says what one event type must carry.
type kind struct {
	class        string
	component    bool // component_id required
	signalOrExit bool // a signal or an exit code required
	exit         bool // exit_code required, no signal
	phase        bool
	reason       bool
}

var kinds = map[string]kind{
	v1.EventAppCrash:          {class: v1.EventClassApplication, component: true, signalOrExit: true},
	v1.EventAppExit:           {class: v1.EventClassApplication, component: true, exit: true},
	v1.EventAppOOM:            {class: v1.EventClassApplication, component: true},
	v1.EventSandboxDenied:     {class: v1.EventClassApplication, component: true, reason: true},
	v1.EventUpdateFailed:      {class: v1.EventClassOS, phase: true, reason: true},
	v1.EventRollbackPerformed: {class: v1.EventClassOS},
	v1.EventAttestationFailed: {class: v1.EventClassOS, reason: true},
	v1.EventAgentRestart:      {class: v1.EventClassOS},
	v1.EventWatchdogReset:     {class: v1.EventClassOS},
}

// Types lists the event types, for messages and documentation.
const Types = "AppCrash, AppExit, AppOOM, SandboxDenied, UpdateFailed, RollbackPerformed, AttestationFailed, AgentRestart or WatchdogReset"

// KnownType reports whether typ is an event type.
func KnownType(typ string) bool { _, ok := kinds[typ]; return ok }

// Class is the Azure Sphere event class of an event type: Application or OS.
func Class(typ string) string {
	if k, ok := kinds[typ]; ok {
		return k.class
	}
	return v1.EventClassOS
}

// EventType is the Azure Sphere event type of an event: Planned for an app that exited with
// status 0, Unplanned for everything else.
func EventType(typ string, exitCode *int) string {
	if typ == v1.EventAppExit && exitCode != nil && *exitCode == 0 {
		return v1.EventTypePlanned
	}
	return v1.EventTypeUnplanned
}

// Description describes an event or a bucket as Azure Sphere's error reports do, e.g.
// "AppCrash (signal=11; component_id=…; image_id=…)". Empty parts are left out.
func Description(typ string, signal int, exitCode *int, componentID, imageID, phase, reason string) string {
	var parts []string
	if signal != 0 {
		parts = append(parts, fmt.Sprintf("signal=%d", signal))
	}
	if exitCode != nil {
		parts = append(parts, fmt.Sprintf("exit_status=%d", *exitCode))
	}
	for _, p := range [][2]string{{"phase", phase}, {"reason", reason}, {"component_id", componentID}, {"image_id", imageID}} {
		if p[1] != "" {
			parts = append(parts, p[0]+"="+p[1])
		}
	}
	if len(parts) == 0 {
		return typ
	}
	return typ + " (" + strings.Join(parts, "; ") + ")"
}

// ValidateEvent names every problem of one event; field prefixes each detail's field (such as
// "events[3]").
func ValidateEvent(field string, e v1.ReportEvent) []v1.ErrorDetail {
	var d []v1.ErrorDetail
	bad := func(f, format string, args ...any) {
		d = append(d, v1.ErrorDetail{Field: field + "." + f, Message: fmt.Sprintf(format, args...)})
	}
	uuid := func(f, s string, required bool) {
		if s == "" {
			if required {
				bad(f, "is required for %s", e.Type)
			}
			return
		}
		if _, err := manifest.ParseUUID(s); err != nil {
			bad(f, "%v", err)
		}
	}
	text := func(f, s string, max int, required bool) {
		switch {
		case s == "" && required:
			bad(f, "is required for %s", e.Type)
		case len(s) > max:
			bad(f, "is longer than %d bytes", max)
		case !utf8.ValidString(s):
			bad(f, "is not valid UTF-8")
		case strings.ContainsFunc(s, unicode.IsControl):
			bad(f, "holds a control character")
		}
	}
	uuid("id", e.ID, true)
	k, ok := kinds[e.Type]
	if !ok {
		bad("type", "must be %s, not %q", Types, clip(e.Type))
	}
	if e.Time.IsZero() {
		bad("time", "is required")
	}
	// SandboxDenied denials-lost is the device's: its reader of every app's denials fell behind.
	uuid("component_id", e.ComponentID, k.component && !(e.Type == v1.EventSandboxDenied && e.Reason == v1.ReasonDenialsLost))
	uuid("image_id", e.ImageID, false)
	if e.Signal < 0 || e.Signal > v1.MaxReportSignal {
		bad("signal", "must be from 1 to %d (or absent), not %d", v1.MaxReportSignal, e.Signal)
	}
	if e.ExitCode != nil && (*e.ExitCode < 0 || *e.ExitCode > v1.MaxReportExit) {
		bad("exit_code", "must be from 0 to %d, not %d", v1.MaxReportExit, *e.ExitCode)
	}
	switch {
	case k.exit && e.ExitCode == nil:
		bad("exit_code", "is required for %s", e.Type)
	case k.exit && e.Signal != 0:
		bad("signal", "must be absent for %s (a signal is an AppCrash)", e.Type)
	case k.signalOrExit && e.Signal == 0 && e.ExitCode == nil:
		bad("signal", "or exit_code is required for %s", e.Type)
	}
	text("phase", e.Phase, v1.MaxReportPhase, k.phase)
	text("reason", e.Reason, v1.MaxReportReason, k.reason)
	text("message", e.Message, v1.MaxReportMessage, false)
	return d
}

// Validate checks a device's upload, naming every problem at once: at most MaxReportEvents
// events, each valid, no event ID twice, a dropped count that is not negative.
func Validate(b v1.ReportBatch) error {
	var d []v1.ErrorDetail
	switch {
	case b.Events == nil:
		d = append(d, v1.ErrorDetail{Field: "events", Message: "is required (an empty list to report only the dropped count)"})
	case len(b.Events) > v1.MaxReportEvents:
		d = append(d, v1.ErrorDetail{Field: "events", Message: fmt.Sprintf("holds %d events; at most %d", len(b.Events), v1.MaxReportEvents)})
	default:
		seen := map[string]int{}
		for i, e := range b.Events {
			f := fmt.Sprintf("events[%d]", i)
			d = append(d, ValidateEvent(f, e)...)
			id := strings.ToLower(e.ID)
			if j, ok := seen[id]; ok && id != "" {
				d = append(d, v1.ErrorDetail{Field: f + ".id", Message: fmt.Sprintf("repeats events[%d].id", j)})
			} else {
				seen[id] = i
			}
		}
	}
	if b.Dropped < 0 {
		d = append(d, v1.ErrorDetail{Field: "dropped", Message: "must not be negative"})
	}
	if len(d) > 0 {
		return problem.Invalid(d...)
	}
	return nil
}

// clip shortens s for an error message.
func clip(s string) string {
	if len(s) <= 64 {
		return s
	}
	return strings.ToValidUTF8(s[:64], "") + "…"
}
