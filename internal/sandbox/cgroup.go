package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The sandbox writes cgroup files directly rather than through a library: it needs three
// controllers, must work on v1, v2 and hybrid systems (where, as on the project's machines,
// memory, pids and cpu are on v1 and v2 has none of them), and must nest under the agent's own
// cgroup. Each controller is looked up on its own: on a v1 hierarchy if one has it, else on
// the unified (v2) hierarchy if it offers it.

// controllers the sandbox uses.
var controllers = []string{"memory", "pids", "cpu"}

// cgroupFS is where the sandbox looks for cgroup mounts and its own membership; tests of the
// file logic point it elsewhere.
type cgroupFS struct {
	mountinfo string // normally /proc/self/mountinfo
	self      string // normally /proc/self/cgroup
}

var hostCgroupFS = cgroupFS{mountinfo: "/proc/self/mountinfo", self: "/proc/self/cgroup"}

// cgroup is one sandbox's cgroup: a directory per v1 controller, or one v2 directory, or a mix.
type cgroup struct {
	v1 map[string]string // controller -> directory
	v2 string            // directory on the unified hierarchy, "" if none of its controllers are used
	// made lists the directories this cgroup made, in creation order.
	made []string
}

// newCgroup makes the cgroup name under parent ("" for "rampart" under the agent's own
// cgroup) and sets limits. A controller that is missing is an error only if its limit is set.
func newCgroup(parent, name string, l Limits) (*cgroup, error) {
	return hostCgroupFS.newCgroup(parent, name, l)
}

type mount struct{ root, point string }

func (cfs cgroupFS) newCgroup(parent, name string, l Limits) (_ *cgroup, err error) {
	v1, v2, err := cfs.mounts()
	if err != nil {
		return nil, err
	}
	self, err := cfs.membership()
	if err != nil {
		return nil, err
	}
	cg := &cgroup{v1: map[string]string{}}
	defer func() {
		if err != nil {
			_ = cg.remove()
			err = fmt.Errorf("cgroup %s: %w", name, err)
		}
	}()
	base := func(m mount, own string) string {
		if parent != "" {
			return filepath.Join(m.point, parent)
		}
		rel := strings.TrimPrefix(own, m.root)
		return filepath.Join(m.point, rel, "rampart")
	}
	var v2ctrls []string
	for _, c := range controllers {
		if m, ok := v1[c]; ok {
			dir := filepath.Join(base(m, self[c]), name)
			if slices.Contains(cg.made, dir) { // co-mounted controllers share a directory
				cg.v1[c] = dir
				continue
			}
			if err := cg.mkdir(dir); err != nil {
				return nil, err
			}
			cg.v1[c] = dir
			continue
		}
		if v2.point != "" && cfs.v2Offers(v2.point, c) {
			v2ctrls = append(v2ctrls, c)
			continue
		}
		if l.set(c) {
			return nil, fmt.Errorf("no %s controller on this system (neither cgroup v1 nor v2)", c)
		}
	}
	if len(v2ctrls) > 0 {
		p := base(v2, self[""])
		if err := enableV2(v2.point, p, v2ctrls); err != nil {
			return nil, err
		}
		dir := filepath.Join(p, name)
		if err := cg.mkdir(dir); err != nil {
			return nil, err
		}
		cg.v2 = dir
	}
	if err := cg.setLimits(l); err != nil {
		return nil, err
	}
	return cg, nil
}

func (l Limits) set(controller string) bool {
	switch controller {
	case "memory":
		return l.MemoryBytes > 0
	case "pids":
		return l.Pids > 0
	case "cpu":
		return l.MilliCPU > 0
	}
	return false
}

// mkdir makes dir and its parents. A dir left by a sandbox that died with a crashed agent is
// removed first; if it still has processes, the app is already running.
func (cg *cgroup) mkdir(dir string) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	err := os.Mkdir(dir, 0o755)
	if errors.Is(err, fs.ErrExist) {
		if rerr := syscall.Rmdir(dir); rerr != nil {
			return fmt.Errorf("%s exists and cannot be removed (is the app already running?): %w", dir, rerr)
		}
		err = os.Mkdir(dir, 0o755)
	}
	if err != nil {
		return err
	}
	cg.made = append(cg.made, dir)
	return nil
}

// dir is where controller c's files are, "" if it is not used.
func (cg *cgroup) dir(c string) string {
	if d, ok := cg.v1[c]; ok {
		return d
	}
	if cg.v2 != "" {
		return cg.v2
	}
	return ""
}

func (cg *cgroup) isV2(c string) bool {
	_, v1 := cg.v1[c]
	return !v1 && cg.v2 != ""
}

