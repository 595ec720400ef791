package linux

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/internal/qemuvm"
)

// busybox is Debian's busybox-static: the guest's shell, mount and insmod.
const busybox = "/bin/busybox"

// inVM is set in the guest that TestLinuxBoardInVM boots.
const inVM = "RAMPART_IN_VM"

// requireOrSkip skips the test saying why, or fails it when env is 1: the guest that
// TestLinuxBoardInVM boots sets it, so a kernel device the guest should have and lacks is a
// failure there, not a skip.
func requireOrSkip(t *testing.T, env, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv(env) == "1" {
		t.Fatalf("%s; %s=1 requires it", msg, env)
	}
	t.Skip(msg)
}

// vmTest is a test that TestLinuxBoardInVM runs in the guest, with the modules it needs loaded
// and its environment set.
type vmTest struct {
	name    string
	modules []string          // loaded in this order, after their dependencies
	params  map[string]string // a module's parameters, by its name with underscores
	env     []string
}

// TestLinuxBoardInVM runs the board's kernel-facing tests against real kernel drivers: it boots
// Debian's kernel under QEMU (TCG) with an initramfs holding busybox, this package's test binary
// (static) and the kernel modules the tests need, and in the guest runs, with the variables that
// turn their skips into failures:
//   - TestGPIOAndI2COnCP2112: hid-cp2112's GPIO chip and I2C adapter, the bridge emulated
//     through uhid (a GPIO line and a plain I2C transaction through real kernel drivers), with
//     lm75 loaded to probe the adapter as hwmon drivers do;
//   - TestI2COnStub: i2c-stub's SMBus-only adapter through i2c-dev;
//   - TestUARTOnSerialPort: two 8250 serial ports (emulated 16550As) QEMU wires to each other;
//   - TestGPIOOnGPIOSim, on a kernel that has gpio-sim (Debian 12's does not).
//
// It passes only if the guest reports each of them passed, none skipped, and the binary
// exited 0.
func TestLinuxBoardInVM(t *testing.T) {
	if os.Getenv(inVM) == "1" {
		t.Skip("this is the guest")
	}
	if testing.Short() {
		t.Skip("boots a virtual machine")
	}
	requireVMTools(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	start := time.Now()
	step := func(what string) { t.Logf("%5.1fs %s", time.Since(start).Seconds(), what) }
	dir := t.TempDir()

	cache, err := qemuvm.DefaultCache()
	if err != nil {
		t.Fatal(err)
	}
	k, err := qemuvm.FetchKernel(ctx, cache)
	if err != nil {
		requireKernel(t, err)
	}
	vmlinuz, err := k.Vmlinuz(ctx)
	if err != nil {
		requireKernel(t, err)
	}
	tests := []vmTest{
		{name: "TestI2COnStub", modules: []string{"i2c-stub", "i2c-dev"}, params: map[string]string{"i2c_stub": "chip_addr=0x48"},
			env: []string{"RAMPART_REQUIRE_I2C_STUB=1"}},
		{name: "TestUARTOnSerialPort", env: []string{"RAMPART_TEST_SERIAL_PAIR=/dev/ttyS2,/dev/ttyS3"}},
		// lm75 probes 0x48-0x4f on the emulated bridge's adapter when it appears, as hwmon
		// drivers loaded on a PC do: the test must count only its own transfers.
		{name: "TestGPIOAndI2COnCP2112", modules: []string{"uhid", "hid-cp2112", "i2c-dev", "lm75"}, env: []string{"RAMPART_REQUIRE_CP2112=1"}},
	}
	if k.Has("gpio-sim") {
		tests = append(tests, vmTest{name: "TestGPIOOnGPIOSim", modules: []string{"gpio-sim"}, env: []string{"RAMPART_REQUIRE_GPIO_SIM=1"}})
	} else {
		t.Logf("kernel %s has no gpio-sim (CONFIG_GPIO_SIM is unset): TestGPIOOnGPIOSim does not run in the guest", k.Release)
	}

	// The guest's files: busybox, the test binary, the modules in load order, and /init.
	testBin := filepath.Join(dir, "linux.test")
	build := exec.CommandContext(ctx, "go", "test", "-c", "-o", testBin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building this package's tests without cgo: %v\n%s", err, b)
	}
	step("built the test binary")
	files := []qemuvm.File{{Path: "bin/busybox", Mode: 0o755, Src: busybox}, {Path: "bin/linux.test", Mode: 0o755, Src: testBin}}
	var names, env, mods []string
	params := map[string]string{}
	for _, vt := range tests {
		names = append(names, vt.name)
		env = append(env, vt.env...)
		mods = append(mods, vt.modules...)
		for m, p := range vt.params {
			params[m] = p
		}
	}
	kos, err := k.Modules(ctx, mods...)
	if err != nil {
		requireKernel(t, err)
	}
	var load []string
	for _, ko := range kos {
		name := strings.ReplaceAll(strings.TrimSuffix(filepath.Base(ko), ".ko"), "-", "_")
		files = append(files, qemuvm.File{Path: "lib/modules/" + name + ".ko", Mode: 0o644, Src: ko})
		load = append(load, strings.TrimSpace("insmod /lib/modules/"+name+".ko "+params[name])+" || die 'insmod "+name+"'")
	}
	run := "^(" + strings.Join(names, "|") + ")$"
	files = append(files, qemuvm.File{Path: "init", Mode: 0o755, Data: []byte(guestInit(load, env, run))})
	initrd := filepath.Join(dir, "initrd.cpio.gz")
	if err := qemuvm.WriteInitramfs(initrd, files, "proc", "sys", "tmp"); err != nil {
		t.Fatal(err)
	}
	step("wrote the initramfs")

	// ttyS2 and ttyS3 are wired to each other: the first listens on a socket, the second
	// connects to it. The socket is in a short directory of its own: a socket's path is at
	// most 107 bytes, which t.TempDir() under a long TMPDIR exceeds.
	sockDir, err := os.MkdirTemp("/tmp", "rampart-vm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	sock := filepath.Join(sockDir, "serial.sock")
	// Two processors: the emulated CP2112 answers hid-cp2112, which gives up after 50 ms, from
	// user space, and with one processor the answer may wait behind the request's own thread.
	m := qemuvm.Machine{Kernel: vmlinuz, Initrd: initrd, Dir: dir, Cmdline: "quiet loglevel=1", CPUs: 2,
		Args: []string{
			"-chardev", "socket,id=s2,path=" + sock + ",server=on,wait=off", "-serial", "chardev:s2",
			"-chardev", "socket,id=s3,path=" + sock, "-serial", "chardev:s3",
		}}
	out, err := m.Run(ctx)
	step("the guest powered off")
	if err != nil {
		t.Fatalf("%v\nguest console:\n%s\nguest test output:\n%s", err, out.Console, out.Data)
	}
	report := string(out.Data)
	if problems := checkGuestReport(report, names); len(problems) > 0 {
		t.Fatalf("in the guest: %s\nguest test output:\n%s\nguest console:\n%s", strings.Join(problems, "; "), report, out.Console)
	}
	t.Logf("guest test output:\n%s", report)
}

// exitLine is the guest's last word on its data port: the test binary's exit status.
var exitLine = regexp.MustCompile(`(?m)^RAMPART-VM-EXIT (\d+)\r?$`)

// checkGuestReport lists what is wrong with the guest's report: no exit line, a nonzero exit,
// a wanted test that did not pass, or any test that skipped.
func checkGuestReport(report string, tests []string) []string {
	var problems []string
	if m := exitLine.FindStringSubmatch(report); m == nil {
		problems = append(problems, "the guest printed no RAMPART-VM-EXIT line")
	} else if m[1] != "0" {
		problems = append(problems, "the test binary exited "+m[1])
	}
	for _, name := range tests {
		if !regexp.MustCompile(`(?m)^--- PASS: ` + name + ` \(`).MatchString(report) {
			problems = append(problems, name+" did not pass")
		}
	}
	if regexp.MustCompile(`(?m)^\s*--- SKIP: `).MatchString(report) {
		problems = append(problems, "a test skipped")
	}
	return problems
}

// guestInit is the guest's /init: it mounts what the tests need, loads the modules, runs the
// test binary with its output on the data port (ttyS1), adds the kernel log's tail if it failed,
// prints the exit line and powers off.
func guestInit(load, env []string, run string) string {
	return `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
mount -t tmpfs tmp /tmp
dmesg -n 1
die() { echo "RAMPART-VM-FAILED $*" > /dev/ttyS1; echo "RAMPART-VM-EXIT 99" > /dev/ttyS1; sync; poweroff -f; }
` + strings.Join(load, "\n") + `
if grep -q configfs /proc/filesystems; then mount -t configfs none /sys/kernel/config || die 'mount configfs'; fi
cd /tmp
env ` + inVM + `=1 ` + strings.Join(env, " ") + ` /bin/linux.test -test.v -test.count=1 -test.timeout=2m -test.run '` + run + `' > /dev/ttyS1 2>&1
rc=$?
if [ $rc != 0 ]; then echo "kernel log (tail):" > /dev/ttyS1; dmesg | tail -n 40 > /dev/ttyS1; fi
echo "RAMPART-VM-EXIT $rc" > /dev/ttyS1
sync
poweroff -f
`
}

// requireKernel skips the test because the guest's kernel could not be had (no network, no
// apt lists, no Debian 12 kernel package), saying why, or fails it when RAMPART_REQUIRE_QEMU=1
// (CI) says it must be there.
func requireKernel(t *testing.T, err error) {
	t.Helper()
	requireOrSkip(t, "RAMPART_REQUIRE_QEMU", "no Debian kernel for the guest: %v", err)
}

// requireVMTools skips the test when what the guest needs is missing, or fails it when
// RAMPART_REQUIRE_QEMU=1 (CI) says it must be there.
func requireVMTools(t *testing.T) {
	t.Helper()
	var missing []string
	for _, c := range []string{"qemu-system-x86_64", "dpkg-deb", "tar", "apt-get", "apt-cache", "go"} {
		if _, err := exec.LookPath(c); err != nil {
			missing = append(missing, c)
		}
	}
	if !qemuvm.StaticELF(busybox) {
		missing = append(missing, "a static "+busybox+" (busybox-static)")
	}
	if len(missing) == 0 {
		return
	}
	requireOrSkip(t, "RAMPART_REQUIRE_QEMU", "booting the board's tests in a VM needs %s (apt-get install qemu-system-x86 busybox-static)", strings.Join(missing, ", "))
}

// TestCheckGuestReport: the host passes the guest's run only with every wanted test passed, no
// skip, and an exit status of 0.
func TestCheckGuestReport(t *testing.T) {
	pass := "=== RUN   TestA\n--- PASS: TestA (0.01s)\n=== RUN   TestB\n--- PASS: TestB (0.07s)\nPASS\nRAMPART-VM-EXIT 0\n"
	for _, c := range []struct {
		name, report string
		want         string // a problem the check must name; "" for none
	}{
		{"all passed", pass, ""},
		{"all passed, CRLF", strings.ReplaceAll(pass, "\n", "\r\n"), ""},
		{"no exit line", strings.TrimSuffix(pass, "RAMPART-VM-EXIT 0\n"), "no RAMPART-VM-EXIT"},
		{"nonzero exit", strings.Replace(pass, "EXIT 0", "EXIT 1", 1), "exited 1"},
		{"a test missing", strings.Replace(pass, "--- PASS: TestB", "--- FAIL: TestB", 1), "TestB did not pass"},
		{"a prefix is not the test", strings.Replace(pass, "--- PASS: TestB (", "--- PASS: TestBC (", 1), "TestB did not pass"},
		{"a skip", strings.Replace(pass, "PASS\nRAMPART", "    --- SKIP: TestB/sub (0.00s)\nPASS\nRAMPART", 1), "a test skipped"},
	} {
		got := strings.Join(checkGuestReport(c.report, []string{"TestA", "TestB"}), "; ")
		if c.want == "" && got != "" || c.want != "" && !strings.Contains(got, c.want) {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

// TestLinuxBoardInVMWithoutKernel: with an empty kernel cache and apt unable to say which
// kernel to fetch (as without apt lists), TestLinuxBoardInVM skips saying why, and fails
// instead with RAMPART_REQUIRE_QEMU=1. It runs this test binary with apt-cache replaced.
func TestLinuxBoardInVMWithoutKernel(t *testing.T) {
	if os.Getenv(inVM) == "1" {
		t.Skip("this is the guest")
	}
	requireVMTools(t)
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "apt-cache"), []byte("#!/bin/sh\necho 'E: No packages found' >&2\nexit 100\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, require := range []string{"", "1"} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestLinuxBoardInVM$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "RAMPART_KERNEL_CACHE="+t.TempDir(), "RAMPART_REQUIRE_QEMU="+require)
		out, err := cmd.CombinedOutput()
		want := "--- SKIP: TestLinuxBoardInVM"
		if require == "1" {
			want = "--- FAIL: TestLinuxBoardInVM"
		}
		if !strings.Contains(string(out), want) || !strings.Contains(string(out), "no Debian kernel for the guest: apt-cache depends linux-image-amd64") || (err == nil) != (require == "") {
			t.Errorf("RAMPART_REQUIRE_QEMU=%q: %v, want %q with the reason\n%s", require, err, want, out)
		}
	}
}
