package osupdate_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/internal/bootctl"
	"github.com/rampart-iot/rampart/internal/download"
	"github.com/rampart-iot/rampart/internal/osupdate"
)

var ctx = context.Background()

type fixture struct {
	t        *testing.T
	state    string
	boot     *bootctl.Dir
	srv      *bundleServer
	v1, v2   osBundle
	src      *staticSource
	health   osupdate.Health
	verifier osupdate.Verifier
	floor    osupdate.Floor
	counter  osupdate.Counter
	sink     osupdate.Sink
	clock    *fakeClock
	events   string
	unpack   func(ctx context.Context, bundle, dir string) error
	dataFile string
	data     []byte
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{t: t, state: t.TempDir(), clock: newFakeClock()}
	f.v1 = makeBundle(t, "1.0.0", 10_000)
	f.v2 = makeBundle(t, "2.0.0", 100_000)
	f.srv = newBundleServer(t, f.v1, f.v2)
	f.dataFile, f.data = provision(t, f.state, f.v1)
	var err error
	f.boot, err = bootctl.OpenDir(filepath.Join(f.state, "boot"))
	must(t, err)
	f.src = &staticSource{f.v2.target(f.srv.URL)}
	f.health = osupdate.HealthFunc(func(context.Context) error { return nil })
	f.verifier = devVerifier
	f.events = filepath.Join(f.state, "events.jsonl")
	f.sink = fileSink{f.events}
	f.reboot(bootctl.A)
	return f
}

// open starts the machine as a freshly started agent would.
func (f *fixture) open() *osupdate.Machine {
	f.t.Helper()
	m, err := osupdate.Open(osupdate.Config{
		Dir: filepath.Join(f.state, "update"), Boot: f.boot, Client: f.srv.Client(),
		Source: f.src, Verifier: f.verifier, Health: f.health, Sink: f.sink, Floor: f.floor,
		Counter: f.counter, Clock: f.clock, Unpack: f.unpack, VerifyTimeout: time.Minute, HealthInterval: 10 * time.Second,
	})
	must(f.t, err)
	return m
}

func (f *fixture) reboot(want bootctl.Slot) {
	f.t.Helper()
	s, err := f.boot.Boot(ctx)
	must(f.t, err)
	if s != want {
		f.t.Fatalf("booted slot %s, want %s", s, want)
	}
}

func (f *fixture) expect(res osupdate.Result, err error, state osupdate.State, reboot bool) {
	f.t.Helper()
	if err != nil {
		f.t.Fatalf("error %v in state %s", err, res.State)
	}
	if res.State != state || res.Reboot != reboot {
		f.t.Fatalf("result %+v, want %s reboot=%v", res, state, reboot)
	}
}

func (f *fixture) bootState() bootctl.State {
	st, err := f.boot.State(ctx)
	must(f.t, err)
	return st
}

// settledChecks are the invariants of every settled device.
func (f *fixture) settledChecks(activeVersion string) {
	f.t.Helper()
	st := f.bootState()
	if st.Slots[st.Active].Version != activeVersion || st.Trial != "" || st.Booted != st.Active {
		f.t.Fatalf("boot state %+v, want %s active and booted", st, activeVersion)
	}
	if b, err := os.ReadFile(f.dataFile); err != nil || !bytes.Equal(b, f.data) {
		f.t.Fatalf("app data changed: %q, %v", b, err)
	}
	ents, _ := os.ReadDir(filepath.Join(f.state, "update"))
	for _, e := range ents {
		if e.Name() != osupdate.StateFile {
			f.t.Errorf("left in the update directory: %s", e.Name())
		}
	}
}

func kinds(es []osupdate.Event) string {
	var out []string
	for _, e := range es {
		s := string(e.Kind)
		if e.Phase != "" {
			s += "(" + e.Phase + ")"
		}
		out = append(out, s)
	}
	return strings.Join(out, " ")
}

