package apprun_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/internal/apprun"
	"github.com/rampart-iot/rampart/internal/kernelaudit"
)

// TestLandlockDenialsAreReported: an app in its real sandbox tries 5 times to write
// /proc/self/comm, which only Landlock forbids; the kernel's audit records reach the
// supervisor, which attributes them to that app (not to the other app running beside it) and
// reports them as two events: the first denial at once, the other 4 counted when the window
// ends.
func TestLandlockDenialsAreReported(t *testing.T) {
	needRoot(t)
	r, err := kernelaudit.Open(kernelaudit.Config{EnableAudit: true})
	if errors.Is(err, kernelaudit.ErrUnavailable) {
		t.Skipf("this kernel cannot report Landlock denials: %v", err)
	}
	must(t, err)
	defer r.Close()
	if landlock, _ := r.Logged(); !landlock {
		t.Skip("this kernel does not log Landlock denials")
	}

	d := newDevice(t)
	bad, good := newUUID(t), newUUID(t)
	badImage := d.install(t, image{component: bad, name: "prober", version: "1.0.0", args: []string{"-deny", "5"}})
	d.install(t, image{component: good, name: "quiet", version: "1.0.0"})
	s := d.supervisor(t, func(c *apprun.Config) {
		c.Denials = r
		c.DenialWindow = 2 * time.Second
	})
	stop := run(t, s)

	waitFor(t, "the prober was denied", func() bool { return logHas(s, bad, "denied: open /proc/self/comm: permission denied") })
	count := func() int {
		n := 0
		for _, ev := range d.events.of(apprun.EventDenied, bad) {
			n += ev.Denied.Count
		}
		return n
	}
	waitFor(t, "5 denials are reported", func() bool { return count() >= 5 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	evs := d.events.of(apprun.EventDenied, bad)
	if len(evs) != 2 || evs[0].Denied.Count != 1 || evs[1].Denied.Count != 4 {
		t.Errorf("got %d events: %s; want two, counting 1 and 4", len(evs), denials(evs))
	}
	for _, ev := range evs {
		dn := ev.Denied
		if ev.ImageID != badImage || ev.Name != "prober" || ev.Version != "1.0.0" || dn.By != "landlock" ||
			!slices.Equal(dn.Blockers, []string{"fs.write_file"}) || !strings.HasSuffix(dn.Object, "/comm") {
			t.Errorf("event %+v (denied %+v): want landlock fs.write_file on /proc/.../comm by prober 1.0.0 %s", ev, dn, badImage)
		}
	}
	if evs := d.events.of(apprun.EventDenied, good); len(evs) != 0 {
		t.Errorf("the quiet app got denial events: %+v", evs)
	}
}

func denials(evs []apprun.Event) string {
	var b strings.Builder
	for _, ev := range evs {
		fmt.Fprintf(&b, "%+v; ", *ev.Denied)
	}
	return b.String()
}

// TestSeccompRefusalsAreReported: an app in its real sandbox tries 3 raw sockets itself and 2
// in a child process it starts; the seccomp argument filter refuses each and the kernel logs
// it; the supervisor attributes all 5 to that app by its uid (not to the other app running
// beside it) and reports them as two events, counting 1 and 4.
func TestSeccompRefusalsAreReported(t *testing.T) {
	needRoot(t)
	r, err := kernelaudit.Open(kernelaudit.Config{EnableAudit: true})
	if errors.Is(err, kernelaudit.ErrUnavailable) {
		t.Skipf("this kernel cannot report denials: %v", err)
	}
	must(t, err)
	defer r.Close()
	if _, seccomp := r.Logged(); !seccomp {
		t.Skip("this kernel does not log seccomp refusals")
	}

	d := newDevice(t)
	bad, good := newUUID(t), newUUID(t)
	badImage := d.install(t, image{component: bad, name: "raw", version: "1.0.0", args: []string{"-raw", "3", "-raw-child", "2"}})
	d.install(t, image{component: good, name: "quiet", version: "1.0.0"})
	s := d.supervisor(t, func(c *apprun.Config) {
		c.Denials = r
		c.DenialWindow = 2 * time.Second
	})
	stop := run(t, s)

	waitFor(t, "the app's child was refused", func() bool { return logHas(s, bad, `raw child: "started 1.0.0`) })
	if !logHas(s, bad, "raw: operation not permitted") {
		t.Errorf("the app's raw socket was not refused with EPERM: %q", s.Log(bad))
	}
	count := func() int {
		n := 0
		for _, ev := range d.events.of(apprun.EventDenied, bad) {
			n += ev.Denied.Count
		}
		return n
	}
	waitFor(t, "5 refusals are reported", func() bool { return count() >= 5 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	evs := d.events.of(apprun.EventDenied, bad)
	if len(evs) != 2 || evs[0].Denied.Count != 1 || evs[1].Denied.Count != 4 {
		t.Errorf("got %d events: %s; want two, counting 1 and 4", len(evs), denials(evs))
	}
	for _, ev := range evs {
		dn := ev.Denied
		if ev.ImageID != badImage || ev.Name != "raw" || dn.By != "seccomp" ||
			!slices.Equal(dn.Blockers, []string{"socket"}) || dn.Object != "raw or packet socket, or a refused address family" {
			t.Errorf("event %+v (denied %+v): want seccomp socket, raw or packet socket, by raw 1.0.0 %s", ev, dn, badImage)
		}
	}
	if evs := d.events.of(apprun.EventDenied, good); len(evs) != 0 {
		t.Errorf("the quiet app got denial events: %+v", evs)
	}
}

// openSeccompReader opens a reader of seccomp refusals, or skips the test.
func openSeccompReader(t *testing.T, cfg kernelaudit.Config) *kernelaudit.Reader {
	t.Helper()
	needRoot(t)
	cfg.EnableAudit = true
	r, err := kernelaudit.Open(cfg)
	if errors.Is(err, kernelaudit.ErrUnavailable) {
		t.Skipf("this kernel cannot report denials: %v", err)
	}
	must(t, err)
	t.Cleanup(func() { r.Close() })
	if _, seccomp := r.Logged(); !seccomp {
		t.Skip("this kernel does not log seccomp refusals")
	}
	return r
}

// TestSeccompFloodIsCounted: an app in its real sandbox refused 5000 raw sockets in a loop
// (fewer than the reader's buffer holds, so none can be lost) gets every one reported, in a few
// events, and no loss is reported.
func TestSeccompFloodIsCounted(t *testing.T) {
	r := openSeccompReader(t, kernelaudit.Config{})
	d := newDevice(t)
	bad := newUUID(t)
	d.install(t, image{component: bad, name: "flood", version: "1.0.0", args: []string{"-raw", "5000"}})
	s := d.supervisor(t, func(c *apprun.Config) {
		c.Denials = r
		c.DenialWindow = time.Second
	})
	stop := run(t, s)
	count := func() int {
		n := 0
		for _, ev := range d.events.of(apprun.EventDenied, bad) {
			n += ev.Denied.Count
		}
		return n
	}
	waitFor(t, "5000 refusals are reported", func() bool { return count() >= 5000 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 5000 {
		t.Errorf("%d refusals reported, want 5000: %s", n, denials(d.events.of(apprun.EventDenied, bad)))
	}
	if evs := d.events.of(apprun.EventDenialsLost, ""); len(evs) != 0 {
		t.Errorf("losses reported: %+v", evs)
	}
}

// TestSeccompFloodLossIsReported: with a reader whose buffer holds a record or two, an app
// refused 20000 raw sockets in a loop outruns it; the kernel drops records, and the
// supervisor reports it once the window ends, naming no app.
func TestSeccompFloodLossIsReported(t *testing.T) {
	r := openSeccompReader(t, kernelaudit.Config{ReceiveBuffer: 1})
	d := newDevice(t)
	bad := newUUID(t)
	d.install(t, image{component: bad, name: "flood", version: "1.0.0", args: []string{"-raw", "20000"}})
	s := d.supervisor(t, func(c *apprun.Config) {
		c.Denials = r
		c.DenialWindow = time.Second
	})
	stop := run(t, s)
	waitFor(t, "a loss is reported", func() bool { return len(d.events.of(apprun.EventDenialsLost, "")) > 0 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for _, ev := range d.events.of(apprun.EventDenialsLost, "") {
		if ev.Lost < 1 || ev.Denied != nil || ev.Name != "" {
			t.Errorf("loss event %+v", ev)
		}
	}
	n := 0
	for _, ev := range d.events.of(apprun.EventDenied, bad) {
		n += ev.Denied.Count
	}
	t.Logf("%d of 20000 refusals reported, %d loss events", n, len(d.events.of(apprun.EventDenialsLost, "")))
}
