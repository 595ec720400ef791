// Package sandbox runs one application in a compartment of its own: its own unprivileged uid in
// new user, mount, PID, IPC, UTS, network and cgroup namespaces; its installed image as a
// read-only root; a private /tmp, a fresh /proc and a minimal /dev holding only the device nodes
// it was granted; its MutableStorage as a loop-mounted ext4 image whose capacity is the quota;
// a seccomp allow-list and a Landlock ruleset; and cgroup limits on memory, pids and CPU.
//
// The parent side (Start, Process) runs in the agent, as root. The child side runs in a re-exec
// of the agent's own binary (/proc/self/exe), which must call Init first thing in main: Init
// returns at once in a normal process and, in a sandbox child, builds the sandbox and execs the
// app. The package trusts its Spec (the caller builds it from a verified manifest) and trusts
// nothing the app does: every protection is enforced by the kernel, not by the app.
//
// The egress allow-list (AllowedConnections) and inbound ports are installed by the caller
// through Spec.ConfigureNetwork (internal/netpolicy); the applibs socket is bind-mounted from
// Spec.Sockets. Not here yet: peripheral brokering beyond exposing device nodes. docs/SANDBOX.md has the whole picture.
package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DefaultStopGrace is how long Stop waits after SIGTERM before SIGKILL, as Azure Sphere apps
// expect.
const DefaultStopGrace = 2 * time.Second

// DefaultTmpSizeKB bounds the private /tmp when Spec.TmpSizeKB is zero. Its pages are also
// charged to the sandbox's memory cgroup.
const DefaultTmpSizeKB = 16 * 1024

// Paths inside the sandbox.
const (
	// StoragePath is where the app finds its MutableStorage.
	StoragePath = "/storage"
	// TmpPath is the app's private tmpfs.
	TmpPath = "/tmp"
)

// baseDevices are the device nodes every sandbox gets.
var baseDevices = []string{"/dev/null", "/dev/zero", "/dev/urandom"}

// Spec says what one sandboxed app gets. The caller builds it from a verified manifest; the zero
// value of each optional field grants nothing.
type Spec struct {
	// Name identifies the sandbox (the component ID): it names the cgroup and appears in logs.
	// Letters, digits, '-', '_' and '.' only.
	Name string
	// Root is the host directory holding the installed app image. The app sees it as / and
	// cannot write to it. Its files must be readable (and the entry point executable) by UID.
	Root string
	// Path is the entry point, an absolute path inside the image; Args are its arguments after
	// argv[0], which is Path. Env is the whole environment (nothing is inherited).
	Path string
	Args []string
	Env  []string
	// Dir is the working directory inside the sandbox; "" means "/".
	Dir string
	// UID and GID are the host ids the app runs as. Each app must have its own, nonzero, and
	// stable across restarts (its storage is owned by them). They are mapped to themselves in
	// the app's user namespace, which maps no other id.
	UID, GID uint32
	// Hostname is the sandbox's host name; "" means "app".
	Hostname string
	// Storage is the app's MutableStorage, nil for none.
	Storage *Storage
	// Limits are the cgroup limits; zero fields mean unlimited.
	Limits Limits
	// Devices are host device nodes (paths under /dev) the app is granted; each appears at the
	// same path inside. /dev/null, /dev/zero and /dev/urandom are always there.
	Devices []string
	// ConfigureNetwork, if set, runs after the sandbox's network namespace exists and before
	// the app starts, with the path of that namespace (/proc/PID/ns/net). This is where the
	// agent will add the platform-controlled link and the AllowedConnections ruleset. When nil
	// the namespace has only loopback: no egress at all.
	ConfigureNetwork func(ctx context.Context, netns string) error
	// StopGrace is the time between SIGTERM and SIGKILL in Stop; 0 means DefaultStopGrace.
	StopGrace time.Duration
	// TmpSizeKB bounds /tmp; 0 means DefaultTmpSizeKB.
	TmpSizeKB int
	// Stdout and Stderr receive the app's output; nil discards it.
	Stdout, Stderr io.Writer
	// Sockets are host Unix sockets shown inside the sandbox (the applibs API's). Each is
	// bind-mounted at its Target, under /run/; when there are any, an image's own /run is not
	// shown. The socket's owner and mode decide who may connect (make it the app's uid's).
	Sockets []Socket
	// CgroupParent is the path, relative to each cgroup hierarchy's root, under which the
	// sandbox's cgroup is made. "" means "rampart" under the agent's own cgroup. On a pure
	// cgroup v2 system the agent must not live in that parent (no internal processes): give a
	// parent beside the agent's own leaf.
	CgroupParent string
}