func (cg *cgroup) setLimits(l Limits) error {
	write := func(c, file, value string) error {
		d := cg.dir(c)
		if d == "" {
			return fmt.Errorf("no %s controller", c)
		}
		if err := os.WriteFile(filepath.Join(d, file), []byte(value), 0); err != nil {
			return fmt.Errorf("setting %s: %w", file, err)
		}
		return nil
	}
	// optional writes a file that older or differently configured kernels may lack.
	optional := func(c, file, value string) error {
		err := write(c, file, value)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	if l.MemoryBytes > 0 {
		v := strconv.FormatInt(l.MemoryBytes, 10)
		if cg.isV2("memory") {
			if err := write("memory", "memory.max", v); err != nil {
				return err
			}
			if err := optional("memory", "memory.swap.max", "0"); err != nil {
				return err
			}
		} else {
			if err := write("memory", "memory.limit_in_bytes", v); err != nil {
				return err
			}
			// Memory plus swap: no swapping past the limit.
			if err := optional("memory", "memory.memsw.limit_in_bytes", v); err != nil {
				return err
			}
		}
	}
	if l.Pids > 0 {
		if err := write("pids", "pids.max", strconv.FormatInt(l.Pids, 10)); err != nil {
			return err
		}
	}
	if l.MilliCPU > 0 {
		const period = 100000 // µs
		quota := l.MilliCPU * period / 1000
		if quota < 1000 {
			quota = 1000 // the kernel's minimum
		}
		if cg.isV2("cpu") {
			if err := write("cpu", "cpu.max", fmt.Sprintf("%d %d", quota, period)); err != nil {
				return err
			}
		} else {
			if err := write("cpu", "cpu.cfs_period_us", strconv.Itoa(period)); err != nil {
				return err
			}
			if err := write("cpu", "cpu.cfs_quota_us", strconv.FormatInt(quota, 10)); err != nil {
				return err
			}
		}
	}
	return nil
}

// add moves process pid (all its threads) into the cgroup.
func (cg *cgroup) add(pid int) error {
	for _, d := range cg.made {
		if err := os.WriteFile(filepath.Join(d, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); err != nil {
			return fmt.Errorf("joining cgroup %s: %w", d, err)
		}
	}
	return nil
}

// events reports whether the OOM killer killed a process of the cgroup and whether the pids
// limit refused a fork.
func (cg *cgroup) events() (oomKilled, pidsLimited bool) {
	if d := cg.dir("memory"); d != "" {
		file, key := "memory.oom_control", "oom_kill" // v1, kernel 4.13 and later
		if cg.isV2("memory") {
			file = "memory.events"
		}
		oomKilled = readKey(filepath.Join(d, file), key) > 0
	}
	if d := cg.dir("pids"); d != "" {
		pidsLimited = readKey(filepath.Join(d, "pids.events"), "max") > 0
	}
	return oomKilled, pidsLimited
}

// readKey reads "key value" lines and returns key's value, or 0.
func readKey(path, key string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), " ")
		if ok && k == key {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

// remove removes the directories the cgroup made. The sandbox's processes are gone by then
// (they all die with its PID 1), but the kernel may take a moment to release them.
func (cg *cgroup) remove() error {
	var errs []error
	for i := len(cg.made) - 1; i >= 0; i-- {
		d := cg.made[i]
		var err error
		for try := 0; try < 100; try++ {
			err = syscall.Rmdir(d)
			if err == nil || errors.Is(err, fs.ErrNotExist) {
				err = nil
				break
			}
			if !errors.Is(err, syscall.EBUSY) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("removing %s: %w", d, err))
		}
	}
	cg.made = nil
	return errors.Join(errs...)
}

// mounts finds the v1 hierarchy of each controller and the unified hierarchy.
func (cfs cgroupFS) mounts() (v1 map[string]mount, v2 mount, err error) {
	f, err := os.Open(cfs.mountinfo)
	if err != nil {
		return nil, mount{}, err
	}
	defer f.Close()
	v1 = map[string]mount{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT POINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		a, b := strings.Fields(pre), strings.Fields(post)
		if len(a) < 5 || len(b) < 3 {
			continue
		}
		m := mount{root: unescapeMount(a[3]), point: unescapeMount(a[4])}
		switch b[0] {
		case "cgroup2":
			if v2.point == "" {
				v2 = m
			}
		case "cgroup":
			for _, opt := range strings.Split(b[2], ",") {
				if slices.Contains(controllers, opt) {
					if _, dup := v1[opt]; !dup {
						v1[opt] = m
					}
				}
			}
		}
	}
	return v1, v2, sc.Err()
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// membership reads which cgroup this process is in: controller -> path, "" for the unified
// hierarchy.
func (cfs cgroupFS) membership() (map[string]string, error) {
	b, err := os.ReadFile(cfs.self)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for line := range strings.Lines(string(b)) {
		parts := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[1] == "" {
			out[""] = parts[2]
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			out[c] = parts[2]
		}
	}
	return out, nil
}

func (cfs cgroupFS) v2Offers(point, c string) bool {
	b, err := os.ReadFile(filepath.Join(point, "cgroup.controllers"))
	return err == nil && slices.Contains(strings.Fields(string(b)), c)
}

// enableV2 makes parent (under the unified mount point) and enables ctrls in the subtree of
// every cgroup from the mount point down to parent, so that parent's children can use them.
func enableV2(point, parent string, ctrls []string) error {
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return err
	}
	rel, err := filepath.Rel(point, parent)
	if err != nil || strings.HasPrefix(rel, "..") {
		return fmt.Errorf("cgroup parent %s is not under %s", parent, point)
	}
	dir := point
	steps := []string{dir}
	if rel != "." {
		for _, p := range strings.Split(rel, string(filepath.Separator)) {
			dir = filepath.Join(dir, p)
			steps = append(steps, dir)
		}
	}
	for _, d := range steps {
		have, _ := os.ReadFile(filepath.Join(d, "cgroup.subtree_control"))
		var add []string
		for _, c := range ctrls {
			if !slices.Contains(strings.Fields(string(have)), c) {
				add = append(add, "+"+c)
			}
		}
		if len(add) == 0 {
			continue
		}
		if err := os.WriteFile(filepath.Join(d, "cgroup.subtree_control"), []byte(strings.Join(add, " ")), 0); err != nil {
			return fmt.Errorf("enabling %s in %s (a cgroup v2 parent must not hold processes itself: set CgroupParent): %w", strings.Join(add, " "), d, err)
		}
	}
	return nil
}
