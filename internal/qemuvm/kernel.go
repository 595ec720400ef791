// Package qemuvm boots a real Debian kernel under QEMU for tests that need real kernel drivers
// this machine's kernel lacks: it fetches the kernel package once with apt-get download (cached),
// extracts the kernel and the modules a test asks for with their dependencies (cached), writes a
// newc initramfs, and runs QEMU with direct kernel boot, collecting the guest's serial output.
//
// Trust: it trusts apt (the package's signature is apt's to check) and the files its caller
// names; what the guest prints is read back bounded and only ever shown or matched, never run.
package qemuvm

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// debGlob names the kernel packages the cache may hold: Debian 12's 6.1 kernel, whose modules
// are not compressed (CONFIG_MODULE_COMPRESS_NONE), so busybox insmod loads them as they are.
const debGlob = "linux-image-6.1.0-*-amd64_*.deb"

// Kernel is a Debian linux-image package in the cache, and the directory its files are
// extracted into as they are asked for.
type Kernel struct {
	Deb     string // the package
	Root    string // where its files are extracted (boot/, lib/modules/RELEASE/)
	Release string // e.g. 6.1.0-56-amd64

	cache   string
	builtin map[string]bool   // module name -> built into the kernel
	paths   map[string]string // module name -> path under lib/modules/RELEASE
}

// DefaultCache is $RAMPART_KERNEL_CACHE, else the user cache directory's rampart/kernel.
func DefaultCache() (string, error) {
	if c := os.Getenv("RAMPART_KERNEL_CACHE"); c != "" {
		return c, nil
	}
	c, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(c, "rampart", "kernel"), nil
}

// FetchKernel returns the newest kernel package in cache, downloading the one
// linux-image-amd64 depends on with apt-get download when the cache has none.
func FetchKernel(ctx context.Context, cache string) (*Kernel, error) {
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return nil, err
	}
	unlock, err := lock(cache)
	if err != nil {
		return nil, err
	}
	defer unlock()
	debs, _ := filepath.Glob(filepath.Join(cache, debGlob))
	if len(debs) == 0 {
		if err := download(ctx, cache); err != nil {
			return nil, err
		}
		if debs, _ = filepath.Glob(filepath.Join(cache, debGlob)); len(debs) == 0 {
			return nil, fmt.Errorf("apt-get download left no %s in %s", debGlob, cache)
		}
	}
	sort.Strings(debs)
	deb := debs[len(debs)-1]
	// linux-image-6.1.0-56-amd64_6.1.192-2_amd64.deb: the release is the package name's tail.
	name := strings.SplitN(filepath.Base(deb), "_", 2)[0]
	k := &Kernel{Deb: deb, Root: filepath.Join(cache, strings.TrimSuffix(filepath.Base(deb), ".deb")),
		Release: strings.TrimPrefix(name, "linux-image-"), cache: cache}
	if err := k.extract(ctx, "./boot/vmlinuz-"+k.Release, "./lib/modules/"+k.Release+"/modules.order", "./lib/modules/"+k.Release+"/modules.builtin"); err != nil {
		return nil, err
	}
	if k.paths, err = moduleList(filepath.Join(k.modDir(), "modules.order")); err != nil {
		return nil, err
	}
	builtin, err := moduleList(filepath.Join(k.modDir(), "modules.builtin"))
	if err != nil {
		return nil, err
	}
	k.builtin = map[string]bool{}
	for m := range builtin {
		k.builtin[m] = true
	}
	return k, nil
}

func download(ctx context.Context, cache string) error {
	out, err := exec.CommandContext(ctx, "apt-cache", "depends", "linux-image-amd64").Output()
	if err != nil {
		return fmt.Errorf("apt-cache depends linux-image-amd64: %w (run apt-get update)", err)
	}
	var pkg string
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] == "Depends:" && strings.HasPrefix(f[1], "linux-image-6.") {
			pkg = f[1]
			break
		}
	}
	if pkg == "" {
		return fmt.Errorf("linux-image-amd64 depends on no linux-image-6.* package:\n%s", out)
	}
	dl := exec.CommandContext(ctx, "apt-get", "download", pkg)
	dl.Dir = cache
	if b, err := dl.CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get download %s: %w\n%s", pkg, err, b)
	}
	return nil
}

// lock takes the cache's lock, so that test binaries of several packages running at once
// download and extract once.
func lock(cache string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(cache, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", f.Name(), err)
	}
	return func() { f.Close() }, nil
}

func (k *Kernel) modDir() string { return filepath.Join(k.Root, "lib", "modules", k.Release) }