// Socket is a host Unix socket bind-mounted into the sandbox.
type Socket struct {
	// Source is the socket's host path.
	Source string
	// Target is where the app finds it: a clean absolute path under /run/.
	Target string
}

// Storage is an app's persistent, size-limited writable directory. It is kept as an ext4 image
// file in Dir (made on first use) and loop-mounted at StoragePath for each run; see
// docs/SANDBOX.md.
type Storage struct {
	// Dir is a host directory owned by the agent, one per app; it survives app and agent
	// restarts. The sandbox keeps the image and a mount point there.
	Dir string
	// SizeKB is the quota: the app's files and directories may use this many KiB and no more.
	SizeKB int
}

// Limits are cgroup limits. Zero means unlimited.
type Limits struct {
	// MemoryBytes bounds resident memory (and swap: none is allowed beyond it). Past it the
	// kernel's OOM killer kills a process of the sandbox.
	MemoryBytes int64
	// Pids bounds the number of tasks (processes and threads).
	Pids int64
	// MilliCPU bounds CPU time: 1000 is one core.
	MilliCPU int64
}

// Exit is how a sandboxed app ended, for failure reports.
type Exit struct {
	// Code is the exit status, or -1 when the app was killed by a signal.
	Code int `json:"code"`
	// Signal is the signal that killed the app, or 0.
	Signal syscall.Signal `json:"signal,omitempty"`
	// OOMKilled is true when the kernel's OOM killer killed a process of the sandbox because
	// of its memory limit (not necessarily the app's main process).
	OOMKilled bool `json:"oomKilled,omitempty"`
	// SeccompKilled is true when the app was killed for a forbidden system call (SIGSYS from
	// the seccomp filter; nothing else can kill the sandbox's PID 1 with SIGSYS).
	SeccompKilled bool `json:"seccompKilled,omitempty"`
	// PidsLimited is true when a fork or thread creation failed at least once because of the
	// pids limit.
	PidsLimited bool `json:"pidsLimited,omitempty"`
	// Stopped is true when the platform asked the app to stop (Stop, or the context ended).
	Stopped bool `json:"stopped,omitempty"`
	// Killed is true when Stop had to SIGKILL the app after the grace period.
	Killed bool `json:"killed,omitempty"`
}

func (e Exit) String() string {
	var b strings.Builder
	if e.Signal != 0 {
		fmt.Fprintf(&b, "killed by %v", e.Signal)
	} else {
		fmt.Fprintf(&b, "exit status %d", e.Code)
	}
	for _, f := range []struct {
		on   bool
		text string
	}{{e.OOMKilled, "out of memory"}, {e.SeccompKilled, "forbidden system call"}, {e.PidsLimited, "pids limit reached"}, {e.Stopped, "stopped"}, {e.Killed, "killed after grace period"}} {
		if f.on {
			b.WriteString("; " + f.text)
		}
	}
	return b.String()
}

// Process is a running sandbox.
type Process struct {
	name  string
	grace time.Duration
	log   *slog.Logger
	cmd   *exec.Cmd
	cg    *cgroup

	done chan struct{}
	exit Exit

	mu      sync.Mutex
	stopped bool
	killed  bool
}

