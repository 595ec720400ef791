package strictjson

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

type inner struct {
	DSN     string `json:"dsn"`
	MaxConn int    `json:"max_conn"`
}

type sample struct {
	Name    string          `json:"name"`
	Count   int             `json:"count"`
	Enabled *bool           `json:"enabled,omitempty"`
	Store   inner           `json:"store"`
	Opt     *inner          `json:"opt,omitempty"`
	Tags    []string        `json:"tags"`
	Raw     json.RawMessage `json:"raw"`
	When    time.Time       `json:"when"`
	Skip    string          `json:"-"`
	NoTag   string
	Blob    []byte `json:"blob"`
	Small   int8   `json:"small"`
}

func TestDecodeValid(t *testing.T) {
	var s sample
	err := Decode([]byte(`{"name":"a","count":3,"enabled":true,"store":{"dsn":"x","max_conn":2},
		"opt":{"dsn":"y"},"tags":["p","q"],"raw":{"any":[1,2]},"when":"2026-01-02T03:04:05Z","NoTag":"n"}`), &s)
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "a" || s.Count != 3 || s.Enabled == nil || !*s.Enabled || s.Store.DSN != "x" ||
		s.Store.MaxConn != 2 || s.Opt == nil || s.Opt.DSN != "y" || len(s.Tags) != 2 ||
		string(s.Raw) != `{"any":[1,2]}` || s.When.Year() != 2026 || s.NoTag != "n" {
		t.Fatalf("decoded wrongly: %+v", s)
	}
}

func TestDecodeReportsEveryProblem(t *testing.T) {
	var s sample
	err := Decode([]byte(`{"name":5,"bogus":1,"store":{"dsn":true,"extra":2},"count":"x","Skip":"s"}`), &s)
	if err == nil {
		t.Fatal("want error")
	}
	e, ok := err.(*Error)
	if !ok {
		t.Fatalf("want *Error, got %T", err)
	}
	want := map[string]bool{"name": true, "bogus": true, "store.dsn": true, "store.extra": true, "count": true, "Skip": true}
	for _, p := range e.Problems {
		if !want[p.Path] {
			t.Errorf("unexpected problem %q", p)
		}
		delete(want, p.Path)
	}
	if len(want) > 0 {
		t.Errorf("problems not reported: %v (got %v)", want, err)
	}
}

func TestDecodeRejects(t *testing.T) {
	cases := map[string]string{
		"empty":           ``,
		"spaces":          `   `,
		"truncated":       `{"name":"a"`,
		"trailing":        `{"name":"a"} {}`,
		"trailing scalar": `{"name":"a"} 1`,
		"duplicate":       `{"name":"a","name":"b"}`,
		"nested dup":      `{"store":{"dsn":"a","dsn":"b"}}`,
		"not object":      `[1,2]`,
		"string":          `"x"`,
		"unknown nested":  `{"opt":{"zzz":1}}`,
		"wrong elem type": `{"tags":[1]}`,
		"bad time":        `{"when":"yesterday"}`,
		"deep":            `{"raw":` + strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1) + `}`,
		"garbage":         `{"name":"a",}`,
	}
	for name, doc := range cases {
		t.Run(name, func(t *testing.T) {
			var s sample
			err := Decode([]byte(doc), &s)
			if err == nil {
				t.Fatalf("Decode(%q) succeeded", doc)
			}
			if strings.TrimSpace(err.Error()) == "" {
				t.Fatal("empty error message")
			}
		})
	}
}

func TestDuplicateKeysInArraysOfObjects(t *testing.T) {
	var s sample
	if err := Decode([]byte(`{"raw":[{"a":1},{"a":2}]}`), &s); err != nil {
		t.Fatalf("same key in sibling objects is fine: %v", err)
	}
	if err := Decode([]byte(`{"raw":[{"a":1,"a":2}]}`), &s); err == nil || !strings.Contains(err.Error(), "duplicate") {
		t.Fatalf("want duplicate key error, got %v", err)
	}
	if err := Decode([]byte(`{"raw":{"a":"name","name":1}}`), &s); err != nil {
		t.Fatalf("a string value equal to a later key is not a duplicate: %v", err)
	}
}

func TestNullLeavesZero(t *testing.T) {
	var s sample
	if err := Decode([]byte(`{"opt":null,"name":null}`), &s); err != nil {
		t.Fatal(err)
	}
	if s.Opt != nil || s.Name != "" {
		t.Fatalf("null should leave zero values: %+v", s)
	}
}

func TestDecodeNeedsPointer(t *testing.T) {
	if err := Decode([]byte(`{}`), sample{}); err == nil {
		t.Fatal("non-pointer accepted")
	}
}

// FuzzDecode checks that no input panics, and that whatever Decode accepts, encoding/json
// (which is laxer) accepts too and decodes to the same value.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{}`, `{"name":"a","count":1}`, `{"store":{"dsn":"x"}}`, `{"a":1,"a":2}`,
		`{"raw":[{"x":{}}]}`, `[`, `{"tags":["a"]}`, `{"opt":null}`, `{"blob":"AAEC/w=="}`, `{"blob":"AAE"}`,
		`{"blob":"AA\u003d="}`, `{"blob":[1,2]}`, `{"small":-128}`, `{"small":128}`, `{"count":1e3}`, "{\"name\":\"\xff\"}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var strict sample
		if err := Decode(data, &strict); err != nil {
			return
		}
		var lax sample
		if err := json.Unmarshal(data, &lax); err != nil {
			t.Fatalf("strict accepted what encoding/json rejects: %q: %v", data, err)
		}
		a, _ := json.Marshal(strict)
		b, _ := json.Marshal(lax)
		if string(a) != string(b) {
			t.Fatalf("strict and lax decodes differ for %q:\n%s\n%s", data, a, b)
		}
	})
}

