package osupdate_test

// The power-cut campaign: the test binary re-executes itself as a child process that runs a
// real device through a real update (download from an httptest server, verify, install into
// the inactive slot, trial boot, health check, commit; or, unhealthy, roll back), and the
// child kills itself with SIGKILL at a chosen point: after the Nth durable step (every saved
// transition and every file operation of boot control), or when the download reaches byte N.
// The parent restarts it (Boot, then Resume) until it settles, and checks the device after
// every kill and at the end.
//
// `go test` runs a sample; RAMPART_SOAK=1 runs every point (go test -v prints the counts).

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/internal/bootctl"
	"github.com/rampart-iot/rampart/internal/measure"
	"github.com/rampart-iot/rampart/internal/osupdate"
)

const childEnv = "RAMPART_OSUPDATE_POWERCUT_CHILD"

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(powerCutChild(spec))
	}
	os.Exit(m.Run())
}

// childSpec tells a child what to run and where to die.
type childSpec struct {
	State   string          // the device's state directory
	CA      string          // PEM file of the server's certificate
	Target  osupdate.Target // what the source offers
	Healthy bool            // what the health check says
	Known   []string        // measurements of the verified bundles
	Kill    string          // "", "step:N" or "byte:N"
	Steps   string          // if set, write the label of every step there (a dry run)
}

// killedFile is where a child writes, just before it dies, what it was doing.
func killedFile(state string) string { return state + ".killed" }

// powerCutChild is the device: boots, runs the update, restarts itself on Reboot.
func powerCutChild(raw string) int {
	var sp childSpec
	if err := json.Unmarshal([]byte(raw), &sp); err != nil {
		fmt.Fprintln(os.Stderr, "child spec:", err)
		return 2
	}
	ctx := context.Background()
	kind, nstr, _ := strings.Cut(sp.Kill, ":")
	n, _ := strconv.ParseInt(nstr, 10, 64)

	var cur *osupdate.Machine // labels kills with the state they interrupt
	phase := func() string {
		if cur == nil {
			return "Boot"
		}
		return string(cur.Status().State)
	}
	die := func(label string) {
		_ = os.WriteFile(killedFile(sp.State), []byte(label), 0o600)
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
	steps, labels := int64(0), []string(nil)
	onStep := func(name string) {
		steps++
		label := phase() + " " + name
		labels = append(labels, label)
		if kind == "step" && steps == n {
			die(label)
		}
	}

	boot, err := bootctl.OpenDir(filepath.Join(sp.State, "boot"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	boot.Step = onStep
	pemCA, err := os.ReadFile(sp.CA)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pemCA)
	var rt http.RoundTripper = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
	if kind == "byte" {
		rt = byteKiller{rt, n, func() { die(phase() + " byte") }}
	}
	health := osupdate.HealthFunc(func(context.Context) error {
		if sp.Healthy {
			return nil
		}
		return errors.New("the service says: attested, but app crash rate above the threshold")
	})
	clock := newFakeClock()
	for range 12 {
		cur = nil
		slot, err := boot.Boot(ctx)
		if err != nil {
			fmt.Fprintln(os.Stderr, "boot:", err)
			return 2
		}
		// The security monitor measures the booted slot: it must be a verified bundle.
		sum, err := measure.TreeDigest(boot.Path(slot))
		if err != nil || !slices.Contains(sp.Known, hex.EncodeToString(sum)) {
			fmt.Fprintf(os.Stderr, "booted slot %s is not a verified bundle: %x, %v\n", slot, sum, err)
			return 3
		}
		m, err := osupdate.Open(osupdate.Config{
			Dir: filepath.Join(sp.State, "update"), Boot: boot, Client: &http.Client{Transport: rt},
			Source: &staticSource{&sp.Target}, Verifier: devVerifier,
			Health: health, Sink: fileSink{filepath.Join(sp.State, "events.jsonl")}, Clock: clock,
			VerifyTimeout: time.Minute, HealthInterval: 20 * time.Second, Step: onStep,
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, "open:", err)
			return 2
		}
		cur = m
		res, err := m.Update(ctx)
		if err != nil {
			fmt.Fprintf(os.Stderr, "update in state %s: %v\n", res.State, err)
			return 4
		}
		if res.Reboot {
			continue
		}
		if res.State.Settled() {
			if sp.Steps != "" {
				_ = os.WriteFile(sp.Steps, []byte(strings.Join(labels, "\n")), 0o600)
			}
			return 0
		}
	}
	fmt.Fprintln(os.Stderr, "the update did not settle in 12 boots")
	return 5
}

// byteKiller kills the child when a download's file would pass byte n: the body it returns
// delivers bytes up to n, and the next read (by then Fetch has written them all) dies.
type byteKiller struct {
	rt  http.RoundTripper
	n   int64
	die func()
}

func (k byteKiller) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := k.rt.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	var off int64
	if r := req.Header.Get("Range"); r != "" {
		off, _ = strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(r, "bytes="), "-"), 10, 64)
	}
	resp.Body = &killingBody{ReadCloser: resp.Body, off: off, k: k}
	return resp, nil
}

