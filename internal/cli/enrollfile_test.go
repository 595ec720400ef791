package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampart-iot/rampart/enrollment"
)

func TestParseRecords(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		wantRaw   []string
		wantLines []int
		wantErr   string
	}{
		{name: "one object", in: `{"a":1}`, wantRaw: []string{`{"a":1}`}, wantLines: []int{1}},
		{name: "array", in: "[\n  {\"a\": 1},\n  {\"a\": 2}\n]\n", wantRaw: []string{`{"a":1}`, `{"a":2}`}, wantLines: []int{2, 3}},
		{name: "array on one line", in: `[{"a":1},{"a":2},{"a":3}]`, wantRaw: []string{`{"a":1}`, `{"a":2}`, `{"a":3}`}, wantLines: []int{1, 1, 1}},
		{name: "jsonl", in: "{\"a\":1}\n{\"a\":2}\n\n{\"a\":3}\n", wantRaw: []string{`{"a":1}`, `{"a":2}`, `{"a":3}`}, wantLines: []int{1, 2, 4}},
		{name: "jsonl with CRLF", in: "{\"a\":1}\r\n{\"a\":2}\r\n", wantRaw: []string{`{"a":1}`, `{"a":2}`}, wantLines: []int{1, 2}},
		{name: "pretty objects", in: "{\n \"a\": 1\n}\n{\n \"a\": 2\n}\n", wantRaw: []string{`{"a":1}`, `{"a":2}`}, wantLines: []int{1, 4}},
		{name: "byte order mark", in: "\xef\xbb\xbf{\"a\":1}\n", wantRaw: []string{`{"a":1}`}, wantLines: []int{1}},
		{name: "empty", in: "", wantErr: "no enrollment records"},
		{name: "blank", in: "\n\n  \n", wantErr: "no enrollment records"},
		{name: "empty array", in: "[]", wantErr: "no enrollment records"},
		{name: "bad jsonl line", in: "{\"a\":1}\n{\"a\":\n", wantErr: "unexpected end"},
		{name: "syntax error line", in: "{\"a\":1}\n{\"a\":2}\n{\"a\" 3}\n", wantErr: "line 3: invalid JSON"},
		{name: "not an object", in: "{\"a\":1}\n42\n", wantErr: "record 2 (line 2): not a JSON object"},
		{name: "array element not an object", in: "[{\"a\":1},\n\"x\"]", wantErr: "record 2 (line 2): not a JSON object"},
		{name: "array of arrays", in: `[[{"a":1}]]`, wantErr: "record 1 (line 1): not a JSON object"},
		{name: "broken array", in: `[{"a":1},`, wantErr: "invalid JSON"},
		{name: "too large", in: `{"a":"` + strings.Repeat("x", enrollment.MaxRecordSize) + `"}`, wantErr: "larger than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs, err := parseRecords([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var raws []string
			var lines []int
			for _, r := range recs {
				raws = append(raws, string(r.raw))
				lines = append(lines, r.line)
			}
			if strings.Join(raws, " ") != strings.Join(tt.wantRaw, " ") {
				t.Errorf("records = %v, want %v", raws, tt.wantRaw)
			}
			if len(lines) != len(tt.wantLines) {
				t.Fatalf("lines = %v, want %v", lines, tt.wantLines)
			}
			for i := range lines {
				if lines[i] != tt.wantLines[i] {
					t.Errorf("lines = %v, want %v", lines, tt.wantLines)
					break
				}
			}
		})
	}
}

func TestReadEnrollmentFile(t *testing.T) {
	dir := t.TempDir()
	one := filepath.Join(dir, "one.json")
	two := filepath.Join(dir, "two.jsonl")
	os.WriteFile(one, []byte(`{"version": 1}`+"\n"), 0o600)
	os.WriteFile(two, []byte("{\"version\":1}\n{\"version\":2}\n"), 0o600)

	if raw, err := readSingleEnrollment(one, nil); err != nil || string(raw) != `{"version":1}` {
		t.Errorf("one: %s, %v", raw, err)
	}
	if _, err := readSingleEnrollment(two, nil); err == nil || !strings.Contains(err.Error(), "holds 2 enrollment records; use --bulk") {
		t.Errorf("two: err = %v", err)
	}
	if _, err := readSingleEnrollment(filepath.Join(dir, "missing"), nil); err == nil {
		t.Error("missing file: no error")
	}
	recs, err := readEnrollmentFile("-", strings.NewReader("{\"a\":1}\n{\"a\":2}\n"))
	if err != nil || len(recs) != 2 {
		t.Errorf("stdin: %d records, %v", len(recs), err)
	}
}

// FuzzParseRecords checks that the parser never panics and returns only compact JSON objects
// within the size limit, with plausible line numbers.
func FuzzParseRecords(f *testing.F) {
	for _, s := range []string{`{"a":1}`, "[{\"a\":1},{\"b\":[1,2]}]", "{\"a\":1}\n{\"a\":2}\n", "\xef\xbb\xbf[", "[{},", "{}{}", "null", "[null]", "  \n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, err := parseRecords(data)
		if err != nil {
			return
		}
		if len(recs) == 0 {
			t.Fatal("no records and no error")
		}
		lines := strings.Count(string(data), "\n") + 1
		for _, r := range recs {
			var m map[string]json.RawMessage
			if err := json.Unmarshal(r.raw, &m); err != nil {
				t.Fatalf("record %q is not a JSON object: %v", r.raw, err)
			}
			if len(r.raw) > enrollment.MaxRecordSize {
				t.Fatalf("record of %d bytes", len(r.raw))
			}
			if r.line < 1 || r.line > lines {
				t.Fatalf("line %d of %d", r.line, lines)
			}
		}
	})
}

func TestIsDeviceID(t *testing.T) {
	good := strings.Repeat("ab", 32)
	if !isDeviceID(good) {
		t.Error("valid ID refused")
	}
	for _, s := range []string{"", good[:63], good + "a", strings.ToUpper(good), strings.Repeat("g", 64)} {
		if isDeviceID(s) {
			t.Errorf("isDeviceID(%q) = true", s)
		}
	}
	if id, err := deviceID(" " + strings.ToUpper(good) + " "); err != nil || id != good {
		t.Errorf("deviceID(upper) = %q, %v", id, err)
	}
}
