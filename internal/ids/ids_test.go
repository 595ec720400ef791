package ids

import (
	"bytes"
	"errors"
	"sort"
	"testing"
	"testing/iotest"
	"time"
)

func TestNewIsVersion7AndSortsByTime(t *testing.T) {
	base := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	var got []string
	for i := 0; i < 50; i++ {
		g := &Generator{Now: func() time.Time { return base.Add(time.Duration(i) * time.Millisecond) }}
		id, err := g.New()
		if err != nil {
			t.Fatal(err)
		}
		if !Valid(id) {
			t.Fatalf("invalid id %q", id)
		}
		if id[14] != '7' {
			t.Fatalf("not version 7: %q", id)
		}
		if c := id[19]; c != '8' && c != '9' && c != 'a' && c != 'b' {
			t.Fatalf("wrong variant: %q", id)
		}
		got = append(got, id)
	}
	if !sort.StringsAreSorted(got) {
		t.Fatalf("ids do not sort by time: %v", got)
	}
}

func TestNewIsDeterministicWithInjectedSources(t *testing.T) {
	now := func() time.Time { return time.UnixMilli(0x0102030405) }
	g := &Generator{Now: now, Rand: bytes.NewReader(bytes.Repeat([]byte{0xff}, 10))}
	id, err := g.New()
	if err != nil {
		t.Fatal(err)
	}
	if want := "00010203-0405-7000-bfff-ffffffffffff"; id != want {
		t.Fatalf("got %s want %s", id, want)
	}
}

func TestNewFailsWhenRandomnessFails(t *testing.T) {
	g := &Generator{Rand: iotest.ErrReader(errors.New("boom"))}
	if _, err := g.New(); err == nil {
		t.Fatal("want error")
	}
}

func TestValid(t *testing.T) {
	for s, want := range map[string]bool{
		"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b":  true,
		"0190A1B2-c3d4-7e5f-8a9b-0c1d2e3f4a5b":  false,
		"0190a1b2c3d4-7e5f-8a9b-0c1d2e3f4a5b-":  false,
		"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5":   false,
		"0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5bb": false,
		"zz90a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b":  false,
		"":                                      false,
	} {
		if Valid(s) != want {
			t.Errorf("Valid(%q) = %v", s, !want)
		}
	}
	if !LooksLikeUUID("0190A1B2-C3D4-7E5F-8A9B-0C1D2E3F4A5B") {
		t.Error("upper-case UUID not recognised")
	}
}

func TestNewIncreasesWithinAMillisecondAndWhenTheClockStepsBack(t *testing.T) {
	at := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	g := &Generator{Now: func() time.Time { return at }}
	prev := ""
	for i := 0; i < 5000; i++ { // more than the 12-bit counter holds
		if i == 3000 {
			at = at.Add(-time.Second)
		}
		id := g.MustNew()
		if id <= prev {
			t.Fatalf("id %d (%s) does not follow %s", i, id, prev)
		}
		prev = id
	}
}
