package strictjson

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// checkSyntax's tokenizer (json.Decoder.Token) allocates for every token and dominated the
// cost of decoding large documents such as attestation requests. quickCheck accepts, in one
// pass that allocates little, a document that checkSyntax certainly accepts: json.Valid proves
// the grammar (one value, nothing after it), then a walk over the now well-formed bytes checks
// nesting depth and duplicate keys (compared unescaped, as the tokenizer compares them).
// Anything it does not accept goes to checkSyntax, which finds and describes the problem, so
// the two never disagree on what is accepted (FuzzQuickCheck holds them to it).

// quickCheck reports whether data is certainly a document checkSyntax accepts.
func quickCheck(data []byte) bool {
	if !json.Valid(data) {
		return false
	}
	type frame struct {
		object bool
		nkeys  int
		first  string
		keys   map[string]struct{} // made at an object's second key
	}
	var stackBuf [16]frame
	stack := stackBuf[:0]
	expectKey := false
	for i := 0; i < len(data); {
		switch c := data[i]; c {
		case ' ', '\t', '\n', '\r', ':':
			i++
		case ',':
			expectKey = stack[len(stack)-1].object
			i++
		case '{', '[':
			if len(stack) >= MaxDepth {
				return false
			}
			stack = append(stack, frame{object: c == '{'})
			expectKey = c == '{'
			i++
		case '}', ']':
			stack = stack[:len(stack)-1]
			expectKey = false
			i++
		case '"':
			end, plain := stringEnd(data, i)
			if expectKey {
				var key string
				if plain && utf8.Valid(data[i+1:end-1]) {
					key = string(data[i+1 : end-1])
				} else if json.Unmarshal(data[i:end], &key) != nil {
					return false
				}
				top := &stack[len(stack)-1]
				if top.nkeys == 0 {
					top.first = key
				} else {
					if top.keys == nil {
						top.keys = map[string]struct{}{top.first: {}}
					}
					if _, dup := top.keys[key]; dup {
						return false
					}
					top.keys[key] = struct{}{}
				}
				top.nkeys++
			}
			i = end
			expectKey = false
		default: // a number or a literal
			for i < len(data) && !isDelim(data[i]) {
				i++
			}
			expectKey = false
		}
	}
	return true
}

// stringEnd returns the index just after the string that starts at data[i] (a '"' of a valid
// document), and whether it holds no escapes.
func stringEnd(data []byte, i int) (end int, plain bool) {
	plain = true
	j := i + 1
	for {
		q := bytes.IndexByte(data[j:], '"')
		b := bytes.IndexByte(data[j:j+q], '\\')
		if b < 0 {
			end = j + q + 1
			break
		}
		plain = false
		j += b + 2 // the backslash and the byte it escapes
	}
	return end, plain
}

func isDelim(c byte) bool {
	switch c {
	case ',', ']', '}', ' ', '\t', '\n', '\r':
		return true
	}
	return false
}

// member is one key and raw value of an object.
type member struct {
	key   string
	value []byte
}

// objectMembers splits raw, a value of a document already checked, into its members, or
// reports that it is not an object. It replaces decoding into a map[string]json.RawMessage,
// which scans and copies every value again.
func objectMembers(raw []byte) ([]member, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return nil, false
	}
	var out []member
	i := skipSpace(raw, 1)
	for i < len(raw) && raw[i] == '"' {
		end, plain := stringEnd(raw, i)
		var key string
		if plain && utf8.Valid(raw[i+1:end-1]) {
			key = string(raw[i+1 : end-1])
		} else if json.Unmarshal(raw[i:end], &key) != nil {
			return nil, false
		}
		i = skipSpace(raw, end)
		if i >= len(raw) || raw[i] != ':' {
			return nil, false
		}
		start := skipSpace(raw, i+1)
		i = skipValue(raw, start)
		out = append(out, member{key: key, value: raw[start:i]})
		if i = skipSpace(raw, i); i < len(raw) && raw[i] == ',' {
			i = skipSpace(raw, i+1)
		}
	}
	return out, true
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipValue returns the index just after the well-formed value that starts at b[i].
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		end, _ := stringEnd(b, i)
		return end
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i, _ = stringEnd(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	}
	for i < len(b) && !isDelim(b[i]) {
		i++
	}
	return i
}
