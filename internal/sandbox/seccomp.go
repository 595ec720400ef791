package sandbox

import (
	"fmt"
	"slices"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/sys/unix"
)

// The seccomp policy, in order of evaluation:
//
//  1. forbiddenSyscalls kill the whole process (SECCOMP_RET_KILL_PROCESS). They have no use in an app and every one is a way out of the
//     compartment or into the kernel's attack surface, so calling one is misbehaviour: the app
//     dies with SIGSYS, which the agent reports (Exit.SeccompKilled).
//  2. clone3 fails with ENOSYS: its flags live in memory a filter cannot read, and ENOSYS makes
//     libc and the Go runtime fall back to clone, which rule 3 checks.
//  3. allowedSyscalls are allowed, and clone when it makes no namespace.
//  4. Anything else fails with EPERM: clone with a namespace flag, system calls the list does
//     not know (new ones, rarely used ones such as io_uring_setup or personality), which fail
//     like a permission problem instead of killing an app that only probes for them.
//
// Names the running architecture does not have are skipped, so one list serves amd64, arm64
// and arm.

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

// seccompPolicy builds the policy for the running architecture.
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
	// clone's flags are its first argument everywhere but s390, which Rampart does not run on.
	const cloneFlagsArg = 0
	allowed := slices.DeleteFunc(known(allowedSyscalls), func(n string) bool { return n == "clone" })
	return seccomp.Policy{
		DefaultAction: seccomp.ActionErrno, // EPERM
		Syscalls: []seccomp.SyscallGroup{
			{Action: seccomp.ActionKillProcess, Names: known(forbiddenSyscalls)},
			{Action: seccomp.ActionErrno | seccomp.Action(unix.ENOSYS), Names: known([]string{"clone3"})},
			{
				Action: seccomp.ActionAllow,
				Names:  allowed,
				// clone without namespace flags. go-seccomp-bpf leaves an argument, not the
				// system call number, in the accumulator after a failed argument check, so
				// this must be the filter's last test: clone with namespace flags falls
				// through to the default (EPERM) rather than to a kill rule of its own.
				NamesWithCondtions: []seccomp.NameWithConditions{{
					Name: "clone",
					Conditions: seccomp.ArgumentConditions{{
						Argument: cloneFlagsArg, Operation: seccomp.BitsNotSet, Value: namespaceCloneFlags,
					}},
				}},
			},
		},
	}, nil
}

// loadSeccomp installs the policy on the calling thread (the one that execs the app).
func loadSeccomp() error {
	p, err := seccompPolicy()
	if err != nil {
		return err
	}
	if err := seccomp.LoadFilter(seccomp.Filter{NoNewPrivs: true, Policy: p}); err != nil {
		return fmt.Errorf("loading filter: %w", err)
	}
	return nil
}

// ConfineProcess installs the apps' policy on every thread of the calling process (TSYNC) and
// sets no_new_privs; the system calls named in deny fail with EPERM as well. The agent's cloud
// broker, a Go program that only needs what a networked app needs, confines itself with it
// after start-up.
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
	if err := seccomp.LoadFilter(seccomp.Filter{NoNewPrivs: true, Flag: seccomp.FilterFlagTSync, Policy: p}); err != nil {
		return fmt.Errorf("loading the seccomp filter: %w", err)
	}
	return nil
}
