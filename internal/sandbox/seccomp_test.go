package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	"github.com/rampart-iot/rampart/internal/kernelaudit"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// filteredEnv makes the test binary load the apps' seccomp filters and exec the command the
// variable holds (a JSON argv) on the host: as root, with every capability, so that what is
// refused is refused by the filters and not by a missing capability.
const filteredEnv = "RAMPART_SANDBOX_TEST_FILTERED"

func filteredExec() {
	var argv []string
	if err := json.Unmarshal([]byte(os.Getenv(filteredEnv)), &argv); err != nil || len(argv) == 0 {
		os.Stderr.WriteString("bad " + filteredEnv + "\n")
		os.Exit(2)
	}
	runtime.LockOSThread()
	if err := loadSeccomp(); err != nil {
		os.Stderr.WriteString("seccomp: " + err.Error() + "\n")
		os.Exit(2)
	}
	err := unix.Exec(argv[0], argv, []string{"GOTRACEBACK=none"})
	os.Stderr.WriteString("exec: " + err.Error() + "\n")
	os.Exit(2)
}

// runFiltered runs the test app with args on the host, under the apps' filters if filtered.
func runFiltered(t *testing.T, filtered bool, args ...string) (*exec.Cmd, []byte, error) {
	t.Helper()
	argv := append([]string{testApp(t)}, args...)
	var cmd *exec.Cmd
	if filtered {
		b, _ := json.Marshal(argv)
		cmd = exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), filteredEnv+"="+string(b))
	} else {
		cmd = exec.Command(argv[0], argv[1:]...)
	}
	out, err := cmd.Output()
	return cmd, out, err
}

// wantSockets is what the argument filter does to each of the test app's socket kinds: EPERM
// for raw and packet sockets and for families other than unix, inet, inet6 and netlink,
// nothing to the rest.
var wantSockets = map[string]syscall.Errno{
	"inet-raw": syscall.EPERM, "inet-raw-flags": syscall.EPERM, "inet6-raw": syscall.EPERM,
	"inet-packet": syscall.EPERM, "packet-dgram": syscall.EPERM, "packet-raw": syscall.EPERM,
	"inet-stream": 0, "inet-dgram": 0, "inet6-stream": 0, "unix-stream": 0,
	"netlink-route": 0, "netlink-dgram": 0, "unix-raw": 0,
	"alg-seqpacket": syscall.EPERM, "vsock-stream": syscall.EPERM, // families apps have no use for
}

// TestArgumentFilterOnTheHost runs the test app as root on the host under the apps' filters:
// raw and packet sockets fail with EPERM although root may make them (the control run without
// the filters makes them), other sockets work, clone with a namespace flag fails with EPERM,
// and the main filter still kills, refuses and falls back as before.
func TestArgumentFilterOnTheHost(t *testing.T) {
	needRoot(t)
	_, out, err := runFiltered(t, false, "sockets")
	if err != nil {
		t.Fatalf("control run: %v", err)
	}
	var control map[string]int
	if err := json.Unmarshal(out, &control); err != nil {
		t.Fatalf("control run printed %q: %v", out, err)
	}
	for _, k := range []string{"inet-raw", "packet-dgram"} {
		if control[k] != 0 {
			t.Fatalf("without the filters, root could not make a %s socket (errno %d): the test shows nothing here", k, control[k])
		}
	}

	_, out, err = runFiltered(t, true, "sockets")
	if err != nil {
		t.Fatalf("filtered run: %v", err)
	}
	var got map[string]int
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("filtered run printed %q: %v", out, err)
	}
	if len(got) != len(wantSockets) {
		t.Errorf("the app tried %d socket kinds, the test knows %d", len(got), len(wantSockets))
	}
	for k, want := range wantSockets {
		if e, ok := got[k]; !ok || syscall.Errno(e) != want {
			t.Errorf("socket %s: errno %d (%v), want %d (%v)", k, e, syscall.Errno(e), int(want), want)
		}
	}

	for name, want := range map[string]syscall.Errno{"clone-newuser": syscall.EPERM, "io_uring_setup": syscall.EPERM, "clone3": syscall.ENOSYS} {
		_, out, err := runFiltered(t, true, "syscall", name)
		var res struct {
			Survived bool
			Err      int
		}
		if err != nil || json.Unmarshal(out, &res) != nil || !res.Survived || syscall.Errno(res.Err) != want {
			t.Errorf("%s: %v, printed %q; want it to fail with %v", name, err, out, want)
		}
	}
	for _, name := range []string{"ptrace", "unshare", "mount"} {
		_, out, err := runFiltered(t, true, "syscall", name)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGSYS {
			t.Errorf("%s: %v, printed %q; want killed by SIGSYS", name, err, out)
		}
	}
}