func TestUpdateCommits(t *testing.T) {
	f := newFixture(t)
	var progress int64
	m, err := osupdate.Open(osupdate.Config{Dir: filepath.Join(f.state, "update"), Boot: f.boot, Client: f.srv.Client(),
		Source: f.src, Verifier: f.verifier, Health: f.health, Sink: f.sink, Clock: f.clock,
		Progress: func(done, total int64) { progress = done }})
	must(t, err)
	res, err := m.Update(ctx)
	f.expect(res, err, osupdate.TrialBoot, true)
	if progress != int64(len(f.v2.pkg)) {
		t.Fatalf("progress %d", progress)
	}
	if st := f.bootState(); st.Trial != bootctl.B || st.TriesLeft != osupdate.DefaultTrialTries || st.Slots[bootctl.B].Digest != f.v2.measurement {
		t.Fatalf("boot state %+v", st)
	}
	f.reboot(bootctl.B)
	res, err = f.open().Resume(ctx)
	f.expect(res, err, osupdate.Committed, false)
	f.settledChecks("2.0.0")
	st := f.open().Status()
	if st.Floor != "2.0.0" || !st.Reported || st.FromVersion != "1.0.0" || st.Slot != bootctl.B {
		t.Fatalf("status %+v", st)
	}
	if got := kinds(readEvents(t, f.events)); got != "UpdateCommitted" {
		t.Fatalf("events %s", got)
	}
	// Normal boots run the new system; the source offering it again changes nothing.
	f.reboot(bootctl.B)
	res, err = f.open().Update(ctx)
	f.expect(res, err, osupdate.Committed, false)
	if n := len(readEvents(t, f.events)); n != 1 {
		t.Fatalf("%d events", n)
	}
}

func TestUnhealthyUntilTheDeadlineRollsBack(t *testing.T) {
	f := newFixture(t)
	calls := 0
	f.health = osupdate.HealthFunc(func(context.Context) error { calls++; return errors.New("attestation: measurement not released") })
	res, err := f.open().Update(ctx)
	f.expect(res, err, osupdate.TrialBoot, true)
	f.reboot(bootctl.B)
	res, err = f.open().Resume(ctx)
	f.expect(res, err, osupdate.RollingBack, true)
	if calls != 7 { // at 0, 10 s, ... 60 s with a one-minute deadline
		t.Fatalf("%d health checks", calls)
	}
	f.reboot(bootctl.A)
	res, err = f.open().Resume(ctx)
	f.expect(res, err, osupdate.RolledBack, false)
	f.settledChecks("1.0.0")
	evs := readEvents(t, f.events)
	if got := kinds(evs); got != "RollbackPerformed(health) UpdateFailed(health)" {
		t.Fatalf("events %s", got)
	}
	if !strings.Contains(evs[1].Reason, "measurement not released") || evs[1].Version != "2.0.0" || evs[1].FromVersion != "1.0.0" {
		t.Fatalf("event %+v", evs[1])
	}
	if st := f.open().Status(); st.Floor != "" {
		t.Fatalf("floor raised by a rolled-back update: %q", st.Floor)
	}
	// The same target is not tried again.
	res, err = f.open().Update(ctx)
	f.expect(res, err, osupdate.RolledBack, false)
	if n := len(readEvents(t, f.events)); n != 2 {
		t.Fatalf("%d events", n)
	}
}

func TestUnhealthyVerdictRollsBackAtOnce(t *testing.T) {
	f := newFixture(t)
	calls := 0
	f.health = osupdate.HealthFunc(func(context.Context) error {
		calls++
		return errors.Join(osupdate.ErrUnhealthy, errors.New("app crash loop"))
	})
	res, err := f.open().Update(ctx)
	f.expect(res, err, osupdate.TrialBoot, true)
	f.reboot(bootctl.B)
	res, err = f.open().Resume(ctx)
	f.expect(res, err, osupdate.RollingBack, true)
	if calls != 1 {
		t.Fatalf("%d health checks", calls)
	}
}

func TestTrialThatNeverStartsFallsBack(t *testing.T) {
	f := newFixture(t)
	res, err := f.open().Update(ctx)
	f.expect(res, err, osupdate.TrialBoot, true)
	// The new system dies before its agent gets anywhere, on every trial boot.
	for range osupdate.DefaultTrialTries {
		f.reboot(bootctl.B)
	}
	f.reboot(bootctl.A)
	res, err = f.open().Resume(ctx)
	f.expect(res, err, osupdate.RolledBack, false)
	f.settledChecks("1.0.0")
	if got := kinds(readEvents(t, f.events)); got != "RollbackPerformed(trial-boot) UpdateFailed(trial-boot)" {
		t.Fatalf("events %s", got)
	}
}

