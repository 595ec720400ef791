package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// reservedNames are top-level names the sandbox provides; image entries with these names are
// not shown.
var reservedNames = map[string]bool{"proc": true, "dev": true, "tmp": true, "storage": true}

// buildRoot makes the sandbox's file system and pivots into it. The new root is a small tmpfs
// holding a read-only bind mount of each top-level entry of the image (so the image needs no
// mount points of its own), a fresh /proc, a private /tmp, a /dev with only the granted nodes
// and the storage; once built it is made read-only.
func buildRoot(cfg *initConfig) error {
	// Nothing mounted here propagates back to the host, and the host's later mounts stay out.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making mounts private: %w", err)
	}
	root := cfg.Staging
	// The init runs as the host's uid 0, which the namespace does not map, so that it can read
	// the image wherever the agent keeps it; but a file system mounted in the namespace only
	// takes new files from ids it maps. New files are made as the app's ids (mk), in a
	// world-writable root that is closed again (0755) once built.
	mk, err := newCreator(int(cfg.UID), int(cfg.GID))
	if err != nil {
		return err
	}
	defer mk.close()
	if err := unix.Mount("tmpfs", root, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0777,size=256k"); err != nil {
		return fmt.Errorf("mounting root tmpfs: %w", err)
	}
	ents, err := os.ReadDir(cfg.Root)
	if err != nil {
		return fmt.Errorf("reading image: %w", err)
	}
	for _, e := range ents {
		name := e.Name()
		if reservedNames[name] || name == "run" && len(cfg.Sockets) > 0 {
			continue
		}
		src, dst := filepath.Join(cfg.Root, name), filepath.Join(root, name)
		switch t := e.Type(); {
		case t.IsDir():
			if err := mk.mkdir(dst, 0o755); err != nil {
				return fmt.Errorf("image /%s: %w", name, err)
			}
			if err := bindReadOnly(src, dst); err != nil {
				return fmt.Errorf("image /%s: %w", name, err)
			}
		case t.IsRegular():
			if err := mk.file(dst); err != nil {
				return fmt.Errorf("image /%s: %w", name, err)
			}
			if err := bindReadOnly(src, dst); err != nil {
				return fmt.Errorf("image /%s: %w", name, err)
			}
		case t&os.ModeSymlink != 0:
			target, err := os.Readlink(src)
			if err != nil {
				return fmt.Errorf("image /%s: %w", name, err)
			}
			if err := mk.symlink(target, dst); err != nil {
				return fmt.Errorf("image /%s: %w", name, err)
			}
		default:
			// Device nodes, sockets and FIFOs in an image are not shown.
		}
	}

	proc := filepath.Join(root, "proc")
	if err := mk.mkdir(proc, 0o555); err != nil {
		return err
	}
	if err := unix.Mount("proc", proc, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mounting /proc: %w", err)
	}

	tmp := filepath.Join(root, "tmp")
	if err := mk.mkdir(tmp, 0o755); err != nil {
		return err
	}
	opts := fmt.Sprintf("mode=0700,uid=%d,gid=%d,size=%dk", cfg.UID, cfg.GID, cfg.TmpSizeKB)
	if err := unix.Mount("tmpfs", tmp, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, opts); err != nil {
		return fmt.Errorf("mounting /tmp: %w", err)
	}

	if err := buildDev(mk, filepath.Join(root, "dev"), cfg.Devices); err != nil {
		return err
	}

	if cfg.Storage != "" {
		st := filepath.Join(root, "storage")
		if err := mk.mkdir(st, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(cfg.Storage, st, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("binding storage: %w", err)
		}
		if err := remountBind(st, unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC); err != nil {
			return fmt.Errorf("storage: %w", err)
		}
	}

	for _, so := range cfg.Sockets {
		dst := filepath.Join(root, so.Target)
		for _, d := range parents(root, filepath.Dir(dst)) {
			if err := mk.mkdir(d, 0o755); err != nil && !os.IsExist(err) {
				return fmt.Errorf("socket %s: %w", so.Target, err)
			}
		}
		if err := mk.file(dst); err != nil {
			return fmt.Errorf("socket %s: %w", so.Target, err)
		}
		if err := unix.Mount(so.Source, dst, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("socket %s: %w", so.Target, err)
		}
		if err := remountBind(dst, unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC); err != nil {
			return fmt.Errorf("socket %s: %w", so.Target, err)
		}
	}

	if err := os.Chmod(root, 0o755); err != nil {
		return fmt.Errorf("closing the root: %w", err)
	}

	// pivot_root(".", ".") stacks the old root under the new one; detaching it leaves only
	// the new root.
	if err := unix.Chdir(root); err != nil {
		return err
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detaching the old root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return err
	}
	if err := unix.Mount("", "/", "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
		return fmt.Errorf("making / read-only: %w", err)
	}
	return nil
}

