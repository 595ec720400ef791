package sandbox

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// fakeCgroupFS lays out a cgroup tree in a directory: mountinfo and /proc/self/cgroup files
// describing it, v1 hierarchies for v1Ctrls, and a unified hierarchy offering v2Ctrls. The
// process is in /agent on every hierarchy.
func fakeCgroupFS(t *testing.T, v1Ctrls, v2Ctrls []string) (cgroupFS, string) {
	t.Helper()
	dir := t.TempDir()
	var mi, self strings.Builder
	for i, c := range v1Ctrls {
		point := filepath.Join(dir, c)
		if err := os.MkdirAll(filepath.Join(point, "agent"), 0o755); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&mi, "%d 1 0:%d / %s rw,relatime shared:1 - cgroup cgroup rw,%s\n", 30+i, 30+i, point, c)
		fmt.Fprintf(&self, "%d:%s:/agent\n", i+1, c)
	}
	unified := filepath.Join(dir, "unified")
	if err := os.MkdirAll(filepath.Join(unified, "agent"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(unified, "cgroup.controllers"), []byte(strings.Join(v2Ctrls, " ")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&mi, "40 1 0:40 / %s rw,relatime - cgroup2 cgroup2 rw\n", strings.ReplaceAll(unified, " ", `\040`))
	fmt.Fprintf(&self, "0::/agent\n")
	cfs := cgroupFS{mountinfo: filepath.Join(dir, "mountinfo"), self: filepath.Join(dir, "cgroup")}
	if err := os.WriteFile(cfs.mountinfo, []byte(mi.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfs.self, []byte(self.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfs, dir
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// The file logic for pure v2 and for a hybrid layout, which this machine cannot run for real
// (its v2 hierarchy has none of the three controllers).
func TestCgroupV2Files(t *testing.T) {
	cfs, dir := fakeCgroupFS(t, nil, []string{"cpu", "memory", "pids"})
	cg, err := cfs.newCgroup("", "app1", Limits{MemoryBytes: 64 << 20, Pids: 10, MilliCPU: 250})
	if err != nil {
		t.Fatal(err)
	}
	leaf := filepath.Join(dir, "unified", "agent", "rampart", "app1")
	if cg.v2 != leaf || len(cg.v1) != 0 {
		t.Fatalf("v2 %q v1 %v, want everything in %s", cg.v2, cg.v1, leaf)
	}
	for file, want := range map[string]string{
		"memory.max": strconv.Itoa(64 << 20), "memory.swap.max": "0", "pids.max": "10", "cpu.max": "25000 100000",
	} {
		if got := readFile(t, filepath.Join(leaf, file)); got != want {
			t.Errorf("%s = %q, want %q", file, got, want)
		}
	}
	// Each ancestor from the root down to the parent hands the controllers down.
	for _, d := range []string{"unified", "unified/agent", "unified/agent/rampart"} {
		if got := readFile(t, filepath.Join(dir, d, "cgroup.subtree_control")); got != "+memory +pids +cpu" {
			t.Errorf("%s/cgroup.subtree_control = %q", d, got)
		}
	}
	if err := cg.add(4242); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(leaf, "cgroup.procs")); got != "4242" {
		t.Errorf("cgroup.procs = %q", got)
	}
	if err := os.WriteFile(filepath.Join(leaf, "memory.events"), []byte("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(leaf, "pids.events"), []byte("max 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if oom, pids := cg.events(); !oom || pids {
		t.Errorf("events: oom %v pids %v, want oom only", oom, pids)
	}
}

func TestCgroupHybridFiles(t *testing.T) {
	// This machine's layout: memory, pids and cpu on v1; v2 with none of them.
	cfs, dir := fakeCgroupFS(t, []string{"memory", "pids", "cpu"}, []string{"hugetlb"})
	cg, err := cfs.newCgroup("", "app1", Limits{MemoryBytes: 1 << 20, Pids: 5, MilliCPU: 2000})
	if err != nil {
		t.Fatal(err)
	}
	if cg.v2 != "" {
		t.Errorf("made a v2 cgroup %s with no v2 controller in use", cg.v2)
	}
	for file, want := range map[string]string{
		"memory/agent/rampart/app1/memory.limit_in_bytes":       strconv.Itoa(1 << 20),
		"memory/agent/rampart/app1/memory.memsw.limit_in_bytes": strconv.Itoa(1 << 20),
		"pids/agent/rampart/app1/pids.max":                      "5",
		"cpu/agent/rampart/app1/cpu.cfs_period_us":              "100000",
		"cpu/agent/rampart/app1/cpu.cfs_quota_us":               "200000",
	} {
		if got := readFile(t, filepath.Join(dir, file)); got != want {
			t.Errorf("%s = %q, want %q", file, got, want)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "memory/agent/rampart/app1/memory.oom_control"), []byte("oom_kill_disable 0\nunder_oom 0\noom_kill 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pids/agent/rampart/app1/pids.events"), []byte("max 7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if oom, pids := cg.events(); oom || !pids {
		t.Errorf("events: oom %v pids %v, want pids only", oom, pids)
	}

	// A missing controller is an error only when its limit is asked for.
	cfs2, _ := fakeCgroupFS(t, []string{"memory"}, nil)
	if _, err := cfs2.newCgroup("", "app2", Limits{MemoryBytes: 1 << 20}); err != nil {
		t.Errorf("memory only: %v", err)
	}
	if _, err := cfs2.newCgroup("", "app3", Limits{Pids: 5}); err == nil || !strings.Contains(err.Error(), "pids") {
		t.Errorf("pids limit without a pids controller: %v", err)
	}

	// An explicit parent is relative to each hierarchy's mount point.
	cg4, err := cfs.newCgroup("apps", "app4", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cg4.v1["memory"], filepath.Join(dir, "memory", "apps", "app4"); got != want {
		t.Errorf("with parent \"apps\": %s, want %s", got, want)
	}
}

func TestUnescapeMount(t *testing.T) {
	for in, want := range map[string]string{`/a\040b\011c`: "/a b\tc", `/plain`: "/plain", `/x\9`: `/x\9`} {
		if got := unescapeMount(in); got != want {
			t.Errorf("unescapeMount(%q) = %q, want %q", in, got, want)
		}
	}
}

// The limits reach the real cgroup files while the app runs, and the cgroup goes after it.
func TestCgroupLimitsApplied(t *testing.T) {
	needRoot(t)
	spec := baseSpec(t, "handle-term")
	spec.Limits = Limits{MemoryBytes: 96 << 20, Pids: 40, MilliCPU: 500}
	stdout := &syncBuffer{want: "ready", seen: make(chan struct{})}
	seen := stdout.seen
	spec.Stdout = stdout
	p, err := Start(context.Background(), spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	<-seen
	checks := map[string]string{}
	if d, ok := cgroupDirFor(t, spec.Name, "memory"); ok {
		if _, err := os.Stat(filepath.Join(d, "memory.max")); err == nil {
			checks[filepath.Join(d, "memory.max")] = strconv.Itoa(96 << 20)
		} else {
			checks[filepath.Join(d, "memory.limit_in_bytes")] = strconv.Itoa(96 << 20)
		}
		checks[filepath.Join(d, "cgroup.procs")] = strconv.Itoa(p.Pid())
	} else {
		t.Error("no memory cgroup while the app runs")
	}
	if d, ok := cgroupDirFor(t, spec.Name, "pids"); ok {
		checks[filepath.Join(d, "pids.max")] = "40"
	} else {
		t.Error("no pids cgroup while the app runs")
	}
	if d, ok := cgroupDirFor(t, spec.Name, "cpu"); ok {
		if _, err := os.Stat(filepath.Join(d, "cpu.max")); err == nil {
			checks[filepath.Join(d, "cpu.max")] = "50000 100000"
		} else {
			checks[filepath.Join(d, "cpu.cfs_quota_us")] = "50000"
		}
	} else {
		t.Error("no cpu cgroup while the app runs")
	}
	for file, want := range checks {
		if got := readFile(t, file); got != want {
			t.Errorf("%s = %q, want %q", file, got, want)
		}
	}
	p.Stop()
	for _, c := range controllers {
		if d, ok := cgroupDirFor(t, spec.Name, c); ok {
			t.Errorf("%s cgroup %s left behind", c, d)
		}
	}
}
