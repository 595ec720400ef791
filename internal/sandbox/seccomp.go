package sandbox

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"slices"
	"unsafe"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// The seccomp policy is two filters. The kernel runs both on every system call and takes the
// most severe action either returns.
//
// The argument filter (argumentFilter) looks at arguments and refuses, with EPERM, what the
// app may not ask for even though the system call itself is allowed:
//
//   - socket with type SOCK_RAW or SOCK_PACKET in any family but AF_NETLINK, and any socket of
//     family AF_PACKET: raw access to the network, which the app's network ruleset cannot
//     police. The kernel would refuse most of these anyway (the app has no CAP_NET_RAW), but
//     silently; this rule is what makes the attempt visible. AF_NETLINK is left alone: its
//     SOCK_RAW is not raw network access but the ordinary way to talk to the kernel (glibc's
//     getaddrinfo and Go's net.Interfaces open NETLINK_ROUTE sockets with it), and what an app
//     can do with netlink is bounded by its capabilities (none) in its own network namespace.
//   - clone with a namespace flag: a way out of the compartment.
//
// It is loaded with SECCOMP_FILTER_FLAG_LOG, so each refusal is logged to the kernel's audit
// (an AUDIT_SECCOMP record, with the caller's host pid and uid, the system call number and the
// action), where the agent reads and reports it (internal/kernelaudit). It is hand-assembled
// BPF: go-seccomp-bpf cannot mask an argument (the socket type carries SOCK_NONBLOCK and
// SOCK_CLOEXEC in its high bits), and after a failed argument test it leaves the argument, not
// the system call number, in the accumulator, so a policy of its can have only one
// conditional rule, the last.
//
// The main filter (seccompPolicy, go-seccomp-bpf) looks at system call numbers only, in order:
//
//  1. forbiddenSyscalls kill the whole process (SECCOMP_RET_KILL_PROCESS). They have no use in an app and every one is a way out of the
//     compartment or into the kernel's attack surface, so calling one is misbehaviour: the app
//     dies with SIGSYS, which the agent reports (Exit.SeccompKilled).
//  2. clone3 fails with ENOSYS: its flags live in memory a filter cannot read, and ENOSYS makes
//     libc and the Go runtime fall back to clone, which the argument filter checks.
//  3. allowedSyscalls are allowed.
//  4. Anything else fails with EPERM: system calls the list does not know (new ones, rarely
//     used ones such as io_uring_setup or personality), which fail like a permission problem
//     instead of killing an app that only probes for them. These refusals are not logged: C
//     libraries and the Go runtime probe for new system calls as a matter of course, so they
//     would be noise, and none of them is an attempt to reach something the manifest denies.
//
// The main filter is not loaded with SECCOMP_FILTER_FLAG_LOG: the kernel logs an ERRNO action
// only when the filter that decided it asked for logging, and where both filters return
// ERRNO (never, as they are written) the newer one decides. The argument filter is loaded
// first, since the main filter refuses seccomp(2) itself.
//
// Names the running architecture does not have are skipped, so one list serves amd64, arm64
// and arm. On 32-bit x86 (not a target) socket can also be reached through socketcall, whose
// arguments are in memory a filter cannot read; those raw sockets would still be refused by
// the kernel, but not reported.

// forbiddenSyscalls kill the app.
var forbiddenSyscalls = []string{
	// Debugging and reading other processes' memory.
	"ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
	// The mount table and the root.
	"mount", "umount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen",
	"fsconfig", "fsmount", "fspick", "mount_setattr", "open_by_handle_at", "name_to_handle_at",
	// Namespaces.
	"unshare", "setns",
	// The kernel itself.
	"kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
	"create_module", "bpf", "perf_event_open", "reboot", "swapon", "swapoff", "acct", "syslog",
	"iopl", "ioperm", "uselib", "nfsservctl", "lookup_dcookie", "quotactl", "quotactl_fd",
	"vhangup",
	// The kernel keyring.
	"keyctl", "add_key", "request_key",
	// The clock and the host's names.
	"settimeofday", "clock_settime", "clock_settime64", "clock_adjtime", "clock_adjtime64",
	"adjtimex", "stime", "sethostname", "setdomainname",
}

