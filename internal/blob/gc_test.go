package blob_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/internal/blob"
	"github.com/rampart-iot/rampart/internal/blob/blobtest"
)

const grace = time.Hour

// age makes a stored blob look stored at t.
func age(t *testing.T, dir, digest string, at time.Time) {
	t.Helper()
	must(t, os.Chtimes(filepath.Join(dir, "blobs", "sha256", digest[:2], digest), at, at))
}

func put(t *testing.T, d *blob.Dir, seed uint64) string {
	t.Helper()
	digest, _, err := d.Put(t.Context(), bytes.NewReader(blobtest.Content(seed, 3000)), 1<<20)
	must(t, err)
	return digest
}

func exists(t *testing.T, d *blob.Dir, digest string) bool {
	t.Helper()
	_, err := d.Stat(t.Context(), digest)
	if err != nil && !errors.Is(err, blob.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

// TestCollectDeletesOnlyOldUnreferencedBlobs: an old blob nothing refers to goes; an old one
// referred to stays; a new one nothing refers to yet stays (an upload in flight: the blob is
// written, the transaction that refers to it not yet committed).
func TestCollectDeletesOnlyOldUnreferencedBlobs(t *testing.T) {
	dir := t.TempDir()
	d := openDir(t, dir)
	now := time.Now()
	orphan, kept, inFlight := put(t, d, 1), put(t, d, 2), put(t, d, 3)
	age(t, dir, orphan, now.Add(-2*grace))
	age(t, dir, kept, now.Add(-2*grace))
	refs := map[string]bool{kept: true}
	n, err := blob.Collect(t.Context(), d, now.Add(-grace), func(_ context.Context, digest string) (bool, error) {
		return refs[digest], nil
	})
	must(t, err)
	if n != 1 || exists(t, d, orphan) || !exists(t, d, kept) || !exists(t, d, inFlight) {
		t.Fatalf("deleted %d; orphan %v, referenced %v, in flight %v", n, exists(t, d, orphan), exists(t, d, kept), exists(t, d, inFlight))
	}
	// Once past the grace period, the blob of an upload that never committed goes too.
	age(t, dir, inFlight, now.Add(-2*grace))
	n, err = blob.Collect(t.Context(), d, now.Add(-grace), func(_ context.Context, digest string) (bool, error) {
		return refs[digest], nil
	})
	must(t, err)
	if n != 1 || exists(t, d, inFlight) {
		t.Fatalf("an abandoned upload's blob: deleted %d, still there %v", n, exists(t, d, inFlight))
	}
	// A referenced lookup that fails stops the collection and deletes nothing.
	age(t, dir, put(t, d, 4), now.Add(-2*grace))
	if _, err := blob.Collect(t.Context(), d, now.Add(-grace), func(context.Context, string) (bool, error) {
		return false, errors.New("database down")
	}); err == nil {
		t.Fatal("a failed lookup was not reported")
	}
	if !exists(t, d, blobtest.Digest(blobtest.Content(4, 3000))) {
		t.Fatal("a blob was deleted although the lookup failed")
	}
}

// TestCollectRacesAnUploadOfTheSameContent: an old, unreferenced blob whose content an upload
// stores again (a re-upload; the Put finds it there) between the collector's question "is it
// referenced?" (no: the upload has not committed) and the delete. The blob must survive: the
// upload will commit a record that refers to it.
func TestCollectRacesAnUploadOfTheSameContent(t *testing.T) {
	dir := t.TempDir()
	d := openDir(t, dir)
	now := time.Now()
	digest := put(t, d, 5)
	age(t, dir, digest, now.Add(-2*grace))
	asked := 0
	n, err := blob.Collect(t.Context(), d, now.Add(-grace), func(_ context.Context, dg string) (bool, error) {
		asked++
		// The upload stores its package now, and commits after the collector decides.
		if got := put(t, d, 5); got != dg {
			t.Fatalf("digest %s, want %s", got, dg)
		}
		return false, nil
	})
	must(t, err)
	if asked != 1 || n != 0 || !exists(t, d, digest) {
		t.Fatalf("asked %d, deleted %d: the blob an upload just stored is gone", asked, n)
	}
	// The same upload before the collection: the blob is new, so not even considered.
	age(t, dir, digest, now.Add(-2*grace))
	put(t, d, 5)
	n, err = blob.Collect(t.Context(), d, now.Add(-grace), func(context.Context, string) (bool, error) { return false, nil })
	must(t, err)
	if n != 0 || !exists(t, d, digest) {
		t.Fatal("a blob stored again before the collection was deleted")
	}
}

// TestWalkSeesEveryBlobAndNothingElse: Walk lists the blobs with their size and time, and
// skips what the package did not make.
func TestWalkSeesEveryBlobAndNothingElse(t *testing.T) {
	dir := t.TempDir()
	d := openDir(t, dir)
	want := map[string]bool{put(t, d, 7): true, put(t, d, 8): true}
	must(t, os.WriteFile(filepath.Join(dir, "blobs", "sha256", "README"), []byte("x"), 0o600))
	must(t, os.MkdirAll(filepath.Join(dir, "blobs", "sha256", "zz"), 0o700))
	must(t, os.WriteFile(filepath.Join(dir, "blobs", "sha256", "zz", "not-a-digest"), []byte("x"), 0o600))
	got := map[string]bool{}
	must(t, d.Walk(t.Context(), func(in blob.Info) error {
		if in.Size != 3000 || in.ModTime.IsZero() {
			t.Errorf("info %+v", in)
		}
		got[in.Digest] = true
		return nil
	}))
	if len(got) != 2 || !got[blobtest.Digest(blobtest.Content(7, 3000))] || !got[blobtest.Digest(blobtest.Content(8, 3000))] {
		t.Fatalf("walked %v, want %v", got, want)
	}
}
