package qemuvm

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
)

// MaxOutput bounds what is kept of each serial port's output.
const MaxOutput = 4 << 20

// Machine is one direct kernel boot: QEMU loads Kernel and Initrd itself (no firmware boot
// loader), with the guest's first serial port (ttyS0) as its console and the second (ttyS1)
// as a data port, each written to a file in Dir.
type Machine struct {
	Kernel, Initrd string
	// Cmdline is appended to "console=ttyS0 panic=-1": set quiet, loglevel or rdinit here.
	Cmdline   string
	MemoryMiB int // default 512
	// CPUs is the guest's number of processors (default 1). A guest whose test answers a
	// driver's requests from user space (uhid) wants 2: the answers then do not wait for the
	// processor the request is made on.
	CPUs int
	Dir  string
	// Args are more QEMU arguments: further -serial ports are the guest's ttyS2 and ttyS3.
	Args []string
	// Accel is QEMU's accelerator: "tcg" (the default, emulation) or "kvm". TCG is the default
	// because on the machines CI runs on /dev/kvm exists but is nested, and a guest under it
	// hangs before its first console line.
	Accel string
}

// Output is what the guest wrote on its serial ports.
type Output struct {
	Console, Data []byte
}

// Run boots the machine and waits for QEMU to exit: the guest powers off (QEMU runs with
// -no-reboot, so a reboot or a panic ends it too) or ctx ends. It returns what the guest wrote
// either way, with an error when QEMU failed or ctx ended first.
func (m Machine) Run(ctx context.Context) (*Output, error) {
	mem := m.MemoryMiB
	if mem == 0 {
		mem = 512
	}
	cpus := m.CPUs
	if cpus == 0 {
		cpus = 1
	}
	out := &Output{}
	accel, cpu := "tcg", "max"
	if m.Accel == "kvm" {
		accel, cpu = "kvm", "host"
	}
	console, data := filepath.Join(m.Dir, "console.log"), filepath.Join(m.Dir, "data.log")
	args := []string{"-machine", "q35", "-accel", accel, "-cpu", cpu, "-m", fmt.Sprint(mem), "-smp", fmt.Sprint(cpus),
		"-kernel", m.Kernel, "-initrd", m.Initrd, "-append", "console=ttyS0 panic=-1 " + m.Cmdline,
		"-nodefaults", "-no-reboot", "-display", "none", "-monitor", "none", "-nic", "none",
		"-serial", "file:" + console, "-serial", "file:" + data}
	args = append(args, m.Args...)
	q := exec.CommandContext(ctx, "qemu-system-x86_64", args...)
	var qErr bytes.Buffer
	q.Stdout, q.Stderr = &qErr, &qErr
	exited, err := Start(q)
	if err == nil {
		err = <-exited
	}
	out.Console, out.Data = tail(console), tail(data)
	if ctx.Err() != nil {
		return out, fmt.Errorf("the guest did not power off in time: %w", ctx.Err())
	}
	if err != nil {
		return out, fmt.Errorf("qemu-system-x86_64: %w: %s", err, bytes.TrimSpace(qErr.Bytes()))
	}
	return out, nil
}

// Start starts cmd so that it does not outlive this process: the kernel kills it (SIGKILL) when
// the thread that started it exits, which with Pdeathsig set is what a parent's death means.
// Go threads come and go (a goroutine locked to its thread that returns ends that thread), so
// cmd is started and waited for from a goroutine locked to its thread for cmd's whole life, and
// that thread ends only with this process or after cmd has exited. The channel receives
// cmd.Wait's result.
func Start(cmd *exec.Cmd) (<-chan error, error) {
	started, exited := make(chan error, 1), make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread() // only once cmd has exited
		if cmd.SysProcAttr == nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{}
		}
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		exited <- cmd.Wait()
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return exited, nil
}

// tail reads at most the last MaxOutput bytes of a serial log.
func tail(name string) []byte {
	f, err := os.Open(name)
	if err != nil {
		return nil
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil
	}
	off := st.Size() - MaxOutput
	if off < 0 {
		off = 0
	}
	b := make([]byte, st.Size()-off)
	n, _ := f.ReadAt(b, off)
	return b[:n]
}
