package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/agent"
	"github.com/rampart-iot/rampart/internal/attestclient"
	"github.com/rampart-iot/rampart/internal/measure"
	"github.com/rampart-iot/rampart/internal/residency"
	"github.com/rampart-iot/rampart/internal/server/servertest"
	"golang.org/x/sys/unix"
)

// printMemoryFigures prints issue 5's idle-memory figures for the device build of the agent
// (agentBin): its idle PSS beside the goal; the floor, a minimal two-process Go program built
// the same way, beside it; and, on storage with the kernel's default read-ahead (128 KB, as
// a device's eMMC or SD card has, where this machine's disk has 8 MB), the agent with and
// without the residency package's advice, with the start-up it costs.
func printMemoryFigures(t *testing.T, agentBin string) {
	srv := servertest.Start(t, servertest.AllowSoftwareRootOfTrust(true))
	run, err := agentIdle(t, srv, agentBin, nil)
	if err != nil {
		fmt.Printf("%-48s %s\n", "rampart-agent idle resident memory", "not measured: "+err.Error())
		return
	}
	fmt.Printf("%-48s %10.1f MB   %-36s %10.1f MB\n", "rampart-agent idle memory (PSS): monitor + broker", mb(run.pss()), "goal", 10.0)
	fmt.Printf("%-48s %10.1f MB, %.1f MB\n", "  of which monitor, broker", mb(run.monitor), mb(run.broker))
	floorBin := goBuild(t, "./testdata/floor", true, "-trimpath", "-ldflags=-s -w")
	floor, err := floorIdle(t, srv, floorBin, run.state)
	if err != nil {
		fmt.Printf("%-48s %s\n", "two-process Go floor", "not measured: "+err.Error())
	} else {
		fmt.Printf("%-48s %10.1f MB   %-36s %10.1f MB %6.1fx\n", "two-process Go floor (PSS), same build", mb(floor.pss()),
			"rampart-agent, as above", mb(run.pss()), float64(run.pss())/float64(floor.pss()))
		fmt.Printf("%-48s %10.1f MB, %.1f MB (binary %.1f MB)\n", "  of which first, second process", mb(floor.monitor), mb(floor.broker), fileMB(floorBin))
	}

	dir, err := deviceStorage(t)
	if err != nil {
		fmt.Printf("%-48s %s\n", "on 128 KB read-ahead storage", "not measured: "+err.Error())
		return
	}
	devAgent, devFloor := filepath.Join(dir, "rampart-agent"), filepath.Join(dir, "floor")
	for src, dst := range map[string]string{agentBin: devAgent, floorBin: devFloor} {
		if err := copyFile(src, dst); err != nil {
			fmt.Printf("%-48s %s\n", "on 128 KB read-ahead storage", "not measured: "+err.Error())
			return
		}
	}
	advised, err := agentIdle(t, srv, devAgent, nil)
	if err != nil {
		fmt.Printf("%-48s %s\n", "on 128 KB read-ahead storage", "not measured: "+err.Error())
		return
	}
	plain, err := agentIdle(t, srv, devAgent, []string{residency.Off + "=1"})
	if err != nil {
		fmt.Printf("%-48s %s\n", "on 128 KB read-ahead storage", "not measured: "+err.Error())
		return
	}
	fmt.Printf("%-48s %10.1f MB   %-36s %10.1f MB %6.1fx\n", "128 KB read-ahead storage: agent idle PSS", mb(advised.pss()),
		"the same, "+residency.Off+"=1", mb(plain.pss()), float64(advised.pss())/float64(plain.pss()))
	fmt.Printf("%-48s %10.1f MB, %.1f MB   %-23s %10.1f MB, %.1f MB\n", "  of which monitor, broker", mb(advised.monitor), mb(advised.broker),
		"", mb(plain.monitor), mb(plain.broker))
	fmt.Printf("%-48s %10d      %-36s %10d\n", "  major faults, monitor + broker, start to idle", advised.majors, "", plain.majors)
	fmt.Printf("%-48s %10.0f ms   %-36s %10.0f ms\n", "  start to attested", millis(advised.attested), "", millis(plain.attested))
	onExec, onFaults, err := coldExec(devAgent, nil)
	if err != nil {
		fmt.Printf("%-48s %s\n", "  cold `rampart-agent version`", "not measured: "+err.Error())
	} else {
		offExec, offFaults, err := coldExec(devAgent, []string{residency.Off + "=1"})
		if err != nil {
			fmt.Printf("%-48s %s\n", "  cold `rampart-agent version`", "not measured: "+err.Error())
		} else {
			fmt.Printf("%-48s %7.1f ms %4d   %-36s %7.1f ms %4d\n", "  cold `version` (median of 5), major faults", millis(onExec), onFaults,
				"", millis(offExec), offFaults)
		}
	}
	if floor, err := floorIdle(t, srv, devFloor, run.state); err != nil {
		fmt.Printf("%-48s %s\n", "  two-process Go floor", "not measured: "+err.Error())
	} else {
		fmt.Printf("%-48s %10.1f MB   %-36s %10.1f MB %6.1fx\n", "128 KB read-ahead storage: Go floor (PSS)", mb(floor.pss()),
			"rampart-agent, advised, as above", mb(advised.pss()), float64(advised.pss())/float64(floor.pss()))
	}
}

