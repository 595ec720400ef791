package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestTable(t *testing.T) {
	var b bytes.Buffer
	p := printer{w: &b, format: formatTable}
	err := p.table([]string{"ID", "NAME", "CREATED"}, [][]string{
		{"1", "Coffee Maker", timeCell(time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600)))},
		{"22", "Evil\tname\n\x1b[2J", ""},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "ID  NAME            CREATED\n" +
		"1   Coffee Maker    2026-01-02T02:04:05Z\n" +
		"22  Evil name  [2J  \n"
	if b.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestFields(t *testing.T) {
	var b bytes.Buffer
	p := printer{w: &b, format: formatTable}
	if err := p.fields([][2]string{{"ID", "1"}, {"Description", "a\u202eb"}}); err != nil {
		t.Fatal(err)
	}
	want := "ID           1\nDescription  a b\n"
	if b.String() != want {
		t.Errorf("fields = %q, want %q", b.String(), want)
	}
}

func TestPrintJSON(t *testing.T) {
	var b bytes.Buffer
	p := printer{w: &b, format: formatJSON}
	called := false
	err := p.print([]map[string]string{{"id": "1"}}, func() error { called = true; return nil })
	if err != nil || called {
		t.Fatalf("err %v, table called %v", err, called)
	}
	if want := "[\n  {\n    \"id\": \"1\"\n  }\n]\n"; b.String() != want {
		t.Errorf("json = %q, want %q", b.String(), want)
	}
	b.Reset()
	if err := p.line("for people"); err != nil || b.Len() != 0 {
		t.Errorf("line in JSON mode wrote %q", b.String())
	}
}

func TestDurations(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"1h": time.Hour, "90m": 90 * time.Minute, "30d": 30 * 24 * time.Hour, "1h30m": 90 * time.Minute,
	} {
		if got, err := parseDuration(in); err != nil || got != want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "-1h", "1.5d", "d", "x", "0d", "99999999d"} {
		if _, err := parseDuration(in); err == nil {
			t.Errorf("parseDuration(%q): no error", in)
		}
	}
	for d, want := range map[time.Duration]string{
		time.Hour: "1h", 90 * time.Minute: "1h30m", 45 * time.Second: "45s", 48 * time.Hour: "2d", 61 * time.Second: "1m1s", 3601 * time.Second: "1h0m1s",
	} {
		if got := formatDuration(d); got != want {
			t.Errorf("formatDuration(%v) = %q, want %q", d, got, want)
		}
	}
	if _, err := seconds(1500*time.Millisecond, "x"); err == nil {
		t.Error("seconds(1.5s): no error")
	}
	if s, err := seconds(2*time.Minute, "x"); err != nil || s != 120 {
		t.Errorf("seconds(2m) = %d, %v", s, err)
	}
}

func TestParseTime(t *testing.T) {
	now := time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"2026-01-02T03:04:05Z":      time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		"2026-01-02T03:04:05+01:00": time.Date(2026, 1, 2, 2, 4, 5, 0, time.UTC),
		"2026-01-02":                time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC),
		"24h":                       now.Add(-24 * time.Hour),
		"7d":                        now.Add(-7 * 24 * time.Hour),
	} {
		got, err := parseTime(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseTime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := parseTime("last tuesday", now); err == nil || !strings.Contains(err.Error(), "RFC 3339") {
		t.Errorf("parseTime(bad) err = %v", err)
	}
}
