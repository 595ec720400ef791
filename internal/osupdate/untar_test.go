package osupdate_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampart-iot/rampart/internal/osupdate"
)

type entry struct {
	typ  byte
	name string
	body string
	link string
	mode int64
}

func tarOf(t testing.TB, es ...entry) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		mode := e.mode
		if mode == 0 {
			mode = 0o644
		}
		h := &tar.Header{Typeflag: e.typ, Name: e.name, Linkname: e.link, Mode: mode, Size: int64(len(e.body))}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		must(t, tw.WriteHeader(h))
		if e.typ == tar.TypeReg {
			_, err := tw.Write([]byte(e.body))
			must(t, err)
		}
	}
	must(t, tw.Close())
	return buf.Bytes()
}

// untar unpacks archive into a fresh directory inside a sandbox, and returns the directory
// and the sandbox.
func untar(t testing.TB, archive []byte) (dir, sandbox string, err error) {
	sandbox = t.TempDir()
	file := filepath.Join(sandbox, "bundle")
	must(t, os.WriteFile(file, archive, 0o600))
	dir = filepath.Join(sandbox, "slot")
	must(t, os.Mkdir(dir, 0o755))
	return dir, sandbox, osupdate.Untar(ctx, file, dir)
}

func TestUntarKeepsTreeAndModes(t *testing.T) {
	archive := tarOf(t,
		entry{typ: tar.TypeDir, name: "./"},
		entry{typ: tar.TypeReg, name: "./bin/init", body: "#!init", mode: 0o4755},
		entry{typ: tar.TypeDir, name: "ro/", mode: 0o555},
		entry{typ: tar.TypeReg, name: "ro/file", body: "x", mode: 0o444},
		entry{typ: tar.TypeSymlink, name: "etc/localtime", link: "/usr/share/zoneinfo/UTC"},
		entry{typ: tar.TypeDir, name: "bin/", mode: 0o711}, // after a file inside it
	)
	for _, gz := range []bool{false, true} {
		a := archive
		if gz {
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			_, _ = zw.Write(a)
			must(t, zw.Close())
			a = buf.Bytes()
		}
		dir, _, err := untar(t, a)
		must(t, err)
		for name, want := range map[string]os.FileMode{"bin/init": 0o755, "bin": 0o711 | os.ModeDir, "ro": 0o555 | os.ModeDir, "ro/file": 0o444} {
			st, err := os.Lstat(filepath.Join(dir, name))
			if err != nil || st.Mode() != want {
				t.Errorf("gzip=%v %s: %v, %v; want %v", gz, name, st.Mode(), err, want)
			}
		}
		if l, err := os.Readlink(filepath.Join(dir, "etc/localtime")); err != nil || l != "/usr/share/zoneinfo/UTC" {
			t.Errorf("link %q %v", l, err)
		}
		must(t, os.Chmod(filepath.Join(dir, "ro"), 0o755))
	}
}

func TestUntarRefusesEscapesAndOddities(t *testing.T) {
	for name, tc := range map[string]struct {
		es   []entry
		want string
	}{
		"dot-dot":           {[]entry{{typ: tar.TypeReg, name: "../evil", body: "x"}}, "outside the bundle"},
		"nested dot-dot":    {[]entry{{typ: tar.TypeReg, name: "a/../../evil", body: "x"}}, "outside the bundle"},
		"absolute":          {[]entry{{typ: tar.TypeReg, name: "/evil", body: "x"}}, "outside the bundle"},
		"through a symlink": {[]entry{{typ: tar.TypeSymlink, name: "up", link: ".."}, {typ: tar.TypeReg, name: "up/evil", body: "x"}}, "up/evil"},
		"through abs link":  {[]entry{{typ: tar.TypeSymlink, name: "tmp", link: "/tmp"}, {typ: tar.TypeReg, name: "tmp/evil", body: "x"}}, "tmp/evil"},
		"hard link":         {[]entry{{typ: tar.TypeReg, name: "a", body: "x"}, {typ: tar.TypeLink, name: "b", link: "a"}}, "not a directory, file or symbolic link"},
		"device":            {[]entry{{typ: tar.TypeChar, name: "null"}}, "not a directory, file or symbolic link"},
		"duplicate file":    {[]entry{{typ: tar.TypeReg, name: "a", body: "x"}, {typ: tar.TypeReg, name: "a", body: "y"}}, "file exists"},
		"file then dir":     {[]entry{{typ: tar.TypeReg, name: "a", body: "x"}, {typ: tar.TypeDir, name: "a/"}}, `entry "a/"`},
		"root not a dir":    {[]entry{{typ: tar.TypeReg, name: ".", body: "x"}}, "root must be a directory"},
		"empty link":        {[]entry{{typ: tar.TypeSymlink, name: "l"}}, "bad link target"},
		"backslash":         {[]entry{{typ: tar.TypeReg, name: `a\..\..\b`, body: "x"}}, "bad entry name"},
	} {
		t.Run(name, func(t *testing.T) {
			_, sandbox, err := untar(t, tarOf(t, tc.es...))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
			ents, _ := os.ReadDir(sandbox)
			if len(ents) != 2 {
				t.Fatalf("written outside the slot: %v", ents)
			}
		})
	}
	if _, _, err := untar(t, []byte("not a tar file at all, but long enough to look like one? no")); err == nil {
		t.Fatal("garbage accepted")
	}
}

func FuzzUntar(f *testing.F) {
	f.Add(tarOf(f, entry{typ: tar.TypeDir, name: "a/"}, entry{typ: tar.TypeReg, name: "a/b", body: "x"}, entry{typ: tar.TypeSymlink, name: "c", link: "a/b"}))
	f.Add(tarOf(f, entry{typ: tar.TypeSymlink, name: "up", link: ".."}, entry{typ: tar.TypeReg, name: "up/x", body: "x"}))
	f.Add([]byte{0x1f, 0x8b, 8, 0})
	f.Fuzz(func(t *testing.T, archive []byte) {
		dir, sandbox, _ := untar(t, archive)
		ents, _ := os.ReadDir(sandbox)
		if len(ents) != 2 {
			t.Fatalf("written outside the slot: %v", ents)
		}
		// Leave the tree removable.
		_ = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
			if err == nil && info.IsDir() {
				_ = os.Chmod(p, 0o755)
			}
			return nil
		})
	})
}
