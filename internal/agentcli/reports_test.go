package agentcli

import (
	"errors"
	"log/slog"
	"strings"
	"testing"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/apprun"
	"github.com/rampart-iot/rampart/internal/errorreport"
	"github.com/rampart-iot/rampart/internal/sandbox"
)

// TestAppEventsBecomeReports: how the supervisor's events become error-report events: a
// Landlock denial, a seccomp refusal and a seccomp kill are SandboxDenied with their layer as the reason, an app
// that cannot start is SandboxDenied "cannot-start" with the error, and every one names the
// component and image.
func TestAppEventsBecomeReports(t *testing.T) {
	const cid, img = "0f0e0d0c-0000-4000-8000-000000000001", "0f0e0d0c-0000-4000-8000-000000000002"
	app := apprun.Event{ComponentID: cid, ImageID: img}
	with := func(f func(*apprun.Event)) apprun.Event { e := app; f(&e); return e }
	long := "/data/" + strings.Repeat("a", 600)
	for _, tc := range []struct {
		name                string
		ev                  apprun.Event
		typ, reason, prefix string
		signal              int
	}{
		{"landlock denial", with(func(e *apprun.Event) {
			e.Kind, e.Denied = apprun.EventDenied, &apprun.Denied{By: "landlock", Blockers: []string{"fs.write_file"}, Object: "/data/x", Count: 1}
		}), v1.EventSandboxDenied, "landlock", "landlock: fs.write_file denied on /data/x", 0},
		{"counted denials", with(func(e *apprun.Event) {
			e.Kind, e.Denied = apprun.EventDenied, &apprun.Denied{By: "landlock", Blockers: []string{"fs.read_file", "fs.read_dir"}, Object: "/etc", Count: 12}
		}), v1.EventSandboxDenied, "landlock", "landlock: fs.read_file,fs.read_dir denied on /etc (12 times)", 0},
		{"an unprintable object is quoted", with(func(e *apprun.Event) {
			e.Kind, e.Denied = apprun.EventDenied, &apprun.Denied{By: "landlock", Blockers: []string{"fs.make_reg"}, Object: "/tmp/a\nb\xff", Count: 1}
		}), v1.EventSandboxDenied, "landlock", `landlock: fs.make_reg denied on "/tmp/a\nb\xff"`, 0},
		{"a long object is cut", with(func(e *apprun.Event) {
			e.Kind, e.Denied = apprun.EventDenied, &apprun.Denied{By: "landlock", Blockers: []string{"fs.write_file"}, Object: long, Count: 1}
		}), v1.EventSandboxDenied, "landlock", "landlock: fs.write_file denied on /data/aaaa", 0},
		{"refused packets", with(func(e *apprun.Event) {
			e.Kind, e.Denied = apprun.EventDenied, &apprun.Denied{By: "network", Blockers: []string{"AllowedConnections"}, Object: "tcp to 198.18.0.3:9000", Count: 3}
		}), v1.EventSandboxDenied, "network", "network: tcp to 198.18.0.3:9000 refused (3 times)", 0},
		{"a refused name", with(func(e *apprun.Event) {
			e.Kind, e.Denied = apprun.EventDenied, &apprun.Denied{By: "dns", Blockers: []string{"AllowedConnections"}, Object: "denied.test", Count: 1}
		}), v1.EventSandboxDenied, "dns", "dns: denied.test not in AllowedConnections", 0},
		{"a refused name, quoted", with(func(e *apprun.Event) {
			e.Kind, e.Denied = apprun.EventDenied, &apprun.Denied{By: "dns", Blockers: []string{"AllowedConnections"}, Object: "a\x00b.test\n", Count: 2}
		}), v1.EventSandboxDenied, "dns", `dns: "a\x00b.test\n" not in AllowedConnections (2 times)`, 0},
		{"seccomp refusals", with(func(e *apprun.Event) {
			e.Kind, e.Denied = apprun.EventDenied, &apprun.Denied{By: "seccomp", Blockers: []string{"socket"}, Object: "raw or packet socket, or a refused address family", Count: 4}
		}), v1.EventSandboxDenied, "seccomp", "seccomp: socket refused: raw or packet socket, or a refused address family (4 times)", 0},
		{"a seccomp refusal of an unknown call", with(func(e *apprun.Event) {
			e.Kind, e.Denied = apprun.EventDenied, &apprun.Denied{By: "seccomp", Blockers: []string{"syscall 999"}, Count: 1}
		}), v1.EventSandboxDenied, "seccomp", "seccomp: syscall 999 refused", 0},
		{"seccomp kill", with(func(e *apprun.Event) {
			e.Kind, e.Exit = apprun.EventExited, &sandbox.Exit{Signal: 31, SeccompKilled: true}
		}), v1.EventSandboxDenied, "seccomp", "", 31},
		{"cannot start", with(func(e *apprun.Event) {
			e.Kind, e.Error = apprun.EventFailed, "no uid is left in the range"
		}), v1.EventSandboxDenied, "cannot-start", "no uid is left in the range", 0},
	} {
		r, err := openReporter(t.TempDir(), slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		r.app(tc.ev)
		evs, _ := r.q.Peek(10)
		if len(evs) != 1 {
			t.Fatalf("%s: %d events queued, want 1", tc.name, len(evs))
		}
		got := evs[0]
		if got.Type != tc.typ || got.Reason != tc.reason || got.ComponentID != cid || got.ImageID != img ||
			got.Signal != tc.signal || !strings.HasPrefix(got.Message, tc.prefix) || len(got.Message) > maxMessage {
			t.Errorf("%s: queued %+v, want %s %q with a message starting %q", tc.name, got, tc.typ, tc.reason, tc.prefix)
		}
		r.stopped(t.TempDir())
	}
}

// TestDenialsLostBecomeAReport: the supervisor's EventDenialsLost is a SandboxDenied of no app,
// reason denials-lost, saying how many times; the queue (the service's validation) takes it.
func TestDenialsLostBecomeAReport(t *testing.T) {
	r, err := openReporter(t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer r.stopped(t.TempDir())
	r.app(apprun.Event{Kind: apprun.EventDenialsLost, Lost: 7})
	evs, _ := r.q.Peek(10)
	if len(evs) != 1 {
		t.Fatalf("%d events queued, want 1", len(evs))
	}
	got := evs[0]
	if got.Type != v1.EventSandboxDenied || got.Reason != v1.ReasonDenialsLost || got.ComponentID != "" ||
		got.Message != "sandbox denial reporting lost records: the kernel's audit socket overflowed 7 times in the last minute; denials of any app may be missing" {
		t.Errorf("queued %+v", got)
	}
	if err := errorreport.Validate(v1.ReportBatch{Events: evs}); err != nil {
		t.Errorf("the service would refuse it: %v", err)
	}
}

// TestKernelAuditFlag: --kernel-audit off opens nothing, and a value other than on, auto and
// off is a usage error.
func TestKernelAuditFlag(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	if r, err := openKernelAudit("off", log); r != nil || err != nil {
		t.Errorf("off: %v, %v; want nothing opened", r, err)
	}
	var ue *usageError
	if _, err := openKernelAudit("yes", log); !errors.As(err, &ue) {
		t.Errorf("yes: %v; want a usage error", err)
	}
}
