// Package blob keeps large files, such as the countersigned image packages that devices
// download, content-addressed: a blob is named by the lowercase hex SHA-256 of its bytes, so a
// name always stands for the same content and storing the same content twice stores it once.
// Reads seek, so that http.ServeContent can answer the Range requests of resumed downloads.
//
// Backends register by name (Register, Open); "dir" (files in a directory, see Dir) is built
// in. The Store interface holds only what PostgreSQL large objects or an S3 bucket can also do.
//
// Trust: a digest given to a Store is hostile input; only 64 lowercase hex digits name a blob
// (CheckDigest), so no name reaches outside the store. A store trusts its storage to keep what
// it synced, and does not hash a blob again when it is read: whoever must know that the bytes
// are right hashes what they read, as devices do against the signed update metadata. A store
// knows nothing of who refers to a blob; callers decide when one may be deleted.
package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/rampart-iot/rampart/internal/registry"
)

// Store is a blob store. Implementations are safe for concurrent use.
type Store interface {
	// Put reads r to its end, stores what it read, and returns its digest (lowercase hex
	// SHA-256) and size. If r holds more than maxSize bytes, Put reads at most maxSize+1 of
	// them, stores nothing and fails with ErrTooLarge. Storing content that is already stored
	// succeeds and returns the same digest, however many Puts of it run at once. When Put
	// fails, nothing is stored under the content's digest that was not there before, and when
	// it returns nil, the blob is durable.
	Put(ctx context.Context, r io.Reader, maxSize int64) (digest string, size int64, err error)
	// Open opens a blob for reading; the caller closes it. Info gives what http.ServeContent
	// needs besides the content. It fails with ErrInvalidDigest or ErrNotFound.
	Open(ctx context.Context, digest string) (io.ReadSeekCloser, Info, error)
	// Stat describes a blob. It fails with ErrInvalidDigest or ErrNotFound.
	Stat(ctx context.Context, digest string) (Info, error)
	// Delete removes a blob. It fails with ErrInvalidDigest or ErrNotFound. Whether a blob
	// deleted while open can still be read through the open copy is the backend's affair.
	Delete(ctx context.Context, digest string) error
	// Close releases the store's resources.
	Close() error
}

// Info describes a stored blob.
type Info struct {
	Digest string // lowercase hex SHA-256 of the content
	Size   int64
	// ModTime is when the blob was last stored (Put), for HTTP's Last-Modified and the
	// garbage collector's grace period (Collect).
	ModTime time.Time
}

// Errors. Stores wrap them with a message.
var (
	// ErrNotFound means no blob with the digest is stored.
	ErrNotFound = errors.New("blob not found")
	// ErrTooLarge means Put's content is longer than its maxSize.
	ErrTooLarge = errors.New("blob is too large")
	// ErrInvalidDigest means a digest is not 64 lowercase hex digits.
	ErrInvalidDigest = errors.New("invalid blob digest")
)

// DigestLen is the length of a digest: hex SHA-256.
const DigestLen = 64

// CheckDigest returns an error wrapping ErrInvalidDigest unless d is 64 lowercase hex digits.
func CheckDigest(d string) error {
	if len(d) != DigestLen {
		return fmt.Errorf("%w %.80q: want %d lowercase hex digits", ErrInvalidDigest, d, DigestLen)
	}
	for i := 0; i < len(d); i++ {
		if c := d[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return fmt.Errorf("%w %q: want %d lowercase hex digits", ErrInvalidDigest, d, DigestLen)
		}
	}
	return nil
}

// Opener opens a backend at a location whose meaning is the backend's (for "dir", a
// directory).
type Opener func(ctx context.Context, location string) (Store, error)

var backends = registry.New[Opener]("blob store backend")

// Register makes a backend available under name. Backends call it from init; registering a
// name twice panics, as it is a programming error.
func Register(name string, open Opener) { backends.Register(name, open) }

// Backends lists the registered backend names, sorted.
func Backends() []string { return backends.Names() }

// Open opens the named backend at location.
func Open(ctx context.Context, backend, location string) (Store, error) {
	open, err := backends.Lookup(backend)
	if err != nil {
		return nil, err
	}
	return open(ctx, location)
}
