// Command app is the test app for the sandbox's tests: each mode probes one protection from
// inside and prints what it saw as JSON.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
	"unsafe"
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: app MODE [ARGS]")
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "info":
		info()
	case "fs":
		files(args)
	case "storage-fill":
		storageFill(args[0])
	case "storage-read":
		b, err := os.ReadFile("/storage/keep")
		out(map[string]any{"keep": string(b), "err": errno(err)})
	case "syscall":
		forbidden(args[0])
	case "sockets":
		out(sockets())
	case "alloc":
		alloc()
	case "forkbomb":
		forkbomb()
	case "ignore-term":
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ready")
		for {
			time.Sleep(time.Hour)
		}
	case "handle-term":
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM)
		fmt.Println("ready")
		<-c
		fmt.Println("bye")
		os.Exit(0)
	case "devs":
		devs()
	case "connect":
		connectSocket(args[0])
	case "landlock":
		err := os.WriteFile("/proc/self/comm", []byte("renamed"), 0)
		out(map[string]any{"err": errno(err)})
	case "exit":
		var code int
		fmt.Sscan(args[0], &code)
		os.Exit(code)
	default:
		fail("unknown mode " + os.Args[1])
	}
}

func out(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		fail(err.Error())
	}
	fmt.Println(string(b))
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, msg)
	os.Exit(3)
}

// errno is an error's errno number, 0 for none, -1 for an error without one.
func errno(err error) int {
	if err == nil {
		return 0
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		return int(e)
	}
	return -1
}

func info() {
	host, _ := os.Hostname()
	ifaces, _ := net.Interfaces()
	var names []string
	up := map[string]bool{}
	for _, i := range ifaces {
		names = append(names, i.Name)
		up[i.Name] = i.Flags&net.FlagUp != 0
	}
	status, _ := os.ReadFile("/proc/self/status")
	field := func(k string) string {
		for _, l := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(l, k+":"); ok {
				return strings.TrimSpace(v)
			}
		}
		return ""
	}
	groups, _ := os.Getgroups()
	procs, _ := filepath.Glob("/proc/[0-9]*")
	out(map[string]any{
		"uid": os.Getuid(), "euid": os.Geteuid(), "gid": os.Getgid(), "groups": groups,
		"pid": os.Getpid(), "hostname": host, "ifaces": names, "up": up,
		"capEff": field("CapEff"), "capBnd": field("CapBnd"), "capAmb": field("CapAmb"),
		"noNewPrivs": field("NoNewPrivs"), "seccomp": field("Seccomp"), "procs": len(procs),
	})
}

func files(hostPaths []string) {
	res := map[string]any{}
	res["writeImage"] = errno(os.WriteFile("/bin/new", []byte("x"), 0o644))
	res["writeImageFile"] = errno(os.WriteFile("/bin/app", []byte("x"), 0o755))
	res["writeRoot"] = errno(os.WriteFile("/newfile", []byte("x"), 0o644))
	res["writeDev"] = errno(os.WriteFile("/dev/newfile", []byte("x"), 0o644))
	var tmpBefore []string
	ents, _ := os.ReadDir("/tmp")
	for _, e := range ents {
		tmpBefore = append(tmpBefore, e.Name())
	}
	res["tmpBefore"] = tmpBefore
	err := os.WriteFile("/tmp/x", []byte("hello"), 0o600)
	res["writeTmp"] = errno(err)
	b, _ := os.ReadFile("/tmp/x")
	res["readTmp"] = string(b)
	var root []string
	ents, _ = os.ReadDir("/")
	for _, e := range ents {
		root = append(root, e.Name())
	}
	res["root"] = root
	host := map[string]int{}
	for _, p := range hostPaths {
		_, err := os.Stat(p)
		host[p] = errno(err)
	}
	res["host"] = host
	out(res)
}

func storageFill(keep string) {
	res := map[string]any{}
	res["writeKeep"] = errno(os.WriteFile("/storage/keep", []byte(keep), 0o600))
	chunk := make([]byte, 1024)
	for i := range chunk {
		chunk[i] = 'z'
	}
	written := 0
	var werr error
	f, err := os.OpenFile("/storage/fill", os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		werr = err
	} else {
		for written < 1<<30 {
			n, err := f.Write(chunk)
			written += n
			if err != nil {
				werr = err
				break
			}
			if err = f.Sync(); err != nil {
				werr = err
				break
			}
		}
		f.Close()
	}
	res["fillWritten"] = written
	res["fillErr"] = errno(werr)
	b, _ := os.ReadFile("/storage/keep")
	res["keepAfter"] = string(b)
	out(res)
}

func forbidden(name string) {
	var err error
	switch name {
	case "ptrace":
		_, _, e := syscall.RawSyscall(syscall.SYS_PTRACE, syscall.PTRACE_TRACEME, 0, 0)
		err = e
	case "mount":
		err = syscall.Mount("none", "/tmp", "tmpfs", 0, "")
	case "unshare":
		err = syscall.Unshare(syscall.CLONE_NEWUSER)
	case "clone-newuser":
		_, _, e := syscall.RawSyscall(syscall.SYS_CLONE, syscall.CLONE_NEWUSER|uintptr(syscall.SIGCHLD), 0, 0)
		err = e
	case "kexec":
		_, _, e := syscall.RawSyscall6(syscall.SYS_KEXEC_LOAD, 0, 0, 0, 0, 0, 0)
		err = e
	case "io_uring_setup": // not on the allow-list: fails with EPERM
		var params [120]byte
		_, _, e := syscall.RawSyscall(425, 1, uintptr(unsafe.Pointer(&params[0])), 0)
		err = e
	case "clone3": // ENOSYS, so that callers fall back to clone
		var args [88]byte
		_, _, e := syscall.RawSyscall(435, uintptr(unsafe.Pointer(&args[0])), 88, 0)
		err = e
	default:
		fail("unknown syscall " + name)
	}
	if e, ok := err.(syscall.Errno); ok && e == 0 {
		err = nil
	}
	out(map[string]any{"survived": true, "err": errno(err)})
}

