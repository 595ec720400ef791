package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	Init()
	if os.Getenv(helperAgentEnv) != "" {
		helperAgent()
		return
	}
	if os.Getenv(filteredEnv) != "" {
		filteredExec()
	}
	code := m.Run()
	if appDir != "" {
		os.RemoveAll(appDir)
	}
	os.Exit(code)
}

var (
	appOnce sync.Once
	appDir  string
	appBin  string
	appErr  error
)

// needRoot skips tests that make real namespaces, mounts and cgroups when not root.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the sandbox makes real namespaces, mounts, loop devices and cgroups")
	}
}

// testApp builds testdata/app as a static binary, once.
func testApp(t *testing.T) string {
	t.Helper()
	appOnce.Do(func() {
		appDir, appErr = os.MkdirTemp("", "sandbox-testapp-")
		if appErr != nil {
			return
		}
		appBin = filepath.Join(appDir, "app")
		// The go command that runs these tests is on PATH or in the usual place.
		gobin, err := exec.LookPath("go")
		if err != nil {
			gobin = "/usr/local/go/bin/go"
		}
		cmd := exec.Command(gobin, "build", "-o", appBin, "./testdata/app")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			appErr = fmt.Errorf("building test app: %v\n%s", err, out)
		}
	})
	if appErr != nil {
		t.Fatal(appErr)
	}
	return appBin
}

// newImage makes an app image: /bin/app and an /etc with one file.
func newImage(t *testing.T) string {
	t.Helper()
	bin := testApp(t)
	root := t.TempDir()
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"bin", "etc"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "app"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc", "app.conf"), []byte("conf"), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

const testUID, testGID = 61234, 61234

// baseSpec is a spec for the test app in a fresh image with modest limits.
func baseSpec(t *testing.T, args ...string) Spec {
	return Spec{
		Name:     fmt.Sprintf("test-%d-%s", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "_")),
		Root:     newImage(t),
		Path:     "/bin/app",
		Args:     args,
		Env:      []string{"GOTRACEBACK=none"},
		UID:      testUID,
		GID:      testGID,
		Hostname: "sandboxed",
		Limits:   Limits{MemoryBytes: 256 << 20, Pids: 64},
	}
}

