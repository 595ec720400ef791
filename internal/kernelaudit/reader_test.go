package kernelaudit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/landlock-lsm/go-landlock/landlock"
	"github.com/rampart-iot/rampart/internal/netlinksock"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// childEnv makes the test binary a child that restricts itself and tries to create a file in
// the directory the variable names.
const childEnv = "KERNELAUDIT_TEST_CHILD"

// seccompChildEnv makes the test binary a child that loads a logging seccomp filter refusing
// socket with EPERM, and tries to make a socket: as many times as the variable says, or once;
// as the uid seccompUIDEnv says, if set.
const (
	seccompChildEnv = "KERNELAUDIT_TEST_SECCOMP_CHILD"
	seccompUIDEnv   = "KERNELAUDIT_TEST_SECCOMP_UID"
)

func TestMain(m *testing.M) {
	if os.Getenv(seccompChildEnv) != "" {
		seccompChild()
	}
	if dir := os.Getenv(childEnv); dir != "" {
		if err := landlock.V7.Restrict(landlock.RODirs("/")); err != nil {
			fmt.Println("restrict:", err)
			os.Exit(2)
		}
		_, err := os.Create(filepath.Join(dir, "denied"))
		fmt.Println(err)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestReaderReadsARealDenial opens the audit multicast, has a child process denied a file
// creation by Landlock, and reads the denial, attributed to the child.
func TestReaderReadsARealDenial(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: reading the audit multicast takes CAP_AUDIT_READ, turning audit on CAP_AUDIT_CONTROL")
	}
	r, err := Open(Config{EnableAudit: true})
	if errors.Is(err, ErrUnavailable) {
		t.Skipf("this kernel cannot report denials: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if landlock, _ := r.Logged(); !landlock {
		t.Skip("this kernel does not log Landlock denials")
	}

	dir := t.TempDir()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	pid := cmd.Process.Pid

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second) // bounds a hang only
	defer cancel()
	for {
		d, err := r.Next(ctx)
		if err != nil {
			t.Fatalf("no denial of the child (pid %d) read: %v; it printed %s", pid, err, out)
		}
		if d.Landlock == nil || d.Landlock.Pid != pid {
			continue // another process's
		}
		l := d.Landlock
		if !slices.Contains(l.Blockers, "fs.make_reg") || l.Path != dir || l.Domain == 0 || l.Exe == "" {
			t.Errorf("denial %+v: want fs.make_reg on %s", l, dir)
		}
		break
	}
}

func seccompChild() {
	runtime.LockOSThread()
	nr := uint32(unix.SYS_SOCKET)
	prog, err := bpf.Assemble([]bpf.Instruction{
		bpf.LoadAbsolute{Off: 0, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: nr, SkipFalse: 1},
		bpf.RetConstant{Val: unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)},
		bpf.RetConstant{Val: unix.SECCOMP_RET_ALLOW},
	})
	if err != nil {
		fmt.Println(err)
		os.Exit(2)
	}
	filter := make([]unix.SockFilter, len(prog))
	for i, p := range prog {
		filter[i] = unix.SockFilter{Code: p.Op, Jt: p.Jt, Jf: p.Jf, K: p.K}
	}
	fprog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		fmt.Println(err)
		os.Exit(2)
	}
	if _, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_LOG, uintptr(unsafe.Pointer(&fprog))); e != 0 {
		fmt.Println(e)
		os.Exit(2)
	}
	if uid, err := strconv.Atoi(os.Getenv(seccompUIDEnv)); err == nil {
		// This thread only, which makes the calls: the records carry its uid.
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(uid), uintptr(uid), uintptr(uid)); e != 0 {
			fmt.Println(e)
			os.Exit(2)
		}
	}
	n, _ := strconv.Atoi(os.Getenv(seccompChildEnv)) // how many refusals; one if not a number
	var e syscall.Errno
	for range max(n, 1) {
		_, _, e = unix.RawSyscall(unix.SYS_SOCKET, unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_ICMP)
	}
	fmt.Println(e)
	os.Exit(0)
}

// TestReaderReadsARealSeccompRefusal has a child process load a seccomp filter that refuses
// socket with EPERM and asks for its refusals to be logged, and reads the refusal.
func TestReaderReadsARealSeccompRefusal(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: reading the audit multicast takes CAP_AUDIT_READ, turning audit on CAP_AUDIT_CONTROL")
	}
	r, err := Open(Config{EnableAudit: true})
	if errors.Is(err, ErrUnavailable) {
		t.Skipf("this kernel cannot report denials: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, seccomp := r.Logged(); !seccomp {
		t.Skip("this kernel does not log seccomp refusals")
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), seccompChildEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || string(out) != "operation not permitted\n" {
		t.Fatalf("child: %v, printed %q; want its socket refused", err, out)
	}
	pid := cmd.Process.Pid

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second) // bounds a hang only
	defer cancel()
	for {
		d, err := r.Next(ctx)
		if err != nil {
			t.Fatalf("no refusal of the child (pid %d) read: %v", pid, err)
		}
		if d.Seccomp == nil || d.Seccomp.Pid != pid {
			continue // another process's
		}
		s := d.Seccomp
		if s.SyscallName() != "socket" || !s.Refused() || s.UID != uint32(os.Getuid()) || s.Exe == "" || s.Compat {
			t.Errorf("refusal %+v (%s): want socket refused, uid %d", s, s.SyscallName(), os.Getuid())
		}
		break
	}
}

