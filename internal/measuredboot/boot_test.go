package measuredboot

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/client"
	"github.com/rampart-iot/rampart/enrollment"
	"github.com/rampart-iot/rampart/internal/attest"
	"github.com/rampart-iot/rampart/internal/measure"
	"github.com/rampart-iot/rampart/internal/qemuvm"
	"github.com/rampart-iot/rampart/internal/server/servertest"
)

// What the boot needs from Debian (see .ci/run).
const (
	ovmfCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	ovmfVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
	efiStub  = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub"
	busybox  = "/bin/busybox" // busybox-static
)

// guestHost is the host as QEMU's user networking shows it to the guest.
const guestHost = "10.0.2.2"

// requireTools skips the test when the boot's tools are missing, or fails it when
// RAMPART_REQUIRE_QEMU=1 (CI) says they must be there.
func requireTools(t *testing.T) {
	t.Helper()
	var missing []string
	for _, c := range []string{"qemu-system-x86_64", "swtpm", "objcopy", "mkfs.vfat", "mcopy", "mmd", "dpkg-deb", "apt-get", "apt-cache"} {
		if _, err := exec.LookPath(c); err != nil {
			missing = append(missing, c)
		}
	}
	for _, f := range []string{ovmfCode, ovmfVars, efiStub, busybox} {
		if _, err := os.Stat(f); err != nil {
			missing = append(missing, f)
		}
	}
	if len(missing) == 0 && !qemuvm.StaticELF(busybox) {
		missing = append(missing, "a static "+busybox+" (busybox-static)")
	}
	if len(missing) == 0 {
		return
	}
	requireOrSkip(t, "a measured boot needs %s (apt-get install qemu-system-x86 ovmf mtools dosfstools busybox-static systemd-boot-efi swtpm binutils)", strings.Join(missing, ", "))
}

// requireOrSkip skips the test saying why, or fails it when RAMPART_REQUIRE_QEMU=1 (CI) says
// what is missing must be there.
func requireOrSkip(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("RAMPART_REQUIRE_QEMU") == "1" {
		t.Fatal(msg + "; RAMPART_REQUIRE_QEMU=1 requires it")
	}
	t.Skip(msg)
}

// TestMeasuredBootWithoutKernel: with an empty kernel cache and apt unable to say which kernel
// to fetch (as without apt lists), TestMeasuredBootAttestation skips saying why, and fails
// instead with RAMPART_REQUIRE_QEMU=1. It runs this test binary with apt-cache replaced.
func TestMeasuredBootWithoutKernel(t *testing.T) {
	requireTools(t)
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "apt-cache"), []byte("#!/bin/sh\necho 'E: No packages found' >&2\nexit 100\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, require := range []string{"", "1"} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestMeasuredBootAttestation$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "RAMPART_KERNEL_CACHE="+t.TempDir(), "RAMPART_REQUIRE_QEMU="+require)
		out, err := cmd.CombinedOutput()
		want := "--- SKIP: TestMeasuredBootAttestation"
		if require == "1" {
			want = "--- FAIL: TestMeasuredBootAttestation"
		}
		if !strings.Contains(string(out), want) || !strings.Contains(string(out), "no Debian kernel for the guest: apt-cache depends linux-image-amd64") || (err == nil) != (require == "") {
			t.Errorf("RAMPART_REQUIRE_QEMU=%q: %v, want %q with the reason\n%s", require, err, want, out)
		}
	}
}

