package apprun_test

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/internal/appinstall"
	"github.com/rampart-iot/rampart/internal/apprun"
	"github.com/rampart-iot/rampart/internal/sandbox"
)

// TestAppsStartAndCrashedAppRestartsWithBackoff: Run starts every installed app, each as its own
// uid; an app that keeps crashing is restarted, each restart counted, after a delay that doubles
// up to the cap (the delays come from the events, computed with a fixed jitter).
func TestAppsStartAndCrashedAppRestartsWithBackoff(t *testing.T) {
	needRoot(t)
	d := newDevice(t)
	good, bad := newUUID(t), newUUID(t)
	goodImage := d.install(t, image{component: good, name: "Good App", version: "1.0.0"})
	badImage := d.install(t, image{component: bad, name: "crasher", version: "1.0.0", args: []string{"-exit", "3"}})
	s := d.supervisor(t)
	stop := run(t, s)

	waitFor(t, "the good app runs", func() bool { return logHas(s, good, "started 1.0.0") })
	waitFor(t, "the crasher has crashed 6 times", func() bool { return len(d.events.of(apprun.EventExited, bad)) >= 6 })

	g := status(t, s, good)
	if g.State != apprun.StateRunning || g.ImageID != goodImage || g.Name != "Good App" || !alive(g.Pid) {
		t.Errorf("good app: %+v, want running %s with a live pid", g, goodImage)
	}
	b := status(t, s, bad)
	if b.UID == g.UID || b.UID < testUIDMin || b.UID > testUIDMax {
		t.Errorf("uids %d and %d: want two different uids in the configured range", g.UID, b.UID)
	}
	if !logHas(s, good, fmt.Sprintf("uid=%d", g.UID)) {
		t.Errorf("the good app does not run as its uid %d: %q", g.UID, s.Log(good))
	}
	if b.Restarts < 6 || b.LastExit == nil || b.LastExit.Code != 3 {
		t.Errorf("crasher: %+v, want 6 restarts or more and last exit status 3", b)
	}

	// BackoffMin 20ms, BackoffMax 160ms, jitter takes away half of half: 0.75 of 20, 40, 80,
	// 160, 160, 160 ms.
	want := []time.Duration{15, 30, 60, 120, 120, 120}
	for i, ev := range d.events.of(apprun.EventExited, bad)[:6] {
		if ev.Exit == nil || ev.Exit.Code != 3 || ev.ImageID != badImage || ev.Version != "1.0.0" || ev.Name != "crasher" {
			t.Errorf("exit event %d: %+v, want exit status 3 of crasher 1.0.0 %s", i, ev, badImage)
		}
		if ev.Restarts != i+1 {
			t.Errorf("exit event %d: restarts %d, want %d", i, ev.Restarts, i+1)
		}
		if ev.Backoff != want[i]*time.Millisecond {
			t.Errorf("exit event %d: backoff %v, want %v", i, ev.Backoff, want[i]*time.Millisecond)
		}
	}
	if len(d.events.of(apprun.EventRolledBack, bad)) != 0 {
		t.Errorf("an app with no previous image was rolled back")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestCrashOnStartRollsBack: a new image that crashes as it starts CrashLimit times is rolled
// back by the installer, the previous image runs again, and the event names both versions and
// the exit.
func TestCrashOnStartRollsBack(t *testing.T) {
	needRoot(t)
	d := newDevice(t)
	cid := newUUID(t)
	v1 := d.install(t, image{component: cid, name: "sensor", version: "1.0.0"})
	s := d.supervisor(t)
	run(t, s)
	waitFor(t, "1.0.0 runs", func() bool { return logHas(s, cid, "started 1.0.0") })

	v2 := d.install(t, image{component: cid, name: "sensor", version: "2.0.0", args: []string{"-exit", "7"}})
	must(t, s.Reconcile(t.Context()))
	waitFor(t, "the rollback", func() bool { return len(d.events.of(apprun.EventRolledBack, cid)) > 0 })
	waitFor(t, "1.0.0 runs again", func() bool {
		st, _ := s.Get(cid)
		return st.State == apprun.StateRunning && strings.Count(string(s.Log(cid)), "started 1.0.0") == 2
	})

	ev := d.events.of(apprun.EventRolledBack, cid)[0]
	if ev.FromImageID != v2 || ev.FromVersion != "2.0.0" || ev.ImageID != v1 || ev.Version != "1.0.0" {
		t.Errorf("rollback event %+v: want from 2.0.0 %s to 1.0.0 %s", ev, v2, v1)
	}
	if ev.Exit == nil || ev.Exit.Code != 7 || !strings.Contains(ev.Reason, "exit status 7") || !strings.Contains(ev.Reason, "2.0.0") {
		t.Errorf("rollback event %+v: want the exit (status 7) in it and in the reason", ev)
	}
	var v2Exits int
	for _, e := range d.events.of(apprun.EventExited, cid) {
		if e.ImageID == v2 {
			v2Exits++
			if e.Exit == nil || e.Exit.Code != 7 {
				t.Errorf("2.0.0 exit %+v: want status 7", e)
			}
		}
	}
	if v2Exits != apprun.DefaultCrashLimit {
		t.Errorf("2.0.0 exited %d times before the rollback, want %d", v2Exits, apprun.DefaultCrashLimit)
	}
	st := status(t, s, cid)
	if st.ImageID != v1 || st.Version != "1.0.0" || !alive(st.Pid) {
		t.Errorf("status after rollback: %+v, want 1.0.0 running", st)
	}
	in, _ := d.apps.Get(cid)
	if in.Current.ID != v1 || in.Status != appinstall.StatusRolledBack || in.Failed == nil || in.Failed.ID != v2 ||
		!strings.Contains(in.Reason, "exit status 7") {
		t.Errorf("installer after rollback: %+v, want 1.0.0 current and 2.0.0 failed with the reason", in)
	}
}

// TestReconcileReplacesImageAndKeepsStorage: after v2 is installed, Reconcile stops v1 (with
// SIGTERM) and starts v2, which reads what v1 wrote to its MutableStorage.
func TestReconcileReplacesImageAndKeepsStorage(t *testing.T) {
	needRoot(t)
	d := newDevice(t)
	cid := newUUID(t)
	d.install(t, image{component: cid, name: "logger", version: "1.0.0", storageKB: 64, args: []string{"-write", "kept by 1.0.0"}})
	s := d.supervisor(t)
	run(t, s)
	waitFor(t, "1.0.0 wrote its storage", func() bool { return logHas(s, cid, "wrote kept by 1.0.0") })
	before := status(t, s, cid)

	v2 := d.install(t, image{component: cid, name: "logger", version: "2.0.0", storageKB: 64, args: []string{"-read"}})
	must(t, s.Reconcile(t.Context()))
	if alive(before.Pid) {
		t.Errorf("1.0.0 (pid %d) still runs after Reconcile returned", before.Pid)
	}
	if !logHas(s, cid, "sigterm") {
		t.Errorf("1.0.0 was not asked to stop with SIGTERM: %q", s.Log(cid))
	}
	stops := d.events.of(apprun.EventExited, cid)
	if len(stops) != 1 || stops[0].Version != "1.0.0" || stops[0].Exit == nil || !stops[0].Exit.Stopped {
		t.Errorf("exit events %+v: want one, 1.0.0 stopped by the platform", stops)
	}
	waitFor(t, "2.0.0 read the storage", func() bool { return logHas(s, cid, `read "kept by 1.0.0" <nil>`) })
	// The app may print before the supervisor has recorded it running (Start returns once it
	// is exec'd): wait for that too.
	waitFor(t, "2.0.0 recorded running", func() bool { return status(t, s, cid).State == apprun.StateRunning })
	after := status(t, s, cid)
	if after.ImageID != v2 || after.State != apprun.StateRunning || after.UID != before.UID || after.Restarts != 0 {
		t.Errorf("after Reconcile: %+v, want 2.0.0 running as the same uid %d, no restarts", after, before.UID)
	}

	// Removed: Reconcile stops it and forgets it.
	must(t, d.apps.Remove(cid, false))
	must(t, s.Reconcile(t.Context()))
	if alive(after.Pid) || len(s.List()) != 0 {
		t.Errorf("after removal: pid %d alive %v, list %+v; want stopped and gone", after.Pid, alive(after.Pid), s.List())
	}
}

// TestStorageUsage: the supervisor reads how much of its quota a running app uses from the
// file system the app sees; a stopped app, or one without MutableStorage, says why not.
func TestStorageUsage(t *testing.T) {
	needRoot(t)
	d := newDevice(t)
	cid, plain := newUUID(t), newUUID(t)
	d.install(t, image{component: cid, name: "filler", version: "1.0.0", storageKB: 512, args: []string{"-fill", "300"}})
	d.install(t, image{component: plain, name: "plain", version: "1.0.0"})
	s := d.supervisor(t)
	run(t, s)
	waitFor(t, "the app filled its storage", func() bool { return logHas(s, cid, "filled 300 <nil>") })
	waitFor(t, "recorded running", func() bool { return status(t, s, cid).State == apprun.StateRunning })
	used, quota, err := s.StorageUsage(cid)
	if err != nil || quota != 512 || used < 300 || used > 320 {
		t.Fatalf("StorageUsage = %d of %d KiB, %v; want about 300 of 512", used, quota, err)
	}
	if _, _, err := s.StorageUsage(plain); !errors.Is(err, apprun.ErrNoStorage) {
		t.Fatalf("an app without storage: %v", err)
	}
	if _, _, err := s.StorageUsage(newUUID(t)); !errors.Is(err, apprun.ErrNotInstalled) {
		t.Fatalf("an unknown app: %v", err)
	}
	must(t, s.Stop(cid))
	if _, quota, err := s.StorageUsage(cid); !errors.Is(err, sandbox.ErrNotRunning) || quota != 512 {
		t.Fatalf("a stopped app: %d %v", quota, err)
	}
}

// TestStopStartPersists: an app stopped with Stop stays stopped across Reconcile and a new
// supervisor over the same state directory, until Start; uids stay the same.
func TestStopStartPersists(t *testing.T) {
	needRoot(t)
	d := newDevice(t)
	a, b := newUUID(t), newUUID(t)
	d.install(t, image{component: a, name: "a", version: "1.0.0"})
	d.install(t, image{component: b, name: "b", version: "1.0.0"})

	s1 := d.supervisor(t)
	stop1 := run(t, s1)
	waitFor(t, "both run", func() bool { return logHas(s1, a, "started") && logHas(s1, b, "started") })
	pidA := status(t, s1, a).Pid
	must(t, s1.Stop(a))
	if st := status(t, s1, a); st.State != apprun.StateStopped || st.Pid != 0 || alive(pidA) {
		t.Errorf("after Stop: %+v (pid %d alive %v), want stopped", st, pidA, alive(pidA))
	}
	must(t, s1.Reconcile(t.Context()))
	if st := status(t, s1, a); st.State != apprun.StateStopped {
		t.Errorf("after Reconcile: %+v, want still stopped", st)
	}
	uidA, uidB := status(t, s1, a).UID, status(t, s1, b).UID
	must(t, stop1())

	// The agent restarts.
	s2 := d.supervisor(t)
	stop2 := run(t, s2)
	waitFor(t, "b runs again", func() bool { return logHas(s2, b, "started") })
	if st := status(t, s2, a); st.State != apprun.StateStopped || s2.Log(a) != nil {
		t.Errorf("a after an agent restart: %+v, log %q; want stopped, never started", st, s2.Log(a))
	}
	must(t, s2.Start(a))
	waitFor(t, "a runs after Start", func() bool { return logHas(s2, a, "started") })
	if ua, ub := status(t, s2, a).UID, status(t, s2, b).UID; ua != uidA || ub != uidB {
		t.Errorf("uids %d, %d after an agent restart; want %d, %d", ua, ub, uidA, uidB)
	}
	must(t, stop2())

	s3 := d.supervisor(t)
	run(t, s3)
	waitFor(t, "a runs after the next agent restart", func() bool { return logHas(s3, a, "started") })

	if err := s3.Stop(newUUID(t)); err == nil {
		t.Errorf("stopping an app that is not installed succeeded")
	}
}

// TestRunCancelStopsEveryApp: when Run's context ends, every app is stopped, the one in
// backoff too, and no process of any app's uid is left.
func TestRunCancelStopsEveryApp(t *testing.T) {
	needRoot(t)
	d := newDevice(t)
	ids := []string{newUUID(t), newUUID(t), newUUID(t)}
	d.install(t, image{component: ids[0], name: "one", version: "1.0.0"})
	d.install(t, image{component: ids[1], name: "two", version: "1.0.0", storageKB: 16})
	d.install(t, image{component: ids[2], name: "crasher", version: "1.0.0", args: []string{"-exit", "1"}})
	s := d.supervisor(t, func(c *apprun.Config) { c.BackoffMin, c.BackoffMax = time.Hour, time.Hour })
	stop := run(t, s)
	waitFor(t, "two run and one crashed", func() bool {
		return logHas(s, ids[0], "started") && logHas(s, ids[1], "started") && status(t, s, ids[2]).State == apprun.StateCrashed
	})
	var pids []int
	var uids []uint32
	for _, id := range ids {
		st := status(t, s, id)
		pids, uids = append(pids, st.Pid), append(uids, st.UID)
	}
	must(t, stop())

	for i, id := range ids {
		st := status(t, s, id)
		if st.State != apprun.StateStopped || st.Pid != 0 {
			t.Errorf("%s after Run: %+v, want stopped", id, st)
		}
		if pids[i] != 0 && alive(pids[i]) {
			t.Errorf("%s: pid %d still alive", id, pids[i])
		}
		if p := processesOf(t, uids[i]); len(p) > 0 {
			t.Errorf("%s: processes %v of uid %d left", id, p, uids[i])
		}
	}
	for _, id := range ids[:2] {
		if !logHas(s, id, "sigterm") {
			t.Errorf("%s was not stopped with SIGTERM: %q", id, s.Log(id))
		}
	}
}

// processesOf lists the host processes whose real uid is uid.
func processesOf(t *testing.T, uid uint32) []int {
	t.Helper()
	paths, err := filepath.Glob("/proc/[0-9]*/status")
	must(t, err)
	var out []int
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if fields := strings.Fields(sc.Text()); len(fields) > 1 && fields[0] == "Uid:" && fields[1] == strconv.Itoa(int(uid)) {
				pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
				if alive(pid) {
					out = append(out, pid)
				}
			}
		}
		f.Close()
	}
	return out
}

