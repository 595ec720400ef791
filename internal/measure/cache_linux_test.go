package measure

import (
	"bytes"
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/rampart-iot/rampart/internal/eventlog"
)

// cachedPages counts path's pages in the page cache (mincore over a mapping of it).
func cachedPages(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	m, err := unix.Mmap(int(f.Fd()), 0, int(fi.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	vec := make([]byte, (len(m)+os.Getpagesize()-1)/os.Getpagesize())
	if _, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
		t.Fatal(e)
	}
	n := 0
	for _, v := range vec {
		n += int(v & 1)
	}
	return n
}

// TestMeasuringLeavesNothingCached checks that the agent binary's pages leave the page cache
// once measured, that the digest is the file's, and that a tree's files are left cached.
func TestMeasuringLeavesNothingCached(t *testing.T) {
	dir := t.TempDir()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	if st.Type == unix.TMPFS_MAGIC {
		t.Skip("the temporary directory is on tmpfs, whose pages are the file: there is no cache to drop")
	}
	path := filepath.Join(dir, "agent")
	data := bytes.Repeat([]byte("rampart!"), 128<<10) // 1 MiB
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil { // written back, so clean pages the kernel may drop
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if cachedPages(t, path) == 0 {
		t.Skip("the file system keeps no pages of the file in the page cache after a read")
	}
	// A tree's files (an OS bundle, an image being packed) stay cached: their readers read
	// them again.
	if _, err := TreeDigest(path); err != nil {
		t.Fatal(err)
	}
	if cachedPages(t, path) == 0 {
		t.Fatal("TreeDigest dropped the file's pages from the page cache")
	}
	bundle := filepath.Join(dir, "bundle")
	if err := os.WriteFile(bundle, []byte("os"), 0o644); err != nil {
		t.Fatal(err)
	}
	ds, err := Digests(Inputs{AgentBinary: path, OSBundle: bundle})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ds[eventlog.MeasureAgent], sha256.Sum256(data); !bytes.Equal(got, want[:]) {
		t.Fatalf("digest %x, want %x", got, want)
	}
	if n := cachedPages(t, path); n != 0 {
		t.Fatalf("%d pages of the measured agent binary are still in the page cache", n)
	}
}
