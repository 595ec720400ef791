package store

import "testing"

func TestReleaseFor(t *testing.T) {
	for _, c := range []struct {
		release, group OSFeed
		want           bool
	}{
		{FeedManual, OSFeedRetail, true},
		{FeedManual, OSFeedRetailEval, true},
		{OSFeedRetail, OSFeedRetail, true},
		{OSFeedRetail, OSFeedRetailEval, true},
		{OSFeedRetailEval, OSFeedRetailEval, true},
		{OSFeedRetailEval, OSFeedRetail, false},
		{FeedUnpublished, OSFeedRetail, false},
		{FeedUnpublished, OSFeedRetailEval, false},
		{"Bogus", OSFeedRetailEval, false},
	} {
		if got := (OSRelease{Feed: c.release}).For(c.group); got != c.want {
			t.Errorf("release feed %q, group feed %q: %v, want %v", c.release, c.group, got, c.want)
		}
	}
}
