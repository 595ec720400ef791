package appinstall_test

// The kill campaign: the test binary re-executes itself as a child process that opens a real
// store and runs one operation on it (install v2 over v1; install v3 over v1 and v2; install v2
// and roll it back; remove with the data), and the child kills itself with SIGKILL after its
// Nth durable step, or when the extraction would read past byte N of the package. The parent
// checks the store after every kill, as left and as Open recovers it (on a copy), and restarts
// the child until the operation completes.
//
// `go test` runs a sample; RAMPART_SOAK=1 runs every point (go test -v prints the counts).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/rampart-iot/rampart/imagepkg"
	"github.com/rampart-iot/rampart/internal/appinstall"
)

const childEnv = "RAMPART_APPINSTALL_KILL_CHILD"

func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		os.Exit(killChild(spec))
	}
	os.Exit(m.Run())
}

// childSpec tells a child what to do and where to die.
type childSpec struct {
	Dir      string
	Scenario string
	Pkgs     map[string]string // version -> package file
	Kill     string            // "", "step:N" or "byte:N" (N an offset in the package file)
	Steps    string            // if set, write the label of every step there (a dry run)
}

func killedFile(dir string) string { return dir + ".killed" }

const dataContent = "the application's data, which no install may touch"

// killChild runs one scenario on the store, dying where the spec says.
func killChild(raw string) int {
	var sp childSpec
	if err := json.Unmarshal([]byte(raw), &sp); err != nil {
		fmt.Fprintln(os.Stderr, "child spec:", err)
		return 2
	}
	kind, nstr, _ := strings.Cut(sp.Kill, ":")
	n, _ := strconv.ParseInt(nstr, 10, 64)
	op := "open"
	die := func(label string) {
		_ = os.WriteFile(killedFile(sp.Dir), []byte(label), 0o600)
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
	steps, labels := int64(0), []string(nil)
	cfg := appinstall.Config{Dir: sp.Dir, Step: func(name string) {
		steps++
		labels = append(labels, op+" "+name)
		if kind == "step" && steps == n {
			die(op + " " + name)
		}
	}}
	if kind == "byte" {
		cfg = appinstall.WithReadHook(cfg, func(r io.ReaderAt) io.ReaderAt {
			return byteKiller{r, n, func() { die(op + " byte") }}
		})
	}
	ctx := context.Background()
	a, err := appinstall.Open(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		return 3
	}
	inst := func(version string) error {
		op = "install-" + version
		_, err := a.Install(ctx, sp.Pkgs[version], devVerify, appinstall.Options{})
		return err
	}
	switch sp.Scenario {
	case "install":
		err = inst("2.0.0")
	case "replace":
		err = inst("3.0.0")
	case "rollback":
		in, _ := a.Get(compA)
		if in.Failed == nil {
			if err = inst("2.0.0"); err == nil {
				op = "rollback"
				_, err = a.Rollback(ctx, compA, "crashed at start")
			}
		}
	case "remove":
		if _, ok := a.Get(compA); ok {
			op = "remove"
			err = a.Remove(compA, true)
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", op, err)
		return 4
	}
	if sp.Steps != "" {
		_ = os.WriteFile(sp.Steps, []byte(strings.Join(labels, "\n")), 0o600)
	}
	return 0
}

// byteKiller kills the child when a read of the package would pass byte n.
type byteKiller struct {
	r   io.ReaderAt
	n   int64
	die func()
}

func (k byteKiller) ReadAt(b []byte, off int64) (int, error) {
	if off+int64(len(b)) > k.n {
		k.die()
	}
	return k.r.ReadAt(b, off)
}

// campaign is what the parent knows.
type campaign struct {
	exe      string
	tmp      string
	versions map[string]built // by version
	pkgs     map[string]string
}

// scenarios: what is installed before the child runs, and what the store must hold at the end.
var scenarios = map[string]struct {
	setup   []string
	current string // "" for removed
	prev    string
	failed  string
}{
	"install":  {setup: []string{"1.0.0"}, current: "2.0.0", prev: "1.0.0"},
	"replace":  {setup: []string{"1.0.0", "2.0.0"}, current: "3.0.0", prev: "2.0.0"},
	"rollback": {setup: []string{"1.0.0"}, current: "1.0.0", failed: "2.0.0"},
	"remove":   {setup: []string{"1.0.0", "2.0.0"}},
}

// point is one run: a scenario and the kills, one per start of the child.
type point struct {
	scenario string
	kills    []string
}

func (p point) String() string { return p.scenario + " " + strings.Join(p.kills, ",") }

type outcome struct {
	p      point
	killed []string
	err    error
}

func (c *campaign) child(dir, scenario, kill, steps string) (killed bool, err error) {
	spec, _ := json.Marshal(childSpec{Dir: dir, Scenario: scenario, Pkgs: c.pkgs, Kill: kill, Steps: steps})
	cmd := exec.Command(c.exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(spec),
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

// setup makes a store with the scenario's versions installed and data written.
func (c *campaign) setup(dir, scenario string) error {
	a, err := appinstall.Open(appinstall.Config{Dir: dir})
	if err != nil {
		return err
	}
	for _, v := range scenarios[scenario].setup {
		if _, err := a.Install(context.Background(), c.pkgs[v], devVerify, appinstall.Options{}); err != nil {
			return err
		}
	}
	data, _ := a.DataDir(compA)
	return os.WriteFile(filepath.Join(data, "state.db"), []byte(dataContent), 0o600)
}

// steps runs a scenario without kills and returns the label of every durable step.
func (c *campaign) steps(t *testing.T, scenario string) []string {
	dir := filepath.Join(t.TempDir(), "apps")
	must(t, c.setup(dir, scenario))
	file := filepath.Join(t.TempDir(), "steps")
	if _, err := c.child(dir, scenario, "", file); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(file)
	must(t, err)
	return strings.Split(string(b), "\n")
}

func (c *campaign) run(i int, p point) outcome {
	o := outcome{p: p}
	dir := filepath.Join(c.tmp, strconv.Itoa(i), "apps")
	if o.err = c.setup(dir, p.scenario); o.err != nil {
		return o
	}
	for start := 0; start < 8; start++ {
		kill := ""
		if start < len(p.kills) {
			kill = p.kills[start]
		}
		killed, err := c.child(dir, p.scenario, kill, "")
		if err != nil {
			o.err = err
			return o
		}
		if !killed {
			o.err = c.check(dir, p.scenario, true)
			return o
		}
		label, _ := os.ReadFile(killedFile(dir))
		_ = os.Remove(killedFile(dir))
		o.killed = append(o.killed, string(label))
		if err := c.check(dir, p.scenario, false); err != nil {
			o.err = fmt.Errorf("after kill %d (%s): %w", start+1, label, err)
			return o
		}
		// As the next start will find it, after recovery (on a copy, so that the child's own
		// recovery runs too).
		cp := filepath.Join(c.tmp, strconv.Itoa(i), fmt.Sprintf("copy-%d", start))
		if err := copyTree(dir, cp); err != nil {
			o.err = err
			return o
		}
		if _, err := appinstall.Open(appinstall.Config{Dir: cp}); err != nil {
			o.err = fmt.Errorf("after kill %d (%s): reopening: %w", start+1, label, err)
			return o
		}
		if err := c.check(cp, p.scenario, false); err != nil {
			o.err = fmt.Errorf("after kill %d (%s), recovered: %w", start+1, label, err)
			return o
		}
		if err := c.clean(cp); err != nil {
			o.err = fmt.Errorf("after kill %d (%s), recovered: %w", start+1, label, err)
			return o
		}
	}
	o.err = errors.New("did not complete after 8 starts")
	return o
}

// check asserts what holds after any kill, and at the end (final) the scenario's outcome.
func (c *campaign) check(dir, scenario string, final bool) error {
	comps, err := appinstall.Read(dir)
	if err != nil {
		return err
	}
	dataDir := filepath.Join(dir, appinstall.DataDir, compA)
	if len(comps) == 0 {
		// Only a removal may end with nothing installed; the purge is recorded, so the data
		// is gone once recovered.
		if scenario != "remove" {
			return errors.New("nothing installed")
		}
	} else {
		in := comps[0]
		// Every image the state names is complete: the one that runs and the one to roll
		// back to.
		for _, im := range []*appinstall.Image{&in.Current, in.Previous} {
			if im == nil {
				continue
			}
			b, ok := c.versions[im.Version]
			if !ok || b.image != im.ID {
				return fmt.Errorf("state names an unknown image %+v", im)
			}
			if err := sameTree(filepath.Join(dir, appinstall.ImagesDir, im.ID), b.tree); err != nil {
				return err
			}
		}
		if got, err := os.ReadFile(filepath.Join(dataDir, "state.db")); err != nil || string(got) != dataContent {
			return fmt.Errorf("the application's data: %q, %v", got, err)
		}
	}
	if !final {
		return nil
	}
	want := scenarios[scenario]
	switch {
	case want.current == "" && len(comps) != 0:
		return fmt.Errorf("still installed: %+v", comps)
	case want.current == "":
		if _, err := os.Lstat(dataDir); !os.IsNotExist(err) {
			return fmt.Errorf("the purged data is still there: %v", err)
		}
	default:
		in := comps[0]
		prev, failed := "", ""
		if in.Previous != nil {
			prev = in.Previous.Version
		}
		if in.Failed != nil {
			failed = in.Failed.Version
		}
		if in.Current.Version != want.current || prev != want.prev || failed != want.failed {
			return fmt.Errorf("ended with %s (previous %q, failed %q); want %s (%q, %q)", in.Current.Version, prev, failed, want.current, want.prev, want.failed)
		}
	}
	return c.clean(dir)
}

// clean checks that nothing but the state file, the images the state names and data is left.
func (c *campaign) clean(dir string) error {
	comps, err := appinstall.Read(dir)
	if err != nil {
		return err
	}
	var want []string
	for _, in := range comps {
		want = append(want, in.Current.ID)
		if in.Previous != nil {
			want = append(want, in.Previous.ID)
		}
	}
	ents, _ := os.ReadDir(filepath.Join(dir, appinstall.ImagesDir))
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		return fmt.Errorf("images %v; want %v", got, want)
	}
	ents, _ = os.ReadDir(dir)
	for _, e := range ents {
		if n := e.Name(); n != appinstall.StateFile && n != appinstall.ImagesDir && n != appinstall.DataDir {
			return fmt.Errorf("left behind: %s", n)
		}
	}
	return nil
}

// copyTree copies the tree at src to dst, keeping modes and symlinks.
func copyTree(src, dst string) error {
	type dirMode struct {
		path string
		mode fs.FileMode
	}
	var dirs []dirMode
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(target, to)
		case d.IsDir():
			dirs = append(dirs, dirMode{to, fi.Mode().Perm()})
			return os.MkdirAll(to, 0o700)
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(to, b, fi.Mode().Perm())
		}
	})
	for _, d := range slices.Backward(dirs) {
		if err == nil {
			err = os.Chmod(d.path, d.mode)
		}
	}
	return err
}

