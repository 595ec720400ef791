// Package blobtest is the conformance suite that every blob store backend passes (Run), and
// the benchmark of Put that sets the ceiling for image uploads (BenchmarkPut).
//
// It trusts the store it is given to be empty and disposable.
package blobtest

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
	"strings"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/internal/blob"
)

// Run runs the conformance suite against the backend that open opens: every method, with its
// negative cases and concurrency. open must return a new, empty store each time it is called,
// closed when its test ends; the subtests run in parallel.
func Run(t *testing.T, open func(t *testing.T) blob.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s blob.Store)
	}{
		{"PutOpenStat", testPutOpenStat},
		{"Empty", testEmpty},
		{"Range", testRange},
		{"PutTwice", testPutTwice},
		{"ConcurrentSameContent", testConcurrentSameContent},
		{"ConcurrentDifferentContent", testConcurrentDifferentContent},
		{"TooLarge", testTooLarge},
		{"ReadError", testReadError},
		{"Canceled", testCanceled},
		{"InvalidDigests", testInvalidDigests},
		{"NotFound", testNotFound},
		{"Delete", testDelete},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open(t))
		})
	}
}

// Content returns n pseudo-random bytes, the same for the same seed.
func Content(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, uint64(n)))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// Digest returns the digest of b.
func Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
}

// isErr fails the test unless err wraps target and says more than target does.
func isErr(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("got error %v, want %v", err, target)
	}
	if err.Error() == target.Error() {
		t.Errorf("error %q does not say which blob", err)
	}
}

// put stores b, checking what Put returns.
func put(t *testing.T, s blob.Store, b []byte) string {
	t.Helper()
	digest, size, err := s.Put(t.Context(), bytes.NewReader(b), int64(len(b)))
	must(t, err)
	if digest != Digest(b) || size != int64(len(b)) {
		t.Fatalf("Put = %s, %d; want %s, %d", digest, size, Digest(b), len(b))
	}
	return digest
}

// check fails the test unless the store holds b, whole, under its digest.
func check(t *testing.T, s blob.Store, b []byte) {
	t.Helper()
	digest := Digest(b)
	f, info, err := s.Open(t.Context(), digest)
	must(t, err)
	defer f.Close()
	got, err := io.ReadAll(f)
	must(t, err)
	if !bytes.Equal(got, b) {
		t.Fatalf("blob %s holds %d other bytes, want %d", digest, len(got), len(b))
	}
	if info.Digest != digest || info.Size != int64(len(b)) || info.ModTime.IsZero() {
		t.Errorf("Open's info = %+v, want digest %s and size %d", info, digest, len(b))
	}
	st, err := s.Stat(t.Context(), digest)
	must(t, err)
	if st != info {
		t.Errorf("Stat = %+v, Open's info = %+v", st, info)
	}
}

// absent fails the test unless no blob has the digest.
func absent(t *testing.T, s blob.Store, digest string) {
	t.Helper()
	_, err := s.Stat(t.Context(), digest)
	isErr(t, err, blob.ErrNotFound)
	_, _, err = s.Open(t.Context(), digest)
	isErr(t, err, blob.ErrNotFound)
}

func testPutOpenStat(t *testing.T, s blob.Store) {
	for i, n := range []int{1, 100, 32<<10 - 1, 32 << 10, 1<<20 + 7} {
		b := Content(uint64(i), n)
		put(t, s, b)
		check(t, s, b)
	}
	// A limit above the size is fine.
	b := Content(99, 1000)
	digest, size, err := s.Put(t.Context(), bytes.NewReader(b), 1<<62)
	must(t, err)
	if digest != Digest(b) || size != 1000 {
		t.Fatalf("Put = %s, %d", digest, size)
	}
	check(t, s, b)
}

func testEmpty(t *testing.T, s blob.Store) {
	put(t, s, nil)
	check(t, s, nil)
	if Digest(nil) != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Fatal("the digest of nothing changed")
	}
}