func TestTrialThatDiesWhileVerifyingFallsBack(t *testing.T) {
	f := newFixture(t)
	res, err := f.open().Update(ctx)
	f.expect(res, err, osupdate.TrialBoot, true)
	for range osupdate.DefaultTrialTries {
		f.reboot(bootctl.B)
		cctx, cancel := context.WithCancel(ctx)
		f.health = osupdate.HealthFunc(func(context.Context) error { cancel(); return errors.New("not yet") })
		res, err := f.open().Resume(cctx) // the agent is killed while it waits
		if !errors.Is(err, context.Canceled) || res.State != osupdate.Verifying {
			t.Fatalf("%+v %v", res, err)
		}
	}
	f.reboot(bootctl.A)
	res, err = f.open().Resume(ctx)
	f.expect(res, err, osupdate.RolledBack, false)
	f.settledChecks("1.0.0")
}

func TestPowerFlickerDuringVerifyingStillCommits(t *testing.T) {
	f := newFixture(t)
	res, err := f.open().Update(ctx)
	f.expect(res, err, osupdate.TrialBoot, true)
	f.reboot(bootctl.B)
	cctx, cancel := context.WithCancel(ctx)
	f.health = osupdate.HealthFunc(func(context.Context) error { cancel(); return errors.New("not yet") })
	if _, err := f.open().Resume(cctx); !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	f.reboot(bootctl.B)
	f.health = osupdate.HealthFunc(func(context.Context) error { return nil })
	res, err = f.open().Resume(ctx)
	f.expect(res, err, osupdate.Committed, false)
	f.settledChecks("2.0.0")
}

// failingFloor keeps the floor in memory and fails Raise once: a power cut between boot
// control's commit and the floor.
type failingFloor struct {
	v     string
	fails int
}

func (f *failingFloor) Get(context.Context) (string, error) { return f.v, nil }
func (f *failingFloor) Raise(_ context.Context, v string) error {
	if f.fails > 0 {
		f.fails--
		return errors.New("TPM busy")
	}
	f.v = v
	return nil
}

func TestCommitFinishesAfterBootControlCommitted(t *testing.T) {
	f := newFixture(t)
	fl := &failingFloor{fails: 1}
	f.floor = fl
	res, err := f.open().Update(ctx)
	f.expect(res, err, osupdate.TrialBoot, true)
	f.reboot(bootctl.B)
	res, err = f.open().Resume(ctx)
	if err == nil || res.State != osupdate.Verifying || f.bootState().Active != bootctl.B {
		t.Fatalf("%+v %v %+v", res, err, f.bootState())
	}
	f.reboot(bootctl.B)
	f.health = osupdate.HealthFunc(func(context.Context) error { t.Fatal("health asked again after commit"); return nil })
	res, err = f.open().Resume(ctx)
	f.expect(res, err, osupdate.Committed, false)
	if fl.v != "2.0.0" {
		t.Fatalf("floor %q", fl.v)
	}
}

func TestRefusesOlderThanRunningOrFloor(t *testing.T) {
	f := newFixture(t)
	old := makeBundle(t, "0.9.0", 1000)
	f.srv.add(old)
	f.src.t = old.target(f.srv.URL)
	res, err := f.open().Update(ctx)
	f.expect(res, err, osupdate.Failed, false)
	evs := readEvents(t, f.events)
	if kinds(evs) != "UpdateFailed(check)" || !strings.Contains(evs[0].Reason, "older than the running 1.0.0") {
		t.Fatalf("events %+v", evs)
	}
	res, err = f.open().Update(ctx) // not refused and reported again
	f.expect(res, err, osupdate.Failed, false)
	if n := len(readEvents(t, f.events)); n != 1 {
		t.Fatalf("%d events", n)
	}

	f.floor = &failingFloor{v: "3.0.0"}
	f.src.t = f.v2.target(f.srv.URL)
	res, err = f.open().Update(ctx)
	f.expect(res, err, osupdate.Failed, false)
	evs = readEvents(t, f.events)
	if !strings.Contains(evs[len(evs)-1].Reason, "older than the anti-rollback floor 3.0.0") {
		t.Fatalf("events %+v", evs)
	}
	if st := f.bootState(); st.Installed(bootctl.B) {
		t.Fatal("refused bundle installed")
	}
	f.settledChecks("1.0.0")
}

