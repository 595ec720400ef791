package download_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/rampart-iot/rampart/internal/download"
)

var ctx = context.Background()

// image returns n deterministic pseudo-random bytes and what they must be.
func image(n int) ([]byte, download.Want) {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(uint64(n), 7))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	sum := sha256.Sum256(b)
	return b, download.Want{SHA256: hex.EncodeToString(sum[:]), Size: int64(n)}
}

// server is an image server whose misbehaviour each test chooses.
type server struct {
	body []byte
	// cut, if > 0, aborts every response after that many body bytes.
	cut int
	// ignoreRange answers every request with the whole body.
	ignoreRange bool
	// corrupt flips the byte at this offset in everything served (-1: none).
	corrupt int
	// handler, if set, replaces the behaviour above.
	handler http.HandlerFunc

	mu     sync.Mutex
	ranges []string // the Range header of every request
}

func (s *server) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ranges...)
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.ranges = append(s.ranges, r.Header.Get("Range"))
	s.mu.Unlock()
	if s.handler != nil {
		s.handler(w, r)
		return
	}
	body := s.body
	if s.corrupt >= 0 {
		body = bytes.Clone(body)
		body[s.corrupt] ^= 0x40
	}
	start := 0
	status := http.StatusOK
	if rg := r.Header.Get("Range"); rg != "" && !s.ignoreRange {
		n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(rg, "bytes="), "-"))
		if err != nil || n >= len(body) {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", len(body)))
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
			return
		}
		start, status = n, http.StatusPartialContent
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", n, len(body)-1, len(body)))
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)-start))
	w.WriteHeader(status)
	rest := body[start:]
	if s.cut > 0 && s.cut < len(rest) {
		_, _ = w.Write(rest[:s.cut])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // drop the connection mid-body
	}
	_, _ = w.Write(rest)
}

func start(t testing.TB, s *server) (*httptest.Server, *http.Client) {
	ts := httptest.NewTLSServer(s)
	t.Cleanup(ts.Close)
	return ts, ts.Client()
}

func paths(t testing.TB) (partial, final string) {
	final = filepath.Join(t.TempDir(), "image")
	return final + download.PartialSuffix, final
}

func TestFetchWholeImage(t *testing.T) {
	body, want := image(1 << 20)
	s := &server{body: body, corrupt: -1}
	ts, c := start(t, s)
	partial, final := paths(t)
	var last int64
	progress := download.Progress(func(done, total int64) {
		if done <= last || total != want.Size {
			t.Errorf("progress %d/%d after %d", done, total, last)
		}
		last = done
	})
	got, err := download.Fetch(ctx, c, ts.URL+"/img", want, partial, progress)
	if err != nil {
		t.Fatal(err)
	}
	if got != final || last != want.Size {
		t.Fatalf("path %s, progress %d", got, last)
	}
	if b, _ := os.ReadFile(final); !bytes.Equal(b, body) {
		t.Fatal("wrong contents")
	}
	if _, err := os.Stat(partial); !os.IsNotExist(err) {
		t.Fatalf("partial file left: %v", err)
	}
	// A second call finds the verified file and asks nothing.
	if _, err := download.Fetch(ctx, c, ts.URL+"/img", want, partial); err != nil {
		t.Fatal(err)
	}
	if n := len(s.requests()); n != 1 {
		t.Fatalf("%d requests, want 1", n)
	}
}

func TestFetchEmptyImage(t *testing.T) {
	body, want := image(0)
	ts, c := start(t, &server{body: body, corrupt: -1})
	partial, _ := paths(t)
	if _, err := download.Fetch(ctx, c, ts.URL, want, partial); err != nil {
		t.Fatal(err)
	}
}