func slogDiscard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// syncBuffer is a goroutine-safe buffer that can signal when a line appears.
type syncBuffer struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	if b.seen != nil && strings.Contains(b.buf.String(), b.want) {
		close(b.seen)
		b.seen = nil
	}
	return n, err
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// runApp starts spec, waits for the app to exit and returns its Exit and stdout.
func runApp(t *testing.T, spec Spec) (Exit, string) {
	t.Helper()
	var stdout, stderr syncBuffer
	spec.Stdout, spec.Stderr = &stdout, &stderr
	p, err := Start(context.Background(), spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := p.Wait()
	if s := stderr.String(); s != "" {
		t.Logf("app stderr: %s", s)
	}
	return e, stdout.String()
}

// runJSON runs spec, wants exit status 0, and decodes the app's JSON report into v.
func runJSON(t *testing.T, spec Spec, v any) {
	t.Helper()
	e, out := runApp(t, spec)
	if e.Code != 0 || e.Signal != 0 {
		t.Fatalf("app ended with %v; stdout %q", e, out)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("app output %q: %v", out, err)
	}
}

func TestIdentityNamespacesAndPrivileges(t *testing.T) {
	needRoot(t)
	var got struct {
		UID, EUID, GID int
		Groups         []int
		PID            int
		Hostname       string
		Ifaces         []string
		Up             map[string]bool
		CapEff, CapBnd string
		CapAmb         string
		NoNewPrivs     string
		Seccomp        string
		Procs          int
	}
	runJSON(t, baseSpec(t, "info"), &got)
	if got.UID != testUID || got.EUID != testUID || got.GID != testGID {
		t.Errorf("uid %d euid %d gid %d, want %d/%d", got.UID, got.EUID, got.GID, testUID, testGID)
	}
	if len(got.Groups) != 0 {
		t.Errorf("supplementary groups %v, want none (the agent's groups must not leak in)", got.Groups)
	}
	if got.PID != 1 {
		t.Errorf("pid %d, want 1 in its own PID namespace", got.PID)
	}
	if got.Procs != 1 {
		t.Errorf("/proc shows %d processes, want only the app", got.Procs)
	}
	host, _ := os.Hostname()
	if got.Hostname != "sandboxed" || host == "sandboxed" {
		t.Errorf("hostname %q (host's %q), want its own \"sandboxed\"", got.Hostname, host)
	}
	if !slices.Equal(got.Ifaces, []string{"lo"}) || !got.Up["lo"] {
		t.Errorf("interfaces %v (up %v), want only lo, up", got.Ifaces, got.Up)
	}
	zero := "0000000000000000"
	if got.CapEff != zero || got.CapBnd != zero || got.CapAmb != zero {
		t.Errorf("capabilities eff %s bnd %s amb %s, want none", got.CapEff, got.CapBnd, got.CapAmb)
	}
	if got.NoNewPrivs != "1" || got.Seccomp != "2" {
		t.Errorf("NoNewPrivs %q Seccomp %q, want 1 and 2 (filter)", got.NoNewPrivs, got.Seccomp)
	}
}

func TestFileSystem(t *testing.T) {
	needRoot(t)
	// A file on the host's /tmp and the test's own directory must be invisible inside.
	marker, err := os.CreateTemp("", "sandbox-host-marker-")
	if err != nil {
		t.Fatal(err)
	}
	marker.Close()
	defer os.Remove(marker.Name())
	wd, _ := os.Getwd()
	spec := baseSpec(t, "fs", marker.Name(), wd, "/etc/passwd", "/etc/app.conf")
	var got struct {
		WriteImage, WriteImageFile, WriteRoot, WriteDev, WriteTmp int
		TmpBefore                                                 []string
		ReadTmp                                                   string
		Root                                                      []string
		Host                                                      map[string]int
	}
	runJSON(t, spec, &got)
	for what, errno := range map[string]int{"a new file in /bin": got.WriteImage, "/bin/app": got.WriteImageFile, "a new file in /": got.WriteRoot, "a new file in /dev": got.WriteDev} {
		if syscall.Errno(errno) != syscall.EROFS {
			t.Errorf("writing %s: errno %d (%v), want EROFS", what, errno, syscall.Errno(errno))
		}
	}
	if got.WriteTmp != 0 || got.ReadTmp != "hello" {
		t.Errorf("/tmp: write errno %d, read %q; want a writable /tmp", got.WriteTmp, got.ReadTmp)
	}
	if len(got.TmpBefore) != 0 {
		t.Errorf("/tmp starts with %v, want a private, empty /tmp", got.TmpBefore)
	}
	if want := []string{"bin", "dev", "etc", "proc", "tmp"}; !slices.Equal(got.Root, want) {
		t.Errorf("/ holds %v, want %v", got.Root, want)
	}
	for _, p := range []string{marker.Name(), wd, "/etc/passwd"} {
		if syscall.Errno(got.Host[p]) != syscall.ENOENT {
			t.Errorf("host path %s: errno %d, want ENOENT (invisible)", p, got.Host[p])
		}
	}
	if got.Host["/etc/app.conf"] != 0 {
		t.Errorf("image file /etc/app.conf: errno %d, want visible", got.Host["/etc/app.conf"])
	}
	// The sandbox wrote nothing into the host's view of the image.
	if _, err := os.Stat(filepath.Join(spec.Root, "tmp", "x")); err == nil {
		t.Error("the app's /tmp file appeared in the image directory")
	}
}

func TestStoragePersistsAndQuotaHolds(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	const sizeKB = 64
	// A file beside the image stands for the agent's other data.
	other := filepath.Join(dir, "other-data")
	if err := os.WriteFile(other, []byte("agent data"), 0o600); err != nil {
		t.Fatal(err)
	}
	keep := strings.Repeat("k", 10*1024)

	spec := baseSpec(t, "storage-fill", keep)
	spec.Storage = &Storage{Dir: dir, SizeKB: sizeKB}
	var fill struct {
		WriteKeep, FillWritten, FillErr int
		KeepAfter                       string
	}
	runJSON(t, spec, &fill)
	if fill.WriteKeep != 0 {
		t.Fatalf("writing /storage/keep: errno %d", fill.WriteKeep)
	}
	if e := syscall.Errno(fill.FillErr); e != syscall.ENOSPC && e != syscall.EDQUOT {
		t.Errorf("filling storage stopped with errno %d (%v), want ENOSPC or EDQUOT", fill.FillErr, e)
	}
	// 10 KiB of keep plus the fill (and a few blocks of metadata) fit in the quota, no more.
	if total := 10*1024 + fill.FillWritten; total > sizeKB*1024 || total < (sizeKB-8)*1024 {
		t.Errorf("wrote %d bytes in all into %d KiB of storage", total, sizeKB)
	}
	if fill.KeepAfter != keep {
		t.Errorf("after the quota was hit, /storage/keep reads %d bytes, want the %d written", len(fill.KeepAfter), len(keep))
	}

	// A second run, in a new sandbox, sees the data.
	spec2 := baseSpec(t, "storage-read")
	spec2.Name += "-2"
	spec2.Storage = &Storage{Dir: dir, SizeKB: sizeKB}
	var read struct {
		Keep string
		Err  int
	}
	runJSON(t, spec2, &read)
	if read.Err != 0 || read.Keep != keep {
		t.Errorf("second run read %d bytes (errno %d), want the %d written by the first", len(read.Keep), read.Err, len(keep))
	}
	if b, err := os.ReadFile(other); err != nil || string(b) != "agent data" {
		t.Errorf("data beside the storage: %q, %v", b, err)
	}
	// Nothing stays mounted or attached on the host.
	if mounted(filepath.Join(dir, mountName)) {
		t.Error("storage still mounted on the host after the app exited")
	}
	if dev := loopBacking(filepath.Join(dir, imageName)); dev != "" {
		// The loop device detaches itself once the sandbox's mount namespace is gone.
		if err := waitDetached(filepath.Join(dir, imageName), 5*time.Second); err != nil {
			t.Error(err)
		}
	}

	// A changed quota is refused, not silently applied.
	spec3 := baseSpec(t, "storage-read")
	spec3.Storage = &Storage{Dir: dir, SizeKB: 2 * sizeKB}
	if _, err := Start(context.Background(), spec3, nil); err == nil || !strings.Contains(err.Error(), "quota") {
		t.Errorf("starting with a changed SizeKB: %v, want an error about the quota", err)
	}
}

func TestStorageAfterCrashedStart(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	st := &Storage{Dir: dir, SizeKB: 16}
	// An agent that crashed between mounting the storage and starting the sandbox leaves the
	// host mount behind.
	mnt, _, err := mountStorage(st, testUID, testGID, slogDiscard())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mnt, "keep"), []byte("from before the crash"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Join(mnt, "keep"), testUID, testGID); err != nil {
		t.Fatal(err)
	}
	spec := baseSpec(t, "storage-read")
	spec.Storage = st
	var got struct {
		Keep string
		Err  int
	}
	runJSON(t, spec, &got)
	if got.Err != 0 || got.Keep != "from before the crash" {
		t.Errorf("read %q (errno %d)", got.Keep, got.Err)
	}
	if mounted(mnt) {
		t.Error("the stale host mount is still there")
	}
}