func mb(b int64) float64 { return float64(b) / 1e6 }

func fileMB(path string) float64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return float64(fi.Size()) / 1e6
}

// idleRun is one idle measurement of a two-process program.
type idleRun struct {
	monitor, broker int64         // PSS in bytes of the first process and of the second
	majors          int64         // major page faults of both, from their start
	attested        time.Duration // from the start to the attested state (the agent)
	state           string        // the agent's state directory
}

func (r idleRun) pss() int64 { return r.monitor + r.broker }

// releases numbers the OS releases the runs register, one per run.
var releases int

// agentIdle runs the real agent binary as an enrolled, claimed and attested device with
// the emulated board and boot control, with env added to its environment, lets it settle,
// and reads the resident memory of the monitor and of the cloud broker it started.
func agentIdle(t *testing.T, srv *servertest.Server, bin string, env []string) (idleRun, error) {
	ctx := t.Context()
	admin := srv.Client(t, srv.AdminToken)
	state := t.TempDir()
	shipped := filepath.Join(state, "os", "active")
	if err := os.MkdirAll(shipped, 0o755); err != nil {
		return idleRun{}, err
	}
	if err := os.WriteFile(filepath.Join(shipped, "VERSION"), []byte("os 1\n"), 0o644); err != nil {
		return idleRun{}, err
	}
	rec := filepath.Join(t.TempDir(), "device.json")
	if b, err := exec.Command(bin, "enroll", "--rot", "software", "--state", state, "--out", rec).CombinedOutput(); err != nil {
		return idleRun{}, fmt.Errorf("enroll: %v: %s", err, b)
	}
	recJSON, err := os.ReadFile(rec)
	if err != nil {
		return idleRun{}, err
	}
	if _, _, err := admin.ClaimDevice(ctx, srv.TenantID, v1.DeviceClaim{Enrollment: recJSON}); err != nil {
		return idleRun{}, err
	}
	dig, err := measure.Digests(measure.Inputs{AgentBinary: bin, PolicyFile: filepath.Join(state, "policy.json"), OSBundle: shipped})
	if err != nil {
		return idleRun{}, err
	}
	ms := map[string]string{}
	for k, v := range dig {
		ms[k] = hex.EncodeToString(v)
	}
	releases++
	if _, err := admin.CreateOSRelease(ctx, srv.TenantID, v1.OSReleaseCreate{Version: fmt.Sprintf("1.0.%d", releases), Measurements: ms}); err != nil {
		return idleRun{}, err
	}
	// The agent's pages come from storage, as on a device after boot: the compiler's freshly
	// written page cache can hold 2 MB folios the kernel maps whole, which inflates the figure
	// by an amount that depends on the machine's history.
	if err := dropPageCache(bin); err != nil {
		return idleRun{}, err
	}
	var log bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "run", "--rot", "software", "--state", state, "--server", srv.URL, "--cacert", srv.CACertFile,
		"--board", "emulated", "--boot-control", "dir", "--development")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = &log, &log
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return idleRun{}, err
	}
	defer func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() }()
	run := idleRun{state: state}
	deadline := time.Now().Add(time.Minute)
	for {
		if st, err := agent.ReadStatus(state); err == nil && st.State == agent.StateAttested {
			if run.attested == 0 {
				run.attested = time.Since(start)
			}
			if d, err := admin.GetDevice(ctx, srv.TenantID, st.DeviceID); err == nil && d.Status != nil {
				break
			}
		}
		if time.Now().After(deadline) {
			return idleRun{}, fmt.Errorf("the agent did not attest and check in within a minute")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(3 * time.Second) // idle: attested, checked in, waiting
	pid := cmd.Process.Pid
	brokerPID := childWithArg0(pid, "rampart-cloud-broker")
	if brokerPID == 0 {
		return idleRun{}, fmt.Errorf("no cloud broker process under the agent")
	}
	if run.monitor, err = rss(pid); err != nil {
		return idleRun{}, err
	}
	if run.broker, err = rss(brokerPID); err != nil {
		return idleRun{}, err
	}
	run.majors = majorFaults(pid) + majorFaults(brokerPID)
	return run, nil
}

// floorIdle runs the floor program (testdata/floor) from bin: its second process makes one
// mutual-TLS request to srv with the certificate the agent that used state was issued.
func floorIdle(t *testing.T, srv *servertest.Server, bin, state string) (idleRun, error) {
	certs := filepath.Join(state, attestclient.CertsLink)
	sock := filepath.Join(t.TempDir(), "floor.sock")
	if err := dropPageCache(bin); err != nil {
		return idleRun{}, err
	}
	cmd := exec.CommandContext(t.Context(), bin, sock, srv.URL, srv.CACertFile, filepath.Join(certs, attestclient.AgentCert),
		filepath.Join(certs, attestclient.AgentKey), filepath.Join(certs, attestclient.ChainFile))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return idleRun{}, err
	}
	if err := cmd.Start(); err != nil {
		return idleRun{}, err
	}
	defer func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }()
	line, err := bufio.NewReader(out).ReadString('\n')
	var second int
	if _, scanErr := fmt.Sscanf(line, "ready %d", &second); err != nil || scanErr != nil {
		return idleRun{}, fmt.Errorf("the floor did not start (%q, %v): %s", line, err, stderr.String())
	}
	// One request on the first process's socket, as the agent's local clients make.
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	resp, err := hc.Get("http://floor/")
	if err != nil {
		return idleRun{}, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	hc.CloseIdleConnections()
	time.Sleep(3 * time.Second) // idle, as the agent
	run := idleRun{}
	if run.monitor, err = rss(cmd.Process.Pid); err != nil {
		return idleRun{}, err
	}
	if run.broker, err = rss(second); err != nil {
		return idleRun{}, err
	}
	run.majors = majorFaults(cmd.Process.Pid) + majorFaults(second)
	return run, nil
}