// namespaceCloneFlags are the clone flags that make namespaces (CLONE_NEWTIME shares its bit
// with the exit signal in clone and is only valid in clone3 and unshare).
const namespaceCloneFlags = unix.CLONE_NEWNS | unix.CLONE_NEWCGROUP | unix.CLONE_NEWUTS |
	unix.CLONE_NEWIPC | unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET

// allowedSyscalls are what Go and C programs (glibc and musl) use.
var allowedSyscalls = []string{
	// Processes, threads and signals.
	"clone", "fork", "vfork", "execve", "execveat", "exit", "exit_group", "wait4", "waitid",
	"kill", "tkill", "tgkill", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigreturn",
	"rt_sigpending", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "rt_sigsuspend", "rt_sigtimedwait",
	"rt_sigtimedwait_time64", "sigaltstack", "signalfd", "signalfd4", "pause", "pidfd_open",
	"pidfd_send_signal", "set_tid_address", "set_robust_list", "get_robust_list", "rseq",
	"futex", "futex_time64", "futex_waitv", "arch_prctl", "set_thread_area", "get_thread_area",
	"prctl", "getpid", "getppid", "gettid", "getpgid", "getpgrp", "setpgid", "getsid",
	"setsid", "restart_syscall", "membarrier", "capget", "capset",
	// Identity (no capabilities: only switches among the ids the app already has).
	"getuid", "geteuid", "getgid", "getegid", "getuid32", "geteuid32", "getgid32",
	"getegid32", "getresuid", "getresgid", "getresuid32", "getresgid32", "getgroups",
	"getgroups32", "setuid", "setgid", "setuid32", "setgid32", "setreuid", "setregid",
	"setreuid32", "setregid32", "setresuid", "setresgid", "setresuid32", "setresgid32",
	"setfsuid", "setfsgid", "setfsuid32", "setfsgid32", "setgroups", "setgroups32",
	// Scheduling, limits and resources.
	"sched_yield", "sched_getaffinity", "sched_setaffinity", "sched_getparam",
	"sched_setparam", "sched_getscheduler", "sched_setscheduler", "sched_get_priority_max",
	"sched_get_priority_min", "sched_rr_get_interval", "sched_rr_get_interval_time64",
	"sched_getattr", "sched_setattr", "getpriority", "setpriority", "getrlimit", "setrlimit",
	"ugetrlimit", "prlimit64", "getrusage", "times", "sysinfo", "uname", "getcpu",
	"ioprio_get", "ioprio_set",
	// Memory.
	"brk", "mmap", "mmap2", "munmap", "mremap", "mprotect", "madvise", "mincore", "msync",
	"mlock", "mlock2", "munlock", "mlockall", "munlockall", "memfd_create",
	"remap_file_pages", "set_mempolicy", "get_mempolicy", "mbind", "pkey_alloc", "pkey_free",
	"pkey_mprotect", "cacheflush", "breakpoint", "set_tls", "riscv_flush_icache",
	// Time.
	"clock_gettime", "clock_gettime64", "clock_getres", "clock_getres_time64",
	"clock_nanosleep", "clock_nanosleep_time64", "nanosleep", "gettimeofday", "time",
	"alarm", "getitimer", "setitimer", "timer_create", "timer_delete", "timer_getoverrun",
	"timer_gettime", "timer_gettime64", "timer_settime", "timer_settime64", "timerfd_create",
	"timerfd_gettime", "timerfd_gettime64", "timerfd_settime", "timerfd_settime64",
	// Files.
	"open", "openat", "openat2", "creat", "close", "close_range", "read", "write", "readv",
	"writev", "pread64", "pwrite64", "preadv", "pwritev", "preadv2", "pwritev2", "lseek",
	"_llseek", "dup", "dup2", "dup3", "fcntl", "fcntl64", "ioctl", "flock", "fsync",
	"fdatasync", "sync", "syncfs", "sync_file_range", "sync_file_range2",
	"arm_sync_file_range", "fadvise64", "fadvise64_64", "arm_fadvise64_64", "readahead",
	"fallocate", "truncate", "truncate64", "ftruncate", "ftruncate64", "stat", "stat64",
	"lstat", "lstat64", "fstat", "fstat64", "fstatat64", "newfstatat", "statx", "statfs",
	"statfs64", "fstatfs", "fstatfs64", "access", "faccessat", "faccessat2", "getdents",
	"getdents64", "getcwd", "chdir", "fchdir", "mkdir", "mkdirat", "rmdir", "rename",
	"renameat", "renameat2", "link", "linkat", "unlink", "unlinkat", "symlink", "symlinkat",
	"readlink", "readlinkat", "chmod", "fchmod", "fchmodat", "fchmodat2", "chown", "fchown",
	"lchown", "fchownat", "chown32", "fchown32", "lchown32", "umask", "utime", "utimes",
	"utimensat", "utimensat_time64", "futimesat", "mknod", "mknodat", "getxattr",
	"lgetxattr", "fgetxattr", "setxattr", "lsetxattr", "fsetxattr", "listxattr",
	"llistxattr", "flistxattr", "removexattr", "lremovexattr", "fremovexattr", "sendfile",
	"sendfile64", "splice", "tee", "vmsplice", "copy_file_range", "pipe", "pipe2",
	"inotify_init", "inotify_init1", "inotify_add_watch", "inotify_rm_watch", "eventfd",
	"eventfd2",
	// Polling and asynchronous I/O.
	"select", "_newselect", "pselect6", "pselect6_time64", "poll", "ppoll", "ppoll_time64",
	"epoll_create", "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2",
	"io_setup", "io_destroy", "io_submit", "io_cancel", "io_getevents", "io_pgetevents",
	"io_pgetevents_time64",
	// Sockets (inside the sandbox's own network namespace).
	"socket", "socketpair", "socketcall", "bind", "listen", "accept", "accept4", "connect",
	"getsockname", "getpeername", "getsockopt", "setsockopt", "shutdown", "send", "sendto",
	"sendmsg", "sendmmsg", "recv", "recvfrom", "recvmsg", "recvmmsg", "recvmmsg_time64",
	// System V and POSIX IPC (inside the sandbox's own IPC namespace).
	"shmget", "shmat", "shmdt", "shmctl", "semget", "semop", "semtimedop",
	"semtimedop_time64", "semctl", "msgget", "msgsnd", "msgrcv", "msgctl", "mq_open",
	"mq_unlink", "mq_timedsend", "mq_timedsend_time64", "mq_timedreceive",
	"mq_timedreceive_time64", "mq_notify", "mq_getsetattr", "ipc",
	"getrandom",
}

