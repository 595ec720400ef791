package errorreport_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/errorreport"
	"github.com/rampart-iot/rampart/internal/problem"
	"github.com/rampart-iot/rampart/internal/store"
	"github.com/rampart-iot/rampart/internal/strictjson"
)

const (
	comp = "2a4e5d8f-0c1b-4a7e-9b3d-5f6e7a8b9c0d"
	img  = "7b8c9d0e-1f2a-4b3c-8d4e-5f6a7b8c9d0e"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func exit(n int) *int { return &n }

func ev(id, typ string) v1.ReportEvent {
	return v1.ReportEvent{ID: id, Type: typ, Time: t0, ComponentID: comp, ImageID: img}
}

func validEvents() []v1.ReportEvent {
	crash := ev("01950000-0000-7000-8000-000000000001", v1.EventAppCrash)
	crash.Signal = 11
	ex := ev("01950000-0000-7000-8000-000000000002", v1.EventAppExit)
	ex.ExitCode = exit(0)
	oom := ev("01950000-0000-7000-8000-000000000003", v1.EventAppOOM)
	deny := ev("01950000-0000-7000-8000-000000000004", v1.EventSandboxDenied)
	deny.Reason = "connect 10.0.0.1:443"
	upd := v1.ReportEvent{ID: "01950000-0000-7000-8000-000000000005", Type: v1.EventUpdateFailed, Time: t0, Phase: "verify", Reason: "digest-mismatch"}
	rb := v1.ReportEvent{ID: "01950000-0000-7000-8000-000000000006", Type: v1.EventRollbackPerformed, Time: t0}
	att := v1.ReportEvent{ID: "01950000-0000-7000-8000-000000000007", Type: v1.EventAttestationFailed, Time: t0, Reason: "measurement_mismatch"}
	ar := v1.ReportEvent{ID: "01950000-0000-7000-8000-000000000008", Type: v1.EventAgentRestart, Time: t0}
	wd := v1.ReportEvent{ID: "01950000-0000-7000-8000-000000000009", Type: v1.EventWatchdogReset, Time: t0}
	// The device's own: its denial reporting lost records, of no app in particular.
	lost := v1.ReportEvent{ID: "01950000-0000-7000-8000-000000000010", Type: v1.EventSandboxDenied, Time: t0, Reason: v1.ReasonDenialsLost}
	return []v1.ReportEvent{crash, ex, oom, deny, upd, rb, att, ar, wd, lost}
}

func TestValidateAcceptsEveryType(t *testing.T) {
	if err := errorreport.Validate(v1.ReportBatch{Events: validEvents(), Dropped: 3}); err != nil {
		t.Fatal(err)
	}
	if err := errorreport.Validate(v1.ReportBatch{Events: []v1.ReportEvent{}}); err != nil {
		t.Fatalf("an empty batch (only a dropped count) was refused: %v", err)
	}
}

func TestValidateNamesEachProblem(t *testing.T) {
	many := make([]v1.ReportEvent, v1.MaxReportEvents+1)
	for i := range many {
		many[i] = validEvents()[8]
	}
	mod := func(i int, f func(e *v1.ReportEvent)) v1.ReportBatch {
		es := validEvents()
		f(&es[i])
		return v1.ReportBatch{Events: es}
	}
	cases := []struct {
		name  string
		b     v1.ReportBatch
		field string
		says  string
	}{
		{"no events", v1.ReportBatch{}, "events", "required"},
		{"too many", v1.ReportBatch{Events: many}, "events", "at most 256"},
		{"negative dropped", v1.ReportBatch{Events: []v1.ReportEvent{}, Dropped: -1}, "dropped", "negative"},
		{"bad id", mod(0, func(e *v1.ReportEvent) { e.ID = "x" }), "events[0].id", "UUID"},
		{"no id", mod(0, func(e *v1.ReportEvent) { e.ID = "" }), "events[0].id", "required"},
		{"repeated id", mod(1, func(e *v1.ReportEvent) { e.ID = strings.ToUpper(validEvents()[0].ID) }), "events[1].id", "repeats events[0]"},
		{"bad type", mod(0, func(e *v1.ReportEvent) { e.Type = "Crash" }), "events[0].type", "AppCrash"},
		{"no time", mod(0, func(e *v1.ReportEvent) { e.Time = time.Time{} }), "events[0].time", "required"},
		{"crash without signal", mod(0, func(e *v1.ReportEvent) { e.Signal = 0 }), "events[0].signal", "exit_code is required"},
		{"signal too big", mod(0, func(e *v1.ReportEvent) { e.Signal = 65 }), "events[0].signal", "1 to 64"},
		{"exit without code", mod(1, func(e *v1.ReportEvent) { e.ExitCode = nil }), "events[1].exit_code", "required"},
		{"exit code too big", mod(1, func(e *v1.ReportEvent) { e.ExitCode = exit(256) }), "events[1].exit_code", "0 to 255"},
		{"exit with signal", mod(1, func(e *v1.ReportEvent) { e.Signal = 9 }), "events[1].signal", "AppCrash"},
		{"app event without component", mod(2, func(e *v1.ReportEvent) { e.ComponentID = "" }), "events[2].component_id", "required for AppOOM"},
		{"bad image", mod(2, func(e *v1.ReportEvent) { e.ImageID = "nope" }), "events[2].image_id", "UUID"},
		{"denial without component", mod(3, func(e *v1.ReportEvent) { e.ComponentID = "" }), "events[3].component_id", "required for SandboxDenied"},
		{"lost denials with a bad component", mod(9, func(e *v1.ReportEvent) { e.ComponentID = "x" }), "events[9].component_id", "UUID"},
		{"denial without reason", mod(3, func(e *v1.ReportEvent) { e.Reason = "" }), "events[3].reason", "required"},
		{"update without phase", mod(4, func(e *v1.ReportEvent) { e.Phase = "" }), "events[4].phase", "required"},
		{"long reason", mod(4, func(e *v1.ReportEvent) { e.Reason = strings.Repeat("r", 257) }), "events[4].reason", "256 bytes"},
		{"long message", mod(5, func(e *v1.ReportEvent) { e.Message = strings.Repeat("m", 513) }), "events[5].message", "512 bytes"},
		{"control character", mod(5, func(e *v1.ReportEvent) { e.Message = "a\x1b[2Jb" }), "events[5].message", "control"},
		{"bad UTF-8", mod(5, func(e *v1.ReportEvent) { e.Message = "\xff" }), "events[5].message", "UTF-8"},
		{"attestation without reason", mod(6, func(e *v1.ReportEvent) { e.Reason = "" }), "events[6].reason", "required"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := errorreport.Validate(c.b)
			var pe *problem.Error
			if !errors.As(err, &pe) || pe.Code != v1.CodeValidation {
				t.Fatalf("got %v, want a validation problem", err)
			}
			for _, d := range pe.Details {
				if d.Field == c.field && strings.Contains(d.Message, c.says) {
					return
				}
			}
			t.Fatalf("no detail on %s saying %q: %+v", c.field, c.says, pe.Details)
		})
	}
}