func TestKillCampaign(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary many times")
	}
	soak := os.Getenv("RAMPART_SOAK") == "1"
	exe, err := os.Executable()
	must(t, err)
	c := &campaign{exe: exe, tmp: t.TempDir(), versions: map[string]built{}, pkgs: map[string]string{}}
	for v, size := range map[string]int{"1.0.0": 40_000, "2.0.0": 300_000, "3.0.0": 60_000} {
		b := pack(t, app{version: v, size: size})
		c.versions[v] = b
		c.pkgs[v] = filepath.Join(c.tmp, v+".rampkg")
		must(t, os.WriteFile(c.pkgs[v], b.pkg, 0o600))
	}
	var points []point
	add := func(sample bool, scenario string, kills ...string) {
		if soak || sample {
			points = append(points, point{scenario, kills})
		}
	}
	names := []string{"install", "replace", "rollback", "remove"}
	for si, sc := range names {
		steps := c.steps(t, sc)
		t.Logf("%s: %d durable steps: %s", sc, len(steps), strings.Join(steps, ", "))
		for i := range steps {
			add(i%4 == si%4, sc, fmt.Sprintf("step:%d", i+1))
			// Killed again while recovering and redoing it.
			for _, j := range []int{1, 2, 3, 5} {
				add(i == 2+si && j == 1+si%2, sc, fmt.Sprintf("step:%d", i+1), fmt.Sprintf("step:%d", j))
			}
		}
	}
	// Kills during the extraction of v2's payload, at byte offsets of the package file.
	v2 := c.versions["2.0.0"]
	p, err := imagepkg.Open(bytes.NewReader(v2.pkg), int64(len(v2.pkg)))
	must(t, err)
	off, size := int64(len(v2.pkg))-p.Metadata.Payload.Size, p.Metadata.Payload.Size
	offsets := []int64{off, off + 1, off + 512, off + size/2, off + size - 1, off + size - 1024}
	for i := int64(1); i < 48; i++ {
		offsets = append(offsets, off+i*size/48+i*7)
	}
	for i, o := range offsets {
		add(i == 0 || i == 3 || i == 4, "install", fmt.Sprintf("byte:%d", o))
		add(i == 3, "rollback", fmt.Sprintf("byte:%d", o), "step:1")
	}

	outcomes := make([]outcome, len(points))
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(2, runtime.GOMAXPROCS(0)))
	for i, p := range points {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			outcomes[i] = c.run(i, p)
		})
	}
	wg.Wait()
	single, multi, kills := 0, 0, 0
	perOp := map[string]int{}
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
			perOp[l]++
		}
	}
	var ops []string
	for l, n := range perOp {
		ops = append(ops, fmt.Sprintf("%s=%d", l, n))
	}
	slices.Sort(ops)
	t.Logf("%d runs; %d killed once, %d killed again while recovering; %d kills: %s", len(points), single, multi, kills, strings.Join(ops, " "))
	if len(points) > 0 && single == 0 {
		t.Error("no kill fired")
	}
}
