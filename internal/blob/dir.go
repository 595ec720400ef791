package blob

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// DirName is the "dir" backend's name.
const DirName = "dir"

func init() {
	Register(DirName, func(_ context.Context, location string) (Store, error) { return OpenDir(location) })
}

// Directories of the "dir" backend, under its blobs directory.
const (
	dirBlobs = "sha256" // sha256/ab/abcdef... for the blob whose digest is abcdef...
	dirTemp  = "tmp"    // files being written by Put
)

// Dir is the "dir" backend: blobs are files in a directory tree, DIR/blobs/sha256/ab/<digest>
// for a digest that begins with ab, read and written through an os.Root at DIR/blobs so that
// nothing outside it is touched. Put writes a temporary file in DIR/blobs/tmp while hashing
// what it reads, fsyncs it, renames it to the name its digest gives (over a blob of the same
// content, so that the file's modification time is when it was last stored), and fsyncs the
// directory; so a crash leaves either no blob
// or the whole blob under that name, never other content. OpenDir removes the temporary files
// that crashed Puts left. A Put holds an advisory lock on its temporary file (where the
// platform has flock), so that opening the directory from another process while a Put runs
// does not remove its file.
type Dir struct {
	root *os.Root // DIR/blobs
	// Step, if set, is called after every durable step of Put and Delete with its name
	// ("put:synced", ...). Tests use it to stop the process at each one; set it before use.
	Step func(step string)
}

var _ Store = (*Dir)(nil)

// OpenDir opens the "dir" backend in dir, creating DIR/blobs if need be, and removes the
// temporary files that interrupted Puts left (other than those a live Put holds).
func OpenDir(dir string) (*Dir, error) {
	blobs := filepath.Join(dir, "blobs")
	for _, d := range []string{dirBlobs, dirTemp} {
		if err := os.MkdirAll(filepath.Join(blobs, d), 0o700); err != nil {
			return nil, fmt.Errorf("open blob store: %w", err)
		}
	}
	for _, d := range []string{dir, blobs} { // the new directories survive a crash
		if err := syncDir(d); err != nil {
			return nil, fmt.Errorf("open blob store: %w", err)
		}
	}
	root, err := os.OpenRoot(blobs)
	if err != nil {
		return nil, fmt.Errorf("open blob store: %w", err)
	}
	d := &Dir{root: root}
	if err := d.removeTemp(); err != nil {
		root.Close()
		return nil, fmt.Errorf("open blob store %s: %w", blobs, err)
	}
	return d, nil
}

// removeTemp removes the temporary files no live Put holds.
func (d *Dir) removeTemp() error {
	entries, err := fs.ReadDir(d.root.FS(), dirTemp)
	if err != nil {
		return fmt.Errorf("read temporary files: %w", err)
	}
	for _, e := range entries {
		name := path.Join(dirTemp, e.Name())
		if digest, ok := strings.CutPrefix(e.Name(), gcPrefix); ok && e.Type().IsRegular() && CheckDigest(digest) == nil {
			// A collection stopped before it decided: put the blob back; the next one decides.
			if err := d.restore(digest); err != nil {
				return err
			}
			continue
		}
		if !e.Type().IsRegular() { // not of this package's making
			if err := d.root.RemoveAll(name); err != nil {
				return fmt.Errorf("remove temporary file: %w", err)
			}
			continue
		}
		f, err := d.root.OpenFile(name, os.O_RDWR, 0)
		if errors.Is(err, fs.ErrNotExist) { // its Put finished meanwhile
			continue
		}
		if err != nil {
			return fmt.Errorf("open temporary file: %w", err)
		}
		held, err := tryLock(f)
		if err == nil && !held {
			err = d.root.Remove(name)
		}
		f.Close()
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove temporary file: %w", err)
		}
	}
	return nil
}

func (d *Dir) step(name string) {
	if d.Step != nil {
		d.Step(name)
	}
}

// blobPath is where the blob with digest lives, relative to the root; digest must be valid.
func blobPath(digest string) (dir, name string) {
	dir = path.Join(dirBlobs, digest[:2])
	return dir, path.Join(dir, digest)
}