func TestSeccompKillsForbiddenSyscalls(t *testing.T) {
	needRoot(t)
	for _, name := range []string{"ptrace", "mount", "unshare", "kexec"} {
		t.Run(name, func(t *testing.T) {
			e, out := runApp(t, baseSpec(t, "syscall", name))
			if e.Signal != syscall.SIGSYS || !e.SeccompKilled {
				t.Errorf("calling %s: %v (stdout %q), want killed by SIGSYS and reported", name, e, out)
			}
		})
	}
}

func TestSeccompDefaultsAndFallbacks(t *testing.T) {
	needRoot(t)
	for name, want := range map[string]syscall.Errno{"io_uring_setup": syscall.EPERM, "clone3": syscall.ENOSYS, "clone-newuser": syscall.EPERM} {
		t.Run(name, func(t *testing.T) {
			var got struct {
				Survived bool
				Err      int
			}
			runJSON(t, baseSpec(t, "syscall", name), &got)
			if !got.Survived || syscall.Errno(got.Err) != want {
				t.Errorf("%s: %+v, want it to fail with %v", name, got, want)
			}
		})
	}
}

func TestLandlockDeniesWritesOutsideTmpAndStorage(t *testing.T) {
	needRoot(t)
	// /proc/self/comm is writable by its owner; only Landlock stands in the way.
	var got struct{ Err int }
	runJSON(t, baseSpec(t, "landlock"), &got)
	if syscall.Errno(got.Err) != syscall.EACCES {
		t.Errorf("writing /proc/self/comm: errno %d (%v), want EACCES from Landlock", got.Err, syscall.Errno(got.Err))
	}
}

