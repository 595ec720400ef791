package blob

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"time"
)

// Collector is a Store whose unreferenced blobs can be garbage-collected.
type Collector interface {
	Store
	// Walk calls fn for every stored blob, in no particular order, until fn returns an error
	// (which Walk returns). Blobs Put or deleted during the walk may or may not be seen.
	Walk(ctx context.Context, fn func(Info) error) error
	// DeleteIfOlder deletes a blob only if it was last stored (Put) before cutoff, and reports
	// whether it did (false, not an error, if it is not there). A Put of the same content that
	// races it either finishes first (the blob is then newer and kept) or stores the blob
	// again after it.
	DeleteIfOlder(ctx context.Context, digest string, cutoff time.Time) (bool, error)
}

// MaxCollect bounds the blobs one Collect considers, so a run's memory is bounded; the next
// run takes the rest.
const MaxCollect = 10000

// Collect deletes the blobs that were last stored before cutoff and that referenced says no
// one refers to, and returns how many it deleted. The caller sets cutoff a grace period before
// now, longer than any upload takes from storing its blob to committing the record that
// refers to it: a blob stored by an upload still in flight is newer than cutoff, and so is
// one whose content an upload in flight stored again, so neither is touched. The order of
// checks matters: referenced is asked first, and the delete is conditional on the blob still
// being older than cutoff, so an upload that stores the content and commits after the
// question keeps its blob.
func Collect(ctx context.Context, s Collector, cutoff time.Time, referenced func(ctx context.Context, digest string) (bool, error)) (int, error) {
	var old []string
	errEnough := errors.New("enough")
	err := s.Walk(ctx, func(in Info) error {
		if in.ModTime.Before(cutoff) {
			old = append(old, in.Digest)
		}
		if len(old) >= MaxCollect {
			return errEnough
		}
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		return 0, fmt.Errorf("listing blobs: %w", err)
	}
	n := 0
	var errs []error
	for _, d := range old {
		ref, err := referenced(ctx, d)
		if err != nil {
			return n, fmt.Errorf("blob %s: %w", d, err)
		}
		if ref {
			continue
		}
		deleted, err := s.DeleteIfOlder(ctx, d, cutoff)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if deleted {
			n++
		}
	}
	return n, errors.Join(errs...)
}

var _ Collector = (*Dir)(nil)

// gcPrefix names, in the temporary directory, a blob a collection has moved aside while it
// decides; OpenDir puts such a blob back.
const gcPrefix = "gc-"

// Walk implements Collector.
func (d *Dir) Walk(ctx context.Context, fn func(Info) error) error {
	dirs, err := fs.ReadDir(d.root.FS(), dirBlobs)
	if err != nil {
		return fmt.Errorf("list blobs: %w", err)
	}
	for _, sub := range dirs {
		if !sub.IsDir() || len(sub.Name()) != 2 {
			continue
		}
		entries, err := fs.ReadDir(d.root.FS(), path.Join(dirBlobs, sub.Name()))
		if err != nil {
			return fmt.Errorf("list blobs: %w", err)
		}
		for _, e := range entries {
			if err := ctx.Err(); err != nil {
				return err
			}
			digest := e.Name()
			if CheckDigest(digest) != nil || digest[:2] != sub.Name() || !e.Type().IsRegular() {
				continue // not of this package's making
			}
			st, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue // deleted meanwhile
			}
			if err != nil {
				return fmt.Errorf("list blobs: %w", err)
			}
			if err := fn(Info{Digest: digest, Size: st.Size(), ModTime: st.ModTime()}); err != nil {
				return err
			}
		}
	}
	return nil
}

// DeleteIfOlder implements Collector. It moves the blob aside (an atomic rename into the
// temporary directory), then looks at the file it moved: if a Put renamed newer content there
// before the move, the file is newer than cutoff and goes back (unless a Put stored the blob
// again meanwhile, which makes the moved copy redundant); otherwise it is removed. A Put after
// the move finds no blob and stores it anew. A crash while the blob is aside leaves it for
// OpenDir to put back.
func (d *Dir) DeleteIfOlder(ctx context.Context, digest string, cutoff time.Time) (bool, error) {
	if err := CheckDigest(digest); err != nil {
		return false, err
	}
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("delete blob %s: %w", digest, err)
	}
	dir, name := blobPath(digest)
	st, err := d.root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil // deleted already (another collector sharing the directory)
	}
	if err != nil {
		return false, d.fileErr("delete", digest, err)
	}
	if !st.ModTime().Before(cutoff) {
		return false, nil
	}
	aside := path.Join(dirTemp, gcPrefix+digest)
	if err := d.root.Rename(name, aside); errors.Is(err, fs.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, d.fileErr("delete", digest, err)
	}
	d.step("gc:aside")
	if st, err = d.root.Lstat(aside); err != nil {
		return false, fmt.Errorf("delete blob %s: %w", digest, err)
	}
	if !st.ModTime().Before(cutoff) { // stored again just before the move
		return false, d.restore(digest)
	}
	if err := d.root.Remove(aside); err != nil {
		return false, fmt.Errorf("delete blob %s: %w", digest, err)
	}
	d.step("gc:removed")
	if err := d.syncDir(dir); err != nil {
		return true, fmt.Errorf("delete blob %s: %w", digest, err)
	}
	return true, nil
}

// restore puts a blob moved aside back, unless a Put stored it again meanwhile.
func (d *Dir) restore(digest string) error {
	dir, name := blobPath(digest)
	aside := path.Join(dirTemp, gcPrefix+digest)
	_, err := d.root.Lstat(name)
	switch {
	case err == nil: // stored again: the copy aside is redundant
		err = d.root.Remove(aside)
	case errors.Is(err, fs.ErrNotExist):
		if err = d.root.MkdirAll(dir, 0o700); err == nil {
			err = d.root.Rename(aside, name)
		}
	}
	if err == nil {
		err = d.syncDir(dir)
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("put blob %s back: %w", digest, err)
	}
	return nil
}