type killingBody struct {
	io.ReadCloser
	off int64
	k   byteKiller
}

func (b *killingBody) Read(p []byte) (int, error) {
	if b.off >= b.k.n {
		b.k.die()
	}
	if int64(len(p)) > b.k.n-b.off {
		p = p[:b.k.n-b.off]
	}
	n, err := b.ReadCloser.Read(p)
	b.off += int64(n)
	return n, err
}

// campaign is what the parent knows.
type campaign struct {
	exe    string
	ca     string
	v1, v2 osBundle
	target osupdate.Target
	tmp    string
}

// point is one run of the campaign: a scenario and the kills, one per start of the child.
type point struct {
	healthy bool
	kills   []string
}

func (p point) String() string {
	s := "unhealthy"
	if p.healthy {
		s = "healthy"
	}
	return s + " " + strings.Join(p.kills, ",")
}

// outcome is what a point did: the label of every kill that fired.
type outcome struct {
	p      point
	killed []string
	err    error
}

func (c *campaign) spec(state string, healthy bool, kill, steps string) string {
	b, _ := json.Marshal(childSpec{State: state, CA: c.ca, Target: c.target, Healthy: healthy,
		Known: []string{c.v1.measurement, c.v2.measurement}, Kill: kill, Steps: steps})
	return string(b)
}

// child runs the child once; killed says it died of its SIGKILL.
func (c *campaign) child(state string, healthy bool, kill, steps string) (killed bool, err error) {
	cmd := exec.Command(c.exe, "-test.run=^$")
	// Under -race, a child would otherwise sleep a second at exit.
	cmd.Env = append(os.Environ(), childEnv+"="+c.spec(state, healthy, kill, steps),
		"GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return true, nil
		}
	}
	if err != nil {
		return false, fmt.Errorf("child (kill %q): %v\n%s", kill, err, out.String())
	}
	return false, nil
}

// steps runs an update without kills and returns the label of every durable step.
func (c *campaign) steps(t *testing.T, healthy bool) []string {
	state := filepath.Join(t.TempDir(), "state")
	provision(t, state, c.v1)
	file := filepath.Join(t.TempDir(), "steps")
	if _, err := c.child(state, healthy, "", file); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(file)
	must(t, err)
	return strings.Split(string(b), "\n")
}

