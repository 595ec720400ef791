package sandbox

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// initArg0 is the argv[0] that marks a re-exec of the agent as a sandbox's init.
const initArg0 = "rampart-sandbox-init"

// The init's inherited descriptors: configuration in, status out.
const (
	configFD = 3
	statusFD = 4
)

// initCaps are the capabilities, in the sandbox's own user namespace only, that the init holds
// while it builds the sandbox.
var initCaps = []uintptr{
	unix.CAP_SYS_ADMIN, // mounts, pivot_root, sethostname, unshare(CLONE_NEWCGROUP)
	unix.CAP_NET_ADMIN, // bring loopback up
	unix.CAP_SETUID,    // become the app's uid
	unix.CAP_SETGID,    // and gid, and drop supplementary groups
	unix.CAP_SETPCAP,   // empty the bounding set
}

// initConfig is what the agent sends the init, as JSON on configFD.
type initConfig struct {
	Staging   string   // empty host directory: the init mounts the new root on it
	Root      string   // host path of the app image
	Storage   string   // host path of the mounted storage, "" for none
	Devices   []string // host device nodes to expose at the same paths
	Path      string
	Args      []string
	Env       []string
	Dir       string
	UID, GID  uint32
	Hostname  string
	TmpSizeKB int
	Sockets   []Socket // host sockets to bind-mount under /run
}

func init() {
	if isInit() {
		// Every step of the set-up that is per thread (namespaces, no_new_privs, the
		// bounding set, Landlock, seccomp) must happen on the thread that execs the app.
		runtime.LockOSThread()
	}
}

func isInit() bool { return len(os.Args) > 0 && os.Args[0] == initArg0 }

// Init must be the first call in the main function of every binary that starts sandboxes (the
// agent) and of test binaries that do (from TestMain). In an ordinary process it returns at
// once. In a sandbox's init it builds the sandbox and execs the app; it never returns.
func Init() {
	if !isInit() {
		return
	}
	status := os.NewFile(statusFD, "status")
	unix.CloseOnExec(statusFD)
	err := runInit()
	// Only failures get here: a successful exec closes the status pipe.
	fmt.Fprint(status, err.Error())
	os.Exit(127)
}

func runInit() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("init panicked: %v", r)
		}
	}()
	f := os.NewFile(configFD, "config")
	var cfg initConfig
	dec := json.NewDecoder(f)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return fmt.Errorf("reading configuration: %w", err)
	}
	f.Close()

	// The agent has put this process into its cgroups by now: a cgroup namespace rooted
	// there hides the host's cgroup paths.
	if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
		return fmt.Errorf("cgroup namespace: %w", err)
	}
	if err := unix.Sethostname([]byte(cfg.Hostname)); err != nil {
		return fmt.Errorf("setting hostname: %w", err)
	}
	if err := loopbackUp(); err != nil {
		return fmt.Errorf("bringing up loopback: %w", err)
	}
	if err := buildRoot(&cfg); err != nil {
		return err
	}
	if err := os.Chdir(cfg.Dir); err != nil {
		return fmt.Errorf("working directory: %w", err)
	}
	if err := dropPrivileges(cfg.UID, cfg.GID); err != nil {
		return err
	}
	if err := restrictPaths(&cfg); err != nil {
		return fmt.Errorf("landlock: %w", err)
	}
	if err := loadSeccomp(); err != nil {
		return fmt.Errorf("seccomp: %w", err)
	}
	// Nothing but stdin, stdout and stderr crosses into the app, whatever the agent left open.
	_ = unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	argv := append([]string{cfg.Path}, cfg.Args...)
	err = unix.Exec(cfg.Path, argv, cfg.Env)
	// The filter is in place: only execve's own errors get here.
	return fmt.Errorf("exec %s: %w", cfg.Path, err)
}

func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// dropPrivileges makes this thread the app's uid and gid with no supplementary groups and no
// capabilities, and keeps none across exec: the bounding and ambient sets are emptied and
// no_new_privs is set, so no setuid or file-capability binary can give any back.
func dropPrivileges(uid, gid uint32) error {
	for c := 0; c <= unix.CAP_LAST_CAP; c++ {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && err != unix.EINVAL {
			return fmt.Errorf("dropping capability %d from the bounding set: %w", c, err)
		}
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("clearing ambient capabilities: %w", err)
	}
	if err := syscall.Setgroups(nil); err != nil {
		return fmt.Errorf("dropping supplementary groups: %w", err)
	}
	if err := syscall.Setresgid(int(gid), int(gid), int(gid)); err != nil {
		return fmt.Errorf("setting gid %d: %w", gid, err)
	}
	if err := syscall.Setresuid(int(uid), int(uid), int(uid)); err != nil {
		return fmt.Errorf("setting uid %d: %w", uid, err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("clearing capabilities: %w", err)
	}
	// Changing credentials cleared the parent-death signal.
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		return fmt.Errorf("parent-death signal: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("no_new_privs: %w", err)
	}
	return nil
}
