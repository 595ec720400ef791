package imagepkg

import (
	"archive/tar"
	"bytes"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"github.com/rampart-iot/rampart/internal/measure"
)

func TestPackIsDeterministic(t *testing.T) {
	var a, b bytes.Buffer
	pa, err := Pack(&a, goldenTree())
	if err != nil {
		t.Fatal(err)
	}
	pb, err := Pack(&b, goldenTree())
	if err != nil {
		t.Fatal(err)
	}
	if pa != pb || !bytes.Equal(a.Bytes(), b.Bytes()) || pa.Size != int64(a.Len()) {
		t.Fatalf("two packs of one tree differ: %+v %+v", pa, pb)
	}
	// Entries are in path order, with zero times and owners.
	tr := tar.NewReader(&a)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !h.ModTime.Equal(time.Unix(0, 0)) || h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: header %+v", h.Name, h)
		}
		names = append(names, h.Name)
	}
	want := []string{"app_manifest.json", "bin/", "bin/blinky", "etc/", "etc/blinky.conf", "etc/current.conf",
		"share/", "share/doc/", "share/doc/README", "share/doc/bin-blinky", "share/doc/deep-a-name", "share/doc/empty"}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("entries %v\nwant %v", names, want)
	}
}

// TestPackDirMeasuresLikeTheDevice packs a real directory, extracts it, and checks that the
// device's measurement of the extracted tree is the measurement of the original: the golden
// measurement recorded at pack time is the one a device running the bundle reports.
func TestPackDirMeasuresLikeTheDevice(t *testing.T) {
	src := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(src, "usr/lib/deep/er"), 0o755))
	must(os.WriteFile(filepath.Join(src, "usr/lib/deep/er/lib.so"), bytes.Repeat([]byte("x"), 100_000), 0o644))
	must(os.WriteFile(filepath.Join(src, "init"), []byte("#!/bin/sh\n"), 0o755))
	must(os.Symlink("usr/lib", filepath.Join(src, "lib")))
	must(os.Mkdir(filepath.Join(src, "ro"), 0o755))
	must(os.WriteFile(filepath.Join(src, "ro/secret"), []byte("s"), 0o400))
	must(os.Chmod(filepath.Join(src, "ro"), 0o500))
	t.Cleanup(func() { os.Chmod(filepath.Join(src, "ro"), 0o755) })

	var buf bytes.Buffer
	p, err := PackDir(&buf, src)
	must(err)
	if p.Size != int64(buf.Len()) || p.Format != PayloadFormatTar {
		t.Fatalf("payload %+v for %d bytes", p, buf.Len())
	}
	dst := t.TempDir()
	must(ExtractTar(&buf, dst))
	t.Cleanup(func() { os.Chmod(filepath.Join(dst, "ro"), 0o755) })
	want, err := measure.TreeDigest(src)
	must(err)
	got, err := measure.TreeDigest(dst)
	must(err)
	if !bytes.Equal(got, want) {
		t.Errorf("the extracted tree measures %x; the packed one %x", got, want)
	}
}

func TestPackRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		fsys fstest.MapFS
		msg  string
	}{
		{"absolute symlink", fstest.MapFS{"l": {Data: []byte("/etc/passwd"), Mode: fs.ModeSymlink | 0o777}}, "absolute targets"},
		{"escaping symlink", fstest.MapFS{"d/l": {Data: []byte("../../x"), Mode: fs.ModeSymlink | 0o777}}, "points outside"},
		{"setuid", fstest.MapFS{"f": {Data: []byte("x"), Mode: fs.ModeSetuid | 0o755}}, "setuid"},
		{"device", fstest.MapFS{"dev": {Mode: fs.ModeDevice | 0o600}}, "only regular files, directories and symlinks"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Pack(io.Discard, tc.fsys)
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("Pack = %v, want an error containing %q", err, tc.msg)
			}
		})
	}
	dir := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := PackDir(io.Discard, dir); err == nil || !strings.Contains(err.Error(), "only regular files") {
		t.Errorf("PackDir with a FIFO = %v", err)
	}
}

// entry is one tar entry for a hand-made archive.
type entry struct {
	name, link string
	typ        byte
	mode       int64
	data       string
}

