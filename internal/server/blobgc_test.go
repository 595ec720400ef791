package server

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/internal/blob"
	"github.com/rampart-iot/rampart/internal/store"
	"github.com/rampart-iot/rampart/internal/store/storetest"
)

// TestBlobGCKeepsReferencedAndRecentPackages runs the janitor's collection against a real
// store and blob directory: an old package no image refers to goes; an old one an image
// refers to stays; a recent one no image refers to yet (an upload in flight) stays; a second
// run within the interval does nothing; the next deletes what has become old.
func TestBlobGCKeepsReferencedAndRecentPackages(t *testing.T) {
	ctx := t.Context()
	st := storetest.Open(t, "sqlite", storetest.SQLiteDSN(t))
	dir := t.TempDir()
	blobs, err := blob.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { blobs.Close() })
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	put := func(s string, at time.Time) string {
		d, _, err := blobs.Put(ctx, bytes.NewReader([]byte(s)), 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(filepath.Join(dir, "blobs", "sha256", d[:2], d), at, at); err != nil {
			t.Fatal(err)
		}
		return d
	}
	old := now.Add(-2 * BlobGrace)
	orphan, used, inFlight := put("orphan", old), put("used", old), put("in flight", now.Add(-time.Minute))
	if err := st.CreateTenant(ctx, store.Tenant{ID: "t", Name: "T", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateImage(ctx, store.Image{ID: "0196a1b2-0000-4000-8000-000000000001", TenantID: "t",
		ComponentID: "0196a1b2-0000-4000-8000-000000000002", Kind: store.ImageApplication, Name: "a", Version: "1.0.0",
		PayloadSHA256: used, PayloadSize: 1, PackageSHA256: used, PackageSize: 4, Metadata: []byte("{}"), UploadedBy: "u", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	there := func(d string) bool {
		_, err := blobs.Stat(ctx, d)
		if err != nil && !errors.Is(err, blob.ErrNotFound) {
			t.Fatal(err)
		}
		return err == nil
	}
	g := &blobGC{blobs: blobs, st: st}
	n, err := g.collect(ctx, now)
	if err != nil || n != 1 || there(orphan) || !there(used) || !there(inFlight) {
		t.Fatalf("deleted %d (%v): orphan %v, used %v, in flight %v", n, err, there(orphan), there(used), there(inFlight))
	}
	orphan2 := put("orphan 2", old)
	if n, err := g.collect(ctx, now.Add(BlobGCInterval/2)); n != 0 || err != nil || !there(orphan2) {
		t.Fatalf("a run within the interval deleted %d (%v)", n, err)
	}
	// The next run, an interval later: the upload that was in flight never committed, so its
	// package is past the grace period too.
	if n, err := g.collect(ctx, now.Add(BlobGCInterval)); n != 2 || err != nil || there(orphan2) || there(inFlight) || !there(used) {
		t.Fatalf("the next run deleted %d (%v)", n, err)
	}
}
