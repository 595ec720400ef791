package manifest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/rampart-iot/rampart/internal/strictjson"
)

// checker collects the problems of one document. Problems found while decoding (unknown keys,
// wrong types) mark their paths bad, and later checks of a bad path or anything under it are
// dropped, so that each mistake is reported once.
type checker struct {
	decoded []Problem
	probs   []Problem
}

func (c *checker) add(path, format string, args ...any) {
	c.probs = append(c.probs, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

// decodeProblems records problems found by the strict decoder, with their paths under prefix.
func (c *checker) decodeProblems(prefix string, ps []Problem) {
	for _, p := range ps {
		switch {
		case prefix == "":
		case p.Path == "":
			p.Path = prefix
		case strings.HasPrefix(p.Path, "["):
			p.Path = prefix + p.Path
		default:
			p.Path = prefix + "." + p.Path
		}
		c.decoded = append(c.decoded, p)
	}
}

// decode strictly decodes raw into v, recording its problems under path; it reports whether
// raw decoded cleanly.
func (c *checker) decode(path string, raw []byte, v any) bool {
	err := strictjson.Decode(raw, v)
	if err == nil {
		return true
	}
	se, ok := err.(*strictjson.Error)
	if !ok {
		se = &strictjson.Error{Problems: []Problem{{Message: err.Error()}}}
	}
	c.decodeProblems(path, se.Problems)
	return false
}

// isBad reports whether path is, or lies under, a path the decoder already complained about.
func (c *checker) isBad(path string) bool {
	for _, d := range c.decoded {
		b := d.Path
		if b == "" || path == b || strings.HasPrefix(path, b+".") || strings.HasPrefix(path, b+"[") {
			return true
		}
	}
	return false
}

// err returns the problems found, or nil.
func (c *checker) err() error {
	out := append([]Problem(nil), c.decoded...)
	seen := map[Problem]bool{}
	for _, p := range c.probs {
		if c.isBad(p.Path) || seen[p] {
			continue
		}
		seen[p] = true
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil
	}
	return &Error{Problems: out}
}

// required records a problem if a required field is absent, and reports whether it is present.
func (c *checker) required(path string, present bool) bool {
	if !present && !c.isBad(path) {
		c.add(path, "is required")
	}
	return present
}

// text checks a free-text field: non-empty, valid UTF-8, no control characters, bounded.
func (c *checker) text(path, s string, max int) {
	switch {
	case strings.TrimSpace(s) == "":
		c.add(path, "must not be empty")
	case len(s) > max:
		c.add(path, "is %d bytes; the limit is %d", len(s), max)
	case !utf8.ValidString(s):
		c.add(path, "must be valid UTF-8")
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		c.add(path, "must not contain control characters")
	}
}

// uuid checks a UUID and returns it in lower case.
func (c *checker) uuid(path, s string) string {
	u, err := ParseUUID(s)
	if err != nil {
		c.add(path, "%v", err)
		return s
	}
	return u
}

// str decodes one array element that must be a string.
func (c *checker) str(path string, raw json.RawMessage) (string, bool) {
	var s string
	if kind(raw) != "a string" || json.Unmarshal(raw, &s) != nil {
		c.add(path, "must be a string, not %s", kind(raw))
		return "", false
	}
	return s, true
}

// integer decodes one array element that must be an integer.
func (c *checker) integer(path string, raw json.RawMessage) (int64, bool) {
	n, err := strconv.ParseInt(string(bytes.TrimSpace(raw)), 10, 64)
	if err != nil {
		if kind(raw) == "a number" {
			c.add(path, "must be an integer, not %s", bytes.TrimSpace(raw))
		} else {
			c.add(path, "must be an integer, not %s", kind(raw))
		}
		return 0, false
	}
	return n, true
}

// kind names the JSON type of raw, for messages.
func kind(raw json.RawMessage) string {
	s := bytes.TrimSpace(raw)
	if len(s) == 0 {
		return "nothing"
	}
	switch s[0] {
	case '"':
		return "a string"
	case '[':
		return "an array"
	case '{':
		return "an object"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

func index(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

// ParseUUID parses a UUID in its 8-4-4-4-12 hexadecimal form, in any case, and returns it in
// lower case. The nil UUID is refused.
func ParseUUID(s string) (string, error) {
	if len(s) != 36 {
		return "", fmt.Errorf("must be a UUID such as 819255ff-8640-41fd-aea7-f85d34c491d5, not %q", truncate(s))
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch i {
		case 8, 13, 18, 23:
			if ch != '-' {
				return "", fmt.Errorf("must be a UUID such as 819255ff-8640-41fd-aea7-f85d34c491d5, not %q", s)
			}
		default:
			if !isHex(ch) {
				return "", fmt.Errorf("must be a UUID such as 819255ff-8640-41fd-aea7-f85d34c491d5, not %q", s)
			}
		}
	}
	u := strings.ToLower(s)
	if u == "00000000-0000-0000-0000-000000000000" {
		return "", fmt.Errorf("must not be the nil UUID")
	}
	return u, nil
}

func isHex(ch byte) bool {
	return '0' <= ch && ch <= '9' || 'a' <= ch && ch <= 'f' || 'A' <= ch && ch <= 'F'
}

// truncate shortens s for an error message.
func truncate(s string) string {
	const max = 80
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