func TestVerifierRefusal(t *testing.T) {
	f := newFixture(t)
	var seen string
	f.verifier = osupdate.VerifierFunc(func(_ context.Context, bundle string, tg osupdate.Target) error {
		b, _ := os.ReadFile(bundle)
		if !bytes.Equal(b, f.v2.pkg) || tg.Version != "2.0.0" {
			t.Error("verifier given the wrong bundle")
		}
		seen = bundle
		return errors.New("signature by an unknown key")
	})
	res, err := f.open().Update(ctx)
	f.expect(res, err, osupdate.Failed, false)
	if seen == "" {
		t.Fatal("verifier not called")
	}
	if got := kinds(readEvents(t, f.events)); got != "UpdateFailed(verify)" {
		t.Fatalf("events %s", got)
	}
	if f.bootState().Installed(bootctl.B) {
		t.Fatal("refused bundle installed")
	}
	f.settledChecks("1.0.0")
}

func TestWrongMeasurementIsNotInstalled(t *testing.T) {
	f := newFixture(t)
	// A verifier that does not look at measurements: the install still checks.
	f.verifier = osupdate.VerifierFunc(func(context.Context, string, osupdate.Target) error { return nil })
	tg := f.v2.target(f.srv.URL)
	tg.Measurement = f.v1.measurement
	f.src.t = tg
	res, err := f.open().Update(ctx)
	f.expect(res, err, osupdate.Failed, false)
	evs := readEvents(t, f.events)
	if kinds(evs) != "UpdateFailed(install)" || !strings.Contains(evs[0].Reason, "measure") {
		t.Fatalf("events %+v", evs)
	}
	if f.bootState().Installed(bootctl.B) {
		t.Fatal("slot with the wrong measurement recorded")
	}
	f.settledChecks("1.0.0")
}

func TestBadArchiveFailsInstall(t *testing.T) {
	f := newFixture(t)
	f.unpack = func(context.Context, string, string) error { return errors.New("entry \"../x\": outside the bundle") }
	res, err := f.open().Update(ctx)
	f.expect(res, err, osupdate.Failed, false)
	if got := kinds(readEvents(t, f.events)); got != "UpdateFailed(install)" {
		t.Fatalf("events %s", got)
	}
	f.settledChecks("1.0.0")
}

func TestCorruptDownloadsFailAfterMaxFailures(t *testing.T) {
	f := newFixture(t)
	f.srv.setCorrupt(true)
	for i := 1; i < osupdate.DefaultMaxDownloadFailures; i++ {
		res, err := f.open().Update(ctx)
		if !errors.Is(err, download.ErrDigest) || res.State != osupdate.Downloading {
			t.Fatalf("try %d: %+v %v", i, res, err)
		}
	}
	res, err := f.open().Update(ctx)
	f.expect(res, err, osupdate.Failed, false)
	if got := kinds(readEvents(t, f.events)); got != "UpdateFailed(download)" {
		t.Fatalf("events %s", got)
	}
	f.settledChecks("1.0.0")
}

func TestNetworkFailureKeepsDownloading(t *testing.T) {
	f := newFixture(t)
	tg := f.v2.target(f.srv.URL)
	tg.URL = "https://127.0.0.1:1/nothing-listens-here"
	f.src.t = tg
	for range 5 { // never counted as the image's failure
		res, err := f.open().Update(ctx)
		if err == nil || !download.Retryable(err) || res.State != osupdate.Downloading {
			t.Fatalf("%+v %v", res, err)
		}
	}
	if st := f.open().Status(); st.DownloadFailures != 0 {
		t.Fatalf("status %+v", st)
	}
}

