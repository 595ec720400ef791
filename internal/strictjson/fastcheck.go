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

// smallObject is how many keys an object may have before quickCheck keeps them in a map.
const smallObject = 16

// quickCheck reports whether data is certainly a document checkSyntax accepts.
func quickCheck(data []byte) bool {
	if !json.Valid(data) {
		return false
	}
	type frame struct {
		object bool
		start  int                 // where the object's keys begin in keys
		set    map[string]struct{} // the keys, once the object has more than smallObject
	}
	var stackBuf [16]frame
	stack := stackBuf[:0]
	// The keys of the open objects that have at most smallObject, innermost last, compared
	// in place: most objects are small, and a key then costs no allocation.
	var keyBuf [64][]byte
	keys := keyBuf[:0]
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
			stack = append(stack, frame{object: c == '{', start: len(keys)})
			expectKey = c == '{'
			i++
		case '}', ']':
			keys = keys[:stack[len(stack)-1].start]
			stack = stack[:len(stack)-1]
			expectKey = false
			i++
		case '"':
			end, plain := stringEnd(data, i)
			if expectKey {
				key := data[i+1 : end-1]
				if !plain || !utf8.Valid(key) {
					var s string
					if json.Unmarshal(data[i:end], &s) != nil {
						return false
					}
					key = []byte(s)
				}
				top := &stack[len(stack)-1]
				if top.set == nil {
					for _, k := range keys[top.start:] {
						if bytes.Equal(k, key) {
							return false
						}
					}
					keys = append(keys, key)
					if len(keys)-top.start > smallObject {
						top.set = make(map[string]struct{}, 2*smallObject)
						for _, k := range keys[top.start:] {
							top.set[string(k)] = struct{}{}
						}
						keys = keys[:top.start]
					}
				} else {
					if _, dup := top.set[string(key)]; dup {
						return false
					}
					top.set[string(key)] = struct{}{}
				}
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