// TestSeccompSockets: in a real sandbox, raw and packet sockets fail with EPERM and the others
// work.
func TestSeccompSockets(t *testing.T) {
	needRoot(t)
	var got map[string]int
	runJSON(t, baseSpec(t, "sockets"), &got)
	for k, want := range wantSockets {
		if e, ok := got[k]; !ok || syscall.Errno(e) != want {
			t.Errorf("socket %s: errno %d (%v), want %d (%v)", k, e, syscall.Errno(e), int(want), want)
		}
	}
}

// TestArgumentFilterProgram checks the assembled argument filter with the BPF interpreter of
// x/net/bpf, for every architecture Rampart runs on: the system call number and architecture
// tests, the masks, and that every other system call is allowed.
func TestArgumentFilterProgram(t *testing.T) {
	for _, info := range []*arch.Info{arch.X86_64, arch.AARCH64, arch.ARM} {
		t.Run(info.Name, func(t *testing.T) {
			prog, err := argumentFilter(info)
			if err != nil {
				t.Fatal(err)
			}
			vm, err := bpf.NewVM(prog)
			if err != nil {
				t.Fatal(err)
			}
			run := func(archID uint32, nr int, args ...uint64) uint32 {
				t.Helper()
				data := make([]byte, 64)
				// The interpreter loads words big-endian; the filter's offsets are the
				// kernel's for this machine, so write what it will read where it reads it.
				put := func(off int, v uint32) {
					data[off], data[off+1], data[off+2], data[off+3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
				}
				put(dataNr, uint32(nr))
				put(dataArch, archID)
				for i, a := range args {
					lo := argLo(uint32(i))
					hi := lo + 4
					if bigEndian {
						hi = lo - 4
					}
					put(int(lo), uint32(a))
					put(int(hi), uint32(a>>32))
				}
				n, err := vm.Run(data)
				if err != nil {
					t.Fatal(err)
				}
				return uint32(n)
			}
			const allow, eperm = unix.SECCOMP_RET_ALLOW, unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
			id := uint32(info.ID)
			socket, clone := info.SyscallNames["socket"], info.SyscallNames["clone"]
			cases := []struct {
				name string
				arch uint32
				nr   int
				args []uint64
				want uint32
			}{
				{"inet raw", id, socket, []uint64{unix.AF_INET, unix.SOCK_RAW, 1}, eperm},
				{"inet raw nonblock cloexec", id, socket, []uint64{unix.AF_INET, unix.SOCK_RAW | unix.SOCK_NONBLOCK | unix.SOCK_CLOEXEC, 1}, eperm},
				{"inet raw, high bits set", id, socket, []uint64{unix.AF_INET | 1<<40, unix.SOCK_RAW | 1<<33, 1}, eperm},
				{"inet6 raw", id, socket, []uint64{unix.AF_INET6, unix.SOCK_RAW, 58}, eperm},
				{"inet SOCK_PACKET", id, socket, []uint64{unix.AF_INET, sockPacket, 0}, eperm},
				{"packet dgram", id, socket, []uint64{unix.AF_PACKET, unix.SOCK_DGRAM, 0}, eperm},
				{"inet stream", id, socket, []uint64{unix.AF_INET, unix.SOCK_STREAM | unix.SOCK_CLOEXEC, 0}, allow},
				{"inet dgram", id, socket, []uint64{unix.AF_INET, unix.SOCK_DGRAM, 0}, allow},
				{"netlink raw", id, socket, []uint64{unix.AF_NETLINK, unix.SOCK_RAW | unix.SOCK_CLOEXEC, 0}, allow},
				{"unix stream", id, socket, []uint64{unix.AF_UNIX, unix.SOCK_STREAM, 0}, allow},
				{"unix raw (a datagram socket)", id, socket, []uint64{unix.AF_UNIX, unix.SOCK_RAW, 0}, allow},
				{"inet6 stream", id, socket, []uint64{unix.AF_INET6, unix.SOCK_STREAM, 0}, allow},
				{"alg", id, socket, []uint64{unix.AF_ALG, unix.SOCK_SEQPACKET, 0}, eperm},
				{"can raw", id, socket, []uint64{unix.AF_CAN, unix.SOCK_RAW, 1}, eperm},
				{"tipc", id, socket, []uint64{unix.AF_TIPC, unix.SOCK_RDM, 0}, eperm},
				{"bluetooth, high bits set", id, socket, []uint64{unix.AF_BLUETOOTH | 1<<40, unix.SOCK_STREAM, 0}, eperm},
				{"clone thread", id, clone, []uint64{unix.CLONE_VM | unix.CLONE_THREAD | unix.CLONE_SIGHAND}, allow},
				{"clone newuser", id, clone, []uint64{unix.CLONE_NEWUSER | uint64(unix.SIGCHLD)}, eperm},
				{"clone newnet", id, clone, []uint64{unix.CLONE_NEWNET}, eperm},
				{"another system call, raw-looking arguments", id, info.SyscallNames["read"], []uint64{unix.AF_PACKET, unix.SOCK_RAW}, allow},
				{"socket of another ABI", id ^ 1, socket, []uint64{unix.AF_INET, unix.SOCK_RAW}, allow},
			}
			for _, c := range cases {
				if got := run(c.arch, c.nr, c.args...); got != c.want {
					t.Errorf("%s: %#x, want %#x", c.name, got, c.want)
				}
			}
		})
	}
}

// TestOnlyTheArgumentFilterIsLogged: the kernel logs the argument filter's refusals (a raw
// socket, clone with a namespace flag) to its audit, with the caller's pid and system call,
// and not the main filter's (an unknown system call's EPERM, clone3's ENOSYS), which are
// read before them if they are logged at all.
func TestOnlyTheArgumentFilterIsLogged(t *testing.T) {
	needRoot(t)
	r, err := kernelaudit.Open(kernelaudit.Config{EnableAudit: true})
	if errors.Is(err, kernelaudit.ErrUnavailable) {
		t.Skipf("this kernel cannot report denials: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, seccomp := r.Logged(); !seccomp {
		t.Skip("this kernel does not log seccomp refusals")
	}
	unlogged := map[int]string{}
	for _, name := range []string{"io_uring_setup", "clone3"} {
		cmd, out, err := runFiltered(t, true, "syscall", name)
		if err != nil {
			t.Fatalf("%s: %v, printed %q", name, err, out)
		}
		unlogged[cmd.Process.Pid] = name
	}
	want := map[int]string{}
	for _, args := range [][]string{{"syscall", "clone-newuser"}, {"sockets"}} {
		cmd, out, err := runFiltered(t, true, args...)
		if err != nil {
			t.Fatalf("%v: %v, printed %q", args, err, out)
		}
		want[cmd.Process.Pid] = map[string]string{"syscall": "clone", "sockets": "socket"}[args[0]]
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second) // bounds a hang only
	defer cancel()
	refused := 0 // the test app's socket kinds the argument filter refuses, read after everything before them
	for _, e := range wantSockets {
		if e != 0 {
			refused++
		}
	}
	sockets := 0
	for sockets < refused {
		d, err := r.Next(ctx)
		if err != nil {
			t.Fatalf("reading the refusals: %v (still wanted: %v, %d sockets read)", err, want, sockets)
		}
		s := d.Seccomp
		if s == nil {
			continue
		}
		if name, ok := unlogged[s.Pid]; ok {
			t.Errorf("the main filter's refusal of %s was logged: %+v", name, s)
		}
		if name, ok := want[s.Pid]; ok {
			if s.SyscallName() != name || s.UID != 0 {
				t.Errorf("logged %s (%+v), want %s by uid 0", s.SyscallName(), s, name)
			}
			if name == "socket" {
				sockets += d.Count // repeats of one refusal arrive as one Denial
			} else {
				delete(want, s.Pid)
			}
		}
	}
	if len(want) != 1 { // the sockets child's
		t.Errorf("not logged: %v", want)
	}
}

// TestTSyncFailureIsAnError: when SECCOMP_FILTER_FLAG_TSYNC cannot synchronise a thread (one
// that has a filter of its own), the kernel attaches nothing and answers with that thread's id
// and no errno; loading must fail, not report a filter that is not there. It runs in a child
// process, whose threads it filters.
func TestTSyncFailureIsAnError(t *testing.T) {
	if os.Getenv("RAMPART_TSYNC_CHILD") == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestTSyncFailureIsAnError$", "-test.v")
		cmd.Env = append(os.Environ(), "RAMPART_TSYNC_CHILD=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return
	}
	allow := []bpf.Instruction{bpf.RetConstant{Val: unix.SECCOMP_RET_ALLOW}}
	ready, done := make(chan error), make(chan struct{})
	go func() { // a thread with a filter of its own, which TSYNC cannot synchronise
		runtime.LockOSThread()
		if err := seccomp.SetNoNewPrivs(); err != nil {
			ready <- err
			return
		}
		ready <- loadBPF(allow, 0)
		<-done
	}()
	if err := <-ready; err != nil {
		t.Fatal(err)
	}
	defer close(done)
	runtime.LockOSThread()
	if err := seccomp.SetNoNewPrivs(); err != nil {
		t.Fatal(err)
	}
	// The filter to synchronise refuses getppid, so whether it was attached shows.
	refuse := []bpf.Instruction{
		bpf.LoadAbsolute{Off: dataNr, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.SYS_GETPPID, SkipFalse: 1},
		bpf.RetConstant{Val: unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)},
		bpf.RetConstant{Val: unix.SECCOMP_RET_ALLOW},
	}
	err := loadBPF(refuse, seccomp.FilterFlagTSync)
	_, _, e := unix.RawSyscall(unix.SYS_GETPPID, 0, 0, 0)
	if err == nil || e != 0 {
		t.Fatalf("loadBPF with TSYNC: %v, getppid errno %d; want an error and no filter", err, e)
	}
}