// extract extracts the package's members named by patterns (tar wildcards) into Root, unless
// they are there already (a pattern with a wildcard is always extracted).
func (k *Kernel) extract(ctx context.Context, patterns ...string) error {
	var missing []string
	for _, p := range patterns {
		if !strings.ContainsAny(p, "*?[") {
			if _, err := os.Stat(filepath.Join(k.Root, p)); err == nil {
				continue
			}
		}
		missing = append(missing, p)
	}
	if len(missing) == 0 {
		return nil
	}
	if err := os.MkdirAll(k.Root, 0o755); err != nil {
		return err
	}
	args := append([]string{"-c", `deb=$1 root=$2; shift 2; dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$root" --wildcards "$@"`, "sh", k.Deb, k.Root}, missing...)
	if b, err := exec.CommandContext(ctx, "sh", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("extracting %s from %s: %w\n%s", strings.Join(missing, " "), k.Deb, err, b)
	}
	return nil
}

// Vmlinuz extracts the kernel image and returns its path.
func (k *Kernel) Vmlinuz(ctx context.Context) (string, error) {
	p := "./boot/vmlinuz-" + k.Release
	if err := k.locked(func() error { return k.extract(ctx, p) }); err != nil {
		return "", err
	}
	return filepath.Join(k.Root, p), nil
}

func (k *Kernel) locked(f func() error) error {
	unlock, err := lock(k.cache)
	if err != nil {
		return err
	}
	defer unlock()
	return f()
}

// Builtin reports whether the kernel has module name built in (it then needs no loading).
func (k *Kernel) Builtin(name string) bool { return k.builtin[modName(name)] }

// Has reports whether the kernel offers module name, built in or as a module.
func (k *Kernel) Has(name string) bool {
	_, ok := k.paths[modName(name)]
	return ok || k.Builtin(name)
}

// Modules extracts the modules named (as modprobe names them: i2c-stub or i2c_stub) and
// everything they depend on, and returns their files in an order insmod can load them in:
// each after its dependencies. Built-in modules are left out; a module the kernel lacks is an
// error. Each level of dependencies is extracted in one pass over the package.
func (k *Kernel) Modules(ctx context.Context, names ...string) ([]string, error) {
	deps := map[string][]string{} // every module of the closure -> what it depends on
	level := names
	for depth := 0; len(level) > 0; depth++ {
		if depth > 32 {
			return nil, fmt.Errorf("module dependencies deeper than 32 levels: %v", level)
		}
		var todo, patterns []string
		for _, n := range level {
			n = modName(n)
			if _, done := deps[n]; done || k.builtin[n] || slices.Contains(todo, n) {
				continue
			}
			rel, ok := k.paths[n]
			if !ok {
				return nil, fmt.Errorf("kernel %s has no module %s (neither built in nor in modules.order)", k.Release, n)
			}
			todo = append(todo, n)
			patterns = append(patterns, "./lib/modules/"+k.Release+"/"+rel)
		}
		if err := k.locked(func() error { return k.extract(ctx, patterns...) }); err != nil {
			return nil, err
		}
		level = nil
		for _, n := range todo {
			d, err := moduleDepends(k.moduleFile(n))
			if err != nil {
				return nil, err
			}
			deps[n] = d
			level = append(level, d...)
		}
	}
	var order []string
	loaded := map[string]bool{}
	var visit func(n string)
	visit = func(n string) {
		n = modName(n)
		if loaded[n] || k.builtin[n] {
			return
		}
		loaded[n] = true
		for _, d := range deps[n] {
			visit(d)
		}
		order = append(order, k.moduleFile(n))
	}
	for _, n := range names {
		visit(n)
	}
	return order, nil
}

func (k *Kernel) moduleFile(name string) string {
	return filepath.Join(k.modDir(), k.paths[name])
}

// modName is a module's name as the kernel keeps it: underscores for dashes, no .ko.
func modName(s string) string {
	return strings.ReplaceAll(strings.TrimSuffix(filepath.Base(s), ".ko"), "-", "_")
}

// moduleList reads modules.order or modules.builtin: one kernel/.../name.ko per line.
func moduleList(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); strings.HasSuffix(l, ".ko") {
			m[modName(l)] = l
		}
	}
	return m, sc.Err()
}

// moduleDepends reads the depends= field of a module's .modinfo section.
func moduleDepends(path string) ([]string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("module %s: %w", path, err)
	}
	defer f.Close()
	s := f.Section(".modinfo")
	if s == nil {
		return nil, fmt.Errorf("module %s: no .modinfo section", path)
	}
	b, err := s.Data()
	if err != nil {
		return nil, fmt.Errorf("module %s: %w", path, err)
	}
	for _, kv := range bytes.Split(b, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("depends=")); ok {
			if len(v) == 0 {
				return nil, nil
			}
			return strings.Split(string(v), ","), nil
		}
	}
	return nil, errors.New("module " + path + ": no depends= in .modinfo")
}
