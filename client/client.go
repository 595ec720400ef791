// Package client is a Go client for Rampart's REST API under /v1: one method per endpoint, typed
// with the wire types of package api/v1.
//
// What it trusts: the server is authenticated by TLS only, against Config.CACertPEM when it is
// set and the system roots otherwise; plain http:// addresses are refused unless
// Config.AllowHTTP says otherwise. The client sends its bearer token to that server and nowhere
// else: it never follows redirects. Everything the server sends back is treated as untrusted
// input: response bodies are read up to MaxResponseBytes, error bodies up to MaxErrorBytes, and
// list helpers stop after MaxAllItems items or when the server repeats a page token.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	v1 "github.com/rampart-iot/rampart/api/v1"
)

// Limits on what the client reads from the server.
const (
	// MaxResponseBytes bounds a successful response body.
	MaxResponseBytes = 32 << 20
	// MaxErrorBytes bounds an error response body.
	MaxErrorBytes = 64 << 10
	// MaxAllItems bounds the number of items the All* helpers collect across pages.
	MaxAllItems = 1_000_000
)

// DefaultUserAgent is sent when Config.UserAgent is empty.
const DefaultUserAgent = "rampart-go-client"

// Config says where the server is and how to authenticate to it. Addr is required; the rest is
// optional.
type Config struct {
	// Addr is the server's base URL, such as https://rampart.example.com:8443. A path prefix
	// is kept (for a server behind a reverse proxy); a query or fragment is an error.
	Addr string
	// Token is sent as "Authorization: Bearer <Token>". Empty means no Authorization header.
	Token string
	// CACertPEM holds the PEM certificates that verify the server. Nil means the system roots.
	// It may not be combined with HTTPClient, which brings its own TLS settings.
	CACertPEM []byte
	// HTTPClient, if set, is used as is: its transport decides TLS trust and its redirect
	// policy decides whether the token may follow a redirect.
	HTTPClient *http.Client
	// UserAgent is sent as the User-Agent header; empty means DefaultUserAgent.
	UserAgent string
	// AllowHTTP permits a plain http:// Addr. Insecure: the token then crosses the network in
	// clear text. For tests and loopback debugging only.
	AllowHTTP bool
}

// Client calls the API of one Rampart server. It is safe for concurrent use.
type Client struct {
	base      string // scheme://host[:port][/prefix], no trailing slash
	token     string
	userAgent string
	hc        *http.Client
}

// New checks cfg and returns a client. It does not contact the server.
func New(cfg Config) (*Client, error) {
	base, err := parseAddr(cfg.Addr, cfg.AllowHTTP)
	if err != nil {
		return nil, err
	}
	if strings.ContainsAny(cfg.Token, "\r\n") {
		return nil, errors.New("token contains a line break")
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc, err = newHTTPClient(cfg.CACertPEM)
		if err != nil {
			return nil, err
		}
	} else if cfg.CACertPEM != nil {
		return nil, errors.New("client config sets both CACertPEM and HTTPClient; configure TLS in the HTTPClient's transport")
	}
	ua := cfg.UserAgent
	if ua == "" {
		ua = DefaultUserAgent
	}
	return &Client{base: base, token: cfg.Token, userAgent: ua, hc: hc}, nil
}

// Addr returns the server's base URL as the client uses it.
func (c *Client) Addr() string { return c.base }

func parseAddr(addr string, allowHTTP bool) (string, error) {
	if addr == "" {
		return "", errors.New("no server address")
	}
	u, err := url.Parse(addr)
	if err != nil {
		return "", fmt.Errorf("invalid server address %q: %w", addr, err)
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && allowHTTP:
	case u.Scheme == "http":
		return "", fmt.Errorf("invalid server address %q: plain http is refused, the server must use https", addr)
	default:
		return "", fmt.Errorf("invalid server address %q: want https://host[:port]", addr)
	}
	if u.Host == "" {
		return "", fmt.Errorf("invalid server address %q: no host", addr)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return "", fmt.Errorf("invalid server address %q: want https://host[:port] without user, query or fragment", addr)
	}
	return strings.TrimSuffix(u.Scheme+"://"+u.Host+u.EscapedPath(), "/"), nil
}

func newHTTPClient(caPEM []byte) (*http.Client, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if caPEM != nil {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, errors.New("CA certificate file holds no PEM certificate")
		}
		tc.RootCAs = pool
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc
	return &http.Client{
		Transport: tr,
		// The API never redirects; following one could hand the token to another server.
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			return fmt.Errorf("server redirected to %s; the client does not follow redirects", req.URL.Redacted())
		},
	}, nil
}

// APIError is an error response from the server: its HTTP status and the error body it sent.
type APIError struct {
	Status int      // HTTP status code
	Body   v1.Error // the body's "error" object; Code is empty if the body was not API JSON
}

