package blob_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/internal/blob"
	"github.com/rampart-iot/rampart/internal/blob/blobtest"
)

func openDir(t testing.TB, dir string) *blob.Dir {
	t.Helper()
	d, err := blob.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
}

func TestDir(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blob.Store { return openDir(t, t.TempDir()) })
}

func TestRegistry(t *testing.T) {
	if !slices.Contains(blob.Backends(), blob.DirName) {
		t.Fatalf("backends %v lack %q", blob.Backends(), blob.DirName)
	}
	dir := t.TempDir()
	s, err := blob.Open(t.Context(), "dir", dir)
	must(t, err)
	defer s.Close()
	digest, _, err := s.Put(t.Context(), strings.NewReader("x"), 1)
	must(t, err)
	if _, err := os.Stat(filepath.Join(dir, "blobs", "sha256", digest[:2], digest)); err != nil {
		t.Errorf("the blob is not where the layout says: %v", err)
	}
	if _, err := blob.Open(t.Context(), "s3", dir); err == nil || !strings.Contains(err.Error(), "dir") {
		t.Errorf("an unknown backend: %v", err)
	}
}

// tree returns the files under the store's blobs directory, relative to it, sorted.
func tree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	root := filepath.Join(dir, "blobs")
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out = append(out, filepath.ToSlash(rel))
		return nil
	})
	must(t, err)
	slices.Sort(out)
	return out
}

// checkTree fails the test unless the store holds exactly the blobs of contents, each under the
// name its digest gives and with that content, and no temporary file.
func checkTree(t *testing.T, dir string, contents ...[]byte) {
	t.Helper()
	want := []string{}
	for _, b := range contents {
		d := blobtest.Digest(b)
		want = append(want, "sha256/"+d[:2]+"/"+d)
	}
	slices.Sort(want)
	want = slices.Compact(want)
	got := tree(t, dir)
	if !slices.Equal(got, want) {
		t.Fatalf("files %v, want %v", got, want)
	}
	for _, name := range got {
		b, err := os.ReadFile(filepath.Join(dir, "blobs", name))
		must(t, err)
		if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != filepath.Base(name) {
			t.Errorf("%s holds other content", name)
		}
	}
}

func TestDirLayout(t *testing.T) {
	dir := t.TempDir()
	d := openDir(t, dir)
	a, b := blobtest.Content(1, 1000), blobtest.Content(2, 2000)
	for _, x := range [][]byte{a, b, a} {
		_, _, err := d.Put(t.Context(), bytes.NewReader(x), 1<<20)
		must(t, err)
	}
	checkTree(t, dir, a, b)
	st, err := os.Stat(filepath.Join(dir, "blobs", "sha256", blobtest.Digest(a)[:2], blobtest.Digest(a)))
	must(t, err)
	if runtime.GOOS != "windows" && st.Mode().Perm() != 0o600 {
		t.Errorf("a blob's mode is %v", st.Mode())
	}
}

// TestDirNothingLeftBehind checks that a failed Put leaves no file at all.
func TestDirNothingLeftBehind(t *testing.T) {
	dir := t.TempDir()
	d := openDir(t, dir)
	b := blobtest.Content(3, 100_000)
	_, _, err := d.Put(t.Context(), bytes.NewReader(b), int64(len(b)-1))
	if !errors.Is(err, blob.ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", err)
	}
	checkTree(t, dir)
	_, _, err = d.Put(t.Context(), io.MultiReader(bytes.NewReader(b), iotestErr{}), 1<<20)
	if err == nil {
		t.Fatal("a failing reader stored a blob")
	}
	checkTree(t, dir)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, _, err = d.Put(ctx, bytes.NewReader(b), 1<<20)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	checkTree(t, dir)
}

type iotestErr struct{}

func (iotestErr) Read([]byte) (int, error) { return 0, errors.New("cut") }

// TestDirRemovesTemp checks that opening the store removes what interrupted Puts left.
func TestDirRemovesTemp(t *testing.T) {
	dir := t.TempDir()
	d := openDir(t, dir)
	kept := blobtest.Content(4, 1000)
	_, _, err := d.Put(t.Context(), bytes.NewReader(kept), 1<<20)
	must(t, err)
	must(t, d.Close())
	tmp := filepath.Join(dir, "blobs", "tmp")
	must(t, os.WriteFile(filepath.Join(tmp, "put-0123"), []byte("half a blob"), 0o600))
	must(t, os.WriteFile(filepath.Join(tmp, "stray"), nil, 0o600))
	must(t, os.MkdirAll(filepath.Join(tmp, "dir", "sub"), 0o700))
	openDir(t, dir)
	checkTree(t, dir, kept)
	if _, err := os.Stat(tmp); err != nil {
		t.Errorf("the temporary directory is gone: %v", err)
	}
}