// buildDev makes a tmpfs /dev holding bind mounts of the given host nodes and the usual
// symbolic links, then makes it read-only (the nodes stay usable: each is its own mount).
func buildDev(mk *creator, dev string, nodes []string) error {
	if err := mk.mkdir(dev, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", dev, "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "mode=0777,size=64k"); err != nil {
		return fmt.Errorf("mounting /dev: %w", err)
	}
	for _, n := range nodes {
		dst := filepath.Join(dev, n[len("/dev/"):])
		for _, d := range parents(dev, filepath.Dir(dst)) {
			if err := mk.mkdir(d, 0o755); err != nil && !os.IsExist(err) {
				return fmt.Errorf("device %s: %w", n, err)
			}
		}
		if err := mk.file(dst); err != nil {
			return fmt.Errorf("device %s: %w", n, err)
		}
		if err := unix.Mount(n, dst, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("device %s: %w", n, err)
		}
		if err := remountBind(dst, unix.MS_NOSUID|unix.MS_NOEXEC); err != nil {
			return fmt.Errorf("device %s: %w", n, err)
		}
	}
	for name, target := range map[string]string{
		"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2",
	} {
		if err := mk.symlink(target, filepath.Join(dev, name)); err != nil {
			return err
		}
	}
	if err := os.Chmod(dev, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("", dev, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("making /dev read-only: %w", err)
	}
	return nil
}

// bindReadOnly bind-mounts src (recursively) on dst and makes the mount read-only, nosuid and
// nodev.
func bindReadOnly(src, dst string) error {
	if err := unix.Mount(src, dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind mount: %w", err)
	}
	return remountBind(dst, unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV)
}

// remountBind adds flags to the bind mount at path. In a user namespace the remount must keep
// the flags the kernel locked on the source mount, so those are carried over.
func remountBind(path string, flags uintptr) error {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return err
	}
	for _, m := range []struct{ st, ms uintptr }{
		{unix.ST_RDONLY, unix.MS_RDONLY},
		{unix.ST_NOSUID, unix.MS_NOSUID},
		{unix.ST_NODEV, unix.MS_NODEV},
		{unix.ST_NOEXEC, unix.MS_NOEXEC},
		{unix.ST_NOATIME, unix.MS_NOATIME},
		{unix.ST_NODIRATIME, unix.MS_NODIRATIME},
		{unix.ST_RELATIME, unix.MS_RELATIME},
	} {
		if uintptr(st.Flags)&m.st != 0 {
			flags |= m.ms
		}
	}
	if err := unix.Mount("", path, "", unix.MS_REMOUNT|unix.MS_BIND|flags, ""); err != nil {
		return fmt.Errorf("remounting: %w", err)
	}
	return nil
}

// creator makes files as the app's ids (see buildRoot) on a thread of its own, whose fsuid and
// fsgid are the app's: the init's main thread keeps the host's uid 0 to read the image, and
// cannot switch back to it once switched, as the namespace does not map it.
type creator struct {
	req chan func() error
	res chan error
}

func newCreator(uid, gid int) (*creator, error) {
	c := &creator{req: make(chan func() error), res: make(chan error)}
	ready := make(chan error)
	go func() {
		// Never unlocked: the thread ends with the goroutine, fsuid and all.
		runtime.LockOSThread()
		_ = unix.Setfsgid(gid)
		_ = unix.Setfsuid(uid)
		g, _ := unix.SetfsgidRetGid(-1)
		u, _ := unix.SetfsuidRetUid(-1)
		if u != uid || g != gid {
			ready <- fmt.Errorf("switching to fsuid %d, fsgid %d: have %d, %d", uid, gid, u, g)
			return
		}
		ready <- nil
		for f := range c.req {
			c.res <- f()
		}
	}()
	if err := <-ready; err != nil {
		return nil, err
	}
	return c, nil
}

func (c *creator) close() { close(c.req) }

func (c *creator) do(f func() error) error {
	c.req <- f
	return <-c.res
}

func (c *creator) mkdir(path string, mode os.FileMode) error {
	return c.do(func() error { return os.Mkdir(path, mode) })
}

func (c *creator) file(path string) error {
	return c.do(func() error { return os.WriteFile(path, nil, 0o644) })
}

func (c *creator) symlink(target, path string) error {
	return c.do(func() error { return os.Symlink(target, path) })
}

// parents lists the directories from below top down to dir, top excluded.
func parents(top, dir string) []string {
	var out []string
	for d := dir; d != top && len(d) > len(top); d = filepath.Dir(d) {
		out = append([]string{d}, out...)
	}
	return out
}
