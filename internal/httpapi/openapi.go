package httpapi

import (
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/problem"
)

// OpenAPI returns the OpenAPI 3.1 document for the API, generated from the route table and
// the api/v1 types, so it cannot drift from what is served.
func OpenAPI() ([]byte, error) {
	g := &schemaGen{schemas: map[string]any{}}
	paths := map[string]map[string]any{}
	errRef := g.ref(reflect.TypeFor[v1.ErrorResponse]())
	pathParam := regexp.MustCompile(`\{([a-z_]+)\}`)
	for _, rt := range routes() {
		op := map[string]any{"operationId": rt.op, "summary": rt.summary}
		desc := ""
		switch {
		case rt.public:
			op["security"] = []any{}
		case rt.action != "":
			desc = "Requires permission `" + string(rt.action) + "`."
		}
		if desc != "" {
			op["description"] = desc
		}
		var params []any
		for _, m := range pathParam.FindAllStringSubmatch(rt.path, -1) {
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
		qs := append([]queryParam{}, rt.query...)
		if rt.list {
			qs = append(qs, pageParams...)
		}
		for _, q := range qs {
			params = append(params, map[string]any{"name": q.name, "in": "query", "description": q.doc, "schema": paramSchema(q.typ)})
		}
		if len(params) > 0 {
			op["parameters"] = params
		}
		if rt.rawBody {
			op["requestBody"] = map[string]any{
				"required":    true,
				"description": fmt.Sprintf("At most %d bytes.", rt.limit),
				"content":     map[string]any{"application/octet-stream": map[string]any{"schema": map[string]any{"type": "string", "format": "binary"}}},
			}
		}
		if rt.in != nil {
			limit := rt.limit
			if limit == 0 {
				limit = DefaultBodyLimit
			}
			op["requestBody"] = map[string]any{
				"required":    true,
				"description": fmt.Sprintf("At most %d bytes; unknown fields are rejected.", limit),
				"content":     map[string]any{"application/json": map[string]any{"schema": g.ref(reflect.TypeOf(rt.in))}},
			}
		}
		responses := map[string]any{}
		ok := map[string]any{"description": "Success"}
		if rt.out != nil {
			ok["content"] = map[string]any{"application/json": map[string]any{"schema": g.ref(reflect.TypeOf(rt.out))}}
		}
		if rt.produces != "" {
			ok["content"] = map[string]any{rt.produces: map[string]any{"schema": map[string]any{"type": "string", "format": "binary"}}}
		}
		if rt.op == "getOpenAPI" {
			ok["content"] = map[string]any{"application/json": map[string]any{"schema": map[string]any{"type": "object"}}}
		}
		responses[fmt.Sprint(rt.status)] = ok
		responses["default"] = map[string]any{"description": "An error; see the code for its meaning.",
			"content": map[string]any{"application/json": map[string]any{"schema": errRef}}}
		op["responses"] = responses
		oaPath := rt.path
		if paths[oaPath] == nil {
			paths[oaPath] = map[string]any{}
		}
		paths[oaPath][strings.ToLower(rt.method)] = op
	}
	codes := []string{}
	for _, c := range []string{v1.CodeBadRequest, v1.CodeValidation, v1.CodeUnauthenticated, v1.CodeForbidden, v1.CodeNotFound,
		v1.CodeConflict, v1.CodeDeviceClaimed, v1.CodePayloadTooLarge, v1.CodeUnsupportedMedia, v1.CodeMethodNotAllowed,
		v1.CodeInternal, v1.CodeUnavailable, v1.CodeRootOfTrustRejected, v1.CodeAttestationFailed} {
		codes = append(codes, fmt.Sprintf("`%s` (%d)", c, problem.Status(c)))
	}
	doc := map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{
			"title":   "Rampart security service API",
			"version": "v1",
			"description": "Tenants, roles, products, device groups, devices and the audit log. Authenticate with " +
				"`Authorization: Bearer <token>`. Every error has the shape {\"error\": {code, message, details}}; codes: " +
				strings.Join(codes, ", ") + ". Lists are paged with page_token and max_page_size.",
		},
		"servers":    []any{map[string]any{"url": "/"}},
		"security":   []any{map[string]any{"bearer": []any{}}},
		"paths":      paths,
		"components": map[string]any{"schemas": g.schemas, "securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer"}}},
	}
	return json.MarshalIndent(doc, "", "  ")
}

func paramSchema(typ string) map[string]any {
	if typ == "date-time" {
		return map[string]any{"type": "string", "format": "date-time"}
	}
	return map[string]any{"type": typ}
}

// schemaGen turns Go types into JSON Schemas, naming each struct once under components.
type schemaGen struct {
	schemas map[string]any
}

var (
	timeType = reflect.TypeFor[time.Time]()
	rawType  = reflect.TypeFor[json.RawMessage]()
)

func (g *schemaGen) ref(t reflect.Type) map[string]any {
	return g.schema(t)
}

func schemaName(t reflect.Type) string {
	name := t.Name()
	if i := strings.IndexByte(name, '['); i >= 0 { // List[...v1.Product] -> ProductList
		inner := name[i+1 : len(name)-1]
		if j := strings.LastIndexByte(inner, '.'); j >= 0 {
			inner = inner[j+1:]
		}
		return inner + name[:i]
	}
	return name
}

func (g *schemaGen) schema(t reflect.Type) map[string]any {
	switch {
	case t == timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case t == rawType:
		return map[string]any{"description": "any JSON value"}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return g.schema(t.Elem())
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int32, reflect.Int64:
		return map[string]any{"type": "integer"}
	case reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return map[string]any{"type": "string", "contentEncoding": "base64"}
		}
		return map[string]any{"type": "array", "items": g.schema(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": g.schema(t.Elem())}
	case reflect.Interface:
		return map[string]any{}
	case reflect.Struct:
		name := schemaName(t)
		if _, done := g.schemas[name]; !done {
			g.schemas[name] = map[string]any{} // placeholder against recursion
			props := map[string]any{}
			var required []string
			for i := 0; i < t.NumField(); i++ {
				f := t.Field(i)
				tag := f.Tag.Get("json")
				if tag == "-" || !f.IsExported() {
					continue
				}
				jname, opts, _ := strings.Cut(tag, ",")
				if jname == "" {
					jname = f.Name
				}
				s := g.schema(f.Type)
				if d := f.Tag.Get("doc"); d != "" {
					s = withKey(s, "description", d)
				}
				if e := f.Tag.Get("enum"); e != "" {
					s = withKey(s, "enum", strings.Split(e, ","))
				}
				props[jname] = s
				if !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") {
					required = append(required, jname)
				}
			}
			sort.Strings(required)
			obj := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
			if len(required) > 0 {
				obj["required"] = required
			}
			g.schemas[name] = obj
		}
		return map[string]any{"$ref": "#/components/schemas/" + name}
	}
	return map[string]any{}
}

// withKey returns a copy of s with k set; a $ref cannot have siblings in older tools, so it
// is wrapped in allOf.
func withKey(s map[string]any, k string, v any) map[string]any {
	if _, isRef := s["$ref"]; isRef {
		return map[string]any{"allOf": []any{s}, k: v}
	}
	out := map[string]any{}
	for kk, vv := range s {
		out[kk] = vv
	}
	out[k] = v
	return out
}
