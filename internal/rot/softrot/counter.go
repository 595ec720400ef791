package softrot

// The anti-rollback counter (rot.Counter) of the software root of trust: a sealed file,
// STATE/rot-software/antirollback, of exactly counterFileSize bytes:
//
//	"rampart-antirollback-1\n" (23 bytes) || counter (uint64, big-endian) || HMAC-SHA256
//
// where the HMAC covers everything before it and its key is
// HKDF-SHA256(secret: the EK's private scalar, salt: none, info: counterKeyInfo). The file is
// replaced atomically (internal/atomicfile). No file means 0; a file that is garbled, edited,
// of the wrong size or sealed by another device's key is an error, never 0.
//
// What it is worth: development only, like the rest of this backend. The seal resists editing
// the number, but not putting back an older copy of the file (it holds no state outside the
// directory to compare with), and whoever can read ek.pem, beside it in the same directory, has
// the key and can seal any number. Two processes that advance the counter at the same moment
// may lose one's write: each write is whole, but they do not lock each other out.

import (
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/rampart-iot/rampart/internal/atomicfile"
	"github.com/rampart-iot/rampart/internal/rot"
)

// CounterFileName is the counter's file in the backend's directory.
const CounterFileName = "antirollback"

// counterMagic starts the file and names its version.
const counterMagic = "rampart-antirollback-1\n"

// counterFileSize is the file's only valid size; reads stop one byte past it.
const counterFileSize = len(counterMagic) + 8 + sha256.Size

// counterKeyInfo is the HKDF label of the counter's MAC key.
const counterKeyInfo = "rampart softrot anti-rollback counter v1"

// ReadCounter returns the counter sealed in the file, 0 if there is no file.
func (s *Software) ReadCounter(ctx context.Context) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	s.counterMu.Lock()
	defer s.counterMu.Unlock()
	return s.readCounter()
}

// AdvanceCounter raises the counter to v by sealing v in the file.
func (s *Software) AdvanceCounter(ctx context.Context, v uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.counterMu.Lock()
	defer s.counterMu.Unlock()
	cur, err := s.readCounter()
	if err != nil {
		return err
	}
	if v <= cur {
		return nil
	}
	if v-cur > rot.MaxCounterStep {
		return fmt.Errorf("software root of trust: raising the anti-rollback counter from %d to %d is a step of %d; the most one step may be is %d",
			cur, v, v-cur, rot.MaxCounterStep)
	}
	if err := atomicfile.WriteFile(s.counterPath(), s.sealCounter(v), 0o600); err != nil {
		return fmt.Errorf("software root of trust: anti-rollback counter: %w", err)
	}
	return nil
}

func (s *Software) counterPath() string { return filepath.Join(s.dir, CounterFileName) }

// counterKey derives the MAC key from the EK.
func (s *Software) counterKey() []byte {
	k, err := hkdf.Key(sha256.New, s.ekECDH.Bytes(), nil, counterKeyInfo, sha256.Size)
	if err != nil {
		panic("softrot: HKDF-SHA256 of 32 bytes failed: " + err.Error()) // only for lengths > 255*32
	}
	return k
}

func (s *Software) sealCounter(v uint64) []byte {
	b := binary.BigEndian.AppendUint64([]byte(counterMagic), v)
	mac := hmac.New(sha256.New, s.counterKey())
	mac.Write(b)
	return mac.Sum(b)
}

func (s *Software) readCounter() (uint64, error) {
	path := s.counterPath()
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("software root of trust: anti-rollback counter: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, int64(counterFileSize)+1))
	if err != nil {
		return 0, fmt.Errorf("software root of trust: anti-rollback counter: %w", err)
	}
	if len(b) != counterFileSize {
		what := fmt.Sprintf("%d bytes", len(b))
		if len(b) > counterFileSize {
			what = "more than that"
		}
		return 0, fmt.Errorf("software root of trust: anti-rollback counter: %s must hold %d bytes; it holds %s", path, counterFileSize, what)
	}
	if !bytes.HasPrefix(b, []byte(counterMagic)) {
		return 0, fmt.Errorf("software root of trust: anti-rollback counter: %s does not start with %q", path, counterMagic)
	}
	body, sum := b[:len(b)-sha256.Size], b[len(b)-sha256.Size:]
	mac := hmac.New(sha256.New, s.counterKey())
	mac.Write(body)
	if !hmac.Equal(mac.Sum(nil), sum) {
		return 0, fmt.Errorf("software root of trust: anti-rollback counter: %s is not sealed by this device's key: it was edited, or comes from another device", path)
	}
	return binary.BigEndian.Uint64(body[len(counterMagic):]), nil
}

var _ rot.Counter = (*Software)(nil)