func TestNextEndsWithItsContextAndClose(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: reading the audit multicast takes CAP_AUDIT_READ")
	}
	r, err := Open(Config{EnableAudit: true})
	if errors.Is(err, ErrUnavailable) {
		t.Skipf("this kernel cannot report denials: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	if _, err := r.Next(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Next after its context ended: %v, want context.Canceled", err)
	}
	go func() { time.Sleep(50 * time.Millisecond); r.Close() }()
	if _, err := r.Next(t.Context()); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Next after Close: %v, want os.ErrClosed", err)
	}
}

func TestParseNetlink(t *testing.T) {
	msg := []byte{0, 0, 0, 0, 0x8f, 0x05, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	msg = append(msg, "audit(1.000:1): x\x00"...)
	msg[0] = byte(len(msg))
	typ, text, err := parseNetlink(msg)
	if err != nil || typ != TypeAccess || string(text) != "audit(1.000:1): x" {
		t.Fatalf("parseNetlink = %d %q %v", typ, text, err)
	}
	if _, _, err := parseNetlink(msg[:10]); err == nil {
		t.Error("a short message was accepted")
	}
	msg[0] = byte(len(msg) + 1)
	if _, _, err := parseNetlink(msg); err == nil {
		t.Error("a length past the datagram was accepted")
	}
}

// flood has a child refuse itself a raw socket n times, as a uid of its own, and returns that
// uid.
func flood(t *testing.T, n int) uint32 {
	t.Helper()
	uid := 3_000_000 + os.Getpid()%1_000_000 // no one else's
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), seccompChildEnv+"="+strconv.Itoa(n), seccompUIDEnv+"="+strconv.Itoa(uid))
	out, err := cmd.CombinedOutput()
	if err != nil || string(out) != "operation not permitted\n" {
		t.Fatalf("child: %v, printed %q; want its sockets refused", err, out)
	}
	return uint32(uid)
}

// openSeccomp opens a Reader of seccomp refusals, or skips the test.
func openSeccomp(t *testing.T, cfg Config) *Reader {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: reading the audit multicast takes CAP_AUDIT_READ, turning audit on CAP_AUDIT_CONTROL")
	}
	cfg.EnableAudit = true
	r, err := Open(cfg)
	if errors.Is(err, ErrUnavailable) {
		t.Skipf("this kernel cannot report denials: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	if _, seccomp := r.Logged(); !seccomp {
		t.Skip("this kernel does not log seccomp refusals")
	}
	return r
}

// TestReaderCountsARealFlood: a child refused a raw socket 5000 times in a loop, read with the
// default buffer (read after the child ends: the buffer holds about 10,000), is every refusal
// counted, none lost, the first parsed whole.
func TestReaderCountsARealFlood(t *testing.T) {
	r := openSeccomp(t, Config{})
	const n = 5000
	uid := flood(t, n)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second) // bounds a hang only
	defer cancel()
	got, denials := 0, 0
	for got < n {
		d, err := r.Next(ctx)
		if err != nil {
			t.Fatalf("after %d of the child's %d refusals (in %d Denials): %v", got, n, denials, err)
		}
		if d.Lost > 0 {
			t.Fatalf("records lost (after %d of the child's %d refusals)", got, n)
		}
		if d.Seccomp == nil || d.Seccomp.UID != uid {
			continue
		}
		if s := d.Seccomp; s.SyscallName() != "socket" || !s.Refused() || s.Exe == "" || s.Pid == 0 || d.Count < 1 {
			t.Fatalf("Denial %+v, Seccomp %+v: want socket refused", d, s)
		}
		if denials == 0 && d.Count != 1 {
			t.Errorf("the first Denial counts %d refusals, want 1 (parsed whole)", d.Count)
		}
		got += d.Count
		denials++
	}
	if got != n {
		t.Errorf("counted %d refusals of the child, want %d", got, n)
	}
	t.Logf("%d refusals in %d Denials", got, denials)
}

// TestReaderReportsARealOverflow: with a buffer of a few records and nobody reading while a
// child is refused a raw socket 20000 times, the kernel drops records, and Next says so; then
// it reads on: a later refusal is read (with room in the buffer).
func TestReaderReportsARealOverflow(t *testing.T) {
	r := openSeccomp(t, Config{ReceiveBuffer: 1}) // the kernel's minimum: a record or two
	const n = 20000
	flood(t, n)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second) // bounds a hang only
	defer cancel()
	lost := 0
	for lost == 0 {
		d, err := r.Next(ctx)
		if err != nil {
			t.Fatalf("no loss reported after %d refusals with a buffer of a record or two: %v", n, err)
		}
		lost += d.Lost
	}
	// The socket takes no more records until what it holds is read (netlink's congestion
	// mark), and a buffer of a record or two would drop the next refusal too, behind the
	// records an audit rule may make of the child's start: read it out and give it room.
	for {
		_, err := r.c.TryReceive(r.buf)
		if errors.Is(err, netlinksock.ErrEmpty) {
			break
		}
		if err != nil && !errors.Is(err, unix.ENOBUFS) {
			t.Fatal(err)
		}
	}
	if _, err := r.c.SetReceiveBuffer(DefaultReceiveBuffer); err != nil {
		t.Fatal(err)
	}
	uid := flood(t, 1)
	for {
		d, err := r.Next(ctx)
		if err != nil {
			t.Fatalf("the refusal after the overflow was not read: %v", err)
		}
		lost += d.Lost
		if d.Seccomp != nil && d.Seccomp.UID == uid {
			break
		}
	}
	t.Logf("lost %d times", lost)
}
