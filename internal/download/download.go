// Package download fetches an image by digest over HTTP(S), resuming a partial download kept on
// disk with an HTTP Range request, and verifies its size and SHA-256 before it hands the file
// over: what Fetch returns is complete and verified, and nothing else is ever returned.
//
// Trust: download trusts nothing the server says. It accepts at most the expected number of
// bytes, checks every Content-Range and Content-Length against what it asked for, and decides
// by the digest alone. It trusts the file system to keep what it synced.
package download

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// PartialSuffix ends every partial path; the verified file is the path without it.
const PartialSuffix = ".partial"

// bufSize is the size of the receive buffer.
const bufSize = 128 << 10

// Errors. Fetch wraps them with details; match them with errors.Is.
var (
	// ErrTooLong: the server sent more bytes than the image has.
	ErrTooLong = errors.New("the server sent more bytes than the image has")
	// ErrSize: the server announced a length other than the one asked for.
	ErrSize = errors.New("the server announced the wrong length")
	// ErrContentRange: a partial response for a range other than the one asked for.
	ErrContentRange = errors.New("the server answered with the wrong range")
	// ErrDigest: the bytes do not hash to the image's digest.
	ErrDigest = errors.New("the downloaded bytes do not match the image digest")
	// ErrShort: the transfer ended before the image was complete; the partial file is kept.
	ErrShort = errors.New("the transfer ended early")
)

// StatusError is an HTTP response that is neither 200 nor 206.
type StatusError struct {
	Code   int
	Status string
}

func (e *StatusError) Error() string { return "the server answered " + e.Status }

// Retryable reports whether err, returned by Fetch, is a failure of the transfer (the network,
// a cut connection, a busy or failing server) rather than a wrong answer. Callers retry
// retryable errors with backoff and count the others as failures of the image.
func Retryable(err error) bool {
	var se *StatusError
	switch {
	case err == nil:
		return false
	case errors.As(err, &se):
		return se.Code >= 500 || se.Code == http.StatusRequestTimeout || se.Code == http.StatusTooManyRequests
	case errors.Is(err, ErrTooLong), errors.Is(err, ErrSize), errors.Is(err, ErrContentRange), errors.Is(err, ErrDigest), errors.Is(err, errBadArgument):
		return false
	}
	return true
}

// Want is what the image must be.
type Want struct {
	SHA256 string // lowercase hex
	Size   int64
}

var errBadArgument = errors.New("bad argument")

func (w Want) check() error {
	if b, err := hex.DecodeString(w.SHA256); err != nil || len(b) != sha256.Size || strings.ToLower(w.SHA256) != w.SHA256 {
		return fmt.Errorf("%w: SHA-256 %q is not 64 lowercase hex digits", errBadArgument, w.SHA256)
	}
	if w.Size < 0 {
		return fmt.Errorf("%w: negative size %d", errBadArgument, w.Size)
	}
	return nil
}

// Option adjusts a Fetch.
type Option func(*options)

type options struct {
	progress func(done, total int64)
}

// Progress makes Fetch call f after every write to the partial file with the bytes it holds
// and the image's size. f runs on Fetch's goroutine.
func Progress(f func(done, total int64)) Option { return func(o *options) { o.progress = f } }

// Fetch downloads url into partialPath, which must end in PartialSuffix, and returns the path
// of the verified file: partialPath without the suffix. If partialPath holds the beginning of
// the image from an earlier attempt, Fetch asks only for the rest; if the verified file exists
// already, Fetch checks it and makes no request.
//
// When the transfer is cut, Fetch syncs what it has and returns an error (Retryable) that keeps
// the partial file for the next call. When the server's answer cannot be right (more bytes than
// the image has, the length of another object, the wrong digest), the partial file is deleted.
// When the digest is wrong after a resumed download, the earlier bytes may be to blame (a power
// cut can leave garbage at the end of a file), so Fetch starts over once from byte zero.
// Only one Fetch at a time may use a partial path.
func Fetch(ctx context.Context, client *http.Client, url string, want Want, partialPath string, opts ...Option) (string, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if err := want.check(); err != nil {
		return "", err
	}
	final, ok := strings.CutSuffix(partialPath, PartialSuffix)
	if !ok || filepath.Base(final) == "" || filepath.Base(final) == "." {
		return "", fmt.Errorf("%w: partial path %q is not a file name ending in %q", errBadArgument, partialPath, PartialSuffix)
	}
	if client == nil {
		client = http.DefaultClient
	}
	switch err := Check(final, want); {
	case err == nil:
		return final, nil
	case !errors.Is(err, fs.ErrNotExist):
		if err := os.Remove(final); err != nil {
			return "", fmt.Errorf("removing %s, which is not the image: %w", final, err)
		}
	}
	resumed, err := fetch(ctx, client, url, want, partialPath, o)
	if err != nil && resumed && errors.Is(err, ErrDigest) {
		_, err = fetch(ctx, client, url, want, partialPath, o)
	}
	if err != nil {
		return "", err
	}
	if err := os.Rename(partialPath, final); err != nil {
		return "", fmt.Errorf("downloading %s: %w", url, err)
	}
	if err := syncDir(filepath.Dir(final)); err != nil {
		return "", fmt.Errorf("downloading %s: %w", url, err)
	}
	return final, nil
}

