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
	"cmp"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// debGlob names the kernel packages the cache may hold: Debian 12's 6.1 kernel, whose modules
// are not compressed (CONFIG_MODULE_COMPRESS_NONE), so busybox insmod loads them as they are.
// The cache only ever holds whole packages under these names: download renames a package into
// place once apt-get has finished it.
const debGlob = "linux-image-6.1.0-*-amd64_*.deb"

// kernelPackage is the name of a package debGlob matches.
var kernelPackage = regexp.MustCompile(`^linux-image-6\.1\.0-[0-9]+-amd64$`)

// rootStamp is in every extraction root this package made: every file in such a root was
// extracted whole (into a temporary directory, then renamed into place). A root without it was
// left by an older version that extracted in place, and is extracted again.
const rootStamp = ".whole-files"

// Temporary names in the cache: a download or an extraction in progress, or one killed. They
// are removed under the lock, when no other process can be using them.
const (
	downloadPrefix = ".download-"
	extractPrefix  = ".extract-"
)

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
// linux-image-amd64 depends on with apt-get download when the cache has none. It refuses a
// package that is not Debian 12's 6.1 kernel.
func FetchKernel(ctx context.Context, cache string) (*Kernel, error) {
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return nil, err
	}
	unlock, err := lock(ctx, cache)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := removeLeftovers(cache); err != nil {
		return nil, err
	}
	debs, _ := filepath.Glob(filepath.Join(cache, debGlob))
	if len(debs) == 0 {
		if err := download(ctx, cache); err != nil {
			return nil, err
		}
		if debs, _ = filepath.Glob(filepath.Join(cache, debGlob)); len(debs) == 0 {
			return nil, fmt.Errorf("apt-get download left no %s in %s", debGlob, cache)
		}
	}
	slices.SortFunc(debs, compareVersions)
	deb := debs[len(debs)-1]
	// linux-image-6.1.0-56-amd64_6.1.192-2_amd64.deb: the release is the package name's tail.
	name := strings.SplitN(filepath.Base(deb), "_", 2)[0]
	k := &Kernel{Deb: deb, Root: filepath.Join(cache, strings.TrimSuffix(filepath.Base(deb), ".deb")),
		Release: strings.TrimPrefix(name, "linux-image-"), cache: cache}
	if err := k.prepareRoot(); err != nil {
		return nil, err
	}
	if err := k.extract(ctx, "./boot/vmlinuz-"+k.Release, "./lib/modules/"+k.Release+"/modules.order", "./lib/modules/"+k.Release+"/modules.builtin"); err != nil {
		return nil, err
	}
	if k.paths, err = moduleList(filepath.Join(k.modDir(), "modules.order")); err != nil {
		return nil, k.corrupt(err)
	}
	builtin, err := moduleList(filepath.Join(k.modDir(), "modules.builtin"))
	if err != nil {
		return nil, k.corrupt(err)
	}
	k.builtin = map[string]bool{}
	for m := range builtin {
		k.builtin[m] = true
	}
	return k, nil
}

// download downloads the kernel package linux-image-amd64 depends on into a temporary
// directory in cache and, once apt-get has finished, renames it into cache.
func download(ctx context.Context, cache string) error {
	out, err := exec.CommandContext(ctx, "apt-cache", "depends", "linux-image-amd64").CombinedOutput()
	if err != nil {
		return fmt.Errorf("apt-cache depends linux-image-amd64: %w (run apt-get update)\n%s", err, out)
	}
	var pkg string
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] == "Depends:" && strings.HasPrefix(f[1], "linux-image-") {
			pkg = f[1]
			break
		}
	}
	if pkg == "" {
		return fmt.Errorf("linux-image-amd64 depends on no linux-image package:\n%s", out)
	}
	if !kernelPackage.MatchString(pkg) {
		return fmt.Errorf("linux-image-amd64 depends on %s, not Debian 12's 6.1 kernel (linux-image-6.1.0-N-amd64, whose modules are not compressed): this needs Debian 12's (bookworm's) apt sources", pkg)
	}
	tmp, err := os.MkdirTemp(cache, downloadPrefix)
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	dl := exec.CommandContext(ctx, "apt-get", "download", pkg)
	dl.Dir = tmp
	if b, err := dl.CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get download %s: %w\n%s", pkg, err, b)
	}
	got, _ := filepath.Glob(filepath.Join(tmp, pkg+"_*_amd64.deb"))
	if len(got) != 1 {
		entries, _ := os.ReadDir(tmp)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		return fmt.Errorf("apt-get download %s left %q, not one %s_*_amd64.deb", pkg, names, pkg)
	}
	return os.Rename(got[0], filepath.Join(cache, filepath.Base(got[0])))
}

// removeLeftovers removes what a killed download or extraction left in cache. The caller holds
// the lock.
func removeLeftovers(cache string) error {
	for _, prefix := range []string{downloadPrefix, extractPrefix} {
		left, _ := filepath.Glob(filepath.Join(cache, prefix+"*"))
		for _, l := range left {
			if err := os.RemoveAll(l); err != nil {
				return err
			}
		}
	}
	return nil
}

