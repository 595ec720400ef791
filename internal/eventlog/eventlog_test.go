package eventlog

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

func sum(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }

func extend(old, d []byte) []byte {
	h := sha256.Sum256(append(append([]byte{}, old...), d...))
	return h[:]
}

func sample(t testing.TB) *Log {
	l := New()
	for _, m := range []struct {
		pcr  int
		name string
	}{{14, MeasurePolicy}, {14, MeasureAgent}, {14, MeasureOSBundle}, {15, "extra"}} {
		if err := l.Append(m.pcr, m.name, "test "+m.name, sum(m.name)); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

func TestRoundTripAndReplay(t *testing.T) {
	l := sample(t)
	b, err := l.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	want14 := extend(extend(extend(make([]byte, 32), sum("policy")), sum("agent")), sum("os-bundle"))
	got := back.Replay(nil)
	if !bytes.Equal(got[14], want14) || !bytes.Equal(got[15], extend(make([]byte, 32), sum("extra"))) || len(got) != 2 {
		t.Fatalf("replay: %x", got)
	}
	// Replay continues from given start values (e.g. firmware measurements).
	start := map[int][]byte{14: sum("firmware"), 0: sum("zero")}
	got = back.Replay(start)
	if !bytes.Equal(got[14], extend(extend(extend(sum("firmware"), sum("policy")), sum("agent")), sum("os-bundle"))) || !bytes.Equal(got[0], sum("zero")) {
		t.Fatal("replay from a start value is wrong")
	}
	if !bytes.Equal(start[14], sum("firmware")) {
		t.Fatal("Replay modified its input")
	}
	m := back.Measurements()
	if m["agent"] != hex.EncodeToString(sum("agent")) || len(m) != 4 {
		t.Fatalf("measurements: %v", m)
	}
	if p := back.PCRs(); len(p) != 2 || p[0] != 14 || p[1] != 15 {
		t.Fatalf("PCRs %v", p)
	}
}

func TestAppendRejects(t *testing.T) {
	l := New()
	if err := l.Append(14, "a", "", []byte{1, 2}); err == nil {
		t.Error("short digest accepted")
	}
	if err := l.Append(24, "a", "", sum("a")); err == nil {
		t.Error("PCR 24 accepted")
	}
	if err := l.Append(14, "Bad Name", "", sum("a")); err == nil {
		t.Error("bad name accepted")
	}
	if err := l.Append(14, "a", "", sum("a")); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(14, "a", "", sum("b")); err == nil {
		t.Error("duplicate name accepted")
	}
}

func TestParseRejects(t *testing.T) {
	good, _ := sample(t).Marshal()
	s := string(good)
	d := hex.EncodeToString(sum("policy"))
	cases := map[string]string{
		"version":       strings.Replace(s, `"version":1`, `"version":2`, 1),
		"recnum":        strings.Replace(s, `"recnum":1`, `"recnum":7`, 1),
		"pcr":           strings.Replace(s, `"pcr":15`, `"pcr":99`, 1),
		"negative pcr":  strings.Replace(s, `"pcr":15`, `"pcr":-1`, 1),
		"content type":  strings.Replace(s, `"content_type":"rampart"`, `"content_type":"systemd"`, 1),
		"hash alg":      strings.Replace(s, `"hashAlg":"sha256"`, `"hashAlg":"sha1"`, 1),
		"upper digest":  strings.Replace(s, d, strings.ToUpper(d), 1),
		"short digest":  strings.Replace(s, d, d[:10], 1),
		"duplicate":     strings.Replace(s, `"name":"agent"`, `"name":"policy"`, 1),
		"bad name":      strings.Replace(s, `"name":"agent"`, `"name":"AGENT"`, 1),
		"unknown field": strings.Replace(s, `"version":1`, `"version":1,"x":1`, 1),
		"not json":      "records",
		"oversized":     `{"version":1,"records":[],"pad":"` + strings.Repeat("x", MaxSize) + `"}`,
		"too many":      `{"version":1,"records":[` + strings.Repeat(`{"recnum":0},`, MaxRecords) + `{"recnum":0}]}`,
	}
	for name, doc := range cases {
		if _, err := Parse([]byte(doc)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzParse(f *testing.F) {
	good, _ := sample(f).Marshal()
	f.Add(good)
	f.Add([]byte(`{"version":1,"records":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := Parse(b)
		if err != nil {
			return
		}
		// Whatever parses re-encodes to something that parses to the same replay.
		again, err := l.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		l2, err := Parse(again)
		if err != nil {
			t.Fatalf("re-encoded log does not parse: %v", err)
		}
		r1, r2 := l.Replay(nil), l2.Replay(nil)
		for pcr, v := range r1 {
			if !bytes.Equal(v, r2[pcr]) {
				t.Fatal("replay changed across a round trip")
			}
		}
	})
}
