package storetest

import (
	"testing"

	"github.com/rampart-iot/rampart/internal/store"
)

func testOSReleaseFeeds(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	manual := newRelease(w.a.ID, "rel-1", "1.0.0")
	fromImage := newRelease(w.a.ID, "rel-2", "2.0.0")
	fromImage.Feed, fromImage.ImageID = store.FeedUnpublished, "0e6b2a4f-2f0c-4f77-9a43-7d0b7d0e1a11"
	for _, r := range []store.OSRelease{manual, fromImage} {
		must(t, s.CreateOSRelease(ctx, r))
	}
	got, err := s.GetOSRelease(ctx, w.a.ID, manual.ID)
	must(t, err)
	if got.Feed != store.FeedManual || got.ImageID != "" {
		t.Fatalf("a release registered by hand: feed %q, image %q", got.Feed, got.ImageID)
	}
	got, err = s.GetOSRelease(ctx, w.a.ID, fromImage.ID)
	must(t, err)
	eq(t, got, norm(fromImage))

	for _, feed := range []store.OSFeed{store.OSFeedRetailEval, store.OSFeedRetail, store.FeedUnpublished} {
		must(t, s.SetOSReleaseFeed(ctx, w.a.ID, fromImage.ID, feed))
		got, err := s.GetOSRelease(ctx, w.a.ID, fromImage.ID)
		must(t, err)
		if got.Feed != feed {
			t.Fatalf("feed %q after publishing to %q", got.Feed, feed)
		}
	}
	page, err := s.ListOSReleases(ctx, w.a.ID, store.ListOptions{})
	must(t, err)
	if len(page.Items) != 2 || page.Items[1].ImageID != fromImage.ImageID {
		t.Fatalf("list: %+v", page.Items)
	}
	isErr(t, s.SetOSReleaseFeed(ctx, w.b.ID, fromImage.ID, store.OSFeedRetail), store.ErrNotFound) // another tenant's
	isErr(t, s.SetOSReleaseFeed(ctx, w.a.ID, "rel-x", store.OSFeedRetail), store.ErrNotFound)
	got, err = s.GetOSRelease(ctx, w.a.ID, fromImage.ID)
	must(t, err)
	if got.Feed != store.FeedUnpublished {
		t.Fatalf("a refused publish changed the feed to %q", got.Feed)
	}
}