// TestMeasuredBootAttestation boots a UKI holding the real rampart-agent under QEMU with OVMF
// and swtpm, and has the agent, on the guest's kernel TPM, enroll and attest to a real server on
// the host. The host claims the device and registers first an OS release whose golden PCR 4
// is wrong, which the verifier refuses with firmware_not_allowed, then one with the PCR 4 and
// PCR 11 values computed here from the UKI, which passes.
func TestMeasuredBootAttestation(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a virtual machine")
	}
	requireTools(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	dir := t.TempDir()
	start := time.Now()
	step := func(what string) { t.Logf("%5.1fs %s", time.Since(start).Seconds(), what) }

	kernel, nic := kernelFiles(t, ctx)
	agentBin := filepath.Join(dir, "rampart-agent")
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", agentBin, "github.com/rampart-iot/rampart/cmd/rampart-agent")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building rampart-agent without cgo: %v\n%s", err, b)
	}

	step("built the agent")
	srv := servertest.Start(t)
	px := startProxy(t, srv)

	// The initramfs: busybox, the agent, the NIC driver, the proxy's CA, an OS bundle.
	stage := filepath.Join(dir, "initramfs")
	osBundle := "rampart measured-boot test guest 1\n"
	files := map[string]string{ // path in the guest -> host file to copy
		"bin/busybox":       busybox,
		"bin/rampart-agent": agentBin,
		"lib/nic.ko":        nic,
	}
	for p, src := range files {
		copyFile(t, src, filepath.Join(stage, p), 0o755)
	}
	writeFile(t, filepath.Join(stage, "etc/rampart/ca.pem"), px.caPEM, 0o644)
	writeFile(t, filepath.Join(stage, "etc/rampart/os-bundle"), []byte(osBundle), 0o644)
	writeFile(t, filepath.Join(stage, "init"), []byte(guestInit(px.guestURL)), 0o755)
	for _, d := range []string{"proc", "sys", "dev", "run", "tmp", "var/lib/rampart"} {
		if err := os.MkdirAll(filepath.Join(stage, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	initrd := filepath.Join(dir, "initrd.cpio.gz")
	makeInitramfs(t, ctx, stage, initrd)

	cmdline := filepath.Join(dir, "cmdline")
	writeFile(t, cmdline, []byte("console=ttyS0 quiet loglevel=1 panic=-1"), 0o644)
	osrel := filepath.Join(dir, "os-release")
	writeFile(t, osrel, []byte("NAME=\"Rampart measured-boot test\"\nID=rampart-test\nVERSION_ID=1\n"), 0o644)
	ukiPath := filepath.Join(dir, "uki.efi")
	if err := (UKI{Stub: efiStub, Kernel: kernel, Initrd: initrd, OSRelease: osrel, Cmdline: cmdline}).Build(ctx, ukiPath); err != nil {
		t.Fatal(err)
	}
	uki, err := os.ReadFile(ukiPath)
	if err != nil {
		t.Fatal(err)
	}
	golden, err := GoldenPCRs(uki)
	if err != nil {
		t.Fatal(err)
	}
	esp := filepath.Join(dir, "esp.img")
	makeESP(t, ctx, ukiPath, esp)

	// The monitor's golden measurements, computed from the same files.
	digests, err := measure.Digests(measure.Inputs{AgentBinary: agentBin, OSBundle: filepath.Join(stage, "etc/rampart/os-bundle")})
	if err != nil {
		t.Fatal(err)
	}
	monitor := map[string]string{}
	for k, v := range digests {
		monitor[k] = hex.EncodeToString(v)
	}

	step("built the UKI")
	vm := bootVM(t, ctx, dir, esp)

	api := srv.Client(t, srv.AdminToken)
	var recJSON []byte
	var rec *enrollment.Record
	for copy := 1; ; copy++ {
		enrollLine := vm.waitLine(t, ctx, "RAMPART-ENROLL ")
		recJSON, err = base64.StdEncoding.DecodeString(enrollLine)
		if err == nil {
			rec, err = enrollment.Parse(recJSON)
		}
		if err == nil {
			break
		}
		if copy == 3 {
			t.Fatalf("enrollment record from the guest (three copies): %v", err)
		}
		t.Logf("enrollment record from the guest, copy %d: %v; taking the next copy", copy, err)
	}
	step("the guest enrolled")
	if rec.RootOfTrust != enrollment.RootOfTrustTPM {
		t.Fatalf("the guest enrolled with root of trust %q", rec.RootOfTrust)
	}
	wrong := withFirmware(monitor, map[int][]byte{4: digest([]byte("some other kernel"))})
	if _, err := api.CreateOSRelease(ctx, srv.TenantID, v1.OSReleaseCreate{Version: "wrong-kernel", Measurements: wrong}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := api.ClaimDevice(ctx, srv.TenantID, v1.DeviceClaim{Enrollment: recJSON}); err != nil {
		t.Fatal(err)
	}

	// Negative: a release whose golden PCR 4 is another kernel's is refused, with the reason.
	refused := waitAttestation(t, ctx, vm, func(a v1.Attestation) bool {
		return a.Result == "fail" && a.Reason != attest.ReasonDeviceUnknown
	}, func() ([]v1.Attestation, error) {
		l, err := api.ListAttestations(ctx, srv.TenantID, rec.DeviceID, servertestList())
		return l.Items, err
	})
	if refused.Reason != attest.ReasonFirmwareRefused || !strings.Contains(refused.Message, attest.FirmwarePCRMeasurement(4)) {
		t.Fatalf("with a wrong golden PCR 4 the attestation failed with %s: %s; want %s naming %s", refused.Reason, refused.Message,
			attest.ReasonFirmwareRefused, attest.FirmwarePCRMeasurement(4))
	}

	step("refused with a wrong golden PCR 4")
	// Positive: the UKI's own golden values.
	good := withFirmware(monitor, map[int][]byte{4: golden.PCR4, 9: golden.PCR9, 11: golden.PCR11})
	if _, err := api.CreateOSRelease(ctx, srv.TenantID, v1.OSReleaseCreate{Version: "uki-1", Measurements: good}); err != nil {
		t.Fatal(err)
	}
	passed := waitAttestation(t, ctx, vm, func(a v1.Attestation) bool { return a.Result == "pass" }, func() ([]v1.Attestation, error) {
		l, err := api.ListAttestations(ctx, srv.TenantID, rec.DeviceID, servertestList())
		return l.Items, err
	})
	step("passed")
	vm.waitLine(t, ctx, "RAMPART-ATTESTED")
	vm.wait(t)
	step("the guest powered off")

	if passed.CertificateSerial == "" {
		t.Fatalf("the passing attestation issued no certificate: %+v", passed)
	}
	var recd struct {
		OSRelease    string            `json:"os_release"`
		Measurements map[string]string `json:"measurements"`
		Firmware     *attest.Firmware  `json:"firmware"`
	}
	if err := json.Unmarshal(passed.Measurements, &recd); err != nil {
		t.Fatalf("recorded measurements: %v: %s", err, passed.Measurements)
	}
	if recd.OSRelease != "uki-1" {
		t.Errorf("matched release %q, want uki-1", recd.OSRelease)
	}
	for _, p := range attest.FirmwarePCRs {
		if _, ok := recd.Measurements[attest.FirmwarePCRMeasurement(p)]; !ok {
			t.Errorf("the attestation does not cover firmware PCR %d: %v", p, recd.Measurements)
		}
	}
	for p, want := range map[int][]byte{4: golden.PCR4, 9: golden.PCR9, 11: golden.PCR11} {
		if got := recd.Measurements[attest.FirmwarePCRMeasurement(p)]; got != hex.EncodeToString(want) {
			t.Errorf("recorded PCR %d = %s, want the UKI's golden %x", p, got, want)
		}
	}
	for k, v := range monitor {
		if recd.Measurements[k] != v {
			t.Errorf("recorded %s = %s, want %s", k, recd.Measurements[k], v)
		}
	}
	if recd.Firmware == nil || recd.Firmware.SecureBoot != attest.SecureBootDisabled || len(recd.Firmware.BootApplications) != 2 ||
		recd.Firmware.BootApplications[0] != hex.EncodeToString(golden.Apps[0]) || recd.Firmware.BootApplications[1] != hex.EncodeToString(golden.Apps[1]) {
		t.Errorf("recorded firmware %+v; want Secure Boot disabled and the UKI and its kernel as boot applications %x", recd.Firmware, golden.Apps)
	}
	t.Logf("attested a real measured boot: %d firmware events, PCR 4 %x, PCR 11 %x", recd.Firmware.Events, golden.PCR4, golden.PCR11)

	if out := os.Getenv("RAMPART_CAPTURE_FIRMWARE"); out != "" {
		saveCapture(t, out, rec, px.passed(), good)
	}
}

// servertestList is one page large enough for this test's attempts.
func servertestList() client.ListOptions { return client.ListOptions{MaxPageSize: 1000} }

func withFirmware(monitor map[string]string, fw map[int][]byte) map[string]string {
	out := map[string]string{}
	for k, v := range monitor {
		out[k] = v
	}
	for p, d := range fw {
		out[attest.FirmwarePCRMeasurement(p)] = hex.EncodeToString(d)
	}
	return out
}

// waitAttestation polls the service until an attestation of the device satisfies ok.
func waitAttestation(t *testing.T, ctx context.Context, vm *vm, ok func(v1.Attestation) bool, list func() ([]v1.Attestation, error)) v1.Attestation {
	t.Helper()
	for {
		items, err := list()
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range items {
			if ok(a) {
				return a
			}
		}
		select {
		case <-ctx.Done():
			vm.dump(t)
			t.Fatalf("no such attestation before the deadline; attestations: %+v", items)
		case <-vm.exited:
			vm.dump(t)
			t.Fatalf("the guest stopped first; attestations: %+v", items)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// guestInit is the guest's /init: it brings up the network, enrolls on the kernel TPM, prints
// the record on the second serial port, and runs the agent until it has attested, nudging it
// with SIGHUP each second so it does not sleep through its backoff.
func guestInit(server string) string {
	return `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t securityfs securityfs /sys/kernel/security
mount -t tmpfs run /run
dmesg -n 1
say() { echo "$*" > /dev/ttyS1; }
die() { say "RAMPART-FAILED $*"; poweroff -f; }
insmod /lib/nic.ko || die insmod
ip link set lo up
ip link set eth0 up || die eth0
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
[ -e /dev/tpmrm0 ] || die "no /dev/tpmrm0"
[ -e /sys/kernel/security/tpm0/binary_bios_measurements ] || die "no firmware event log"
rampart-agent enroll --rot tpm:/dev/tpmrm0 --state /var/lib/rampart --out /run/enroll.json > /dev/ttyS0 2>&1 || die enroll
# Three times: the test takes the first copy that decodes (a serial line can be garbled on a
# loaded host).
for n in 1 2 3; do say "RAMPART-ENROLL $(base64 -w 0 /run/enroll.json)"; done
rampart-agent run --rot tpm:/dev/tpmrm0 --state /var/lib/rampart --server ` + server + ` --cacert /etc/rampart/ca.pem \
	--os-bundle /etc/rampart/os-bundle --run-dir /run/rampart > /dev/ttyS0 2>&1 &
pid=$!
i=0
while [ $i -lt 600 ]; do
	sleep 1
	st=$(cat /var/lib/rampart/status.json 2>/dev/null)
	case "$st" in
	*'"state": "attested"'*|*'"state":"attested"'*) say "RAMPART-ATTESTED"; sync; poweroff -f;;
	*'"state"'*) kill -HUP $pid;;
	esac
	kill -0 $pid 2>/dev/null || die "the agent exited"
	i=$((i+1))
done
die timeout
`
}

// kernelFiles returns a Debian 6.1 kernel and its e1000 module, from the linux-image package
// internal/qemuvm fetches with apt-get download and extracts (both cached).
func kernelFiles(t *testing.T, ctx context.Context) (vmlinuz, nic string) {
	t.Helper()
	cache, err := qemuvm.DefaultCache()
	if err != nil {
		t.Fatal(err)
	}
	k, err := qemuvm.FetchKernel(ctx, cache)
	if err != nil {
		requireOrSkip(t, "no Debian kernel for the guest: %v", err)
	}
	if vmlinuz, err = k.Vmlinuz(ctx); err != nil {
		requireOrSkip(t, "no Debian kernel for the guest: %v", err)
	}
	kos, err := k.Modules(ctx, "e1000")
	if err != nil {
		requireOrSkip(t, "no Debian kernel for the guest: %v", err)
	}
	if len(kos) != 1 {
		t.Fatalf("e1000 is %d modules: %v", len(kos), kos)
	}
	return vmlinuz, kos[0]
}

func makeInitramfs(t *testing.T, ctx context.Context, stage, out string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, "sh", "-c", `cd "$1" && find . | sort | "$2" cpio -o -H newc`, "sh", stage, busybox)
	var raw, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &raw, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("busybox cpio: %v\n%s", err, stderr.Bytes())
	}
	var gz bytes.Buffer
	w, _ := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	if _, err := w.Write(raw.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	writeFile(t, out, gz.Bytes(), 0o644)
}

// makeESP makes a FAT EFI system partition image with the UKI as the removable-media boot
// application, which OVMF boots with no boot entries configured.
func makeESP(t *testing.T, ctx context.Context, uki, out string) {
	t.Helper()
	st, err := os.Stat(uki)
	if err != nil {
		t.Fatal(err)
	}
	kb := st.Size()/1024 + 4096
	for _, args := range [][]string{
		{"mkfs.vfat", "-C", out, fmt.Sprint(kb)},
		{"mmd", "-i", out, "::/EFI", "::/EFI/BOOT"},
		{"mcopy", "-i", out, uki, "::/EFI/BOOT/BOOTX64.EFI"},
	} {
		if b, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, b)
		}
	}
}

// vm is a running QEMU guest with swtpm as its TPM.
type vm struct {
	console, data string
	exited        chan struct{}
	err           error
	seen          int // bytes of data already consumed by waitLine
}

func bootVM(t *testing.T, ctx context.Context, dir, esp string) *vm {
	t.Helper()
	state := filepath.Join(dir, "swtpm")
	if err := os.MkdirAll(state, 0o700); err != nil {
		t.Fatal(err)
	}
	// A socket's path is at most 107 bytes, which t.TempDir() under a long TMPDIR exceeds.
	sockDir, err := os.MkdirTemp("/tmp", "rampart-swtpm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	sock := filepath.Join(sockDir, "swtpm.sock")
	sw := exec.Command("swtpm", "socket", "--tpm2", "--tpmstate", "dir="+state, "--ctrl", "type=unixio,path="+sock,
		"--flags", "not-need-init", "--terminate")
	var swErr bytes.Buffer
	sw.Stderr = &swErr
	// Started with qemuvm.Start, swtpm and QEMU die with this process.
	swExited, err := qemuvm.Start(sw)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = sw.Process.Kill()
		<-swExited
	})
	for i := 0; ; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if i == 100 {
			t.Fatalf("swtpm did not create its socket: %s", swErr.Bytes())
		}
		time.Sleep(50 * time.Millisecond)
	}
	vars := filepath.Join(dir, "OVMF_VARS.fd")
	copyFile(t, ovmfVars, vars, 0o644)
	v := &vm{console: filepath.Join(dir, "console.log"), data: filepath.Join(dir, "data.log"), exited: make(chan struct{})}
	q := exec.CommandContext(ctx, "qemu-system-x86_64",
		"-machine", "q35", "-accel", "tcg", "-cpu", "max", "-m", "512", "-smp", "1",
		"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+ovmfCode,
		"-drive", "if=pflash,format=raw,unit=1,file="+vars,
		"-chardev", "socket,id=chrtpm,path="+sock, "-tpmdev", "emulator,id=tpm0,chardev=chrtpm", "-device", "tpm-tis,tpmdev=tpm0",
		"-drive", "if=none,id=esp,format=raw,file="+esp, "-device", "virtio-blk-pci,drive=esp,bootindex=0",
		"-netdev", "user,id=n0", "-device", "e1000,netdev=n0,romfile=",
		"-nodefaults", "-no-reboot", "-display", "none", "-monitor", "none",
		"-serial", "file:"+v.console, "-serial", "file:"+v.data)
	var qErr bytes.Buffer
	q.Stdout, q.Stderr = &qErr, &qErr
	qExited, err := qemuvm.Start(q)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		err := <-qExited
		if err != nil {
			err = fmt.Errorf("%w: %s", err, qErr.Bytes())
		}
		v.err = err
		close(v.exited)
	}()
	t.Cleanup(func() {
		_ = q.Process.Kill()
		<-v.exited
	})
	return v
}

