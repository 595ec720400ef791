// Package strictjson decodes JSON documents that come from users, devices or config files, and
// reports every problem at once: unknown keys, duplicate keys, values of the wrong type, and
// trailing data. Callers bound the size of the input before they call it; this package trusts
// nothing in the document itself.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"sync"
)

// MaxDepth bounds the nesting of objects and arrays in a document.
const MaxDepth = 64

// Problem is one thing wrong with a document, at a JSON path such as "store.dsn" or
// "enrollments[3]". Path is empty for the document as a whole.
type Problem struct {
	Path    string
	Message string
}

func (p Problem) String() string {
	if p.Path == "" {
		return p.Message
	}
	return p.Path + ": " + p.Message
}

// Error lists every problem found in a document.
type Error struct {
	Problems []Problem
}

func (e *Error) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.String()
	}
	return strings.Join(parts, "; ")
}

// Decode decodes data, which must hold exactly one JSON object, into the struct pointed to by
// v. Keys that name no field, duplicate keys and type mismatches are all reported in one
// *Error. On error v may be partly filled; callers must not use it.
func Decode(data []byte, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("strictjson: Decode needs a non-nil pointer, got %T", v)
	}
	if !quickCheck(data) {
		if err := checkSyntax(data); err != nil {
			return &Error{Problems: []Problem{{Message: err.Error()}}}
		}
	}
	var probs []Problem
	decodeValue(json.RawMessage(data), rv.Elem(), "", &probs)
	if len(probs) > 0 {
		return &Error{Problems: probs}
	}
	return nil
}

// checkSyntax verifies that data is one well-formed JSON value with nothing after it, that no
// object repeats a key, and that nesting stays within MaxDepth.
func checkSyntax(data []byte) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return errors.New("empty document")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	type frame struct {
		object bool
		keys   map[string]bool
		expect bool // in an object: the next string token is a key
	}
	var stack []*frame
	values := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return describeSyntaxError(err)
		}
		if len(stack) == 0 {
			if d, ok := tok.(json.Delim); !ok || d == '{' || d == '[' {
				values++
			}
			if values > 1 {
				return errors.New("unexpected data after the JSON document")
			}
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				if len(stack) >= MaxDepth {
					return fmt.Errorf("document nests deeper than %d levels", MaxDepth)
				}
				if top != nil && top.object {
					top.expect = true
				}
				stack = append(stack, &frame{object: t == '{', keys: map[string]bool{}, expect: t == '{'})
			case '}', ']':
				stack = stack[:len(stack)-1]
				if len(stack) > 0 && stack[len(stack)-1].object {
					stack[len(stack)-1].expect = true
				}
			}
		case string:
			if top != nil && top.object && top.expect {
				if top.keys[t] {
					return fmt.Errorf("duplicate key %q", t)
				}
				top.keys[t] = true
				top.expect = false
				continue
			}
			if top != nil && top.object {
				top.expect = true
			}
		default:
			if top != nil && top.object {
				top.expect = true
			}
		}
	}
	if len(stack) > 0 {
		return errors.New("malformed JSON: unexpected end of document")
	}
	return nil
}

func describeSyntaxError(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("malformed JSON at byte %d: %v", se.Offset, se)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("malformed JSON: unexpected end of document")
	}
	return fmt.Errorf("malformed JSON: %v", err)
}

var rawMessageType = reflect.TypeFor[json.RawMessage]()
var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

// decodeValue decodes raw into v, recursing into structs so that every unknown key and every
// type error is reported with its path.
func decodeValue(raw json.RawMessage, v reflect.Value, path string, probs *[]Problem) {
	t := v.Type()
	if isNull(raw) {
		// null leaves the zero value, as encoding/json does.
		v.Set(reflect.Zero(t))
		return
	}
	if t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct && !implementsUnmarshaler(t) {
		nv := reflect.New(t.Elem())
		decodeValue(raw, nv.Elem(), path, probs)
		v.Set(nv)
		return
	}
	if t == rawMessageType { // the document is valid JSON, so its raw value needs no decoding
		v.SetBytes(append([]byte(nil), bytes.TrimSpace(raw)...))
		return
	}
	if decodeLeaf(raw, v) {
		return
	}
	if t.Kind() != reflect.Struct || t == rawMessageType || implementsUnmarshaler(t) || implementsUnmarshaler(reflect.PointerTo(t)) {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v.Addr().Interface()); err != nil {
			*probs = append(*probs, Problem{Path: path, Message: describeValueError(err, t)})
		}
		return
	}
	members, ok := objectMembers(raw)
	if !ok {
		*probs = append(*probs, Problem{Path: path, Message: "must be an object, not " + kindOf(raw)})
		return
	}
	fields := jsonFields(t)
	slices.SortFunc(members, func(a, b member) int { return strings.Compare(a.key, b.key) })
	for _, m := range members {
		idx, ok := fields[m.key]
		if !ok {
			*probs = append(*probs, Problem{Path: join(path, m.key), Message: "unknown field"})
			continue
		}
		f := v.FieldByIndex(idx)
		if decodeLeaf(m.value, f) {
			continue // a plain leaf, decoded without building its path
		}
		decodeValue(m.value, f, join(path, m.key), probs)
	}
}

func implementsUnmarshaler(t reflect.Type) bool { return t.Implements(unmarshalerType) }

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// fieldsOf caches jsonFields by type: the types decoded are the program's own, so it is
// bounded by the code.
var fieldsOf sync.Map // reflect.Type -> map[string][]int

// jsonFields maps the JSON names of t's exported fields to their indexes, as encoding/json
// names them (tag name, else field name; "-" skipped). Embedded structs are flattened. The
// map is shared: callers must not change it.
func jsonFields(t reflect.Type) map[string][]int {
	if m, ok := fieldsOf.Load(t); ok {
		return m.(map[string][]int)
	}
	m := structFields(t)
	fieldsOf.Store(t, m)
	return m
}

func structFields(t reflect.Type) map[string][]int {
	out := map[string][]int{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			for k, idx := range structFields(f.Type) {
				out[k] = append([]int{i}, idx...)
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = []int{i}
	}
	return out
}

func describeValueError(err error, t reflect.Type) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		where := ""
		if te.Field != "" {
			where = " at " + te.Field
		}
		return fmt.Sprintf("wrong type%s: got %s, want %s", where, te.Value, typeName(te.Type))
	}
	msg := err.Error()
	if strings.HasPrefix(msg, "json: unknown field ") {
		return "unknown field " + strings.TrimPrefix(msg, "json: unknown field ")
	}
	msg = strings.TrimPrefix(msg, "json: ")
	return fmt.Sprintf("invalid %s: %s", typeName(t), msg)
}

func typeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Map, reflect.Struct:
		return "object"
	case reflect.Pointer:
		return typeName(t.Elem())
	}
	return t.String()
}

func kindOf(raw json.RawMessage) string {
	s := bytes.TrimSpace(raw)
	if len(s) == 0 {
		return "nothing"
	}
	switch s[0] {
	case '"':
		return "a string"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	case '{':
		return "an object"
	}
	return "a number"
}