// seccompPolicy builds the main filter's policy for the running architecture.
func seccompPolicy() (seccomp.Policy, error) {
	info, err := arch.GetInfo("")
	if err != nil {
		return seccomp.Policy{}, err
	}
	known := func(names []string) []string {
		var out []string
		for _, n := range names {
			if _, ok := info.SyscallNames[n]; ok && !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
		return out
	}
	return seccomp.Policy{
		DefaultAction: seccomp.ActionErrno, // EPERM
		Syscalls: []seccomp.SyscallGroup{
			{Action: seccomp.ActionKillProcess, Names: known(forbiddenSyscalls)},
			{Action: seccomp.ActionErrno | seccomp.Action(unix.ENOSYS), Names: known([]string{"clone3"})},
			{Action: seccomp.ActionAllow, Names: known(allowedSyscalls)},
		},
	}, nil
}

// seccompData offsets (struct seccomp_data): the system call number, the audit architecture,
// and the arguments, 64 bits each.
const (
	dataNr   = 0
	dataArch = 4
	dataArgs = 16
)

// bigEndian: the kernel's seccomp_data is in the machine's byte order.
var bigEndian = binary.NativeEndian.Uint16([]byte{0, 1}) == 1

// argLo is the offset of the low 32 bits of system call argument i in seccomp_data.
func argLo(i uint32) uint32 {
	if bigEndian {
		return dataArgs + 8*i + 4
	}
	return dataArgs + 8*i
}

// Socket types the argument filter refuses outside AF_NETLINK; sockTypeMask keeps the type of
// socket's second argument without SOCK_NONBLOCK and SOCK_CLOEXEC.
const (
	sockTypeMask = 0xf
	sockPacket   = 10 // SOCK_PACKET, obsolete
)

// argumentFilter assembles the argument filter (see the top of this file) for the
// architecture info describes. Only the low 32 bits of each argument are looked at: socket's
// family and type are ints, and clone uses only the low 32 bits of its flags, so the high
// bits cannot smuggle anything past it.
func argumentFilter(info *arch.Info) ([]bpf.Instruction, error) {
	socketNr, ok := info.SyscallNames["socket"]
	if !ok {
		return nil, fmt.Errorf("no socket system call on %s", info.Name)
	}
	cloneNr, ok := info.SyscallNames["clone"]
	if !ok {
		return nil, fmt.Errorf("no clone system call on %s", info.Name)
	}
	var a bpfAsm
	a.add(bpf.LoadAbsolute{Off: dataArch, Size: 4})
	a.jumpIf(bpf.JumpEqual, uint32(info.ID), "", "allow") // another ABI: the main filter's
	a.add(bpf.LoadAbsolute{Off: dataNr, Size: 4})
	a.jumpIf(bpf.JumpEqual, uint32(socketNr|info.SeccompMask), "socket", "")
	a.jumpIf(bpf.JumpEqual, uint32(cloneNr|info.SeccompMask), "clone", "")
	a.label("allow")
	a.add(bpf.RetConstant{Val: unix.SECCOMP_RET_ALLOW})

	a.label("socket")
	a.add(bpf.LoadAbsolute{Off: argLo(0), Size: 4}) // family
	a.jumpIf(bpf.JumpEqual, unix.AF_UNIX, "allow2", "")
	a.jumpIf(bpf.JumpEqual, unix.AF_NETLINK, "allow2", "")
	a.jumpIf(bpf.JumpEqual, unix.AF_INET, "inet", "")
	a.jumpIf(bpf.JumpEqual, unix.AF_INET6, "inet", "refuse") // any other family
	a.label("inet")
	a.add(bpf.LoadAbsolute{Off: argLo(1), Size: 4}) // type
	a.add(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: sockTypeMask})
	a.jumpIf(bpf.JumpEqual, unix.SOCK_RAW, "refuse", "")
	a.jumpIf(bpf.JumpEqual, sockPacket, "refuse", "")
	a.label("allow2")
	a.add(bpf.RetConstant{Val: unix.SECCOMP_RET_ALLOW})

	a.label("clone")
	a.add(bpf.LoadAbsolute{Off: argLo(0), Size: 4}) // flags
	a.jumpIf(bpf.JumpBitsSet, namespaceCloneFlags, "refuse", "")
	a.add(bpf.RetConstant{Val: unix.SECCOMP_RET_ALLOW})

	a.label("refuse")
	a.add(bpf.RetConstant{Val: unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)})
	return a.assemble()
}

