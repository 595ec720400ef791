package qemuvm

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
	Dir       string
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
	out := &Output{}
	accel, cpu := "tcg", "max"
	if m.Accel == "kvm" {
		accel, cpu = "kvm", "host"
	}
	console, data := filepath.Join(m.Dir, "console.log"), filepath.Join(m.Dir, "data.log")
	args := []string{"-machine", "q35", "-accel", accel, "-cpu", cpu, "-m", fmt.Sprint(mem), "-smp", "1",
		"-kernel", m.Kernel, "-initrd", m.Initrd, "-append", "console=ttyS0 panic=-1 " + m.Cmdline,
		"-nodefaults", "-no-reboot", "-display", "none", "-monitor", "none", "-nic", "none",
		"-serial", "file:" + console, "-serial", "file:" + data}
	args = append(args, m.Args...)
	q := exec.CommandContext(ctx, "qemu-system-x86_64", args...)
	var qErr bytes.Buffer
	q.Stdout, q.Stderr = &qErr, &qErr
	err := q.Run()
	out.Console, out.Data = tail(console), tail(data)
	if ctx.Err() != nil {
		return out, fmt.Errorf("the guest did not power off in time: %w", ctx.Err())
	}
	if err != nil {
		return out, fmt.Errorf("qemu-system-x86_64: %w: %s", err, bytes.TrimSpace(qErr.Bytes()))
	}
	return out, nil
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
