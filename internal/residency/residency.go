// Package residency keeps the running executable's untouched pages out of memory: it advises
// the kernel (madvise MADV_RANDOM) that the process reads its own executable's file-backed
// mappings (text, read-only data, the data segment's file pages) at random, so that a page
// fault in them reads and maps the page it needs instead of a read-around window of the file
// (the block device's read_ahead_kb, centred on the fault) that the kernel would then also
// map, in large folios, whole.
//
// It changes what is read and mapped, never what is used: pages the process touches are read
// on their fault as before, and nothing the process has mapped is dropped. The cost is more,
// smaller reads at start-up (one per page touched instead of one per window), which on flash
// storage means a slower first start after boot (docs/PERFORMANCE.md has the figures).
//
// Importing the package is enough: its init advises, as early in the program's start as
// package initialisation allows (the faults the runtime and the packages initialised before
// it take have already read their windows), and Result says what it did. The agent's main
// imports it; its cloud broker and sandbox set-up processes, the same binary re-executed,
// advise in turn.
//
// Trust: it reads /proc/self/exe and /proc/self/maps, which the kernel writes.
package residency

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"syscall"
)

// Off is the environment variable that, set to "1", leaves the kernel's read-around in
// place: Advise then does nothing.
const Off = "RAMPART_READAROUND"

// maxMaps bounds the read of /proc/self/maps: a Go process has a few dozen mappings, each
// line at most a few hundred bytes.
const maxMaps = 1 << 20

// madvRandom is MADV_RANDOM (asm-generic/mman-common.h, the same on every architecture).
const madvRandom = 1

// What the package's init did: bytes advised, or why it could not.
var advised, adviseErr = Advise()

// Result returns what the package's init did: the bytes of the executable's mappings it
// advised (0 with Off set), or why it could not.
func Result() (int, error) { return advised, adviseErr }

// Span is one mapping of the executable, [Start, End).
type Span struct{ Start, End uintptr }

// Advise advises the kernel that the process's mappings of its own executable are read at
// random, and returns the number of bytes it advised. With Off set to "1" it does nothing.
// The package's init calls it; calling it again does no harm.
func Advise() (int, error) {
	if v, _ := syscall.Getenv(Off); v == "1" {
		return 0, nil
	}
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/self/exe", &st); err != nil {
		return 0, fmt.Errorf("residency: %w", err)
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, fmt.Errorf("residency: %w", err)
	}
	defer f.Close()
	maps, err := io.ReadAll(io.LimitReader(f, maxMaps+1))
	if err != nil {
		return 0, fmt.Errorf("residency: reading /proc/self/maps: %w", err)
	}
	if len(maps) > maxMaps {
		return 0, fmt.Errorf("residency: /proc/self/maps is over %d bytes", maxMaps)
	}
	spans, err := Mappings(maps, uint64(st.Dev), st.Ino)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, s := range spans {
		if _, _, e := syscall.Syscall(syscall.SYS_MADVISE, s.Start, s.End-s.Start, madvRandom); e != 0 {
			return n, fmt.Errorf("residency: madvise %#x-%#x: %w", s.Start, s.End, e)
		}
		n += int(s.End - s.Start)
	}
	return n, nil
}

// Mappings returns the mappings in maps (the format of /proc/PID/maps) of the file with
// device dev (as stat reports it) and inode ino.
func Mappings(maps []byte, dev, ino uint64) ([]Span, error) {
	var spans []Span
	for line := range bytes.Lines(maps) {
		// start-end perms offset major:minor inode [path]
		f := bytes.Fields(line)
		if len(f) < 5 {
			return nil, fmt.Errorf("residency: malformed maps line %q", line)
		}
		i, err := strconv.ParseUint(string(f[4]), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("residency: maps line %q: inode: %w", line, err)
		}
		if i != ino || i == 0 {
			continue
		}
		d, err := parseDev(f[3])
		if err != nil {
			return nil, fmt.Errorf("residency: maps line %q: %w", line, err)
		}
		if d != dev {
			continue
		}
		startHex, endHex, ok := bytes.Cut(f[0], []byte("-"))
		if !ok {
			return nil, fmt.Errorf("residency: maps line %q: no address range", line)
		}
		start, err1 := strconv.ParseUint(string(startHex), 16, 64)
		end, err2 := strconv.ParseUint(string(endHex), 16, 64)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("residency: maps line %q: address range: %w", line, err)
		}
		if end <= start || uint64(uintptr(end)) != end {
			return nil, fmt.Errorf("residency: maps line %q: bad address range", line)
		}
		spans = append(spans, Span{Start: uintptr(start), End: uintptr(end)})
	}
	return spans, nil
}

// parseDev turns maps' "major:minor" (hexadecimal) into the device number stat reports
// (Linux's new_encode_dev, as unix.Mkdev).
func parseDev(s []byte) (uint64, error) {
	majHex, minHex, ok := bytes.Cut(s, []byte(":"))
	if !ok {
		return 0, fmt.Errorf("device %q", s)
	}
	major, err1 := strconv.ParseUint(string(majHex), 16, 32)
	minor, err2 := strconv.ParseUint(string(minHex), 16, 32)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("device %q: %w", s, err)
	}
	return (major&0x00000fff)<<8 | (major&0xfffff000)<<32 | (minor&0x000000ff)<<0 | (minor&0xffffff00)<<12, nil
}