// bpfAsm assembles a small classic BPF program with forward jumps to labels.
type bpfAsm struct {
	prog   []bpf.Instruction
	jumps  map[int][2]string // index of a JumpIf: its true and false labels ("" is the next instruction)
	labels map[string]int
}

func (a *bpfAsm) add(i bpf.Instruction) { a.prog = append(a.prog, i) }

func (a *bpfAsm) label(name string) {
	if a.labels == nil {
		a.labels = map[string]int{}
	}
	a.labels[name] = len(a.prog)
}

func (a *bpfAsm) jumpIf(cond bpf.JumpTest, val uint32, ifTrue, ifFalse string) {
	if a.jumps == nil {
		a.jumps = map[int][2]string{}
	}
	a.jumps[len(a.prog)] = [2]string{ifTrue, ifFalse}
	a.add(bpf.JumpIf{Cond: cond, Val: val})
}

func (a *bpfAsm) assemble() ([]bpf.Instruction, error) {
	skip := func(at int, label string) (uint8, error) {
		if label == "" {
			return 0, nil
		}
		to, ok := a.labels[label]
		if !ok || to <= at || to-at-1 > 255 {
			return 0, fmt.Errorf("bpf: jump from %d to label %q (at %d, set %v)", at, label, to, ok)
		}
		return uint8(to - at - 1), nil
	}
	out := slices.Clone(a.prog)
	for at, l := range a.jumps {
		j := out[at].(bpf.JumpIf)
		var err1, err2 error
		j.SkipTrue, err1 = skip(at, l[0])
		j.SkipFalse, err2 = skip(at, l[1])
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%w%w", err1, err2)
		}
		out[at] = j
	}
	return out, nil
}