func TestFetchResumesAfterCuts(t *testing.T) {
	body, want := image(300_000)
	s := &server{body: body, cut: 70_000, corrupt: -1}
	ts, c := start(t, s)
	partial, final := paths(t)
	var tries int
	for {
		tries++
		_, err := download.Fetch(ctx, c, ts.URL, want, partial)
		if err == nil {
			break
		}
		if !download.Retryable(err) || !errors.Is(err, download.ErrShort) {
			t.Fatalf("try %d: %v", tries, err)
		}
		if tries > 10 {
			t.Fatal("no progress")
		}
	}
	want5 := []string{"", "bytes=70000-", "bytes=140000-", "bytes=210000-", "bytes=280000-"}
	if got := s.requests(); fmt.Sprint(got) != fmt.Sprint(want5) {
		t.Fatalf("ranges %q, want %q", got, want5)
	}
	if b, _ := os.ReadFile(final); !bytes.Equal(b, body) {
		t.Fatal("wrong contents")
	}
}

func TestFetchServerIgnoringRangeStartsOver(t *testing.T) {
	body, want := image(200_000)
	s := &server{body: body, cut: 50_000, ignoreRange: true, corrupt: -1}
	ts, c := start(t, s)
	partial, final := paths(t)
	if _, err := download.Fetch(ctx, c, ts.URL, want, partial); !errors.Is(err, download.ErrShort) {
		t.Fatalf("first try: %v", err)
	}
	s.cut = 0
	if _, err := download.Fetch(ctx, c, ts.URL, want, partial); err != nil {
		t.Fatal(err)
	}
	if got := s.requests(); len(got) != 2 || got[1] != "bytes=50000-" {
		t.Fatalf("ranges %q", got)
	}
	if b, _ := os.ReadFile(final); !bytes.Equal(b, body) {
		t.Fatal("wrong contents")
	}
}

func TestFetchCorruptBytes(t *testing.T) {
	body, want := image(100_000)
	s := &server{body: body, corrupt: 77_777}
	ts, c := start(t, s)
	partial, final := paths(t)
	_, err := download.Fetch(ctx, c, ts.URL, want, partial)
	if !errors.Is(err, download.ErrDigest) || download.Retryable(err) {
		t.Fatalf("fetch: %v", err)
	}
	for _, p := range []string{partial, final} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Fatalf("%s left behind: %v", p, err)
		}
	}
}