// testRange serves a blob with http.ServeContent, as downloads are, and asks for ranges.
func testRange(t *testing.T, s blob.Store) {
	b := Content(1, 100_000)
	digest := put(t, s, b)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, info, err := s.Open(r.Context(), strings.TrimPrefix(r.URL.Path, "/"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		defer f.Close()
		http.ServeContent(w, r, "", info.ModTime, f)
	}))
	defer srv.Close()
	for _, tc := range []struct {
		rng    string
		status int
		want   []byte
	}{
		{"", http.StatusOK, b},
		{"bytes=0-0", http.StatusPartialContent, b[:1]},
		{"bytes=1000-1999", http.StatusPartialContent, b[1000:2000]},
		{"bytes=99990-", http.StatusPartialContent, b[99990:]},
		{"bytes=-5", http.StatusPartialContent, b[len(b)-5:]},
		{"bytes=50000-200000", http.StatusPartialContent, b[50000:]},
		{"bytes=100000-", http.StatusRequestedRangeNotSatisfiable, nil},
	} {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/"+digest, nil)
		must(t, err)
		if tc.rng != "" {
			req.Header.Set("Range", tc.rng)
		}
		resp, err := http.DefaultClient.Do(req)
		must(t, err)
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		must(t, err)
		if resp.StatusCode != tc.status {
			t.Fatalf("Range %q: status %d, want %d", tc.rng, resp.StatusCode, tc.status)
		}
		if tc.want != nil && !bytes.Equal(got, tc.want) {
			t.Errorf("Range %q: %d bytes, not the %d wanted", tc.rng, len(got), len(tc.want))
		}
		if resp.StatusCode == http.StatusOK && resp.Header.Get("Last-Modified") == "" {
			t.Error("no Last-Modified")
		}
	}

	// Seeking directly.
	f, _, err := s.Open(t.Context(), digest)
	must(t, err)
	defer f.Close()
	end, err := f.Seek(0, io.SeekEnd)
	must(t, err)
	if end != int64(len(b)) {
		t.Errorf("Seek to the end = %d, want %d", end, len(b))
	}
	_, err = f.Seek(-10, io.SeekCurrent)
	must(t, err)
	got, err := io.ReadAll(f)
	must(t, err)
	if !bytes.Equal(got, b[len(b)-10:]) {
		t.Errorf("read after seeking: %x", got)
	}
}

func testPutTwice(t *testing.T, s blob.Store) {
	b := Content(2, 5000)
	put(t, s, b)
	before, err := s.Stat(t.Context(), Digest(b))
	must(t, err)
	// Opened before the second Put, the blob reads whole after it.
	f, _, err := s.Open(t.Context(), Digest(b))
	must(t, err)
	defer f.Close()
	put(t, s, b)
	check(t, s, b)
	after, err := s.Stat(t.Context(), Digest(b))
	must(t, err)
	if after.Size != before.Size {
		t.Errorf("Stat after a second Put = %+v, before %+v", after, before)
	}
	got, err := io.ReadAll(f)
	must(t, err)
	if !bytes.Equal(got, b) {
		t.Error("a reader opened before the second Put reads other content")
	}
}

// concurrently runs fn(0) ... fn(n-1) in n goroutines, started together, and returns their
// errors.
func concurrently(t *testing.T, n int, fn func(ctx context.Context, i int) error) []error {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	errs := make([]error, n)
	start := make(chan struct{})
	done := make(chan struct{})
	for i := range n {
		go func() {
			defer func() { done <- struct{}{} }()
			<-start
			errs[i] = fn(ctx, i)
		}()
	}
	close(start)
	for range n {
		<-done
	}
	return errs
}

func testConcurrentSameContent(t *testing.T, s blob.Store) {
	for _, size := range []int{0, 1000, 1 << 20} {
		b := Content(3, size)
		const n = 16
		digests := make([]string, n)
		// Readers open the blob while the Puts run: once there, it is whole.
		errs := concurrently(t, n+4, func(ctx context.Context, i int) error {
			if i >= n {
				for range 50 {
					f, info, err := s.Open(ctx, Digest(b))
					if errors.Is(err, blob.ErrNotFound) {
						continue
					}
					if err != nil {
						return err
					}
					got, err := io.ReadAll(f)
					f.Close()
					if err != nil {
						return err
					}
					if !bytes.Equal(got, b) || info.Size != int64(size) {
						return fmt.Errorf("a reader saw %d other bytes", len(got))
					}
				}
				return nil
			}
			var err error
			digests[i], _, err = s.Put(ctx, bytes.NewReader(b), int64(size))
			return err
		})
		for i, err := range errs {
			if err != nil {
				t.Errorf("size %d, goroutine %d: %v", size, i, err)
			}
		}
		for i, d := range digests {
			if d != Digest(b) {
				t.Errorf("size %d, Put %d: digest %s, want %s", size, i, d, Digest(b))
			}
		}
		check(t, s, b)
	}
}

func testConcurrentDifferentContent(t *testing.T, s blob.Store) {
	const n = 16
	errs := concurrently(t, n, func(ctx context.Context, i int) error {
		b := Content(uint64(100+i), 10_000+i)
		d, _, err := s.Put(ctx, bytes.NewReader(b), 1<<20)
		if err == nil && d != Digest(b) {
			err = fmt.Errorf("digest %s, want %s", d, Digest(b))
		}
		return err
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("goroutine %d: %v", i, err)
		}
	}
	for i := range n {
		check(t, s, Content(uint64(100+i), 10_000+i))
	}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// endless reads zeros forever.
type endless struct{}

func (endless) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func testTooLarge(t *testing.T, s blob.Store) {
	const limit = 100_000
	exact := Content(4, limit)
	put(t, s, exact) // exactly the limit is fine

	over := Content(4, limit+1)
	r := &countingReader{r: bytes.NewReader(over)}
	_, _, err := s.Put(t.Context(), r, limit)
	isErr(t, err, blob.ErrTooLarge)
	absent(t, s, Digest(over))
	check(t, s, exact)

	// An endless stream is read no further than the limit tells.
	r = &countingReader{r: endless{}}
	_, _, err = s.Put(t.Context(), r, limit)
	isErr(t, err, blob.ErrTooLarge)
	if r.n > limit+1 {
		t.Errorf("Put read %d bytes of a stream limited to %d", r.n, limit)
	}
	absent(t, s, Digest(make([]byte, limit+1)))

	// A limit of zero admits only nothing.
	_, _, err = s.Put(t.Context(), bytes.NewReader([]byte{1}), 0)
	isErr(t, err, blob.ErrTooLarge)
	absent(t, s, Digest([]byte{1}))
	if _, _, err := s.Put(t.Context(), bytes.NewReader(nil), -1); err == nil {
		t.Error("Put with a negative limit succeeded")
	}
}

// failingReader returns its bytes, then err.
type failingReader struct {
	r   io.Reader
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, f.err
	}
	return n, err
}