func TestDescriptionAndClass(t *testing.T) {
	for _, c := range []struct {
		got, want string
	}{
		{errorreport.Description("AppCrash", 11, exit(139), comp, img, "", ""), "AppCrash (signal=11; exit_status=139; component_id=" + comp + "; image_id=" + img + ")"},
		{errorreport.Description("UpdateFailed", 0, nil, "", "", "verify", "digest-mismatch"), "UpdateFailed (phase=verify; reason=digest-mismatch)"},
		{errorreport.Description("WatchdogReset", 0, nil, "", "", "", ""), "WatchdogReset"},
		{errorreport.Description("SandboxDenied", 0, nil, "", "", "", v1.ReasonDenialsLost), "SandboxDenied (reason=denials-lost)"},
		{errorreport.Row(store.ErrorBucket{DeviceID: "ab12", Type: "SandboxDenied", ExitCode: store.NoExitCode, Count: 2, Devices: 1}).Description, "SandboxDenied"},
		{errorreport.Row(store.ErrorBucket{DeviceID: "ab12", Type: "SandboxDenied", ExitCode: store.NoExitCode, Count: 2, Devices: 1}).EventClass, "Application"},
		{errorreport.Class("AppOOM"), "Application"},
		{errorreport.Class("SandboxDenied"), "Application"},
		{errorreport.Class("UpdateFailed"), "OS"},
		{errorreport.EventType("AppExit", exit(0)), "Planned"},
		{errorreport.EventType("AppExit", exit(1)), "Unplanned"},
		{errorreport.EventType("AppCrash", nil), "Unplanned"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

func TestWriteCSV(t *testing.T) {
	row := errorreport.Row(store.ErrorBucket{DeviceID: "ab12", Type: "AppCrash", ComponentID: comp, ImageID: img, Signal: 11,
		ExitCode: store.NoExitCode, Count: 3, Devices: 1, FirstSeen: t0, LastSeen: t0.Add(time.Hour)})
	var buf bytes.Buffer
	if err := errorreport.WriteCSV(&buf, []v1.ErrorReportRow{row}); err != nil {
		t.Fatal(err)
	}
	want := "Device ID,Event Type,Event Class,Event Count,Description,Start Time,End Time\n" +
		"ab12,Unplanned,Application,3,AppCrash (signal=11; component_id=" + comp + "; image_id=" + img + "),2026-03-01T12:00:00Z,2026-03-01T13:00:00Z\n"
	if buf.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", buf.String(), want)
	}
}

// FuzzValidate decodes arbitrary bodies as the upload endpoint does and validates them: neither
// may panic, a refusal is a validation problem naming fields, and an accepted batch is within
// every bound.
func FuzzValidate(f *testing.F) {
	good, _ := json.Marshal(v1.ReportBatch{Events: validEvents(), Dropped: 2})
	f.Add(good)
	f.Add([]byte(`{"events":[],"dropped":0}`))
	f.Add([]byte(`{"events":[{"id":"01950000-0000-7000-8000-000000000001","type":"AppExit","time":"2026-01-01T00:00:00Z","component_id":"` + comp + `","exit_code":300}],"dropped":-4}`))
	f.Add([]byte(`{"events":null}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var b v1.ReportBatch
		if strictjson.Decode(body, &b) != nil {
			return
		}
		err := errorreport.Validate(b)
		if err != nil {
			var pe *problem.Error
			if !errors.As(err, &pe) || pe.Code != v1.CodeValidation || len(pe.Details) == 0 {
				t.Fatalf("refusal is not a validation problem with details: %v", err)
			}
			return
		}
		if len(b.Events) > v1.MaxReportEvents || b.Dropped < 0 {
			t.Fatalf("accepted an out-of-bounds batch: %d events, dropped %d", len(b.Events), b.Dropped)
		}
		ids := map[string]bool{}
		for _, e := range b.Events {
			if !errorreport.KnownType(e.Type) || e.Time.IsZero() || len(e.Message) > v1.MaxReportMessage ||
				len(e.Reason) > v1.MaxReportReason || len(e.Phase) > v1.MaxReportPhase || e.Signal < 0 || e.Signal > v1.MaxReportSignal {
				t.Fatalf("accepted an invalid event: %+v", e)
			}
			id := strings.ToLower(e.ID)
			if ids[id] {
				t.Fatalf("accepted a repeated ID %s", id)
			}
			ids[id] = true
		}
	})
}