// Put implements Store.
func (d *Dir) Put(ctx context.Context, r io.Reader, maxSize int64) (digest string, size int64, err error) {
	if maxSize < 0 {
		return "", 0, fmt.Errorf("store blob: negative size limit %d", maxSize)
	}
	if err := ctx.Err(); err != nil {
		return "", 0, fmt.Errorf("store blob: %w", err)
	}
	f, tmp, err := d.createTemp()
	if err != nil {
		return "", 0, fmt.Errorf("store blob: %w", err)
	}
	renamed := false
	defer func() {
		f.Close() // releases the lock
		if !renamed {
			_ = d.root.Remove(tmp)
		}
	}()
	d.step("put:temp")

	limit := maxSize
	if limit < math.MaxInt64 {
		limit++ // one byte more tells that r holds too much
	}
	h := sha256.New()
	size, err = io.Copy(io.MultiWriter(f, h), io.LimitReader(ctxReader{ctx, r}, limit))
	if err != nil {
		return "", 0, fmt.Errorf("store blob: %w", err)
	}
	if size > maxSize {
		return "", 0, fmt.Errorf("store blob: more than %d bytes: %w", maxSize, ErrTooLarge)
	}
	if err := f.Sync(); err != nil {
		return "", 0, fmt.Errorf("store blob: %w", err)
	}
	d.step("put:synced")
	digest = hex.EncodeToString(h.Sum(nil))
	dir, name := blobPath(digest)
	switch err := d.root.Mkdir(dir, 0o700); {
	case err == nil:
		if err := d.syncDir(dirBlobs); err != nil {
			return "", 0, fmt.Errorf("store blob %s: %w", digest, err)
		}
		d.step("put:mkdir")
	case !errors.Is(err, fs.ErrExist):
		return "", 0, fmt.Errorf("store blob %s: %w", digest, err)
	}
	// Renamed over a blob of the same content too: its modification time then says when the
	// content was last stored, which the garbage collector's grace period needs (an upload
	// that stores content already there must not lose it to a collection running meanwhile).
	// Readers' open copies stay readable.
	if err := d.root.Rename(tmp, name); err != nil {
		return "", 0, fmt.Errorf("store blob %s: %w", digest, err)
	}
	renamed = true
	d.step("put:renamed")
	// Synced even when the blob was there: a concurrent Put may have renamed it an instant ago.
	if err := d.syncDir(dir); err != nil {
		return "", 0, fmt.Errorf("store blob %s: %w", digest, err)
	}
	d.step("put:done")
	return digest, size, nil
}

// createTemp creates and locks a new temporary file.
func (d *Dir) createTemp() (*os.File, string, error) {
	var b [16]byte
	for range 10 {
		_, _ = rand.Read(b[:])
		name := path.Join(dirTemp, "put-"+hex.EncodeToString(b[:]))
		f, err := d.root.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return nil, "", err
		}
		if err := lock(f); err != nil {
			f.Close()
			_ = d.root.Remove(name)
			return nil, "", err
		}
		return f, name, nil
	}
	return nil, "", errors.New("cannot make a temporary file name")
}

// Open implements Store. The file stays readable after Delete until it is closed.
func (d *Dir) Open(ctx context.Context, digest string) (io.ReadSeekCloser, Info, error) {
	if err := CheckDigest(digest); err != nil {
		return nil, Info{}, err
	}
	if err := ctx.Err(); err != nil {
		return nil, Info{}, fmt.Errorf("open blob %s: %w", digest, err)
	}
	_, name := blobPath(digest)
	f, err := d.root.Open(name)
	if err != nil {
		return nil, Info{}, d.fileErr("open", digest, err)
	}
	st, err := f.Stat()
	if err == nil && !st.Mode().IsRegular() {
		err = errors.New("not a regular file")
	}
	if err != nil {
		f.Close()
		return nil, Info{}, fmt.Errorf("open blob %s: %w", digest, err)
	}
	return f, Info{Digest: digest, Size: st.Size(), ModTime: st.ModTime()}, nil
}

// Stat implements Store.
func (d *Dir) Stat(ctx context.Context, digest string) (Info, error) {
	if err := CheckDigest(digest); err != nil {
		return Info{}, err
	}
	if err := ctx.Err(); err != nil {
		return Info{}, fmt.Errorf("stat blob %s: %w", digest, err)
	}
	_, name := blobPath(digest)
	st, err := d.root.Stat(name)
	if err != nil {
		return Info{}, d.fileErr("stat", digest, err)
	}
	if !st.Mode().IsRegular() {
		return Info{}, fmt.Errorf("stat blob %s: not a regular file", digest)
	}
	return Info{Digest: digest, Size: st.Size(), ModTime: st.ModTime()}, nil
}

// Delete implements Store.
func (d *Dir) Delete(ctx context.Context, digest string) error {
	if err := CheckDigest(digest); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete blob %s: %w", digest, err)
	}
	dir, name := blobPath(digest)
	if err := d.root.Remove(name); err != nil {
		return d.fileErr("delete", digest, err)
	}
	d.step("delete:removed")
	if err := d.syncDir(dir); err != nil {
		return fmt.Errorf("delete blob %s: %w", digest, err)
	}
	d.step("delete:done")
	return nil
}

// Close implements Store.
func (d *Dir) Close() error { return d.root.Close() }

// fileErr wraps the error of doing what to a blob's file: a missing file is ErrNotFound.
func (d *Dir) fileErr(what, digest string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blob %s: %w", digest, ErrNotFound)
	}
	return fmt.Errorf("%s blob %s: %w", what, digest, err)
}

// syncDir fsyncs a directory under the root, so that the entries made or removed in it last.
func (d *Dir) syncDir(name string) error {
	f, err := d.root.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

func syncDir(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// ctxReader stops reading once its context is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
