package sandbox

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// MutableStorage is an ext4 file system in an image file, one per app, loop-mounted for each
// run. Its capacity is the quota: the file system is made somewhat larger than SizeKB (ext4
// needs room for its metadata and a journal) and the difference is set aside as blocks
// reserved for root, which the app, never root and without CAP_SYS_RESOURCE, cannot use. So
// the app can create files and directories of exactly SizeKB KiB in total (counting directory
// blocks); past that, writes fail with ENOSPC. The file system is the app's alone, so a full
// one harms nothing else, and its journal keeps it consistent across power cuts.
//
// This works as root without CAP_SYS_RESOURCE and without quota support in the host file
// system. It needs loop devices and mke2fs and tune2fs (e2fsprogs) on the device.

const (
	maxStorageKB = 64 * 1024
	imageName    = "storage.ext4"
	mountName    = "mnt"
	// labelPrefix + SizeKB is the file system's label, so a changed quota is noticed.
	labelPrefix = "rampart-"
)

// imageKB is the size of the image for a quota: a 1 MiB journal, ext4's metadata and slack.
func imageKB(sizeKB int) int { return sizeKB + 2048 + sizeKB/16 }

// mountStorage makes the app's storage image if it does not exist, mounts it on the host at
// Dir/mnt as a private mount, and returns that path and a function that detaches it from the
// host (the sandbox keeps its own copy, so the file system lives exactly as long as the
// sandbox).
func mountStorage(s *Storage, uid, gid uint32, log *slog.Logger) (string, func(), error) {
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return "", nil, fmt.Errorf("storage: %w", err)
	}
	img := filepath.Join(s.Dir, imageName)
	mnt := filepath.Join(s.Dir, mountName)
	if err := os.MkdirAll(mnt, 0o700); err != nil {
		return "", nil, fmt.Errorf("storage: %w", err)
	}
	// A mount left by an agent that crashed while starting this app.
	if mounted(mnt) {
		log.Warn("detaching stale storage mount", "path", mnt)
		if err := unix.Unmount(mnt, unix.MNT_DETACH); err != nil {
			return "", nil, fmt.Errorf("storage: detaching stale mount %s: %w", mnt, err)
		}
	}
	if _, err := os.Stat(img); errors.Is(err, fs.ErrNotExist) {
		log.Info("making storage image", "path", img, "sizeKB", s.SizeKB)
		if err := makeImage(img, mnt, s.SizeKB, uid, gid); err != nil {
			return "", nil, fmt.Errorf("storage: %w", err)
		}
	} else if err != nil {
		return "", nil, fmt.Errorf("storage: %w", err)
	}
	if label, err := imageLabel(img); err != nil {
		return "", nil, fmt.Errorf("storage: %w", err)
	} else if label != labelPrefix+strconv.Itoa(s.SizeKB) {
		return "", nil, fmt.Errorf("storage: image %s was made for %q, not SizeKB %d; changing the quota is not supported yet", img, label, s.SizeKB)
	}
	// The previous run's file system must be gone before another is mounted on the same
	// image: two live mounts of one ext4 image through two loop devices corrupt it.
	if err := waitDetached(img, 2*time.Second); err != nil {
		return "", nil, fmt.Errorf("storage: %w", err)
	}
	if err := loopMount(img, mnt); err != nil {
		return "", nil, fmt.Errorf("storage: %w", err)
	}
	detach := func() { _ = unix.Unmount(mnt, unix.MNT_DETACH) }
	if err := chownTree(mnt, uid, gid); err != nil {
		detach()
		return "", nil, fmt.Errorf("storage: %w", err)
	}
	return mnt, detach, nil
}

// makeImage makes a fresh image at img whose capacity for a non-root user is sizeKB KiB, by way
// of a temporary file renamed into place, so a crash never leaves a half-made image.
func makeImage(img, mnt string, sizeKB int, uid, gid uint32) error {
	tmp := img + ".tmp"
	_ = os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	size := imageKB(sizeKB)
	err = f.Truncate(int64(size) * 1024)
	f.Close()
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := run("mke2fs", "-q", "-F", "-t", "ext4", "-b", "1024", "-m", "0",
		"-N", strconv.Itoa(max(64, sizeKB/4)), "-J", "size=1", "-L", labelPrefix+strconv.Itoa(sizeKB),
		"-E", fmt.Sprintf("root_owner=%d:%d,lazy_itable_init=0,lazy_journal_init=0", uid, gid),
		"-O", "^resize_inode", tmp, strconv.Itoa(size)); err != nil {
		return err
	}
	avail := func() (uint64, error) {
		if err := loopMount(tmp, mnt); err != nil {
			return 0, err
		}
		defer unix.Unmount(mnt, 0)
		var st unix.Statfs_t
		if err := unix.Statfs(mnt, &st); err != nil {
			return 0, err
		}
		return st.Bavail * uint64(st.Bsize) / 1024, nil
	}
	free, err := avail()
	if err != nil {
		return err
	}
	if free < uint64(sizeKB) {
		return fmt.Errorf("made a file system with only %d KiB free for %d", free, sizeKB)
	}
	// tune2fs counts blocks of 1 KiB here; the reserve is what is free beyond the quota.
	if err := run("tune2fs", "-r", strconv.FormatUint(free-uint64(sizeKB), 10), tmp); err != nil {
		return err
	}
	if err := waitDetached(tmp, 2*time.Second); err != nil {
		return err
	}
	got, err := avail()
	if err != nil {
		return err
	}
	if got != uint64(sizeKB) {
		return fmt.Errorf("made a file system with %d KiB available, want %d", got, sizeKB)
	}
	if err := waitDetached(tmp, 2*time.Second); err != nil {
		return err
	}
	if err := os.Rename(tmp, img); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(img))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// run runs an e2fsprogs tool, found on PATH or in the sbin directories.