func TestMemoryLimitOOMKills(t *testing.T) {
	needRoot(t)
	spec := baseSpec(t, "alloc")
	spec.Limits.MemoryBytes = 64 << 20
	e, out := runApp(t, spec)
	if !e.OOMKilled || e.Signal != syscall.SIGKILL {
		t.Errorf("allocating 4 GiB under a 64 MiB limit: %v (stdout %q), want OOM-killed", e, out)
	}
}

func TestPidsLimitContainsForkBomb(t *testing.T) {
	needRoot(t)
	spec := baseSpec(t, "forkbomb")
	spec.Limits.Pids = 32
	var got struct{ Made, Err int }
	e, out := runApp(t, spec)
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("fork bomb: %v, output %q", e, out)
	}
	if got.Made >= 32 || syscall.Errno(got.Err) != syscall.EAGAIN {
		t.Errorf("fork bomb made %d processes and stopped with errno %d, want fewer than 32 and EAGAIN", got.Made, got.Err)
	}
	if !e.PidsLimited {
		t.Errorf("exit %v does not report the pids limit", e)
	}
	// The app's exit took the whole bomb with it: the cgroup is gone.
	if p, ok := cgroupDirFor(t, spec.Name, "pids"); ok {
		t.Errorf("pids cgroup %s still exists", p)
	}
}

// cgroupDirFor finds the sandbox's cgroup directory for controller c, if it exists.
func cgroupDirFor(t *testing.T, name, c string) (string, bool) {
	t.Helper()
	v1, v2, err := hostCgroupFS.mounts()
	if err != nil {
		t.Fatal(err)
	}
	self, _ := hostCgroupFS.membership()
	m, own := v2, self[""]
	if mm, ok := v1[c]; ok {
		m, own = mm, self[c]
	}
	p := filepath.Join(m.point, strings.TrimPrefix(own, m.root), "rampart", name)
	_, err = os.Stat(p)
	return p, err == nil
}