// loadBPF installs a filter on the calling thread (every thread with FilterFlagTSync).
func loadBPF(prog []bpf.Instruction, flags seccomp.FilterFlag) error {
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return err
	}
	filter := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		filter[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	fprog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	r, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, uintptr(flags), uintptr(unsafe.Pointer(&fprog)))
	if e != 0 {
		return e
	}
	if r != 0 {
		// With TSYNC, a thread that cannot be synchronised fails the call by its id, with no
		// errno, and no thread gets the filter.
		return fmt.Errorf("thread %d could not be synchronised: no filter was attached", r)
	}
	return nil
}

// loadFilters installs the argument filter, then the main one, with no_new_privs. With log,
// the argument filter's refusals are logged to the kernel's audit.
func loadFilters(p seccomp.Policy, flags seccomp.FilterFlag, log bool) error {
	info, err := arch.GetInfo("")
	if err != nil {
		return err
	}
	args, err := argumentFilter(info)
	if err != nil {
		return fmt.Errorf("assembling the argument filter: %w", err)
	}
	// no_new_privs is a thread's, and loading a filter needs it on the loading thread: one
	// thread does both.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := seccomp.SetNoNewPrivs(); err != nil {
		return fmt.Errorf("setting no_new_privs: %w", err)
	}
	argFlags := flags
	if log {
		argFlags |= seccomp.FilterFlagLog
	}
	if err := loadBPF(args, argFlags); err != nil {
		return fmt.Errorf("loading the argument filter: %w", err)
	}
	main, err := p.Assemble()
	if err != nil {
		return fmt.Errorf("assembling the main filter: %w", err)
	}
	if err := loadBPF(main, flags); err != nil {
		return fmt.Errorf("loading the main filter: %w", err)
	}
	return nil
}

// loadSeccomp installs the policy on the calling thread (the one that execs the app), the
// argument filter's refusals logged.
func loadSeccomp() error {
	p, err := seccompPolicy()
	if err != nil {
		return err
	}
	return loadFilters(p, 0, true)
}

// ConfineProcess installs the apps' policy on every thread of the calling process (TSYNC) and
// sets no_new_privs; the system calls named in deny fail with EPERM as well. The agent's cloud
// broker, a Go program that only needs what a networked app needs, confines itself with it
// after start-up. Its refusals are not logged: they would be no app's.
func ConfineProcess(deny ...string) error {
	p, err := seccompPolicy()
	if err != nil {
		return err
	}
	if len(deny) > 0 {
		info, err := arch.GetInfo("")
		if err != nil {
			return err
		}
		for _, n := range deny {
			if _, ok := info.SyscallNames[n]; !ok {
				return fmt.Errorf("seccomp: no system call %q on %s", n, info.Name)
			}
		}
		p.Syscalls = append([]seccomp.SyscallGroup{{Action: seccomp.ActionErrno, Names: deny}}, p.Syscalls...)
	}
	if err := loadFilters(p, seccomp.FilterFlagTSync, false); err != nil {
		return fmt.Errorf("loading the seccomp filters: %w", err)
	}
	return nil
}

// ArgumentRefusal says what the argument filter refuses of the named system call, for
// reports of its refusals (the kernel's records of them name the system call but not its
// arguments): "raw or packet socket, or a refused address family" for socket, "new namespace" for clone, "" for any other.
func ArgumentRefusal(syscall string) string {
	switch syscall {
	case "socket":
		return "raw or packet socket, or a refused address family"
	case "clone":
		return "new namespace"
	}
	return ""
}