// socketKinds are the sockets "sockets" tries: family, type, protocol.
var socketKinds = map[string][3]int{
	"inet-raw":       {syscall.AF_INET, syscall.SOCK_RAW, syscall.IPPROTO_ICMP},
	"inet-raw-flags": {syscall.AF_INET, syscall.SOCK_RAW | syscall.SOCK_NONBLOCK | syscall.SOCK_CLOEXEC, syscall.IPPROTO_ICMP},
	"inet6-raw":      {syscall.AF_INET6, syscall.SOCK_RAW, syscall.IPPROTO_ICMPV6},
	"inet-packet":    {syscall.AF_INET, 10 /* SOCK_PACKET */, 0},
	"packet-dgram":   {syscall.AF_PACKET, syscall.SOCK_DGRAM, 0},
	"packet-raw":     {syscall.AF_PACKET, syscall.SOCK_RAW, 0},
	"inet-stream":    {syscall.AF_INET, syscall.SOCK_STREAM | syscall.SOCK_CLOEXEC, 0},
	"inet-dgram":     {syscall.AF_INET, syscall.SOCK_DGRAM, 0},
	"inet6-stream":   {syscall.AF_INET6, syscall.SOCK_STREAM, 0},
	"unix-stream":    {syscall.AF_UNIX, syscall.SOCK_STREAM, 0},
	"netlink-route":  {syscall.AF_NETLINK, syscall.SOCK_RAW | syscall.SOCK_CLOEXEC, syscall.NETLINK_ROUTE},
	"netlink-dgram":  {syscall.AF_NETLINK, syscall.SOCK_DGRAM, syscall.NETLINK_ROUTE},
	"unix-raw":       {syscall.AF_UNIX, syscall.SOCK_RAW, 0}, // the kernel makes it a datagram socket
	"alg-seqpacket":  {38 /* AF_ALG */, syscall.SOCK_SEQPACKET, 0},
	"vsock-stream":   {40 /* AF_VSOCK */, syscall.SOCK_STREAM, 0},
}

// sockets tries each of socketKinds and reports the errno of each (0: it was made).
func sockets() map[string]int {
	res := map[string]int{}
	for name, k := range socketKinds {
		fd, _, e := syscall.RawSyscall(syscall.SYS_SOCKET, uintptr(k[0]), uintptr(k[1]), uintptr(k[2]))
		res[name] = int(e)
		if e == 0 {
			syscall.Close(int(fd))
		}
	}
	return res
}

func alloc() {
	var keep [][]byte
	for i := 0; i < 1024; i++ {
		b := make([]byte, 4<<20)
		for j := 0; j < len(b); j += 4096 {
			b[j] = 1
		}
		keep = append(keep, b)
	}
	out(map[string]any{"allocatedMB": len(keep) * 4})
}

// forkbomb forks processes that fork forever, until a fork fails, and reports how many it made.
func forkbomb() {
	made := 0
	var ferr error
	for made < 100000 {
		pid, _, e := syscall.RawSyscall(syscall.SYS_CLONE, uintptr(syscall.SIGCHLD), 0, 0)
		if e != 0 {
			ferr = e
			break
		}
		if pid == 0 {
			for {
				syscall.RawSyscall(syscall.SYS_CLONE, uintptr(syscall.SIGCHLD), 0, 0)
				syscall.RawSyscall(syscall.SYS_PAUSE, 0, 0, 0)
			}
		}
		made++
	}
	time.Sleep(100 * time.Millisecond)
	out(map[string]any{"made": made, "err": errno(ferr)})
}

func devs() {
	res := map[string]any{}
	nodes := []string{}
	filepath.WalkDir("/dev", func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		// Directory entries show the mount points; stat shows what is mounted on them.
		if st, err := os.Lstat(p); err == nil && st.Mode()&os.ModeDevice != 0 {
			nodes = append(nodes, p)
		}
		return nil
	})
	res["nodes"] = nodes
	f, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err == nil {
		_, err = f.Write([]byte("x"))
		f.Close()
	}
	res["writeFull"] = errno(err)
	_, err = os.Stat("/dev/loop0")
	res["statLoop0"] = errno(err)
	b := make([]byte, 8)
	f, err = os.Open("/dev/urandom")
	if err == nil {
		_, err = f.Read(b)
		f.Close()
	}
	res["readUrandom"] = errno(err)
	out(res)
}

// connectSocket connects to the Unix socket at path, sends "ping" and reports the answer.
func connectSocket(path string) {
	c, err := net.Dial("unix", path)
	if err != nil {
		out(map[string]any{"err": errno(err), "msg": err.Error()})
		return
	}
	defer c.Close()
	_, _ = c.Write([]byte("ping"))
	b := make([]byte, 16)
	n, err := c.Read(b)
	out(map[string]any{"answer": string(b[:max(n, 0)]), "err": errno(err)})
}
