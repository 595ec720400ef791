package server

import (
	"context"
	"time"

	"github.com/rampart-iot/rampart/internal/blob"
	"github.com/rampart-iot/rampart/internal/store"
)

// Blob garbage collection: the janitor deletes the image packages in the blob store that no
// image refers to (an upload that failed after its package was stored, say) once they are
// older than BlobGrace, at most every BlobGCInterval. The blob store holds image packages only
// (manage's uploads); anything else put there would have to be referenced the same way.
const (
	// BlobGrace is how long an unreferenced blob is kept after it was last stored. An upload
	// stores its package and then commits the image that refers to it; the HTTP server's read
	// timeout (2 minutes) bounds that time, so an hour leaves a wide margin.
	BlobGrace = time.Hour
	// BlobGCInterval is how often the janitor collects.
	BlobGCInterval = time.Hour
)

// blobGC collects a blob store's unreferenced blobs.
type blobGC struct {
	blobs blob.Store // collected only if it is a blob.Collector
	st    store.Store
	last  time.Time
}

// collect deletes the unreferenced blobs older than BlobGrace if BlobGCInterval has passed
// since the last run; it returns how many it deleted.
func (g *blobGC) collect(ctx context.Context, now time.Time) (int, error) {
	c, ok := g.blobs.(blob.Collector)
	if !ok || (!g.last.IsZero() && now.Sub(g.last) < BlobGCInterval) {
		return 0, nil
	}
	g.last = now
	return blob.Collect(ctx, c, now.Add(-BlobGrace), g.st.ImagePackageReferenced)
}