// run plays one point on a fresh device.
func (c *campaign) run(i int, p point) outcome {
	o := outcome{p: p}
	state := filepath.Join(c.tmp, strconv.Itoa(i), "state")
	dataFile, data, err := provisionDevice(state, c.v1)
	if err != nil {
		o.err = err
		return o
	}
	for start := 0; start < 12; start++ {
		kill := ""
		if start < len(p.kills) {
			kill = p.kills[start]
		}
		killed, err := c.child(state, p.healthy, kill, "")
		if err != nil {
			o.err = err
			return o
		}
		if !killed {
			o.err = c.check(state, dataFile, data, p, true)
			return o
		}
		label, _ := os.ReadFile(killedFile(state))
		_ = os.Remove(killedFile(state))
		o.killed = append(o.killed, string(label))
		if strings.HasPrefix(kill, "byte:") && start == 0 {
			// The file holds exactly the bytes delivered before the kill.
			n, _ := strconv.ParseInt(strings.TrimPrefix(kill, "byte:"), 10, 64)
			st, err := os.Stat(filepath.Join(state, "update", "bundle-"+c.v2.sha256+".partial"))
			if err != nil || st.Size() != n {
				o.err = fmt.Errorf("killed at byte %d: partial file %v, %v", n, st, err)
				return o
			}
		}
		if err := c.check(state, dataFile, data, p, false); err != nil {
			o.err = fmt.Errorf("after kill %d (%s): %w", start+1, label, err)
			return o
		}
	}
	o.err = errors.New("did not settle after 12 starts")
	return o
}

// check asserts the invariants of a device that was just killed (final=false) or settled.
func (c *campaign) check(state, dataFile string, data []byte, p point, final bool) error {
	boot, err := bootctl.OpenDir(filepath.Join(state, "boot"))
	if err != nil {
		return err
	}
	st, err := boot.State(context.Background())
	if err != nil {
		return err
	}
	known := map[string]string{c.v1.measurement: "1.0.0", c.v2.measurement: "2.0.0"}
	// Every slot a boot may select is complete and verified; the committed one always exists.
	if !st.Installed(st.Active) {
		return fmt.Errorf("no committed slot: %+v", st)
	}
	for _, s := range []bootctl.Slot{st.Active, st.Next()} {
		sum, err := measure.TreeDigest(boot.Path(s))
		if err != nil {
			return fmt.Errorf("selectable slot %s: %w", s, err)
		}
		got := hex.EncodeToString(sum)
		if info := st.Slots[s]; got != info.Digest || known[got] != info.Version {
			return fmt.Errorf("selectable slot %s measures %s, recorded %+v", s, got, info)
		}
	}
	if b, err := os.ReadFile(dataFile); err != nil || !bytes.Equal(b, data) {
		return fmt.Errorf("app data changed: %q, %v", b, err)
	}
	us, err := osupdate.ReadStatus(filepath.Join(state, "update"))
	if err != nil {
		return err
	}
	if us.Floor != "" && us.Floor != "1.0.0" && us.Floor != "2.0.0" || us.Floor == "2.0.0" && st.Slots[st.Active].Version != "2.0.0" {
		return fmt.Errorf("floor %q with slot %s active at %s", us.Floor, st.Active, st.Slots[st.Active].Version)
	}
	if !final {
		return nil
	}
	if st.Trial != "" || st.Booted != st.Active {
		return fmt.Errorf("settled with boot state %+v", st)
	}
	version, state1, events := "1.0.0", osupdate.RolledBack, "RollbackPerformed(health) UpdateFailed(health)"
	if p.healthy {
		version, state1, events = "2.0.0", osupdate.Committed, "UpdateCommitted"
	}
	if got := st.Slots[st.Active].Version; got != version || us.State != state1 || !us.Reported {
		return fmt.Errorf("settled at %s in state %s (reported %v), want %s in %s", got, us.State, us.Reported, version, state1)
	}
	if p.healthy && us.Floor != "2.0.0" {
		return fmt.Errorf("committed with floor %q", us.Floor)
	}
	es, err := eventsIn(filepath.Join(state, "events.jsonl"))
	if got := kinds(es); err != nil || got != events {
		return fmt.Errorf("events %q (%v), want %q", got, err, events)
	}
	for _, dir := range []string{"update", "boot"} {
		ents, _ := os.ReadDir(filepath.Join(state, dir))
		for _, e := range ents {
			if n := e.Name(); n != osupdate.StateFile && n != "slot-a" && n != "slot-b" {
				return fmt.Errorf("left behind: %s/%s", dir, n)
			}
		}
	}
	return nil
}