func makeTar(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		mode := e.mode
		if mode == 0 {
			mode = 0o644
		}
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: mode, Size: int64(len(e.data)), Format: tar.FormatPAX}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.data)); err != nil && e.typ == tar.TypeReg {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestExtractRefuses(t *testing.T) {
	file := func(name string) entry { return entry{name: name, typ: tar.TypeReg, data: "x"} }
	for _, tc := range []struct {
		name    string
		entries []entry
		msg     string
	}{
		{"absolute path", []entry{file("/etc/passwd")}, "absolute paths"},
		{"dot dot", []entry{file("../x")}, `without ".."`},
		{"dot dot inside", []entry{file("a/../../x")}, `without ".."`},
		{"unclean", []entry{file("a//b")}, "clean"},
		{"dot", []entry{file("./a")}, "clean"},
		{"backslash", []entry{file(`a\..\b`)}, "clean"},
		{"empty name", []entry{{name: "", typ: tar.TypeReg}}, "empty name"},
		{"long name", []entry{file(strings.Repeat("a/", MaxTarPathLength/2) + "x")}, "longer than"},
		{"duplicate", []entry{file("a"), file("a")}, "appears twice"},
		{"file over dir", []entry{{name: "a/", typ: tar.TypeDir}, file("a")}, "appears twice"},
		{"absolute symlink", []entry{{name: "l", typ: tar.TypeSymlink, link: "/etc"}}, "absolute targets"},
		{"escaping symlink", []entry{{name: "d/l", typ: tar.TypeSymlink, link: "../../etc"}}, "points outside"},
		{"empty symlink", []entry{{name: "l", typ: tar.TypeSymlink, link: ""}}, "empty target"},
		{"under a symlink", []entry{{name: "l", typ: tar.TypeSymlink, link: "d"}, {name: "d/", typ: tar.TypeDir}, file("l/x")}, "under the symlink l"},
		{"hard link", []entry{file("a"), {name: "b", typ: tar.TypeLink, link: "a"}}, "not allowed"},
		{"char device", []entry{{name: "tty", typ: tar.TypeChar}}, "not allowed"},
		{"block device", []entry{{name: "sda", typ: tar.TypeBlock}}, "not allowed"},
		{"fifo", []entry{{name: "p", typ: tar.TypeFifo}}, "not allowed"},
		{"setuid", []entry{{name: "s", typ: tar.TypeReg, mode: 0o4755, data: "x"}}, "only permission bits"},
		{"sticky dir", []entry{{name: "tmp/", typ: tar.TypeDir, mode: 0o1777}}, "only permission bits"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := t.TempDir()
			err := ExtractTar(bytes.NewReader(makeTar(t, tc.entries...)), dst)
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("ExtractTar = %v, want an error containing %q", err, tc.msg)
			}
			if _, err := os.Lstat("/etc/passwd-rampart-test"); err == nil {
				t.Fatal("wrote outside the destination")
			}
		})
	}
	t.Run("not empty", func(t *testing.T) {
		dst := t.TempDir()
		os.WriteFile(filepath.Join(dst, "old"), nil, 0o644)
		if err := ExtractTar(bytes.NewReader(makeTar(t, file("a"))), dst); err == nil || !strings.Contains(err.Error(), "not empty") {
			t.Errorf("ExtractTar = %v", err)
		}
	})
	t.Run("garbage", func(t *testing.T) {
		if err := ExtractTar(strings.NewReader(strings.Repeat("garbage!", 100)), t.TempDir()); err == nil {
			t.Error("accepted garbage")
		}
	})
	t.Run("truncated file", func(t *testing.T) {
		b := makeTar(t, entry{name: "a", typ: tar.TypeReg, data: strings.Repeat("x", 2000)})
		if err := ExtractTar(bytes.NewReader(b[:1200]), t.TempDir()); err == nil {
			t.Error("accepted a truncated tar")
		}
	})
}

// TestExtractAllowsInsideSymlinks checks what the refusals leave alone: symlinks to places
// inside the tree, to the root itself, and chains of them.
func TestExtractAllowsInsideSymlinks(t *testing.T) {
	dst := t.TempDir()
	b := makeTar(t,
		entry{name: "d/", typ: tar.TypeDir, mode: 0o755},
		entry{name: "d/f", typ: tar.TypeReg, data: "hello"},
		entry{name: "d/up", typ: tar.TypeSymlink, link: ".."},
		entry{name: "d/self", typ: tar.TypeSymlink, link: "f"},
		entry{name: "top", typ: tar.TypeSymlink, link: "d/self"},
	)
	if err := ExtractTar(bytes.NewReader(b), dst); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dst, "top"))
	if err != nil || string(got) != "hello" {
		t.Errorf("top -> %q, %v", got, err)
	}
}

// FuzzExtractTar feeds arbitrary archives to the extractor. Whatever it accepts or refuses, it
// must write nothing outside the destination and leave no symlink there that leads out.
func FuzzExtractTar(f *testing.F) {
	var golden bytes.Buffer
	if _, err := Pack(&golden, goldenTree()); err != nil {
		f.Fatal(err)
	}
	f.Add(golden.Bytes())
	f.Add(makeTar(f, entry{name: "l", typ: tar.TypeSymlink, link: "d"}, entry{name: "l/x", typ: tar.TypeReg, data: "x"}))
	f.Add(makeTar(f, entry{name: "../x", typ: tar.TypeReg, data: "x"}))
	f.Add(makeTar(f, entry{name: "a/b/c", typ: tar.TypeReg, data: "x"}, entry{name: "a/", typ: tar.TypeDir, mode: 0o500}))
	f.Fuzz(func(t *testing.T, data []byte) {
		parent := t.TempDir()
		dst := filepath.Join(parent, "dst")
		if err := os.Mkdir(dst, 0o755); err != nil {
			t.Fatal(err)
		}
		ExtractTar(bytes.NewReader(data), dst)
		entries, err := os.ReadDir(parent)
		if err != nil || len(entries) != 1 {
			t.Fatalf("the extractor wrote beside its destination: %v %v", entries, err)
		}
		filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if d.IsDir() {
				os.Chmod(p, 0o755) // so that the test can clean up
			}
			if d.Type()&fs.ModeSymlink != 0 {
				target, _ := os.Readlink(p)
				rel, _ := filepath.Rel(dst, p)
				if checkSymlink(filepath.ToSlash(rel), target) != nil {
					t.Fatalf("left a symlink %s -> %s that leads out", rel, target)
				}
			}
			if !d.IsDir() && d.Type()&fs.ModeSymlink == 0 && !d.Type().IsRegular() {
				t.Fatalf("left a %v at %s", d.Type(), p)
			}
			return nil
		})
	})
}