func TestStopKillsAnAppThatIgnoresSIGTERM(t *testing.T) {
	needRoot(t)
	spec := baseSpec(t, "ignore-term")
	spec.StopGrace = 200 * time.Millisecond
	stdout := &syncBuffer{want: "ready", seen: make(chan struct{})}
	seen := stdout.seen
	spec.Stdout = stdout
	p, err := Start(context.Background(), spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	<-seen
	e := p.Stop()
	if e.Signal != syscall.SIGKILL || !e.Stopped || !e.Killed {
		t.Errorf("stopping an app that ignores SIGTERM: %v, want killed after the grace period", e)
	}
}

func TestStopLetsAnAppExitCleanly(t *testing.T) {
	needRoot(t)
	spec := baseSpec(t, "handle-term")
	spec.StopGrace = time.Minute // the app exits long before; Stop must not wait it out
	stdout := &syncBuffer{want: "ready", seen: make(chan struct{})}
	seen := stdout.seen
	spec.Stdout = stdout
	p, err := Start(context.Background(), spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	<-seen
	e := p.Stop()
	if e.Code != 0 || e.Signal != 0 || !e.Stopped || e.Killed {
		t.Errorf("stopping an app that handles SIGTERM: %v, want a clean exit", e)
	}
	if !strings.Contains(stdout.String(), "bye") {
		t.Errorf("app output %q, want its goodbye", stdout.String())
	}
}

func TestContextEndStopsTheApp(t *testing.T) {
	needRoot(t)
	spec := baseSpec(t, "handle-term")
	stdout := &syncBuffer{want: "ready", seen: make(chan struct{})}
	seen := stdout.seen
	spec.Stdout = stdout
	ctx, cancel := context.WithCancel(context.Background())
	p, err := Start(ctx, spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	<-seen
	cancel()
	if e := p.Wait(); e.Code != 0 || !e.Stopped {
		t.Errorf("after the context ended: %v, want a clean stop", e)
	}
}

func TestOnlyGrantedDevices(t *testing.T) {
	needRoot(t)
	spec := baseSpec(t, "devs")
	spec.Devices = []string{"/dev/full"}
	var got struct {
		Nodes                             []string
		WriteFull, StatLoop0, ReadUrandom int
	}
	runJSON(t, spec, &got)
	slices.Sort(got.Nodes)
	if want := []string{"/dev/full", "/dev/null", "/dev/urandom", "/dev/zero"}; !slices.Equal(got.Nodes, want) {
		t.Errorf("device nodes %v, want %v", got.Nodes, want)
	}
	if syscall.Errno(got.WriteFull) != syscall.ENOSPC {
		t.Errorf("writing the granted /dev/full: errno %d, want ENOSPC (the real device)", got.WriteFull)
	}
	if syscall.Errno(got.StatLoop0) != syscall.ENOENT {
		t.Errorf("/dev/loop0: errno %d, want ENOENT", got.StatLoop0)
	}
	if got.ReadUrandom != 0 {
		t.Errorf("reading /dev/urandom: errno %d", got.ReadUrandom)
	}
}

func TestExitCodeAndNetworkHook(t *testing.T) {
	needRoot(t)
	spec := baseSpec(t, "exit", "7")
	var hookNS string
	spec.ConfigureNetwork = func(ctx context.Context, netns string) error {
		var own, theirs syscall.Stat_t
		if err := syscall.Stat("/proc/self/ns/net", &own); err != nil {
			return err
		}
		if err := syscall.Stat(netns, &theirs); err != nil {
			return err
		}
		if own.Ino == theirs.Ino {
			return fmt.Errorf("%s is the agent's own network namespace", netns)
		}
		hookNS = netns
		return nil
	}
	e, _ := runApp(t, spec)
	if e.Code != 7 || e.Signal != 0 || e.Stopped {
		t.Errorf("exit %v, want status 7", e)
	}
	if hookNS == "" {
		t.Error("ConfigureNetwork was not called")
	}
	if p, ok := cgroupDirFor(t, spec.Name, "memory"); ok {
		t.Errorf("memory cgroup %s left behind", p)
	}
}

// helperAgentEnv makes the test binary a stand-in agent that starts one sandbox, prints the
// app's pid and waits to be killed.
const helperAgentEnv = "RAMPART_SANDBOX_TEST_AGENT"

// helperSpec is the part of a Spec the stand-in agent needs.
type helperSpec struct {
	Name, Root, Path string
	Args             []string
	UID, GID         uint32
}

func helperAgent() {
	var hs helperSpec
	if err := json.Unmarshal([]byte(os.Getenv(helperAgentEnv)), &hs); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	spec := Spec{Name: hs.Name, Root: hs.Root, Path: hs.Path, Args: hs.Args, UID: hs.UID, GID: hs.GID}
	p, err := Start(context.Background(), spec, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(p.Pid())
	p.Wait()
	os.Exit(1)
}

// When the agent dies, its apps die with it: none is left running unsupervised.
func TestAgentDeathKillsTheApp(t *testing.T) {
	needRoot(t)
	spec := baseSpec(t, "ignore-term")
	b, err := json.Marshal(helperSpec{Name: spec.Name, Root: spec.Root, Path: spec.Path, Args: spec.Args, UID: spec.UID, GID: spec.GID})
	if err != nil {
		t.Fatal(err)
	}
	agent := exec.Command(os.Args[0], "-test.run=^$")
	agent.Env = append(os.Environ(), helperAgentEnv+"="+string(b))
	agent.Stderr = os.Stderr
	out, err := agent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	var pid int
	if _, err := fmt.Fscan(out, &pid); err != nil {
		agent.Process.Kill()
		agent.Wait()
		t.Fatalf("stand-in agent: %v", err)
	}
	defer func() {
		// The dead agent could not remove its cgroup; the next start would.
		for _, c := range controllers {
			if d, ok := cgroupDirFor(t, spec.Name, c); ok {
				for try := 0; try < 100 && syscall.Rmdir(d) != nil; try++ {
					time.Sleep(10 * time.Millisecond)
				}
			}
		}
	}()
	if err := agent.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	agent.Wait()
	// The app is gone, or a zombie waiting for whoever inherited it; never left running.
	// (The bound only keeps a broken build from hanging the test.)
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return
		}
		if _, rest, ok := strings.Cut(string(b), ") "); ok && strings.HasPrefix(rest, "Z") {
			return
		}
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("app %d still running after its agent was killed: %s", pid, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestStartFailsCleanly(t *testing.T) {
	needRoot(t)
	spec := baseSpec(t)
	spec.Path = "/bin/missing"
	_, err := Start(context.Background(), spec, nil)
	if err == nil || !strings.Contains(err.Error(), "/bin/missing") {
		t.Errorf("missing entry point: %v", err)
	}
	if p, ok := cgroupDirFor(t, spec.Name, "memory"); ok {
		t.Errorf("memory cgroup %s left behind", p)
	}
}

func TestSpecValidation(t *testing.T) {
	err := (&Spec{Name: "bad/name", Root: "relative", Path: "bin/app", Devices: []string{"/etc/passwd"}, Storage: &Storage{Dir: "x", SizeKB: 0}}).validate()
	if err == nil {
		t.Fatal("a bad spec validated")
	}
	for _, want := range []string{"name", "root", "entry point", "uid", "storage directory", "storage size", "/etc/passwd"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

// TestSocket: a host socket in Spec.Sockets is reachable at its target, by the app's uid,
// through Landlock and seccomp; the image's own /run is hidden.
func TestSocket(t *testing.T) {
	needRoot(t)
	dir, err := os.MkdirTemp("", "sbsock-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := os.Chown(sock, testUID, testGID); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(sock, 0o600); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b := make([]byte, 4)
			_, _ = io.ReadFull(c, b)
			_, _ = c.Write([]byte("pong:" + string(b)))
			c.Close()
		}
	}()
	spec := baseSpec(t, "connect", "/run/rampart/applibs.sock")
	if err := os.MkdirAll(filepath.Join(spec.Root, "run"), 0o755); err != nil {
		t.Fatal(err)
	}
	spec.Sockets = []Socket{{Source: sock, Target: "/run/rampart/applibs.sock"}}
	var got struct {
		Answer string
		Err    int
	}
	runJSON(t, spec, &got)
	if got.Answer != "pong:ping" || got.Err != 0 {
		t.Fatalf("through the socket: %+v", got)
	}

	bad := baseSpec(t, "info")
	bad.Sockets = []Socket{{Source: sock, Target: "/etc/x.sock"}, {Source: filepath.Join(dir, "none"), Target: "/run/y.sock"}}
	if _, err := Start(context.Background(), bad, nil); err == nil || !strings.Contains(err.Error(), "want a clean path under /run/") || !strings.Contains(err.Error(), "not a Unix socket") {
		t.Fatalf("bad sockets: %v", err)
	}
}