// childWithArg0 returns the pid of pid's child whose argv[0] is arg0, or 0.
func childWithArg0(pid int, arg0 string) int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, c := range strings.Fields(string(b)) {
			n, _ := strconv.Atoi(c)
			if cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", n)); strings.HasPrefix(string(cmdline), arg0+"\x00") {
				return n
			}
		}
	}
	return 0
}

// majorFaults reads a process's major page faults (/proc/PID/stat, majflt), or -1.
func majorFaults(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 10 {
		return -1
	}
	n, err := strconv.ParseInt(f[9], 10, 64) // field 12 of stat, after pid and comm
	if err != nil {
		return -1
	}
	return n
}

// coldExec runs `bin version` five times, each with bin dropped from the page cache first,
// and returns the median time to its exit and the median of its major faults.
func coldExec(bin string, env []string) (time.Duration, int64, error) {
	var times []time.Duration
	var faults []int64
	for range 5 {
		if err := dropPageCache(bin); err != nil {
			return 0, 0, err
		}
		cmd := exec.Command(bin, "version")
		cmd.Env = append(os.Environ(), env...)
		start := time.Now()
		if b, err := cmd.CombinedOutput(); err != nil {
			return 0, 0, fmt.Errorf("%s version: %v: %s", bin, err, b)
		}
		times = append(times, time.Since(start))
		faults = append(faults, cmd.ProcessState.SysUsage().(*syscall.Rusage).Majflt)
	}
	slices.Sort(faults)
	return medianDuration(times), faults[len(faults)/2], nil
}

