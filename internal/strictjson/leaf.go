package strictjson

import (
	"bytes"
	"encoding"
	"encoding/base64"
	"reflect"
	"strconv"
	"unicode/utf8"
)

// A json.Decoder for every leaf value (a string, a base64 []byte, a number) was most of the
// cost of decoding a request once the syntax check was fast. decodeLeaf decodes the plain
// forms of the common leaves directly, exactly as encoding/json does; anything else (escapes,
// invalid UTF-8, a number that is not a plain integer, a type with its own decoding) it leaves
// to the decoder, which also describes every error. FuzzDecode holds the two to the same
// result.

var (
	bytesType           = reflect.TypeFor[[]byte]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// decodeLeaf decodes raw, a well-formed JSON value, into v if it is a plain leaf, and reports
// whether it did.
func decodeLeaf(raw []byte, v reflect.Value) bool {
	t := v.Type()
	if t.Kind() != reflect.String && t != bytesType && !isInt(t.Kind()) {
		return false
	}
	if pt := reflect.PointerTo(t); pt.Implements(unmarshalerType) || pt.Implements(textUnmarshalerType) {
		return false
	}
	raw = bytes.TrimSpace(raw)
	if isInt(t.Kind()) {
		if len(raw) == 0 || (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) {
			return false
		}
		n, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil || v.OverflowInt(n) {
			return false
		}
		v.SetInt(n)
		return true
	}
	if len(raw) < 2 || raw[0] != '"' {
		return false
	}
	s := raw[1 : len(raw)-1]
	if bytes.IndexByte(s, '\\') >= 0 {
		return false
	}
	if t.Kind() == reflect.String {
		if !utf8.Valid(s) {
			return false
		}
		v.SetString(string(s))
		return true
	}
	b := make([]byte, base64.StdEncoding.DecodedLen(len(s)))
	n, err := base64.StdEncoding.Decode(b, s)
	if err != nil {
		return false
	}
	v.SetBytes(b[:n])
	return true
}

func isInt(k reflect.Kind) bool {
	switch k {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return true
	}
	return false
}