func TestSinkFailureIsRetriedWithTheSameIDs(t *testing.T) {
	f := newFixture(t)
	var got []osupdate.Event
	fail := true
	f.sink = osupdate.SinkFunc(func(_ context.Context, e osupdate.Event) error {
		got = append(got, e)
		if fail {
			return errors.New("queue full")
		}
		return nil
	})
	f.verifier = osupdate.VerifierFunc(func(context.Context, string, osupdate.Target) error { return errors.New("bad") })
	if _, err := f.open().Update(ctx); err == nil || !strings.Contains(err.Error(), "queue full") {
		t.Fatal(err)
	}
	fail = false
	res, err := f.open().Resume(ctx)
	f.expect(res, err, osupdate.Failed, false)
	if len(got) != 2 || got[0] != got[1] || got[0].ID == "" {
		t.Fatalf("reports %+v", got)
	}
}

func TestInvalidTargetsAreRefused(t *testing.T) {
	f := newFixture(t)
	good := *f.v2.target(f.srv.URL)
	for name, mod := range map[string]func(*osupdate.Target){
		"version":     func(t *osupdate.Target) { t.Version = "2.0" },
		"sha256":      func(t *osupdate.Target) { t.SHA256 = strings.ToUpper(t.SHA256) },
		"size":        func(t *osupdate.Target) { t.Size = 0 },
		"huge":        func(t *osupdate.Target) { t.Size = osupdate.MaxBundleSize + 1 },
		"http":        func(t *osupdate.Target) { t.URL = strings.Replace(t.URL, "https:", "http:", 1) },
		"measurement": func(t *osupdate.Target) { t.Measurement = "abc" },
	} {
		tg := good
		mod(&tg)
		f.src.t = &tg
		res, err := f.open().Update(ctx)
		if err == nil || !strings.Contains(err.Error(), "invalid target") || res.State != osupdate.Idle {
			t.Errorf("%s: %+v %v", name, res, err)
		}
	}
}

