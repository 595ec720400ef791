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
	"reflect"
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
	spans, err := Mappings(maps, reflect.ValueOf(Advise).Pointer())
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

// mapping is one line of /proc/PID/maps: its range, and the file it maps as the line names it
// (device and inode).
type mapping struct {
	span Span
	dev  string
	ino  uint64
}

// Mappings returns the mappings in maps (the format of /proc/PID/maps) of the file that holds
// the code at pc: the executable, when pc is one of its functions. The file is named as maps
// names it, not as stat names /proc/self/exe: on an overlay filesystem before Linux 6.12 the
// two disagree on the device (maps shows the underlying file's), and nothing would match.
func Mappings(maps []byte, pc uintptr) ([]Span, error) {
	var all []mapping
	var self *mapping
	for line := range bytes.Lines(maps) {
		m, err := parseLine(line)
		if err != nil {
			return nil, err
		}
		all = append(all, m)
		if m.span.Start <= pc && pc < m.span.End {
			self = &all[len(all)-1]
		}
	}
	if self == nil {
		return nil, fmt.Errorf("residency: no mapping holds the program's code at %#x", pc)
	}
	if self.ino == 0 {
		return nil, fmt.Errorf("residency: the program's code at %#x is not in a file mapping", pc)
	}
	dev, ino := self.dev, self.ino
	var spans []Span
	for _, m := range all {
		if m.ino == ino && m.dev == dev {
			spans = append(spans, m.span)
		}
	}
	return spans, nil
}

// parseLine parses one maps line: start-end perms offset major:minor inode [path].
func parseLine(line []byte) (mapping, error) {
	f := bytes.Fields(line)
	if len(f) < 5 {
		return mapping{}, fmt.Errorf("residency: malformed maps line %q", line)
	}
	ino, err := strconv.ParseUint(string(f[4]), 10, 64)
	if err != nil {
		return mapping{}, fmt.Errorf("residency: maps line %q: inode: %w", line, err)
	}
	if _, err := parseDev(f[3]); err != nil {
		return mapping{}, fmt.Errorf("residency: maps line %q: %w", line, err)
	}
	startHex, endHex, ok := bytes.Cut(f[0], []byte("-"))
	if !ok {
		return mapping{}, fmt.Errorf("residency: maps line %q: no address range", line)
	}
	start, err1 := strconv.ParseUint(string(startHex), 16, 64)
	end, err2 := strconv.ParseUint(string(endHex), 16, 64)
	if err := errors.Join(err1, err2); err != nil {
		return mapping{}, fmt.Errorf("residency: maps line %q: address range: %w", line, err)
	}
	if end <= start || uint64(uintptr(end)) != end {
		return mapping{}, fmt.Errorf("residency: maps line %q: bad address range", line)
	}
	return mapping{span: Span{Start: uintptr(start), End: uintptr(end)}, dev: string(f[3]), ino: ino}, nil
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