// Start builds the sandbox described by spec and starts its app. It returns once the app has
// been exec'd, or with an error naming the step that failed (nothing is left behind). When ctx
// is done, the app is stopped as by Stop.
func Start(ctx context.Context, spec Spec, log *slog.Logger) (*Process, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := spec.validate(); err != nil {
		return nil, err
	}
	log = log.With("app", spec.Name)
	grace := spec.StopGrace
	if grace <= 0 {
		grace = DefaultStopGrace
	}

	var cleanups []func()
	cleanup := func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}
	ok := false
	defer func() {
		if !ok {
			cleanup()
		}
	}()

	cfg := initConfig{
		Root:      spec.Root,
		Path:      spec.Path,
		Args:      spec.Args,
		Env:       spec.Env,
		Dir:       spec.Dir,
		UID:       spec.UID,
		GID:       spec.GID,
		Hostname:  spec.Hostname,
		Devices:   append(append([]string(nil), baseDevices...), spec.Devices...),
		TmpSizeKB: spec.TmpSizeKB,
		Sockets:   spec.Sockets,
	}
	if cfg.Dir == "" {
		cfg.Dir = "/"
	}
	if cfg.Hostname == "" {
		cfg.Hostname = "app"
	}
	if cfg.TmpSizeKB == 0 {
		cfg.TmpSizeKB = DefaultTmpSizeKB
	}

	// Storage: mounted on the host, privately, so that the child's copy of the mount table
	// holds it; detached from the host once the child exists (see storage.go).
	var detachStorage func()
	if spec.Storage != nil {
		mnt, detach, err := mountStorage(spec.Storage, spec.UID, spec.GID, log)
		if err != nil {
			return nil, err
		}
		cfg.Storage = mnt
		detachStorage = detach
		cleanups = append(cleanups, detach)
	}

	cg, err := newCgroup(spec.CgroupParent, spec.Name, spec.Limits)
	if err != nil {
		return nil, err
	}
	cleanups = append(cleanups, func() { _ = cg.remove() })

	staging, err := os.MkdirTemp("", "rampart-sandbox-")
	if err != nil {
		return nil, fmt.Errorf("sandbox %s: %w", spec.Name, err)
	}
	cleanups = append(cleanups, func() { _ = os.Remove(staging) })
	cfg.Staging = staging

	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("sandbox %s: %w", spec.Name, err)
	}
	defer cfgW.Close()
	statusR, statusW, err := os.Pipe()
	if err != nil {
		cfgR.Close()
		return nil, fmt.Errorf("sandbox %s: %w", spec.Name, err)
	}
	defer statusR.Close()

	cmd := &exec.Cmd{
		Path:       "/proc/self/exe",
		Args:       []string{initArg0},
		Env:        []string{},
		Dir:        "/",
		Stdout:     spec.Stdout,
		Stderr:     spec.Stderr,
		ExtraFiles: []*os.File{cfgR, statusW},
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags: syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS | syscall.CLONE_NEWPID |
				syscall.CLONE_NEWIPC | syscall.CLONE_NEWUTS | syscall.CLONE_NEWNET,
			UidMappings:                []syscall.SysProcIDMap{{ContainerID: int(spec.UID), HostID: int(spec.UID), Size: 1}},
			GidMappings:                []syscall.SysProcIDMap{{ContainerID: int(spec.GID), HostID: int(spec.GID), Size: 1}},
			GidMappingsEnableSetgroups: true,
			// The sandbox's init needs these, in its own user namespace only, to build the
			// sandbox; it drops every capability before it execs the app.
			AmbientCaps: initCaps,
			Pdeathsig:   syscall.SIGKILL,
		},
	}
	err = startOnForkThread(cmd)
	cfgR.Close()
	statusW.Close()
	if err != nil {
		return nil, fmt.Errorf("sandbox %s: starting its init: %w", spec.Name, err)
	}
	killChild := func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	cleanups = append(cleanups, killChild)
	if detachStorage != nil {
		// The child has its own copy of the mount; the host's goes.
		detachStorage()
	}
	pid := cmd.Process.Pid
	if err := cg.add(pid); err != nil {
		return nil, fmt.Errorf("sandbox %s: %w", spec.Name, err)
	}
	if spec.ConfigureNetwork != nil {
		if err := spec.ConfigureNetwork(ctx, fmt.Sprintf("/proc/%d/ns/net", pid)); err != nil {
			return nil, fmt.Errorf("sandbox %s: configuring its network: %w", spec.Name, err)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sandbox %s: %w", spec.Name, err)
	}
	if err := json.NewEncoder(cfgW).Encode(cfg); err != nil {
		return nil, fmt.Errorf("sandbox %s: sending its configuration: %w", spec.Name, err)
	}
	cfgW.Close()
	// The init writes an error and exits, or execs the app, which closes its end.
	msg, err := io.ReadAll(io.LimitReader(statusR, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("sandbox %s: reading its init's status: %w", spec.Name, err)
	}
	if len(msg) > 0 {
		return nil, &SetupError{App: spec.Name, Msg: string(msg)}
	}
	_ = os.Remove(staging)

	p := &Process{
		name:  spec.Name,
		grace: grace,
		log:   log,
		cmd:   cmd,
		cg:    cg,
		done:  make(chan struct{}),
	}
	ok = true
	log.Info("app started", "pid", pid)
	go p.wait()
	go func() {
		select {
		case <-ctx.Done():
			p.Stop()
		case <-p.done:
		}
	}()
	return p, nil
}

// forkThread is the OS thread every sandbox is started from. The parent-death signal that ends
// a sandbox when the agent dies is tied to the thread that forked it, not to the process, and
// Go ends a thread when a goroutine that locked it exits: so sandboxes are forked from one
// thread that lives as long as the agent.
var forkThread struct {
	once sync.Once
	req  chan func()
}

func startOnForkThread(cmd *exec.Cmd) error {
	forkThread.once.Do(func() {
		forkThread.req = make(chan func())
		go func() {
			runtime.LockOSThread() // never unlocked
			for f := range forkThread.req {
				f()
			}
		}()
	})
	done := make(chan error)
	forkThread.req <- func() { done <- cmd.Start() }
	return <-done
}

// SetupError is a failure inside the sandbox before the app ran: a mount, a limit, the entry
// point missing. Msg comes from the sandbox's init.
type SetupError struct {
	App string
	Msg string
}

func (e *SetupError) Error() string { return "sandbox " + e.App + ": " + e.Msg }

// Pid is the app's process id as the agent sees it (inside the sandbox it is 1).
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the app has exited and the sandbox is cleaned up.
func (p *Process) Done() <-chan struct{} { return p.done }

// Wait waits for the app to exit and the sandbox to be cleaned up, and says how it ended.
func (p *Process) Wait() Exit {
	<-p.done
	return p.exit
}

// Stop asks the app to exit with SIGTERM and kills it with SIGKILL if it has not after the grace
// period, then waits for it. Stopping a stopped process returns its Exit. As the PID 1 of its
// namespace, the app receives SIGTERM only if it handles it; otherwise it is killed after the
// grace period.
func (p *Process) Stop() Exit {
	p.mu.Lock()
	first := !p.stopped
	p.stopped = true
	p.mu.Unlock()
	if first {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		t := time.NewTimer(p.grace)
		select {
		case <-p.done:
			t.Stop()
		case <-t.C:
			p.mu.Lock()
			p.killed = true
			p.mu.Unlock()
			_ = p.cmd.Process.Kill()
		}
	}
	return p.Wait()
}

func (p *Process) wait() {
	err := p.cmd.Wait()
	var e Exit
	if ps := p.cmd.ProcessState; ps != nil {
		ws, _ := ps.Sys().(syscall.WaitStatus)
		switch {
		case ws.Signaled():
			e.Code = -1
			e.Signal = ws.Signal()
		default:
			e.Code = ws.ExitStatus()
		}
	} else {
		e.Code = -1
		p.log.Warn("waiting for app", "err", err)
	}
	e.SeccompKilled = e.Signal == syscall.SIGSYS
	e.OOMKilled, e.PidsLimited = p.cg.events()
	p.mu.Lock()
	e.Stopped, e.Killed = p.stopped, p.killed
	p.mu.Unlock()
	if err := p.cg.remove(); err != nil {
		p.log.Warn("removing cgroup", "err", err)
	}
	p.exit = e
	p.log.Info("app exited", "exit", e.String())
	close(p.done)
}

func (s *Spec) validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(format, args...))
	}
	if !validName(s.Name) {
		bad("name %q: want 1 to 64 letters, digits, '-', '_' or '.'", s.Name)
	}
	if !filepath.IsAbs(s.Root) {
		bad("root %q: want an absolute host path", s.Root)
	} else if st, err := os.Stat(s.Root); err != nil || !st.IsDir() {
		bad("root %q: not a directory", s.Root)
	}
	if !filepath.IsAbs(s.Path) || filepath.Clean(s.Path) != s.Path {
		bad("entry point %q: want a clean absolute path inside the image", s.Path)
	}
	if s.Dir != "" && !filepath.IsAbs(s.Dir) {
		bad("working directory %q: want an absolute path", s.Dir)
	}
	if s.UID == 0 || s.GID == 0 {
		bad("uid %d, gid %d: an app never runs as root", s.UID, s.GID)
	}
	if len(s.Hostname) > 64 {
		bad("hostname %q: longer than 64 bytes", s.Hostname)
	}
	if s.Storage != nil {
		if !filepath.IsAbs(s.Storage.Dir) {
			bad("storage directory %q: want an absolute host path", s.Storage.Dir)
		}
		if s.Storage.SizeKB < 1 || s.Storage.SizeKB > maxStorageKB {
			bad("storage size %d KiB: want 1 to %d", s.Storage.SizeKB, maxStorageKB)
		}
	}
	if s.Limits.MemoryBytes < 0 || s.Limits.Pids < 0 || s.Limits.MilliCPU < 0 {
		bad("limits %+v: negative", s.Limits)
	}
	for _, d := range s.Devices {
		if !strings.HasPrefix(d, "/dev/") || filepath.Clean(d) != d {
			bad("device %q: want a clean path under /dev", d)
			continue
		}
		if st, err := os.Stat(d); err != nil || st.Mode()&(os.ModeDevice|os.ModeCharDevice) == 0 {
			bad("device %q: not a device node", d)
		}
	}
	for _, so := range s.Sockets {
		if !strings.HasPrefix(so.Target, "/run/") || filepath.Clean(so.Target) != so.Target {
			bad("socket target %q: want a clean path under /run/", so.Target)
		}
		if st, err := os.Stat(so.Source); err != nil || st.Mode()&os.ModeSocket == 0 {
			bad("socket %q: not a Unix socket", so.Source)
		}
	}
	if s.TmpSizeKB < 0 {
		bad("tmp size %d KiB: negative", s.TmpSizeKB)
	}
	if s.CgroupParent != "" && (filepath.IsAbs(s.CgroupParent) || strings.Contains(s.CgroupParent, "..")) {
		bad("cgroup parent %q: want a relative path without ..", s.CgroupParent)
	}
	if len(errs) > 0 {
		return fmt.Errorf("sandbox spec: %w", errors.Join(errs...))
	}
	return nil
}

func validName(s string) bool {
	if len(s) == 0 || len(s) > 64 || s == "." || s == ".." {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}