// TestDirKeepsLiveTemp checks that opening the store again, as another process would, leaves
// the temporary file of a Put that is running.
func TestDirKeepsLiveTemp(t *testing.T) {
	switch runtime.GOOS {
	case "linux", "darwin", "freebsd", "netbsd", "openbsd", "dragonfly":
	default:
		t.Skip("no flock: one process at a time")
	}
	dir := t.TempDir()
	d := openDir(t, dir)
	b := blobtest.Content(5, 200_000)
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, _, err := d.Put(t.Context(), pr, 1<<20)
		done <- err
	}()
	_, err := pw.Write(b[:100_000]) // the Put has its temporary file
	must(t, err)
	openDir(t, dir)
	if got := tree(t, dir); len(got) != 1 || !strings.HasPrefix(got[0], "tmp/put-") {
		t.Fatalf("files during the Put: %v", got)
	}
	_, err = pw.Write(b[100_000:])
	must(t, err)
	must(t, pw.Close())
	must(t, <-done)
	checkTree(t, dir, b)
}

// TestDirPutRefreshesModTime checks that storing a blob again makes its modification time
// the time of that Put (what the garbage collector's grace period is measured from).
func TestDirPutRefreshesModTime(t *testing.T) {
	dir := t.TempDir()
	d := openDir(t, dir)
	b := blobtest.Content(6, 1000)
	digest, _, err := d.Put(t.Context(), bytes.NewReader(b), 1<<20)
	must(t, err)
	old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	must(t, os.Chtimes(filepath.Join(dir, "blobs", "sha256", digest[:2], digest), old, old))
	_, _, err = d.Put(t.Context(), bytes.NewReader(b), 1<<20)
	must(t, err)
	info, err := d.Stat(t.Context(), digest)
	must(t, err)
	if !info.ModTime.After(old) {
		t.Errorf("ModTime = %v after a second Put, want later than %v", info.ModTime, old)
	}
}

// TestDirRepairs checks that a Put replaces a file of the right name but the wrong size (which
// only damage outside the store makes), and that a blob's file is never read through a link
// that leaves the store.
func TestDirRepairs(t *testing.T) {
	dir := t.TempDir()
	d := openDir(t, dir)
	b := blobtest.Content(7, 1000)
	digest := blobtest.Digest(b)
	shard := filepath.Join(dir, "blobs", "sha256", digest[:2])
	must(t, os.MkdirAll(shard, 0o700))
	must(t, os.WriteFile(filepath.Join(shard, digest), b[:10], 0o600))
	_, _, err := d.Put(t.Context(), bytes.NewReader(b), 1<<20)
	must(t, err)
	checkTree(t, dir, b)

	outside := t.TempDir()
	c := blobtest.Content(8, 1000)
	dc := blobtest.Digest(c)
	must(t, os.MkdirAll(filepath.Join(outside, dc[:2]), 0o700))
	must(t, os.WriteFile(filepath.Join(outside, dc[:2], dc), c, 0o600))
	if err := os.Symlink(filepath.Join(outside, dc[:2]), filepath.Join(dir, "blobs", "sha256", dc[:2])); err != nil {
		t.Skipf("no symbolic links: %v", err)
	}
	if f, _, err := d.Open(t.Context(), dc); err == nil {
		f.Close()
		t.Fatal("read a blob through a link out of the store")
	}
	if _, err := d.Stat(t.Context(), dc); err == nil {
		t.Fatal("found a blob through a link out of the store")
	}
}

func FuzzCheckDigest(f *testing.F) {
	for _, d := range append(blobtest.BadDigests, blobtest.Digest(nil), strings.Repeat("a", 64)) {
		f.Add(d)
	}
	d, err := blob.OpenDir(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	defer d.Close()
	f.Fuzz(func(t *testing.T, s string) {
		valid := len(s) == 64 && strings.Trim(s, "0123456789abcdef") == ""
		err := blob.CheckDigest(s)
		if (err == nil) != valid {
			t.Fatalf("CheckDigest(%q) = %v", s, err)
		}
		_, _, err = d.Open(t.Context(), s)
		switch {
		case valid && !errors.Is(err, blob.ErrNotFound):
			t.Fatalf("Open(%q) = %v, want ErrNotFound", s, err)
		case !valid && !errors.Is(err, blob.ErrInvalidDigest):
			t.Fatalf("Open(%q) = %v, want ErrInvalidDigest", s, err)
		}
	})
}

func BenchmarkPut(b *testing.B) {
	blobtest.BenchmarkPut(b, openDir(b, b.TempDir()))
}