// compareVersions orders package file names as versions: runs of digits by their value, so
// that 6.1.0-56 comes after 6.1.0-9.
func compareVersions(a, b string) int {
	for a != "" && b != "" {
		da, db := digitRun(a), digitRun(b)
		if da > 0 && db > 0 {
			na, nb := strings.TrimLeft(a[:da], "0"), strings.TrimLeft(b[:db], "0")
			if c := cmp.Compare(len(na), len(nb)); c != 0 {
				return c
			}
			if c := strings.Compare(na, nb); c != 0 {
				return c
			}
			a, b = a[da:], b[db:]
			continue
		}
		if c := cmp.Compare(a[0], b[0]); c != 0 {
			return c
		}
		a, b = a[1:], b[1:]
	}
	return cmp.Compare(len(a), len(b))
}

func digitRun(s string) int {
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	return n
}

// lock takes the cache's lock, so that test binaries of several packages running at once
// download and extract once. It waits for it until ctx ends.
func lock(ctx context.Context, cache string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(cache, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", f.Name(), err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for the lock on %s: %w", f.Name(), ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (k *Kernel) modDir() string { return filepath.Join(k.Root, "lib", "modules", k.Release) }

// prepareRoot makes Root, stamped, removing first a root an older version left unstamped. The
// caller holds the lock.
func (k *Kernel) prepareRoot() error {
	stamp := filepath.Join(k.Root, rootStamp)
	if _, err := os.Stat(stamp); err == nil {
		return nil
	}
	if err := os.RemoveAll(k.Root); err != nil {
		return err
	}
	if err := os.MkdirAll(k.Root, 0o755); err != nil {
		return err
	}
	return os.WriteFile(stamp, []byte("every file here was extracted whole from "+filepath.Base(k.Deb)+"\n"), 0o644)
}

// corrupt adds to err what to delete so that the next run extracts the package again.
func (k *Kernel) corrupt(err error) error {
	return fmt.Errorf("%w (the kernel cache may be damaged: delete %s to extract it again, or %s too to download it again)", err, k.Root, k.Deb)
}

// extract extracts the package's members named by patterns (tar wildcards) into Root, unless
// they are there already (a pattern with a wildcard is always extracted). They are extracted
// into a temporary directory in the cache first and renamed into Root once dpkg-deb and tar
// have both succeeded, so a file in Root is whole. The caller holds the lock.
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
	tmp, err := os.MkdirTemp(k.cache, extractPrefix)
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := untar(ctx, k.Deb, tmp, missing); err != nil {
		return err
	}
	return filepath.WalkDir(tmp, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(tmp, p)
		if err != nil {
			return err
		}
		dst := filepath.Join(k.Root, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		return os.Rename(p, dst)
	})
}

// untar extracts the members of deb named by patterns into dir: dpkg-deb --fsys-tarfile
// piped to tar.
func untar(ctx context.Context, deb, dir string, patterns []string) error {
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	dpkg := exec.CommandContext(ctx, "dpkg-deb", "--fsys-tarfile", deb)
	tar := exec.CommandContext(ctx, "tar", append([]string{"-x", "-C", dir, "--wildcards"}, patterns...)...)
	var dpkgErr, tarErr bytes.Buffer
	dpkg.Stdout, dpkg.Stderr = w, &dpkgErr
	tar.Stdin, tar.Stdout, tar.Stderr = r, &tarErr, &tarErr
	errDpkg := dpkg.Start()
	w.Close()
	if errDpkg != nil {
		r.Close()
		return fmt.Errorf("dpkg-deb: %w", errDpkg)
	}
	errTar := tar.Start()
	r.Close() // tar has its own copy; dpkg-deb gets EPIPE if tar stops reading
	if errTar == nil {
		errTar = tar.Wait()
	}
	errDpkg = dpkg.Wait()
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("extracting %s from %s: %w", strings.Join(patterns, " "), deb, ctx.Err())
	case errDpkg != nil:
		return fmt.Errorf("dpkg-deb --fsys-tarfile %s: %w: %s (a partial or damaged package? delete %s to download it again)",
			deb, errDpkg, bytes.TrimSpace(dpkgErr.Bytes()), deb)
	case errTar != nil:
		return fmt.Errorf("extracting %s from %s: tar: %w: %s", strings.Join(patterns, " "), deb, errTar, bytes.TrimSpace(tarErr.Bytes()))
	}
	return nil
}

// Vmlinuz extracts the kernel image and returns its path.
func (k *Kernel) Vmlinuz(ctx context.Context) (string, error) {
	p := "./boot/vmlinuz-" + k.Release
	if err := k.locked(ctx, func() error { return k.extract(ctx, p) }); err != nil {
		return "", err
	}
	return filepath.Join(k.Root, p), nil
}

func (k *Kernel) locked(ctx context.Context, f func() error) error {
	unlock, err := lock(ctx, k.cache)
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
		if err := k.locked(ctx, func() error { return k.extract(ctx, patterns...) }); err != nil {
			return nil, err
		}
		level = nil
		for _, n := range todo {
			d, err := moduleDepends(k.moduleFile(n))
			if err != nil {
				return nil, k.corrupt(err)
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
