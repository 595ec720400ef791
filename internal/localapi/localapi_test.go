package localapi

import (
	"context"
	"errors"
	v1 "github.com/rampart-iot/rampart/api/v1"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

type fakeAgent struct {
	mu          sync.Mutex
	development bool
	apps        map[string]App
	sideloaded  []byte
}

func (f *fakeAgent) Apps() []App {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []App
	for _, a := range f.apps {
		out = append(out, a)
	}
	return out
}

func (f *fakeAgent) set(id, state string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, ok := f.apps[id]
	if !ok {
		return ErrNotFound
	}
	a.State = state
	f.apps[id] = a
	return nil
}

func (f *fakeAgent) Events() ([]v1.ReportEvent, int64) {
	return []v1.ReportEvent{{ID: "e1", Type: v1.EventAppCrash}}, 7
}

func (f *fakeAgent) Quota(id string) (Quota, error) {
	if id != "c1" {
		return Quota{}, ErrNotFound
	}
	return Quota{ComponentID: id, QuotaKB: 64, UsedKB: 3}, nil
}

func (f *fakeAgent) StopApp(_ context.Context, id string) error  { return f.set(id, "stopped") }
func (f *fakeAgent) StartApp(_ context.Context, id string) error { return f.set(id, "running") }

func (f *fakeAgent) Sideload(_ context.Context, path string) (App, error) {
	if !f.development {
		return App{}, ErrNotDevelopment
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return App{}, err
	}
	if string(b) == "bad" {
		return App{}, errors.New("the package is not signed by a trusted key")
	}
	f.mu.Lock()
	f.sideloaded = b
	f.apps["new"] = App{ComponentID: "new", State: "running"}
	f.mu.Unlock()
	return f.apps["new"], nil
}

func (f *fakeAgent) DeleteApp(_ context.Context, id string) error {
	if !f.development {
		return ErrNotDevelopment
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.apps[id]; !ok {
		return ErrNotFound
	}
	delete(f.apps, id)
	return nil
}

func serve(t *testing.T, a Agent) (*Client, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := Listen(dir, filepath.Join(dir, "spool"), a, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return Dial(dir), dir
}

func TestLocalAPI(t *testing.T) {
	ctx := t.Context()
	a := &fakeAgent{apps: map[string]App{"c1": {ComponentID: "c1", State: "running"}}}
	c, dir := serve(t, a)
	st, err := os.Stat(filepath.Join(dir, SocketName))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("socket: %v %v, want mode 0600", st, err)
	}
	if err := c.StopApp(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	apps, err := c.Apps(ctx)
	if err != nil || len(apps) != 1 || apps[0].State != "stopped" {
		t.Fatalf("after stop: %+v %v", apps, err)
	}
	if evs, err := c.Events(ctx); err != nil || len(evs.Events) != 1 || evs.Events[0].ID != "e1" || evs.Dropped != 7 {
		t.Fatalf("events: %+v %v", evs, err)
	}
	if q, err := c.Quota(ctx, "c1"); err != nil || q.QuotaKB != 64 || q.UsedKB != 3 {
		t.Fatalf("quota: %+v %v", q, err)
	}
	if _, err := c.Quota(ctx, "nope"); err == nil || !strings.Contains(err.Error(), "no such application") {
		t.Fatalf("quota of an unknown app: %v", err)
	}
	if err := c.StartApp(ctx, "nope"); err == nil || !strings.Contains(err.Error(), "no such application") {
		t.Fatalf("starting an unknown app: %v", err)
	}

	// Outside development mode, sideloading is refused and nothing changes.
	if _, err := c.Sideload(ctx, []byte("pkg")); err == nil || !strings.Contains(err.Error(), "development mode") {
		t.Fatalf("sideload on a production device: %v", err)
	}
	if err := c.DeleteApp(ctx, "c1"); err == nil || !strings.Contains(err.Error(), "development mode") {
		t.Fatalf("delete on a production device: %v", err)
	}
	if apps, _ := c.Apps(ctx); len(apps) != 1 {
		t.Fatalf("a refused delete removed something: %+v", apps)
	}

	a.development = true
	if _, err := c.Sideload(ctx, []byte("bad")); err == nil || !strings.Contains(err.Error(), "trusted key") {
		t.Fatalf("an untrusted package: %v", err)
	}
	if _, err := c.Sideload(ctx, []byte("pkg")); err != nil || string(a.sideloaded) != "pkg" {
		t.Fatalf("sideload: %v (got %q)", err, a.sideloaded)
	}
	if err := c.DeleteApp(ctx, "new"); err != nil {
		t.Fatal(err)
	}
	// The spool holds nothing once a sideload is done.
	if es, _ := os.ReadDir(filepath.Join(dir, "spool")); len(es) != 0 {
		t.Fatalf("spool left %d files", len(es))
	}
}

func TestDialWithoutAgent(t *testing.T) {
	if _, err := Dial(t.TempDir()).Apps(t.Context()); err == nil || !strings.Contains(err.Error(), "is the agent running") {
		t.Fatalf("no agent: %v", err)
	}
}
