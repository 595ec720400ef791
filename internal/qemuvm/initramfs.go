package qemuvm

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
)

// File is one file of an initramfs: Data, or else the contents of the host file Src.
type File struct {
	Path string // in the guest, relative to /: "init", "bin/busybox"
	Mode os.FileMode
	Data []byte
	Src  string
}

// WriteInitramfs writes a gzip-compressed newc cpio archive holding files, the directories
// above them, the empty directories dirs, and /dev/console (so that init has a console before
// it mounts devtmpfs).
func WriteInitramfs(out string, files []File, dirs ...string) error {
	var raw bytes.Buffer
	w := &cpioWriter{w: &raw, ino: 1}
	made := map[string]bool{}
	var mkdir func(d string) error
	mkdir = func(d string) error {
		if d == "." || d == "" || made[d] {
			return nil
		}
		if err := mkdir(path.Dir(d)); err != nil {
			return err
		}
		made[d] = true
		return w.entry(d, 0o040755, 0, nil)
	}
	for _, d := range append([]string{"dev"}, dirs...) {
		if err := mkdir(path.Clean(d)); err != nil {
			return err
		}
	}
	if err := w.entry("dev/console", 0o020600, 5<<8|1, nil); err != nil {
		return err
	}
	sorted := append([]File(nil), files...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Path < sorted[j].Path })
	for _, f := range sorted {
		p := path.Clean(strings.TrimPrefix(f.Path, "/"))
		if err := mkdir(path.Dir(p)); err != nil {
			return err
		}
		data := f.Data
		if f.Src != "" {
			b, err := os.ReadFile(f.Src)
			if err != nil {
				return err
			}
			data = b
		}
		if err := w.entry(p, 0o100000|uint32(f.Mode.Perm()), 0, data); err != nil {
			return err
		}
	}
	if err := w.entry("TRAILER!!!", 0, 0, nil); err != nil {
		return err
	}
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return os.WriteFile(out, gz.Bytes(), 0o644)
}

// cpioWriter writes newc ("070701") entries: a header of thirteen 8-digit hex fields, the name
// with its NUL, padding to 4 bytes, the data, padding to 4 bytes.
type cpioWriter struct {
	w   io.Writer
	ino uint32
}

func (c *cpioWriter) entry(name string, mode, rdev uint32, data []byte) error {
	c.ino++
	nlink := 1
	if mode&0o170000 == 0o040000 {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		c.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdev>>8, rdev&0xff, len(name)+1, 0)
	b := append([]byte(hdr), name...)
	b = append(b, 0)
	b = append(b, make([]byte, pad4(len(b)))...)
	b = append(b, data...)
	b = append(b, make([]byte, pad4(len(data)))...)
	_, err := c.w.Write(b)
	return err
}

func pad4(n int) int { return (4 - n%4) % 4 }

// StaticELF reports whether path is an ELF executable that needs no dynamic loader, as a
// program in an initramfs without a libc must be (busybox-static, a CGO_ENABLED=0 build).
func StaticELF(path string) bool {
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false
		}
	}
	return true
}