// Check verifies that the file at path is the image.
func Check(path string, want Want) error {
	if err := want.check(); err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(f, want.Size+1))
	if err != nil {
		return fmt.Errorf("checking %s: %w", path, err)
	}
	if n != want.Size {
		return fmt.Errorf("checking %s: %w: %d bytes, want %d", path, ErrDigest, n, want.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want.SHA256 {
		return fmt.Errorf("checking %s: %w: sha256 %s, want %s", path, ErrDigest, got, want.SHA256)
	}
	return nil
}

// attempt is one try at completing the partial file.
type attempt struct {
	url     string
	want    Want
	f       *os.File
	h       hash.Hash
	have    int64 // bytes in f, all hashed into h
	resumed bool  // some of them came from an earlier attempt
	discard bool  // they cannot be the beginning of the image
}

// fetch makes one attempt to complete the partial file and verify it; resumed says whether it
// used bytes kept by an earlier attempt.
func fetch(ctx context.Context, client *http.Client, url string, want Want, partial string, o options) (resumed bool, err error) {
	f, err := os.OpenFile(partial, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return false, fmt.Errorf("downloading %s: %w", url, err)
	}
	a := &attempt{url: url, want: want, f: f, h: sha256.New()}
	defer func() {
		_ = f.Close()
		if a.discard {
			_ = os.Remove(partial)
		}
	}()
	st, err := f.Stat()
	if err != nil {
		return false, err
	}
	a.have = st.Size()
	if a.have > want.Size { // cannot be the beginning of the image
		if err := a.restart(); err != nil {
			return false, err
		}
	}
	if a.have > 0 {
		if n, err := io.Copy(a.h, io.LimitReader(f, a.have)); err != nil || n != a.have {
			return false, fmt.Errorf("downloading %s: rereading the partial file: %d of %d bytes: %v", url, n, a.have, err)
		}
		a.resumed = true
		if o.progress != nil {
			o.progress(a.have, want.Size)
		}
	}
	if a.have < want.Size {
		if err := a.transfer(ctx, client, o); err != nil {
			return a.resumed, err
		}
	}
	if err := f.Sync(); err != nil {
		return a.resumed, fmt.Errorf("downloading %s: %w", url, err)
	}
	if got := hex.EncodeToString(a.h.Sum(nil)); got != want.SHA256 {
		a.discard = true
		return a.resumed, fmt.Errorf("downloading %s: %w: sha256 %s, want %s", url, ErrDigest, got, want.SHA256)
	}
	return a.resumed, nil
}

// restart empties the partial file.
func (a *attempt) restart() error {
	if err := a.f.Truncate(0); err != nil {
		return err
	}
	if _, err := a.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	a.h.Reset()
	a.have, a.resumed = 0, false
	return nil
}

// fail returns an error for the attempt; discard marks the partial file as not the image's.
func (a *attempt) fail(discard bool, err error, format string, args ...any) error {
	a.discard = a.discard || discard
	return fmt.Errorf("downloading %s: %w: %s", a.url, err, fmt.Sprintf(format, args...))
}

// transfer requests the bytes from a.have on and appends them to the file and the hash.
func (a *attempt) transfer(ctx context.Context, client *http.Client, o options) error {
	size := a.want.Size
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.url, nil)
	if err != nil {
		return fmt.Errorf("downloading %s: %w", a.url, err)
	}
	// Sizes and digests are of the bytes as stored: no transparent compression.
	req.Header.Set("Accept-Encoding", "identity")
	if a.have > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", a.have))
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("downloading %s: %w", a.url, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusPartialContent && a.have > 0:
		start, end, total, err := parseContentRange(resp.Header.Get("Content-Range"))
		if err != nil {
			return a.fail(false, ErrContentRange, "%v", err)
		}
		if total >= 0 && total != size {
			// Another object: what came from it before cannot be trusted either.
			return a.fail(true, ErrContentRange, "the object has %d bytes, want %d", total, size)
		}
		if start != a.have || end != size-1 {
			return a.fail(false, ErrContentRange, "bytes %d-%d, asked for %d-%d", start, end, a.have, size-1)
		}
		if resp.ContentLength >= 0 && resp.ContentLength != size-a.have {
			return a.fail(false, ErrSize, "%d bytes announced for a range of %d", resp.ContentLength, size-a.have)
		}
	case resp.StatusCode == http.StatusOK:
		if resp.ContentLength >= 0 && resp.ContentLength != size {
			return a.fail(true, ErrSize, "%d bytes announced, want %d", resp.ContentLength, size)
		}
		// The whole image (the server ignored the Range, or none was asked for): start over.
		if a.have > 0 {
			if err := a.restart(); err != nil {
				return fmt.Errorf("downloading %s: %w", a.url, err)
			}
		}
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable:
		// The object ends before the bytes we hold do: it is not the image.
		return a.fail(true, ErrSize, "the range from byte %d is not satisfiable", a.have)
	default:
		return fmt.Errorf("downloading %s: %w", a.url, &StatusError{Code: resp.StatusCode, Status: resp.Status})
	}
	return a.receive(ctx, resp.Body, o)
}