// Error returns the server's message, followed by any per-field details it does not already
// contain.
func (e *APIError) Error() string {
	msg := e.Body.Message
	if msg == "" {
		msg = fmt.Sprintf("server answered HTTP %d %s", e.Status, http.StatusText(e.Status))
	}
	var extra []string
	for _, d := range e.Body.Details {
		s := d.Message
		if d.Field != "" {
			s = d.Field + ": " + d.Message
		}
		if s != "" && !strings.Contains(msg, d.Message) {
			extra = append(extra, s)
		}
	}
	if len(extra) > 0 {
		msg += " (" + strings.Join(extra, "; ") + ")"
	}
	return msg
}

// HasCode reports whether err is, or wraps, an *APIError with the given code (one of the
// v1.Code* constants).
func HasCode(err error, code string) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Body.Code == code
}

// do sends one request. path lists the segments after /v1; each is escaped, and empty, "." and
// ".." segments are refused. in, if not nil, is sent as JSON; out, if not nil, receives the JSON
// body of a 2xx response. do returns the response status.
func (c *Client) do(ctx context.Context, method string, path []string, query url.Values, in, out any) (int, error) {
	var body io.Reader
	ctype := ""
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, fmt.Errorf("encoding request: %w", err)
		}
		body, ctype = bytes.NewReader(b), "application/json"
	}
	resp, where, err := c.send(ctx, method, path, query, body, ctype, -1)
	if err != nil {
		return statusOf(resp), err
	}
	defer resp.Body.Close()
	if out == nil || resp.StatusCode == http.StatusNoContent {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, MaxResponseBytes))
		return resp.StatusCode, nil
	}
	return resp.StatusCode, decodeBody(resp, where, out)
}

// decodeBody reads a bounded JSON response into out.
func decodeBody(resp *http.Response, where string, out any) error {
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return fmt.Errorf("reading response to %s: %w", where, err)
	}
	if len(b) > MaxResponseBytes {
		return fmt.Errorf("response to %s exceeds %d bytes", where, MaxResponseBytes)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decoding response to %s: %w", where, err)
	}
	return nil
}

func statusOf(resp *http.Response) int {
	if resp == nil {
		return 0
	}
	return resp.StatusCode
}

// send makes a request and returns a successful response, whose body the caller closes. A
// non-2xx answer is an *APIError (the response, already closed, is returned for its status).
// size is the body's length, or -1 if unknown.
func (c *Client) send(ctx context.Context, method string, path []string, query url.Values, body io.Reader, contentType string, size int64) (*http.Response, string, error) {
	var p strings.Builder
	p.WriteString("/v1")
	for _, s := range path {
		if s == "" || s == "." || s == ".." {
			return nil, "", fmt.Errorf("invalid ID %q after %s in the request path", s, p.String())
		}
		p.WriteString("/")
		p.WriteString(url.PathEscape(s))
	}
	where := method + " " + p.String()
	u := c.base + p.String()
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, where, fmt.Errorf("building request: %w", err)
	}
	if size >= 0 {
		req.ContentLength = size
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, where, fmt.Errorf("request to %s: %w", where, ctx.Err())
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, where, fmt.Errorf("cannot reach the Rampart server at %s: %w", c.base, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer resp.Body.Close()
		return resp, where, readError(resp)
	}
	return resp, where, nil
}

func readError(resp *http.Response) error {
	ae := &APIError{Status: resp.StatusCode}
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxErrorBytes))
	if err != nil {
		return ae
	}
	var er v1.ErrorResponse
	if json.Unmarshal(b, &er) == nil {
		ae.Body = er.Error
	}
	return ae
}

// listQuery adds the paging parameters of o to q.
func listQuery(q url.Values, o ListOptions) url.Values {
	if o.PageToken != "" {
		q.Set("page_token", o.PageToken)
	}
	if o.MaxPageSize > 0 {
		q.Set("max_page_size", fmt.Sprint(o.MaxPageSize))
	}
	return q
}

// ListOptions selects one page of a list.
type ListOptions struct {
	// PageToken is the NextPageToken of the previous page; empty for the first page.
	PageToken string
	// MaxPageSize bounds the page, 1..1000; 0 means the server's default (100).
	MaxPageSize int
}

// all follows next_page_token from the page that start selects until the last page.
func all[T any](ctx context.Context, start ListOptions, page func(context.Context, ListOptions) (v1.List[T], error)) ([]T, error) {
	var items []T
	seen := map[string]bool{}
	o := start
	for {
		l, err := page(ctx, o)
		if err != nil {
			return nil, err
		}
		items = append(items, l.Items...)
		if len(items) > MaxAllItems {
			return nil, fmt.Errorf("list has more than %d items", MaxAllItems)
		}
		if l.NextPageToken == "" {
			if items == nil {
				items = []T{}
			}
			return items, nil
		}
		if seen[l.NextPageToken] {
			return nil, errors.New("server repeated a page token")
		}
		seen[l.NextPageToken] = true
		o.PageToken = l.NextPageToken
	}
}
