// Package checkinclient is the device's client of the service's device endpoints beyond
// attestation, all over mutual TLS with the certificate that attestation installed: check-in,
// the push channel (server-sent events), signed update metadata and image packages.
//
// Trust: it authenticates the service with the configured roots and itself with the agent's
// certificate, re-read from disk for each new connection so that renewals take effect. It
// trusts nothing the service says beyond its shape: responses are bounded, and what to install
// is decided by the verified update metadata, not by this client.
package checkinclient

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/attestclient"
	"github.com/rampart-iot/rampart/internal/tufclient"
)

// Limits on what the service may send.
const (
	MaxResponse  = 1 << 20 // a JSON answer
	MaxEventLine = 4 << 10 // one line of the event stream
)

// Client talks to the service as one device. Its zero value is not usable: set Server,
// RootCAs and CertDir.
type Client struct {
	Server  string         // https://host:port
	RootCAs *x509.CertPool // verifies the service; nil means the system roots
	CertDir string         // the agent's state directory, where attestation installs certificates
	// Timeout bounds each request but the push channel (default 30 s).
	Timeout time.Duration
	// Wrap, if set, wraps the transport: tests put an attacker between device and service.
	Wrap func(http.RoundTripper) http.RoundTripper
	// Transport, if set, replaces the client's own TLS transport: the agent's cloud broker
	// (internal/cloudbroker) speaks TLS with the agent's certificate on the monitor's behalf.
	Transport http.RoundTripper

	once sync.Once
	base *http.Transport
	tr   http.RoundTripper
}

// Error is a refusal by the service.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("HTTP %d %s: %s", e.Status, e.Code, e.Message) }

func (c *Client) transport() http.RoundTripper {
	c.once.Do(func() {
		if c.Transport != nil {
			c.tr = c.Transport
			if c.Wrap != nil {
				c.tr = c.Wrap(c.tr)
			}
			return
		}
		c.base = &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: c.RootCAs, MinVersion: tls.VersionTLS12,
				GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
					cert, err := attestclient.LoadCertificate(c.CertDir)
					if err != nil {
						return nil, fmt.Errorf("the device has no certificate yet (attest first): %w", err)
					}
					return &cert, nil
				}},
			IdleConnTimeout:       90 * time.Second,
			ResponseHeaderTimeout: 30 * time.Second,
		}
		c.tr = c.base
		if c.Wrap != nil {
			c.tr = c.Wrap(c.base)
		}
	})
	return c.tr
}