func testReadError(t *testing.T, s blob.Store) {
	b := Content(5, 200_000)
	errCut := errors.New("connection reset")
	_, _, err := s.Put(t.Context(), &failingReader{bytes.NewReader(b[:150_000]), errCut}, 1<<20)
	if !errors.Is(err, errCut) {
		t.Fatalf("Put returned %v, want the reader's error", err)
	}
	absent(t, s, Digest(b[:150_000]))
	absent(t, s, Digest(b))
	put(t, s, b)
	check(t, s, b)
}

// gate returns its bytes, then cancels its context and reads nothing, without an error, for
// a while: a reader that ignores the cancellation, which the store must not.
type gate struct {
	r      io.Reader
	cancel context.CancelFunc
	empty  int
}

func (g *gate) Read(p []byte) (int, error) {
	n, err := g.r.Read(p)
	if err != io.EOF {
		return n, err
	}
	g.cancel()
	if g.empty++; g.empty > 1000 {
		return 0, io.ErrNoProgress
	}
	return 0, nil
}

func testCanceled(t *testing.T, s blob.Store) {
	b := Content(6, 50_000)
	ctx, cancel := context.WithCancel(t.Context())
	_, _, err := s.Put(ctx, &gate{r: bytes.NewReader(b), cancel: cancel}, 1<<20)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Put returned %v, want context.Canceled", err)
	}
	absent(t, s, Digest(b))
	_, _, err = s.Put(ctx, bytes.NewReader(b), 1<<20)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Put with a canceled context returned %v", err)
	}
	absent(t, s, Digest(b))
}

// BadDigests are names that no blob has and no store may read: wrong length, case or
// alphabet, and paths.
var BadDigests = []string{
	"",
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85",   // 63
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8555", // 65
	"E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85g",
	"../../../../../../../../../../../../../../../../../../etc/passwd",
	"e3/b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8/.",
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85\x00",
	"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	" e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85",
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85\n",
	strings.Repeat("0", 1<<16),
}

func testInvalidDigests(t *testing.T, s blob.Store) {
	put(t, s, nil)
	for _, d := range BadDigests {
		_, _, err := s.Open(t.Context(), d)
		isErr(t, err, blob.ErrInvalidDigest)
		_, err = s.Stat(t.Context(), d)
		isErr(t, err, blob.ErrInvalidDigest)
		isErr(t, s.Delete(t.Context(), d), blob.ErrInvalidDigest)
		if err := blob.CheckDigest(d); !errors.Is(err, blob.ErrInvalidDigest) {
			t.Errorf("CheckDigest(%.80q) = %v", d, err)
		}
		if len(err.Error()) > 300 {
			t.Errorf("the error repeats a long digest: %.100s...", err)
		}
	}
	check(t, s, nil)
}

func testNotFound(t *testing.T, s blob.Store) {
	put(t, s, []byte("something"))
	for _, d := range []string{Digest([]byte("nothing")), strings.Repeat("0", 64), strings.Repeat("f", 64)} {
		absent(t, s, d)
		isErr(t, s.Delete(t.Context(), d), blob.ErrNotFound)
	}
}

func testDelete(t *testing.T, s blob.Store) {
	b, other := Content(7, 3000), Content(8, 3000)
	digest := put(t, s, b)
	put(t, s, other)
	must(t, s.Delete(t.Context(), digest))
	absent(t, s, digest)
	isErr(t, s.Delete(t.Context(), digest), blob.ErrNotFound)
	check(t, s, other)
	put(t, s, b) // stored again
	check(t, s, b)
}

// BenchmarkPut measures storing blobs of a few sizes: the ceiling for image uploads. Every
// Put stores new content.
func BenchmarkPut(b *testing.B, s blob.Store) {
	for _, size := range []int{64 << 10, 1 << 20, 16 << 20} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			content := Content(9, size)
			b.SetBytes(int64(size))
			i := uint64(0)
			for b.Loop() {
				i++
				content[0], content[1], content[2], content[3] = byte(i), byte(i>>8), byte(i>>16), byte(i>>24)
				if _, _, err := s.Put(context.Background(), bytes.NewReader(content), int64(size)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
