package qemuvm

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

type cpioEntry struct {
	mode, rdevMajor, rdevMinor uint64
	data                       string
}

// readNewc parses a newc archive as the kernel's initramfs unpacker does.
func readNewc(t *testing.T, b []byte) map[string]cpioEntry {
	t.Helper()
	entries := map[string]cpioEntry{}
	for off := 0; ; {
		if off+110 > len(b) || string(b[off:off+6]) != "070701" {
			t.Fatalf("no newc header at %d", off)
		}
		field := func(i int) uint64 {
			v, err := strconv.ParseUint(string(b[off+6+8*i:off+14+8*i]), 16, 32)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		mode, size, namesize := field(1), int(field(6)), int(field(11))
		name := string(b[off+110 : off+110+namesize-1])
		if b[off+110+namesize-1] != 0 {
			t.Fatalf("%s: name not NUL-terminated", name)
		}
		data := off + 110 + namesize
		data += (4 - data%4) % 4
		if name == "TRAILER!!!" {
			return entries
		}
		entries[name] = cpioEntry{mode: mode, rdevMajor: field(9), rdevMinor: field(10), data: string(b[data : data+size])}
		off = data + size
		off += (4 - off%4) % 4
	}
}

// TestWriteInitramfs: the archive holds the files with their modes and contents, every
// directory above them before them, the empty directories asked for, and /dev/console.
func TestWriteInitramfs(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.WriteFile(src, []byte("from the host\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "initrd.gz")
	err := WriteInitramfs(out, []File{{Path: "init", Mode: 0o755, Data: []byte("#!/bin/sh\n")}, {Path: "/lib/modules/x.ko", Mode: 0o644, Src: src}}, "proc", "tmp")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw)%4 != 0 || !bytes.HasPrefix(raw, []byte("070701")) {
		t.Fatalf("archive of %d bytes starting %q", len(raw), raw[:6])
	}
	e := readNewc(t, raw)
	want := map[string]cpioEntry{
		"dev": {mode: 0o040755}, "dev/console": {mode: 0o020600, rdevMajor: 5, rdevMinor: 1},
		"proc": {mode: 0o040755}, "tmp": {mode: 0o040755}, "lib": {mode: 0o040755}, "lib/modules": {mode: 0o040755},
		"init": {mode: 0o100755, data: "#!/bin/sh\n"}, "lib/modules/x.ko": {mode: 0o100644, data: "from the host\n"},
	}
	if len(e) != len(want) {
		t.Errorf("entries %v, want %d", e, len(want))
	}
	for name, w := range want {
		if e[name] != w {
			t.Errorf("%s: %+v, want %+v", name, e[name], w)
		}
	}
}

// TestStaticELF: busybox-static needs no loader; a dynamically linked program and a file that
// is not ELF are not static.
func TestStaticELF(t *testing.T) {
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("no /bin/busybox (apt-get install busybox-static) to check a static executable against")
	}
	if !StaticELF("/bin/busybox") {
		t.Error("/bin/busybox (busybox-static) is not static")
	}
	if StaticELF("/bin/sh") && StaticELF("/usr/bin/env") {
		t.Error("neither /bin/sh nor /usr/bin/env needs a loader: the check sees no loader at all")
	}
	if StaticELF("/etc/hostname") || StaticELF("/nonexistent") {
		t.Error("a file that is not an ELF executable is static")
	}
}