// receive appends the body to the file and the hash.
func (a *attempt) receive(ctx context.Context, body io.Reader, o options) error {
	size := a.want.Size
	buf := make([]byte, bufSize)
	for a.have < size {
		n, rerr := body.Read(buf[:min(int64(len(buf)), size-a.have)])
		if n > 0 {
			if _, err := a.f.Write(buf[:n]); err != nil {
				return fmt.Errorf("downloading %s: %w", a.url, err)
			}
			a.h.Write(buf[:n])
			a.have += int64(n)
			if o.progress != nil {
				o.progress(a.have, size)
			}
		}
		if rerr == io.EOF && a.have < size {
			rerr = io.ErrUnexpectedEOF
		}
		if rerr != nil && rerr != io.EOF {
			// Keep what arrived for the next attempt.
			serr := a.f.Sync()
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return errors.Join(fmt.Errorf("downloading %s: %w after %d of %d bytes: %w", a.url, ErrShort, a.have, size, rerr), serr)
		}
	}
	// Exactly the image's size has arrived; anything more means the stream is not the image.
	var extra [1]byte
	if n, _ := io.ReadFull(body, extra[:]); n > 0 {
		return a.fail(true, ErrTooLong, "more than %d bytes", size)
	}
	return nil
}

// parseContentRange parses "bytes START-END/TOTAL" (TOTAL may be "*", returned as -1).
func parseContentRange(v string) (start, end, total int64, err error) {
	rest, ok := strings.CutPrefix(v, "bytes ")
	if !ok {
		return 0, 0, 0, fmt.Errorf("Content-Range %q", v)
	}
	rng, tot, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, 0, 0, fmt.Errorf("Content-Range %q", v)
	}
	s, e, ok := strings.Cut(rng, "-")
	if !ok {
		return 0, 0, 0, fmt.Errorf("Content-Range %q", v)
	}
	if start, err = parseUint(s); err != nil {
		return 0, 0, 0, fmt.Errorf("Content-Range %q", v)
	}
	if end, err = parseUint(e); err != nil || end < start {
		return 0, 0, 0, fmt.Errorf("Content-Range %q", v)
	}
	total = -1
	if tot != "*" {
		if total, err = parseUint(tot); err != nil || total <= end {
			return 0, 0, 0, fmt.Errorf("Content-Range %q", v)
		}
	}
	return start, end, total, nil
}

func parseUint(s string) (int64, error) {
	if s == "" || len(s) > 18 || strings.TrimLeft(s, "0123456789") != "" {
		return 0, errors.New("not a number")
	}
	return strconv.ParseInt(s, 10, 64)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