func run(tool string, args ...string) error {
	path, err := exec.LookPath(tool)
	if err != nil {
		for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
			if _, serr := os.Stat(filepath.Join(dir, tool)); serr == nil {
				path, err = filepath.Join(dir, tool), nil
				break
			}
		}
	}
	if err != nil {
		return fmt.Errorf("%s (from e2fsprogs) is needed for MutableStorage: %w", tool, err)
	}
	out, err := exec.Command(path, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", tool, err, bytes.TrimSpace(out))
	}
	return nil
}

// imageLabel reads the ext4 volume label from the superblock.
func imageLabel(img string) (string, error) {
	f, err := os.Open(img)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sb := make([]byte, 1024)
	if _, err := f.ReadAt(sb, 1024); err != nil {
		return "", fmt.Errorf("reading superblock of %s: %w", img, err)
	}
	if sb[56] != 0x53 || sb[57] != 0xEF {
		return "", fmt.Errorf("%s is not an ext4 image", img)
	}
	return string(bytes.TrimRight(sb[120:136], "\x00")), nil
}

// loopMount attaches img to a free loop device that detaches itself when the file system is
// gone (LO_FLAGS_AUTOCLEAR) and mounts it at mnt as a private mount.
func loopMount(img, mnt string) error {
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("loop devices: %w", err)
	}
	defer ctl.Close()
	backing, err := os.OpenFile(img, os.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer backing.Close()
	for try := 0; ; try++ {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return fmt.Errorf("finding a free loop device: %w", err)
		}
		dev := fmt.Sprintf("/dev/loop%d", n)
		if _, err := os.Stat(dev); errors.Is(err, fs.ErrNotExist) {
			if err := unix.Mknod(dev, unix.S_IFBLK|0o600, int(unix.Mkdev(7, uint32(n)))); err != nil && !errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("making %s: %w", dev, err)
			}
		}
		lf, err := os.OpenFile(dev, os.O_RDWR|syscall.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		cfg := unix.LoopConfig{Fd: uint32(backing.Fd())}
		cfg.Info.Flags = unix.LO_FLAGS_AUTOCLEAR
		copy(cfg.Info.File_name[:], img)
		err = unix.IoctlLoopConfigure(int(lf.Fd()), &cfg)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOTTY) {
			// Before Linux 5.8: attach, then set the flags.
			err = unix.IoctlSetInt(int(lf.Fd()), unix.LOOP_SET_FD, int(backing.Fd()))
			if err == nil {
				if err = unix.IoctlLoopSetStatus64(int(lf.Fd()), &cfg.Info); err != nil {
					_ = unix.IoctlSetInt(int(lf.Fd()), unix.LOOP_CLR_FD, 0)
				}
			}
		}
		if errors.Is(err, unix.EBUSY) && try < 20 {
			lf.Close() // another process took it first
			continue
		}
		if err != nil {
			lf.Close()
			return fmt.Errorf("attaching %s to %s: %w", img, dev, err)
		}
		err = unix.Mount(dev, mnt, "ext4", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "errors=remount-ro")
		if err == nil {
			err = unix.Mount("", mnt, "", unix.MS_PRIVATE, "")
			if err != nil {
				_ = unix.Unmount(mnt, 0)
			}
		}
		// The mount, if any, holds the device now; closing it lets autoclear detach it.
		lf.Close()
		if err != nil {
			return fmt.Errorf("mounting %s: %w", img, err)
		}
		return nil
	}
}

// waitDetached waits until no loop device is backed by img.
func waitDetached(img string, limit time.Duration) error {
	abs, err := filepath.Abs(img)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(limit)
	for {
		dev := loopBacking(abs)
		if dev == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s is still attached to %s (is the app still running?)", img, dev)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// loopBacking names the loop device backed by file, or "".
func loopBacking(file string) string {
	files, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if strings.TrimSuffix(strings.TrimSpace(string(b)), " (deleted)") == file {
			return filepath.Base(filepath.Dir(filepath.Dir(f)))
		}
	}
	return ""
}

// mounted reports whether path is a mount point.
func mounted(path string) bool {
	var st, parent unix.Stat_t
	if unix.Lstat(path, &st) != nil || unix.Lstat(filepath.Dir(path), &parent) != nil {
		return false
	}
	return st.Dev != parent.Dev
}

// chownTree gives the storage to the app's ids if they changed since it was made.
func chownTree(root string, uid, gid uint32) error {
	var st unix.Stat_t
	if err := unix.Lstat(root, &st); err != nil {
		return err
	}
	if st.Uid == uid && st.Gid == gid {
		return nil
	}
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, int(uid), int(gid))
	})
}

// ErrNotRunning: the app whose storage was asked about does not run.
var ErrNotRunning = errors.New("the application is not running")

// StorageUsedKB says how many KiB of its MutableStorage quota (quotaKB) the running app whose
// init has pid uses, from the file system it sees: the quota less what an unprivileged user
// can still allocate there. The host has no mount of its own of that file system.
func StorageUsedKB(pid, quotaKB int) (int64, error) {
	if pid <= 0 {
		return 0, ErrNotRunning
	}
	var st unix.Statfs_t
	if err := unix.Statfs(fmt.Sprintf("/proc/%d/root%s", pid, StoragePath), &st); err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) {
			return 0, fmt.Errorf("%w (pid %d): %v", ErrNotRunning, pid, err)
		}
		return 0, fmt.Errorf("storage of pid %d: %w", pid, err)
	}
	avail := int64(st.Bavail) * st.Bsize / 1024
	return min(max(int64(quotaKB)-avail, 0), int64(quotaKB)), nil
}
