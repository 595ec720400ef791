package apprun

import (
	"context"
	"fmt"
	"testing"

	"github.com/rampart-iot/rampart/internal/appinstall"
	"github.com/rampart-iot/rampart/manifest"
)

// fakeApps is an installer with fixed contents and no images on disk.
type fakeApps struct{ installed []appinstall.Installed }

func (f fakeApps) List() []appinstall.Installed  { return f.installed }
func (f fakeApps) Path(string) (string, bool)    { return "", false }
func (f fakeApps) DataDir(string) (string, bool) { return "", false }
func (f fakeApps) Rollback(context.Context, string, string) (appinstall.RolledBack, error) {
	return appinstall.RolledBack{}, appinstall.ErrNoPrevious
}

func installed(t *testing.T, cid, appType string) appinstall.Installed {
	t.Helper()
	m, err := manifest.Parse(fmt.Appendf(nil, `{"SchemaVersion": 1, "Name": "n", "ComponentId": %q,
		"EntryPoint": "/bin/app", "CmdArgs": [], "Capabilities": {}, "ApplicationType": %q}`, cid, appType))
	if err != nil {
		t.Fatal(err)
	}
	return appinstall.Installed{ComponentID: cid, Name: "n",
		Current: appinstall.Image{ID: "0b1c2d3e-0000-4000-8000-000000000001", Version: "1.0.0", Manifest: m}}
}

// TestAppsThatCannotStart: a real-time capable app and an app left without a uid are failed,
// with an event and an error in their status, and the supervisor carries on; no root needed,
// since neither reaches the sandbox.
func TestAppsThatCannotStart(t *testing.T) {
	var events []Event
	evc := make(chan Event, 10)
	s, err := New(Config{
		Apps: fakeApps{installed: []appinstall.Installed{
			installed(t, compA, manifest.ApplicationTypeRealTimeCapable),
			installed(t, compB, manifest.ApplicationTypeDefault),
		}},
		StateDir: t.TempDir(),
		UIDMin:   1000, UIDMax: 1000,
		Events: func(ev Event) { evc <- ev },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	for len(events) < 2 {
		events = append(events, <-evc)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	byID := map[string]Event{}
	for _, ev := range events {
		byID[ev.ComponentID] = ev
	}
	if ev := byID[compA]; ev.Kind != EventFailed || ev.Error != errRealTime.Error() {
		t.Errorf("real-time app: %+v", ev)
	}
	if ev := byID[compB]; ev.Kind != EventFailed || ev.Error == "" {
		t.Errorf("app without a uid: %+v", ev)
	}
	for _, st := range s.List() {
		if st.State != StateFailed || st.Error == "" {
			t.Errorf("status %+v, want failed with the error", st)
		}
	}
	if len(s.List()) != 2 {
		t.Errorf("list %+v, want both", s.List())
	}
}