func TestFetchGarbageInThePartialFileStartsOverOnce(t *testing.T) {
	body, want := image(100_000)
	s := &server{body: body, corrupt: -1}
	ts, c := start(t, s)
	partial, final := paths(t)
	// What a power cut can leave: the right length, the wrong bytes at the end.
	bad := bytes.Clone(body[:60_000])
	copy(bad[59_000:], make([]byte, 1000))
	if err := os.WriteFile(partial, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := download.Fetch(ctx, c, ts.URL, want, partial); err != nil {
		t.Fatal(err)
	}
	if got := s.requests(); fmt.Sprint(got) != fmt.Sprint([]string{"bytes=60000-", ""}) {
		t.Fatalf("ranges %q", got)
	}
	if b, _ := os.ReadFile(final); !bytes.Equal(b, body) {
		t.Fatal("wrong contents")
	}
}

func TestFetchPartialLongerThanTheImageStartsOver(t *testing.T) {
	body, want := image(10_000)
	s := &server{body: body, corrupt: -1}
	ts, c := start(t, s)
	partial, _ := paths(t)
	if err := os.WriteFile(partial, make([]byte, 20_000), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := download.Fetch(ctx, c, ts.URL, want, partial); err != nil {
		t.Fatal(err)
	}
	if got := s.requests(); len(got) != 1 || got[0] != "" {
		t.Fatalf("ranges %q", got)
	}
}

func TestFetchCompletePartialNeedsNoRequest(t *testing.T) {
	body, want := image(10_000)
	s := &server{body: body, corrupt: -1}
	ts, c := start(t, s)
	partial, _ := paths(t)
	if err := os.WriteFile(partial, body, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := download.Fetch(ctx, c, ts.URL, want, partial); err != nil {
		t.Fatal(err)
	}
	if n := len(s.requests()); n != 0 {
		t.Fatalf("%d requests", n)
	}
}

func TestFetchReplacesAWrongFinalFile(t *testing.T) {
	body, want := image(10_000)
	s := &server{body: body, corrupt: -1}
	ts, c := start(t, s)
	partial, final := paths(t)
	if err := os.WriteFile(final, []byte("not the image"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := download.Fetch(ctx, c, ts.URL, want, partial); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(final); !bytes.Equal(b, body) {
		t.Fatal("wrong contents")
	}
}

// TestFetchLyingServers runs servers that lie about lengths and ranges, resuming from a
// partial file of 4000 bytes of the image.
func TestFetchLyingServers(t *testing.T) {
	body, want := image(10_000)
	const have = 4000
	for _, tc := range []struct {
		name    string
		h       http.HandlerFunc
		want    error
		discard bool
	}{
		{"longer content-length", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "10010")
			w.WriteHeader(200)
			_, _ = w.Write(append(bytes.Clone(body), make([]byte, 10)...))
		}, download.ErrSize, true},
		{"shorter content-length", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "9000")
			w.WriteHeader(200)
			_, _ = w.Write(body[:9000])
		}, download.ErrSize, true},
		{"unannounced extra bytes", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(200)
			w.(http.Flusher).Flush() // chunked: no length announced
			_, _ = w.Write(append(bytes.Clone(body), "and more"...))
		}, download.ErrTooLong, true},
		{"wrong range start", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Range", "bytes 3000-9999/10000")
			w.WriteHeader(http.StatusPartialContent)
			_, _ = w.Write(body[3000:])
		}, download.ErrContentRange, false},
		{"wrong range end", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Range", "bytes 4000-8999/10000")
			w.WriteHeader(http.StatusPartialContent)
			_, _ = w.Write(body[4000:9000])
		}, download.ErrContentRange, false},
		{"another object's size", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Range", "bytes 4000-9999/20000")
			w.WriteHeader(http.StatusPartialContent)
			_, _ = w.Write(body[4000:])
		}, download.ErrContentRange, true},
		{"malformed range", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Range", "bytes=4000-")
			w.WriteHeader(http.StatusPartialContent)
		}, download.ErrContentRange, false},
		{"range length mismatch", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Range", "bytes 4000-9999/10000")
			w.Header().Set("Content-Length", "5000")
			w.WriteHeader(http.StatusPartialContent)
			_, _ = w.Write(body[4000:9000])
		}, download.ErrSize, false},
		{"not satisfiable", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
		}, download.ErrSize, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts, c := start(t, &server{handler: tc.h})
			partial, final := paths(t)
			if err := os.WriteFile(partial, body[:have], 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := download.Fetch(ctx, c, ts.URL, want, partial)
			if !errors.Is(err, tc.want) || download.Retryable(err) {
				t.Fatalf("fetch: %v, want %v", err, tc.want)
			}
			_, perr := os.Stat(partial)
			if kept := perr == nil; kept == tc.discard {
				t.Fatalf("partial file kept=%v, want %v", kept, !tc.discard)
			}
			if _, err := os.Stat(final); !os.IsNotExist(err) {
				t.Fatalf("final file: %v", err)
			}
		})
	}
}

func TestFetchStatusErrors(t *testing.T) {
	_, want := image(100)
	for code, retry := range map[int]bool{404: false, 403: false, 206: false, 500: true, 503: true, 429: true} {
		ts, c := start(t, &server{handler: func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(code) }})
		partial, _ := paths(t)
		_, err := download.Fetch(ctx, c, ts.URL, want, partial)
		var se *download.StatusError
		if !errors.As(err, &se) || se.Code != code || download.Retryable(err) != retry {
			t.Errorf("status %d: %v (retryable %v)", code, err, download.Retryable(err))
		}
	}
}

