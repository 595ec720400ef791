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