// FuzzQuickCheck holds quickCheck to checkSyntax: it may refuse what checkSyntax accepts (the
// slow path then decides), never accept what checkSyntax refuses.
func FuzzQuickCheck(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1,"a":2}`, `{"a":1,"\u0061":2}`, `{"a":{"b":[1,{"b":2,"c":3}]},"b":"x\"y"}`,
		`[1,2,"a","a"]`, `{"k\\":1,"k\\\\":2}`, "{\"\xff\":1,\"\ufffd\":2}", `{"a":1} {}`, ``, ` `, `nul`,
		strings.Repeat("[", 65) + strings.Repeat("]", 65), strings.Repeat("[", 64) + strings.Repeat("]", 64),
		`{"a":[{"x":1},{"x":1}],"b":{"x":{"x":{}}}}`, `{"a" : 1 , "b" : [ true , false , null ] }`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if quickCheck(data) {
			if err := checkSyntax(data); err != nil {
				t.Fatalf("quickCheck accepted %q, which checkSyntax refuses: %v", data, err)
			}
		}
	})
}

// TestQuickCheck checks that the fast path accepts ordinary documents and leaves duplicate
// keys, however spelled, and excessive depth to checkSyntax.
func TestQuickCheck(t *testing.T) {
	for doc, want := range map[string]bool{
		`{"a":1,"b":{"a":2},"c":[{"a":1},{"a":1}]}`:              true,
		`{"a" : "x\"y" , "b\n" : [ 1.5e3 , -0 , true , null ] }`: true,
		`{"a":1,"a":2}`:             false,
		`{"a":1,"\u0061":2}`:        false,
		"{\"\xff\":1,\"\ufffd\":2}": false,
		`{"a":{"b":1,"c":2,"b":3}}`: false,
		`{"a":1} {}`:                false,
		``:                          false,
		strings.Repeat("[", 65) + strings.Repeat("]", 65): false,
		strings.Repeat("[", 64) + strings.Repeat("]", 64): true,
	} {
		if got := quickCheck([]byte(doc)); got != want {
			t.Errorf("quickCheck(%.40q) = %v, want %v", doc, got, want)
		}
		if want {
			if err := checkSyntax([]byte(doc)); err != nil {
				t.Errorf("checkSyntax(%.40q): %v", doc, err)
			}
		}
	}
}

// FuzzObjectMembers holds objectMembers to encoding/json: for a document checkSyntax accepts,
// it finds the same members, with the same raw values, as decoding into a map does. A null
// document is not its case: encoding/json leaves the map nil without error, and decodeValue
// handles null before it asks objectMembers.
func FuzzObjectMembers(f *testing.F) {
	for _, s := range []string{`{}`, ` { "a" : 1 , "b\"" : [ {"c":"}"} , "]" ] , "\u00e9" : null } `, `[1]`, `"x"`,
		`{"a":{"b":{"c":[[],{}]}},"d":-1.5e3,"e":true}`, "{\"\xff\":1}", "null", " null "} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if checkSyntax(data) != nil || isNull(data) {
			return
		}
		var want map[string]json.RawMessage
		werr := json.Unmarshal(data, &want)
		got, ok := objectMembers(data)
		if ok != (werr == nil) {
			t.Fatalf("%q: objectMembers ok=%v, encoding/json: %v", data, ok, werr)
		}
		if !ok {
			return
		}
		if len(got) != len(want) {
			t.Fatalf("%q: %d members, encoding/json %d", data, len(got), len(want))
		}
		for _, m := range got {
			if w, found := want[m.key]; !found || string(w) != string(m.value) {
				t.Fatalf("%q: member %q = %q, encoding/json %q", data, m.key, m.value, w)
			}
		}
	})
}

type benchQuote struct {
	Attest    []byte `json:"attest"`
	Signature []byte `json:"signature"`
}
type benchKey struct {
	Component string `json:"component"`
	PublicKey []byte `json:"public_key"`
}
type benchReq struct {
	DeviceID string          `json:"device_id"`
	Nonce    []byte          `json:"nonce"`
	Quote    benchQuote      `json:"quote"`
	EventLog json.RawMessage `json:"event_log"`
	Keys     []benchKey      `json:"keys"`
}

// BenchmarkDecodeRequest decodes a document shaped like an attestation request: base64
// fields, a raw measurement log, a list of keys.
func BenchmarkDecodeRequest(b *testing.B) {
	r := benchReq{DeviceID: strings.Repeat("ab", 32), Nonce: make([]byte, 80), Quote: benchQuote{make([]byte, 145), make([]byte, 72)},
		EventLog: json.RawMessage(`{"version":1,"records":[` + strings.Repeat(`{"recnum":0,"pcr":16,"digests":[{"hashAlg":"sha256","digest":"`+strings.Repeat("a", 64)+`"}],"content_type":"rampart","content":{"name":"agent","description":"x"}},`, 3) + `{}]}`),
		Keys:     []benchKey{{"", make([]byte, 91)}}}
	data, _ := json.Marshal(r)
	b.ReportAllocs()
	for b.Loop() {
		var out benchReq
		if err := Decode(data, &out); err != nil {
			b.Fatal(err)
		}
	}
}
