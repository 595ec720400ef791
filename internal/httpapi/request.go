package httpapi

import (
	"encoding/base64"
	"io"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/problem"
	"github.com/rampart-iot/rampart/internal/store"
	"github.com/rampart-iot/rampart/internal/strictjson"
)

// queryParam documents one query parameter a route accepts.
type queryParam struct {
	name, typ, doc string // typ: string, integer, boolean, date-time
}

var pageParams = []queryParam{
	{"page_token", "string", "next_page_token from the previous page"},
	{"max_page_size", "integer", "items per page, 1 to 1000 (default 100)"},
}

// checkQuery refuses query parameters the route does not declare, and repeated ones.
func checkQuery(r *http.Request, rt *route) error {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return problem.New(v1.CodeBadRequest, "malformed query string: %v", err)
	}
	var bad []string
	for k, vs := range q {
		if rt.queryParam(k) == nil {
			bad = append(bad, k)
			continue
		}
		if len(vs) > 1 {
			return problem.New(v1.CodeBadRequest, "query parameter %q is repeated", k)
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return problem.New(v1.CodeBadRequest, "unknown query parameter(s): %s", strings.Join(bad, ", "))
	}
	return nil
}

func (rt *route) queryParam(name string) *queryParam {
	for i := range rt.query {
		if rt.query[i].name == name {
			return &rt.query[i]
		}
	}
	if rt.list {
		for i := range pageParams {
			if pageParams[i].name == name {
				return &pageParams[i]
			}
		}
	}
	return nil
}

// decode reads the request body (bounded by the route's limit) and decodes it strictly into v.
func decode(c *call, v any) error {
	ct := c.r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
		return problem.New(v1.CodeUnsupportedMedia, "request body must be application/json (Content-Type was %q)", ct)
	}
	limit := c.rt.limit
	if limit == 0 {
		limit = DefaultBodyLimit
	}
	if c.r.ContentLength > limit {
		return &http.MaxBytesError{Limit: limit}
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, c.r.Body, limit))
	if err != nil {
		return err
	}
	return strictjson.Decode(body, v)
}

// listOptions reads page_token and max_page_size.
func (c *call) listOptions() (store.ListOptions, error) {
	var opt store.ListOptions
	q := c.r.URL.Query()
	if tok := q.Get("page_token"); tok != "" {
		b, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil || len(b) == 0 || len(b) > 256 {
			return opt, problem.New(v1.CodeBadRequest, "page_token is not a token this server issued")
		}
		opt.After = string(b)
	}
	if s := q.Get("max_page_size"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > store.MaxLimit {
			return opt, problem.New(v1.CodeBadRequest, "max_page_size must be an integer from 1 to %d, not %q", store.MaxLimit, s)
		}
		opt.Limit = n
	}
	return opt.Normalize(), nil
}

func pageToken(next string) string {
	if next == "" {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(next))
}

// list converts a store page to an API list.
func list[S, T any](page store.Page[S], conv func(S) T) v1.List[T] {
	out := v1.List[T]{Items: make([]T, len(page.Items)), NextPageToken: pageToken(page.Next)}
	for i, s := range page.Items {
		out.Items[i] = conv(s)
	}
	return out
}

func (c *call) queryBool(name string) (bool, error) {
	s := c.r.URL.Query().Get(name)
	if s == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, problem.New(v1.CodeBadRequest, "query parameter %s must be true or false, not %q", name, s)
	}
	return b, nil
}

func (c *call) queryTime(name string) (time.Time, error) {
	s := c.r.URL.Query().Get(name)
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, problem.New(v1.CodeBadRequest, "query parameter %s must be an RFC 3339 time such as 2026-01-02T15:04:05Z, not %q", name, s)
	}
	return t, nil
}
