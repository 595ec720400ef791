// Package apitoken makes and checks the secrets of API tokens. A secret is "rpt_" followed by 43
// base64url characters (256 random bits); the service stores only its SHA-256 hash, so a leaked
// database does not leak usable tokens. The package trusts nothing it is given to parse.
package apitoken

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
)

// Prefix starts every secret, so that secret scanners and humans can recognise one.
const Prefix = "rpt_"

const secretBytes = 32

// SecretLen is the length of a secret in characters.
var SecretLen = len(Prefix) + base64.RawURLEncoding.EncodedLen(secretBytes)

// ErrMalformed means a string is not shaped like a token secret.
var ErrMalformed = errors.New("malformed API token")

// New returns a new secret and its hash, reading randomness from r.
func New(r io.Reader) (secret string, hash []byte, err error) {
	var b [secretBytes]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return "", nil, fmt.Errorf("reading randomness for an API token: %w", err)
	}
	secret = Prefix + base64.RawURLEncoding.EncodeToString(b[:])
	h := sha256.Sum256([]byte(secret))
	return secret, h[:], nil
}

// Hash checks that secret is shaped like a token and returns the hash it is stored under.
func Hash(secret string) ([]byte, error) {
	if len(secret) != SecretLen || secret[:len(Prefix)] != Prefix {
		return nil, ErrMalformed
	}
	raw, err := base64.RawURLEncoding.DecodeString(secret[len(Prefix):])
	if err != nil || len(raw) != secretBytes {
		return nil, ErrMalformed
	}
	h := sha256.Sum256([]byte(secret))
	return h[:], nil
}