func TestPowerCutCampaign(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary many times")
	}
	soak := os.Getenv("RAMPART_SOAK") == "1"
	exe, err := os.Executable()
	must(t, err)
	c := &campaign{exe: exe, tmp: t.TempDir()}
	c.v1 = makeBundle(t, "1.0.0", 20_000)
	c.v2 = makeBundle(t, "2.0.0", 300_000)
	srv := newBundleServer(t, c.v2)
	c.target = *c.v2.target(srv.URL)
	c.ca = filepath.Join(t.TempDir(), "ca.pem")
	must(t, os.WriteFile(c.ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600))

	healthy, unhealthy := c.steps(t, true), c.steps(t, false)
	t.Logf("an uninterrupted update takes %d durable steps when healthy, %d when not", len(healthy), len(unhealthy))
	// Every point runs in the soak; the short run takes those marked, a spread across the
	// protocol that is the same every time.
	var points []point
	add := func(sample bool, healthy bool, kills ...string) {
		if soak || sample {
			points = append(points, point{healthy, kills})
		}
	}
	for n, sc := range []struct {
		healthy bool
		steps   []string
	}{{true, healthy}, {false, unhealthy}} {
		for i := range sc.steps {
			add(i%3 == n, sc.healthy, fmt.Sprintf("step:%d", i+1))
		}
		// Killed again while recovering, at one of its first few steps.
		for i := range sc.steps {
			for _, j := range []int{1, 2, 3, 5, 8} {
				add(i == 12+n && j == 1+n, sc.healthy, fmt.Sprintf("step:%d", i+1), fmt.Sprintf("step:%d", j))
			}
		}
	}
	size := c.target.Size
	offsets := []int64{1, size / 2, size - 1, size, 2, 4095, 4096, 4097, 16383, 16384, 16385, size - 2}
	for i := int64(1); i < 170; i++ {
		offsets = append(offsets, i*size/170+i) // spread, off the buffer boundaries
	}
	for i, o := range offsets {
		add(i < 4, true, fmt.Sprintf("byte:%d", o))
	}
	// Resumed and cut again; or resumed, then killed at a later step.
	for i, o := range []int64{1000, size / 3, size - 1} {
		add(false, true, fmt.Sprintf("byte:%d", o), fmt.Sprintf("byte:%d", min(o+size/5, size)))
		add(i == 1, false, fmt.Sprintf("byte:%d", o), "step:3")
	}

	outcomes := make([]outcome, len(points))
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(2, runtime.GOMAXPROCS(0)))
	for i, p := range points {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			outcomes[i] = c.run(i, p)
		}()
	}
	wg.Wait()

	perPhase := map[string]int{}
	single, multi, kills := 0, 0, 0 // points whose every kill fired
	for _, o := range outcomes {
		if o.err != nil {
			t.Errorf("%s: %v", o.p, o.err)
			continue
		}
		if len(o.killed) != len(o.p.kills) {
			continue // a later kill point was past the end of the recovery
		}
		if len(o.killed) == 1 {
			single++
		} else {
			multi++
		}
		for _, l := range o.killed {
			kills++
			phase, _, _ := strings.Cut(l, " ")
			perPhase[phase]++
		}
	}
	var phases []string
	for ph, n := range perPhase {
		phases = append(phases, fmt.Sprintf("%s=%d", ph, n))
	}
	sort.Strings(phases)
	t.Logf("%d distinct kill points, and %d points killed again while recovering (%d runs, %d kills); kills by the state they interrupted: %s",
		single, multi, len(points), kills, strings.Join(phases, " "))
	if soak && single < 200 {
		t.Errorf("only %d distinct kill points; the soak needs at least 200", single)
	}
}