// deviceStorage mounts a fresh ext4 file system on a loop device (direct I/O, so reads reach
// this machine's disk) whose read-ahead is the kernel's default, 128 KB, as the eMMC or SD
// card of a device has, and returns its directory; this machine's own disk reads ahead 8 MB,
// so that a binary's first page fault reads most of a 14 MB binary. It needs root, mkfs.ext4
// and losetup; the test's cleanup unmounts and detaches it.
func deviceStorage(t *testing.T) (string, error) {
	dir := t.TempDir()
	img, mnt := filepath.Join(dir, "fs.img"), filepath.Join(dir, "mnt")
	f, err := os.Create(img)
	if err != nil {
		return "", err
	}
	err = f.Truncate(96 << 20)
	f.Close()
	if err != nil {
		return "", err
	}
	if b, err := exec.Command("mkfs.ext4", "-q", "-F", img).CombinedOutput(); err != nil {
		return "", fmt.Errorf("mkfs.ext4: %v: %s", err, b)
	}
	out, err := exec.Command("losetup", "--find", "--show", "--direct-io=on", img).Output()
	if err != nil {
		return "", fmt.Errorf("losetup: %w", err)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { _ = exec.Command("losetup", "--detach", dev).Run() })
	if err := os.WriteFile(filepath.Join("/sys/block", filepath.Base(dev), "queue/read_ahead_kb"), []byte("128"), 0o644); err != nil {
		return "", err
	}
	if err := os.Mkdir(mnt, 0o755); err != nil {
		return "", err
	}
	if err := unix.Mount(dev, mnt, "ext4", 0, ""); err != nil {
		return "", fmt.Errorf("mounting %s: %w", dev, err)
	}
	t.Cleanup(func() { _ = unix.Unmount(mnt, 0) })
	return mnt, nil
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o755)
}

// rss reads a process's proportional set size in bytes (/proc/PID/smaps_rollup "Pss"): its
// private pages plus its share of pages it shares, such as the binary's text, which the
// monitor and the broker (the same executable) share. Summed over both, it is the pair's
// real footprint; RSS would count the shared text twice. With RAMPART_BENCH_SMAPS set it
// prints the rollup, the thread count and the biggest mappings.
func rss(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, err
	}
	if os.Getenv("RAMPART_BENCH_SMAPS") != "" {
		fmt.Printf("smaps_rollup of %d:\n%s", pid, b)
		if err := printMappings(pid, 8); err != nil {
			return 0, err
		}
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Pss:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no Pss for pid %d", pid)
}

// printMappings prints a process's thread count and its n biggest mappings by PSS
// (/proc/PID/smaps), with their resident, private dirty and shared sizes in kB.
func printMappings(pid, n int) error {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "Threads:") {
			fmt.Printf("%s\n", strings.Join(strings.Fields(line), " "))
		}
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return err
	}
	type mapping struct {
		name   string
		fields map[string]int64
	}
	var maps []mapping
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":"):
			name := f[0] + " " + f[1] + " [anon]"
			if len(f) >= 6 {
				name = f[0] + " " + f[1] + " " + f[5]
			}
			maps = append(maps, mapping{name: name, fields: map[string]int64{}})
		case len(f) == 3 && f[2] == "kB" && len(maps) > 0:
			v, _ := strconv.ParseInt(f[1], 10, 64)
			maps[len(maps)-1].fields[strings.TrimSuffix(f[0], ":")] = v
		}
	}
	slices.SortFunc(maps, func(a, b mapping) int { return int(b.fields["Pss"] - a.fields["Pss"]) })
	fmt.Printf("%8s %8s %8s %8s %8s  mapping\n", "Pss", "Rss", "PrivDrty", "Shared", "Size")
	for _, m := range maps[:min(n, len(maps))] {
		f := m.fields
		fmt.Printf("%8d %8d %8d %8d %8d  %s\n", f["Pss"], f["Rss"], f["Private_Dirty"], f["Shared_Clean"]+f["Shared_Dirty"], f["Size"], m.name)
	}
	return nil
}

// dropPageCache writes a file's pages back and drops them from the page cache, so that the
// next reader reads it from storage.
func dropPageCache(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", path, err)
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		return fmt.Errorf("dropping %s from the page cache: %w", path, err)
	}
	return nil
}