func TestOpenChecksConfigAndState(t *testing.T) {
	_, err := osupdate.Open(osupdate.Config{})
	for _, want := range []string{"Dir", "Boot", "Source", "Verifier", "Health", "Sink"} {
		if err == nil || !strings.Contains(err.Error(), "Config."+want) {
			t.Errorf("missing %s not reported: %v", want, err)
		}
	}
	f := newFixture(t)
	dir := filepath.Join(f.state, "update")
	must(t, os.MkdirAll(dir, 0o755))
	for name, body := range map[string]string{
		"syntax":        "{",
		"unknown key":   `{"format":1,"state":"Idle","attempt":0,"surprise":true}`,
		"unknown state": `{"format":1,"state":"Dancing","attempt":0}`,
		"no target":     `{"format":1,"state":"Installing","attempt":1}`,
		"format":        `{"format":9,"state":"Idle","attempt":0}`,
	} {
		must(t, os.WriteFile(filepath.Join(dir, osupdate.StateFile), []byte(body), 0o644))
		if _, err := osupdate.Open(osupdate.Config{Dir: dir, Boot: f.boot, Source: f.src, Verifier: f.verifier,
			Health: f.health, Sink: f.sink}); err == nil || !strings.Contains(err.Error(), "corrupt") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestNextUpdateGoesToTheOtherSlot(t *testing.T) {
	f := newFixture(t)
	res, err := f.open().Update(ctx)
	f.expect(res, err, osupdate.TrialBoot, true)
	f.reboot(bootctl.B)
	res, err = f.open().Resume(ctx)
	f.expect(res, err, osupdate.Committed, false)
	v3 := makeBundle(t, "3.0.0-rc.1", 5000)
	f.srv.add(v3)
	f.src.t = v3.target(f.srv.URL)
	res, err = f.open().Update(ctx)
	f.expect(res, err, osupdate.TrialBoot, true)
	if st := f.bootState(); st.Trial != bootctl.A || st.Slots[bootctl.A].Version != "3.0.0-rc.1" {
		t.Fatalf("boot state %+v", st)
	}
	f.reboot(bootctl.A)
	res, err = f.open().Resume(ctx)
	f.expect(res, err, osupdate.Committed, false)
	f.settledChecks("3.0.0-rc.1")
	if st := f.open().Status(); st.Floor != "3.0.0-rc.1" || st.Attempt != 2 {
		t.Fatalf("status %+v", st)
	}
	// 2.0.0 is now below the floor.
	f.src.t = f.v2.target(f.srv.URL)
	res, err = f.open().Update(ctx)
	f.expect(res, err, osupdate.Failed, false)
}

func FuzzReadStatus(f *testing.F) {
	f.Add([]byte(`{"format":1,"state":"Idle","attempt":0}`))
	f.Add([]byte(`{"format":1,"state":"Verifying","target":{"version":"2.0.0","sha256":"` + strings.Repeat("ab", 32) +
		`","size":10,"url":"https://x/b"},"slot":"b","attempt":3,"deadline":"2030-01-01T00:00:00Z","floor":"1.0.0"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		must(t, os.WriteFile(filepath.Join(dir, osupdate.StateFile), b, 0o600))
		st, err := osupdate.ReadStatus(dir)
		if err != nil {
			return
		}
		if !st.State.Settled() && st.Target == nil {
			t.Fatalf("accepted state %s without a target", st.State)
		}
	})
}

func TestTrialDisarmedUnderneathRollsBack(t *testing.T) {
	f := newFixture(t)
	res, err := f.open().Update(ctx)
	f.expect(res, err, osupdate.TrialBoot, true)
	f.reboot(bootctl.B)
	must(t, f.boot.Rollback(ctx)) // someone else disarms the trial
	res, err = f.open().Resume(ctx)
	f.expect(res, err, osupdate.RollingBack, true)
	f.reboot(bootctl.A)
	res, err = f.open().Resume(ctx)
	f.expect(res, err, osupdate.RolledBack, false)
	f.settledChecks("1.0.0")
}

// memCounter is a root of trust's anti-rollback counter in memory.
type memCounter struct {
	v       uint64
	readErr error
}

func (c *memCounter) ReadCounter(context.Context) (uint64, error) { return c.v, c.readErr }

func (c *memCounter) AdvanceCounter(_ context.Context, v uint64) error {
	c.v = max(c.v, v)
	return nil
}

func TestAntiRollbackCounter(t *testing.T) {
	f := newFixture(t)
	counter := &memCounter{}
	f.counter = counter
	f.v2 = makeSecureBundle(t, "2.0.0", 100_000, 2)
	f.srv.add(f.v2)
	f.src.t = f.v2.target(f.srv.URL)
	res, err := f.open().Update(ctx)
	f.expect(res, err, osupdate.TrialBoot, true)
	if counter.v != 0 {
		t.Fatalf("the counter moved to %d before the commit", counter.v)
	}
	f.reboot(bootctl.B)
	res, err = f.open().Resume(ctx)
	f.expect(res, err, osupdate.Committed, false)
	if counter.v != 2 {
		t.Fatalf("after committing security version 2 the counter is %d", counter.v)
	}
	if st := f.open().Status(); st.SecurityCounter != 2 {
		t.Fatalf("the state file's copy of the counter is %d, not 2", st.SecurityCounter)
	}

	// A newer version whose security version is lower is refused before download, and not installed.
	v3 := makeSecureBundle(t, "3.0.0", 1000, 1)
	f.srv.add(v3)
	f.src.t = v3.target(f.srv.URL)
	res, err = f.open().Update(ctx)
	f.expect(res, err, osupdate.Failed, false)
	evs := readEvents(t, f.events)
	if last := evs[len(evs)-1]; last.Kind != osupdate.UpdateFailed || last.Phase != osupdate.PhaseCheck ||
		!strings.Contains(last.Reason, "security version 1, below the anti-rollback counter 2") {
		t.Fatalf("event %+v", last)
	}
	if st := f.bootState(); st.Slots[bootctl.A].Version != "1.0.0" || st.Active != bootctl.B {
		t.Fatalf("the refused bundle touched the slots: %+v", st)
	}

	// A target that claims a higher security version than its signed package has is refused by
	// the verifier.
	v4 := makeSecureBundle(t, "4.0.0", 1000, 1)
	f.srv.add(v4)
	lie := v4.target(f.srv.URL)
	lie.SecurityVersion = 3
	f.src.t = lie
	res, err = f.open().Update(ctx)
	f.expect(res, err, osupdate.Failed, false)
	evs = readEvents(t, f.events)
	if last := evs[len(evs)-1]; last.Phase != osupdate.PhaseVerify || !strings.Contains(last.Reason, "the package's security version is 1; the target's is 3") {
		t.Fatalf("event %+v", last)
	}

	// The higher of the two counters holds: a root of trust that forgot (a restarted simulator,
	// a cleared TPM) is covered by the state file, an edited state file by the root of trust.
	v6 := makeSecureBundle(t, "6.0.0", 1000, 1)
	f.srv.add(v6)
	f.src.t = v6.target(f.srv.URL)
	counter.v = 0
	res, err = f.open().Update(ctx)
	f.expect(res, err, osupdate.Failed, false)
	if st := f.open().Status(); !strings.Contains(st.Reason, "below the anti-rollback counter 2") {
		t.Fatalf("with the root's counter at 0: %+v", st)
	}
	counter.v = 2
	st := f.open().Status()
	st.SecurityCounter, st.Target, st.State = 0, nil, osupdate.Idle
	b, err := json.Marshal(st)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(f.state, "update", osupdate.StateFile), b, 0o644))
	res, err = f.open().Update(ctx)
	f.expect(res, err, osupdate.Failed, false)
	if st := f.open().Status(); !strings.Contains(st.Reason, "below the anti-rollback counter 2") {
		t.Fatalf("with the state file's counter at 0: %+v", st)
	}

	// A step the root of trust could not take at commit is refused before download.
	far := makeSecureBundle(t, "7.0.0", 1000, 2+osupdate.MaxSecurityStep+1)
	f.srv.add(far)
	f.src.t = far.target(f.srv.URL)
	res, err = f.open().Update(ctx)
	f.expect(res, err, osupdate.Failed, false)
	if st := f.open().Status(); st.Phase != osupdate.PhaseCheck || !strings.Contains(st.Reason, "more than 4096 above the anti-rollback counter 2") {
		t.Fatalf("a step of %d: %+v", osupdate.MaxSecurityStep+1, st)
	}

	// A counter that cannot be read stops the update before anything is saved.
	counter.readErr = errors.New("TPM gone")
	v5 := makeSecureBundle(t, "5.0.0", 1000, 2)
	f.srv.add(v5)
	f.src.t = v5.target(f.srv.URL)
	before := f.open().Status()
	if _, err := f.open().Update(ctx); err == nil || !strings.Contains(err.Error(), "reading the anti-rollback counter: TPM gone") {
		t.Fatalf("Update with an unreadable counter = %v", err)
	}
	if after := f.open().Status(); after.State != before.State || after.Attempt != before.Attempt {
		t.Fatalf("the state moved from %+v to %+v", before, after)
	}
}

func TestAntiRollbackCounterInTheStateFile(t *testing.T) {
	f := newFixture(t)
	f.v2 = makeSecureBundle(t, "2.0.0", 100_000, 4)
	f.srv.add(f.v2)
	f.src.t = f.v2.target(f.srv.URL)
	res, err := f.open().Update(ctx)
	f.expect(res, err, osupdate.TrialBoot, true)
	f.reboot(bootctl.B)
	res, err = f.open().Resume(ctx)
	f.expect(res, err, osupdate.Committed, false)
	if st := f.open().Status(); st.SecurityCounter != 4 || st.Floor != "2.0.0" {
		t.Fatalf("status %+v", st)
	}
	v3 := makeSecureBundle(t, "3.0.0", 1000, 3)
	f.srv.add(v3)
	f.src.t = v3.target(f.srv.URL)
	res, err = f.open().Update(ctx)
	f.expect(res, err, osupdate.Failed, false)
	if st := f.open().Status(); st.Phase != osupdate.PhaseCheck || !strings.Contains(st.Reason, "below the anti-rollback counter 4") || st.SecurityCounter != 4 {
		t.Fatalf("status %+v", st)
	}
}
