// Package password hashes and checks users' passwords with argon2id (RFC 9106), each with its
// own random salt, encoded as a PHC string that carries its parameters:
//
//	$argon2id$v=19$m=65536,t=2,p=2$<salt, base64 without padding>$<key, base64 without padding>
//
// so the parameters can be raised later without breaking stored hashes. It owns no storage.
// Trust: a stored hash is read back from the store and is decoded strictly, with bounded
// parameters, so a corrupted or hostile row cannot make Verify spend unbounded memory or time.
package password

import (
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Params are argon2id's cost parameters.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes
	Threads uint8
	SaltLen int
	KeyLen  int
}

// Default follows RFC 9106's second recommended option, with 64 MiB and two passes.
var Default = Params{Memory: 64 * 1024, Time: 2, Threads: 2, SaltLen: 16, KeyLen: 32}

// Bounds on what a hash may ask for, and on a password.
const (
	MaxMemory   = 1 << 20 // KiB: 1 GiB
	MaxTime     = 16
	MaxThreads  = 16
	MinSaltLen  = 8
	MaxSaltLen  = 64
	MinKeyLen   = 16
	MaxKeyLen   = 64
	MaxPassword = 1024 // bytes
	MaxEncoded  = 512  // bytes of an encoded hash
)

// ErrMalformed is an encoded hash that is not one this package makes.
var ErrMalformed = errors.New("malformed password hash")

// ErrTooLong is a password longer than MaxPassword.
var ErrTooLong = fmt.Errorf("password is longer than %d bytes", MaxPassword)

var b64 = base64.RawStdEncoding

// Hash hashes a password with a fresh salt read from rnd.
func Hash(rnd io.Reader, password string, p Params) (string, error) {
	if len(password) > MaxPassword {
		return "", ErrTooLong
	}
	if err := p.check(); err != nil {
		return "", err
	}
	salt := make([]byte, p.SaltLen)
	if _, err := io.ReadFull(rnd, salt); err != nil {
		return "", fmt.Errorf("password salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, uint32(p.KeyLen))
	return encode(p, salt, key), nil
}

func encode(p Params, salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key))
}

// Verify reports whether password matches the encoded hash, comparing in constant time. A
// malformed hash is an error wrapping ErrMalformed.
func Verify(encoded, password string) (bool, error) {
	p, salt, key, err := Decode(encoded)
	if err != nil {
		return false, err
	}
	if len(password) > MaxPassword {
		return false, nil
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, uint32(len(key)))
	return subtle.ConstantTimeCompare(got, key) == 1, nil
}

// Decode parses an encoded hash into its parameters, salt and key.
func Decode(encoded string) (Params, []byte, []byte, error) {
	bad := func(format string, args ...any) (Params, []byte, []byte, error) {
		return Params{}, nil, nil, fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
	}
	if len(encoded) > MaxEncoded {
		return bad("longer than %d bytes", MaxEncoded)
	}
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" {
		return bad("want $argon2id$v=…$m=…,t=…,p=…$salt$key")
	}
	if parts[1] != "argon2id" {
		return bad("algorithm %q, want argon2id", parts[1])
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return bad("version %q, want v=%d", parts[2], argon2.Version)
	}
	var p Params
	fields := strings.Split(parts[3], ",")
	if len(fields) != 3 {
		return bad("parameters %q, want m=…,t=…,p=…", parts[3])
	}
	for i, name := range []string{"m", "t", "p"} {
		v, ok := strings.CutPrefix(fields[i], name+"=")
		if !ok {
			return bad("parameter %d is not %s=", i+1, name)
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || (len(v) > 1 && v[0] == '0') {
			return bad("parameter %s=%q is not a number", name, v)
		}
		switch name {
		case "m":
			p.Memory = uint32(n)
		case "t":
			p.Time = uint32(n)
		case "p":
			if n > 255 {
				return bad("p=%d is too many threads", n)
			}
			p.Threads = uint8(n)
		}
	}
	salt, err := b64.Strict().DecodeString(parts[4])
	if err != nil {
		return bad("salt: %v", err)
	}
	key, err := b64.Strict().DecodeString(parts[5])
	if err != nil {
		return bad("key: %v", err)
	}
	p.SaltLen, p.KeyLen = len(salt), len(key)
	if err := p.check(); err != nil {
		return Params{}, nil, nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return p, salt, key, nil
}

// check keeps parameters within the bounds.
func (p Params) check() error {
	switch {
	case p.Time < 1 || p.Time > MaxTime:
		return fmt.Errorf("t=%d is outside 1..%d", p.Time, MaxTime)
	case p.Threads < 1 || p.Threads > MaxThreads:
		return fmt.Errorf("p=%d is outside 1..%d", p.Threads, MaxThreads)
	case p.Memory < 8*uint32(p.Threads) || p.Memory > MaxMemory:
		return fmt.Errorf("m=%d is outside %d..%d KiB", p.Memory, 8*uint32(p.Threads), MaxMemory)
	case p.SaltLen < MinSaltLen || p.SaltLen > MaxSaltLen:
		return fmt.Errorf("salt of %d bytes is outside %d..%d", p.SaltLen, MinSaltLen, MaxSaltLen)
	case p.KeyLen < MinKeyLen || p.KeyLen > MaxKeyLen:
		return fmt.Errorf("key of %d bytes is outside %d..%d", p.KeyLen, MinKeyLen, MaxKeyLen)
	}
	return nil
}