// Reset drops kept-alive connections, so the next request presents the newest certificate.
func (c *Client) Reset() {
	c.transport()
	if c.base != nil {
		c.base.CloseIdleConnections()
	} else if ci, ok := c.Transport.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

func (c *Client) client(stream bool) *http.Client {
	t := c.Timeout
	if t == 0 {
		t = 30 * time.Second
	}
	if stream {
		t = 0
	}
	return &http.Client{Transport: c.transport(), Timeout: t}
}

func (c *Client) url(path string) string { return strings.TrimSuffix(c.Server, "/") + path }

func (c *Client) do(ctx context.Context, req *http.Request, max int64) ([]byte, error) {
	resp, err := c.client(false).Do(req.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("reaching the Rampart service: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, fmt.Errorf("reading the service's answer: %w", err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("the service's answer to %s is larger than %d bytes", req.URL.Path, max)
	}
	if resp.StatusCode/100 != 2 {
		return nil, errorOf(resp.StatusCode, b)
	}
	return b, nil
}

func errorOf(status int, b []byte) error {
	var e v1.ErrorResponse
	if json.Unmarshal(b, &e) != nil || e.Error.Message == "" {
		return &Error{Status: status, Message: http.StatusText(status)}
	}
	msg := e.Error.Message
	for _, d := range e.Error.Details {
		msg += "; " + d.Field + ": " + d.Message
	}
	return &Error{Status: status, Code: e.Error.Code, Message: msg}
}

// CheckIn reports the device's state and returns what to do next.
func (c *Client) CheckIn(ctx context.Context, in v1.CheckIn) (v1.CheckInResult, error) {
	body, err := json.Marshal(in)
	if err != nil {
		return v1.CheckInResult{}, err
	}
	req, err := http.NewRequest("POST", c.url("/v1/device/check-in"), bytes.NewReader(body))
	if err != nil {
		return v1.CheckInResult{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	b, err := c.do(ctx, req, MaxResponse)
	if err != nil {
		return v1.CheckInResult{}, fmt.Errorf("check-in: %w", err)
	}
	var out v1.CheckInResult
	if err := json.Unmarshal(b, &out); err != nil {
		return v1.CheckInResult{}, fmt.Errorf("check-in: the service's answer: %w", err)
	}
	return out, nil
}

// Get fetches path (a metadata file) with at most max bytes.
func (c *Client) Get(ctx context.Context, path string, max int64) ([]byte, error) {
	req, err := http.NewRequest("GET", c.url(path), nil)
	if err != nil {
		return nil, err
	}
	return c.do(ctx, req, max)
}

// HTTPClient is an http.Client over the device's mutual TLS, for downloads (which set their
// own bounds and ranges).
func (c *Client) HTTPClient() *http.Client { return c.client(true) }

// PackageURL is where the device downloads an image package of its tenant.
func (c *Client) PackageURL(imageID string) string {
	return c.url("/v1/device/images/" + imageID + "/package")
}

// Events opens the push channel and calls fn with each event until ctx ends, the stream
// breaks or fn returns an error. It returns nil only when ctx ended.
func (c *Client) Events(ctx context.Context, fn func(v1.DeviceEvent) error) error {
	req, err := http.NewRequestWithContext(ctx, "GET", c.url("/v1/device/events"), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.client(true).Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("opening the push channel: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, MaxResponse))
		return fmt.Errorf("opening the push channel: %w", errorOf(resp.StatusCode, b))
	}
	err = readEvents(resp.Body, fn)
	if ctx.Err() != nil {
		return nil
	}
	if err == nil {
		err = errors.New("the service closed the push channel")
	}
	return err
}

// readEvents parses a text/event-stream, bounded per line, and calls fn with each event's data
// decoded as a DeviceEvent. Comments and unknown fields are skipped.
func readEvents(r io.Reader, fn func(v1.DeviceEvent) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 512), MaxEventLine)
	var data []byte
	for sc.Scan() {
		line := sc.Bytes()
		switch {
		case len(line) == 0: // end of an event
			if len(data) > 0 {
				var e v1.DeviceEvent
				if err := json.Unmarshal(data, &e); err != nil {
					return fmt.Errorf("a push event is not JSON: %w", err)
				}
				if err := fn(e); err != nil {
					return err
				}
			}
			data = data[:0]
		case line[0] == ':':
		case bytes.HasPrefix(line, []byte("data:")):
			if len(data)+len(line) > MaxEventLine {
				return fmt.Errorf("a push event is larger than %d bytes", MaxEventLine)
			}
			data = append(data, bytes.TrimPrefix(bytes.TrimPrefix(line, []byte("data:")), []byte(" "))...)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading the push channel: %w", err)
	}
	return nil
}

// Fetch implements tufclient.Fetcher over the device's mutual TLS: repo tufclient.Director is
// the device group's director repository, tufclient.Image the tenant's image repository. A
// missing file wraps tufclient.ErrNotFound.
func (c *Client) Fetch(ctx context.Context, repo tufclient.Repo, name string, maxLength int64) (io.ReadCloser, error) {
	path := "/v1/device/metadata/images/"
	if repo == tufclient.Director {
		path = "/v1/device/metadata/director/"
	}
	req, err := http.NewRequestWithContext(ctx, "GET", c.url(path+name), nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.client(false).Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching %s metadata %s: %w", repo, name, err)
	}
	if resp.StatusCode == http.StatusNotFound {
		resp.Body.Close()
		return nil, fmt.Errorf("%s metadata %s: %w", repo, name, tufclient.ErrNotFound)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, MaxResponse))
		resp.Body.Close()
		return nil, fmt.Errorf("fetching %s metadata %s: %w", repo, name, errorOf(resp.StatusCode, b))
	}
	if resp.ContentLength > maxLength {
		resp.Body.Close()
		return nil, fmt.Errorf("%s metadata %s is %d bytes; the limit is %d", repo, name, resp.ContentLength, maxLength)
	}
	return resp.Body, nil
}

// InitialRoot fetches version 1 of a repository's root, the device's starting point of trust
// for it, over mutual TLS with the service (trust on first use, bound to the service's
// certificate); later roots must chain from it.
func (c *Client) InitialRoot(ctx context.Context, repo tufclient.Repo) ([]byte, error) {
	rc, err := c.Fetch(ctx, repo, "1.root.json", tufclient.MaxRootSize)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, tufclient.MaxRootSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > tufclient.MaxRootSize {
		return nil, fmt.Errorf("%s root is larger than %d bytes", repo, tufclient.MaxRootSize)
	}
	return b, nil
}