// waitLine waits for a line on the guest's data port that starts with prefix, and returns the
// rest of it. A line starting RAMPART-FAILED ends the test.
func (v *vm) waitLine(t *testing.T, ctx context.Context, prefix string) string {
	t.Helper()
	for {
		b, _ := os.ReadFile(v.data)
		sc := bufio.NewScanner(bytes.NewReader(b[v.seen:]))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		off := v.seen
		for sc.Scan() {
			line := strings.TrimRight(sc.Text(), "\r")
			off += len(sc.Bytes()) + 1
			if off > len(b) { // a line still being written
				break
			}
			if strings.HasPrefix(line, "RAMPART-FAILED") {
				v.dump(t)
				t.Fatalf("the guest failed: %s", line)
			}
			if strings.HasPrefix(line, prefix) {
				v.seen = off
				return strings.TrimPrefix(line, prefix)
			}
		}
		select {
		case <-ctx.Done():
			v.dump(t)
			t.Fatalf("no %q from the guest before the deadline", prefix)
		case <-v.exited:
			if b2, _ := os.ReadFile(v.data); len(b2) != len(b) {
				continue
			}
			v.dump(t)
			t.Fatalf("the guest stopped before printing %q: %v", prefix, v.err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// wait waits for the guest to power off.
func (v *vm) wait(t *testing.T) {
	t.Helper()
	select {
	case <-v.exited:
	case <-time.After(time.Minute):
		v.dump(t)
		t.Fatal("the guest did not power off")
	}
	if v.err != nil {
		v.dump(t)
		t.Fatalf("QEMU: %v", v.err)
	}
}

func (v *vm) dump(t *testing.T) {
	t.Helper()
	b, _ := os.ReadFile(v.console)
	if len(b) > 16<<10 {
		b = b[len(b)-16<<10:]
	}
	t.Logf("guest console (tail):\n%s", b)
}

// proxy is the host-side bridge the guest talks to: TLS for the address the guest sees
// (10.0.2.2) with its own CA, forwarding to the service and keeping the attestation requests.
type proxy struct {
	guestURL string
	caPEM    []byte

	mu   sync.Mutex
	reqs []capturedRequest
}

type capturedRequest struct {
	body   []byte
	status int
}

func (p *proxy) passed() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.reqs) - 1; i >= 0; i-- {
		if p.reqs[i].status == http.StatusOK {
			return p.reqs[i].body
		}
	}
	return nil
}

func startProxy(t *testing.T, srv *servertest.Server) *proxy {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "measured-boot test proxy CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(2),
		Subject: pkix.Name{CommonName: guestHost}, IPAddresses: []net.IP{net.ParseIP(guestHost)},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	target, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(srv.CACertPEM)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
	p := &proxy{caPEM: pemCert(caDER)}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/device/attestation" {
			rp.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		rp.ServeHTTP(rec, r)
		p.mu.Lock()
		p.reqs = append(p.reqs, capturedRequest{body: body, status: rec.status})
		p.mu.Unlock()
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: h, TLSConfig: &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER}, PrivateKey: key}}},
		ReadHeaderTimeout: 30 * time.Second}
	go func() { _ = hs.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = hs.Close() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	p.guestURL = "https://" + net.JoinHostPort(guestHost, port)
	return p
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// capture is the testdata internal/attest's captured-boot test reads.
type capture struct {
	Comment      string                `json:"comment"`
	Device       captureDevice         `json:"device"`
	Request      v1.AttestationRequest `json:"request"`
	Measurements map[string]string     `json:"release_measurements"`
}

type captureDevice struct {
	ID       string `json:"id"`
	EKPublic []byte `json:"ek_public"`
	AKPublic []byte `json:"ak_public"`
}

func saveCapture(t *testing.T, out string, rec *enrollment.Record, body []byte, release map[string]string) {
	t.Helper()
	if body == nil {
		t.Fatal("no passing attestation request was captured")
	}
	var req v1.AttestationRequest
	if err := json.Unmarshal(body, &req); err != nil {
		t.Fatal(err)
	}
	c := capture{
		Comment: "a real measured boot captured by internal/measuredboot's TestMeasuredBootAttestation " +
			"(QEMU TCG q35, OVMF " + filepath.Base(ovmfCode) + ", swtpm, a UKI with systemd-stub and a Debian 6.1 kernel): " +
			"the device's enrollment, its attestation request, and the OS release that passed it",
		Device:       captureDevice{ID: rec.DeviceID, EKPublic: rec.EKPublic, AKPublic: rec.AKPublic},
		Request:      req,
		Measurements: release,
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, out, append(b, '\n'), 0o644)
	t.Logf("captured the attestation to %s", out)
}

func pemCert(der []byte) []byte {
	return []byte("-----BEGIN CERTIFICATE-----\n" + wrap(base64.StdEncoding.EncodeToString(der)) + "-----END CERTIFICATE-----\n")
}

func wrap(s string) string {
	var b strings.Builder
	for len(s) > 64 {
		b.WriteString(s[:64] + "\n")
		s = s[64:]
	}
	b.WriteString(s + "\n")
	return b.String()
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dst, b, mode)
}

func writeFile(t *testing.T, path string, b []byte, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}