// TestHealthyImageIsNotRolledBack: once a new image has run for HealthyAfter, its probation is
// over, in the state file too: later crashes restart it with backoff (reset by each healthy
// run) and never roll it back, also under a new supervisor. The healthy mark comes from the
// injected clock, not from how long anything took.
func TestHealthyImageIsNotRolledBack(t *testing.T) {
	needRoot(t)
	d := newDevice(t)
	cid := newUUID(t)
	d.install(t, image{component: cid, name: "flaky", version: "1.0.0"})
	v2 := d.install(t, image{component: cid, name: "flaky", version: "2.0.0", args: []string{"-exit", "5", "-after", "100ms"}})
	const healthyAfter = time.Hour
	now := make(chan time.Time)
	close(now)
	s := d.supervisor(t, func(c *apprun.Config) {
		c.HealthyAfter = healthyAfter
		c.After = func(d time.Duration) <-chan time.Time {
			if d == healthyAfter {
				return now // every run is healthy at once
			}
			return time.After(d)
		}
	})
	stop := run(t, s)
	waitFor(t, "2.0.0 exited 4 times", func() bool { return len(d.events.of(apprun.EventExited, cid)) >= 4 })
	must(t, stop())
	for i, ev := range d.events.of(apprun.EventExited, cid)[:4] {
		if ev.ImageID != v2 || ev.Exit == nil || ev.Exit.Code != 5 || ev.Backoff != 15*time.Millisecond {
			t.Errorf("exit %d: %+v, want 2.0.0 status 5 and the first backoff (a healthy run resets it)", i, ev)
		}
	}

	// A new supervisor whose clock never calls a run healthy: the state file remembers.
	s2 := d.supervisor(t, func(c *apprun.Config) { c.HealthyAfter = healthyAfter })
	run(t, s2)
	waitFor(t, "2.0.0 exited 4 more times, or a rollback", func() bool {
		return len(d.events.of(apprun.EventExited, cid)) >= 9 || len(d.events.of(apprun.EventRolledBack, cid)) > 0
	})
	if evs := d.events.of(apprun.EventRolledBack, cid); len(evs) > 0 {
		t.Errorf("a proven image was rolled back: %+v", evs)
	}
	if st := status(t, s2, cid); st.ImageID != v2 {
		t.Errorf("status %+v, want 2.0.0", st)
	}
}