func TestFetchCancelKeepsThePartialFile(t *testing.T) {
	body, want := image(100_000)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ts, c := start(t, &server{handler: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100000")
		_, _ = w.Write(body[:30_000])
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}})
	partial, _ := paths(t)
	_, err := download.Fetch(cctx, c, ts.URL, want, partial, download.Progress(func(done, total int64) {
		if done == 30_000 {
			cancel()
		}
	}))
	if !errors.Is(err, context.Canceled) || !download.Retryable(err) {
		t.Fatalf("fetch: %v", err)
	}
	if st, err := os.Stat(partial); err != nil || st.Size() != 30_000 {
		t.Fatalf("partial file: %v, %v", st, err)
	}
}

func TestFetchRefusesBadArguments(t *testing.T) {
	_, want := image(10)
	dir := t.TempDir()
	for name, tc := range map[string]struct {
		want    download.Want
		partial string
	}{
		"no suffix":       {want, filepath.Join(dir, "image")},
		"upper-case hex":  {download.Want{SHA256: strings.ToUpper(want.SHA256), Size: 10}, filepath.Join(dir, "i.partial")},
		"short digest":    {download.Want{SHA256: "abcd", Size: 10}, filepath.Join(dir, "i.partial")},
		"negative size":   {download.Want{SHA256: want.SHA256, Size: -1}, filepath.Join(dir, "i.partial")},
		"only the suffix": {want, download.PartialSuffix},
	} {
		if _, err := download.Fetch(ctx, nil, "https://127.0.0.1:1/", tc.want, tc.partial); err == nil || download.Retryable(err) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func FuzzFetchContentRange(f *testing.F) {
	body, want := image(1000)
	for _, s := range []string{"bytes 500-999/1000", "bytes 500-999/*", "bytes 500-998/1000", "bytes 0-0/0", "bytes -1-2/3", "bytes 500-999/999999999999999999999", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, cr string) {
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header()["Content-Range"] = []string{cr}
			w.WriteHeader(http.StatusPartialContent)
			_, _ = w.Write(body[500:])
		}))
		defer ts.Close()
		partial := filepath.Join(t.TempDir(), "i.partial")
		if err := os.WriteFile(partial, body[:500], 0o600); err != nil {
			t.Fatal(err)
		}
		p, err := download.Fetch(ctx, ts.Client(), ts.URL, want, partial)
		if err == nil {
			if b, _ := os.ReadFile(p); !bytes.Equal(b, body) {
				t.Fatalf("accepted %q with the wrong contents", cr)
			}
		}
	})
}

// BenchmarkDownload compares Fetch (write to disk, SHA-256, fsync, rename) with a plain GET of
// the same file from the same http.FileServer over the same TLS loopback, read into io.Discard
// (the ceiling), and with the same GET written to disk and synced (the ceiling for a download
// that survives a power cut).
func BenchmarkDownload(b *testing.B) {
	const size = 32 << 20
	body, want := image(size)
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "image"), body, 0o644); err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewTLSServer(http.FileServer(http.Dir(dir)))
	defer ts.Close()
	c := ts.Client()
	url := ts.URL + "/image"
	b.Run("fileserver", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			resp, err := c.Get(url)
			if err != nil {
				b.Fatal(err)
			}
			n, err := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err != nil || n != size {
				b.Fatal(n, err)
			}
		}
	})
	b.Run("fileserver-to-disk", func(b *testing.B) {
		b.SetBytes(size)
		out := filepath.Join(b.TempDir(), "image")
		for b.Loop() {
			resp, err := c.Get(url)
			if err != nil {
				b.Fatal(err)
			}
			f, err := os.Create(out)
			if err != nil {
				b.Fatal(err)
			}
			n, err := io.Copy(f, resp.Body)
			resp.Body.Close()
			if err != nil || n != size {
				b.Fatal(n, err)
			}
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
			f.Close()
		}
	})
	b.Run("fetch", func(b *testing.B) {
		b.SetBytes(size)
		out := b.TempDir()
		for b.Loop() {
			p, err := download.Fetch(ctx, c, url, want, filepath.Join(out, "image"+download.PartialSuffix))
			if err != nil {
				b.Fatal(err)
			}
			if err := os.Remove(p); err != nil {
				b.Fatal(err)
			}
		}
	})
}
