package webhook

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
)

// sealedPrefix marks a secret sealed by a Sealer as stored.
const sealedPrefix = "sealed:v1:"

// ErrSealed means a stored secret cannot be opened: a wrong key-encryption key, another
// webhook's record, or damage.
var ErrSealed = errors.New("webhook secret cannot be opened")

// Sealer seals webhook secrets at rest: AES-256-GCM under a key derived (HKDF-SHA256) from the
// service's key-encryption key, bound to the webhook's ID, so a database alone does not give
// away the keys that sign deliveries. A nil *Sealer stores and reads secrets as they are.
type Sealer struct {
	aead cipher.AEAD
	rand io.Reader
}

// NewSealer returns a Sealer for the service's 32-byte key-encryption key; rnd makes nonces.
func NewSealer(kek []byte, rnd io.Reader) (*Sealer, error) {
	key, err := hkdf.Key(sha256.New, kek, nil, "rampart webhook secret v1", 32)
	if err != nil {
		return nil, fmt.Errorf("webhook secret key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("webhook secret key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("webhook secret key: %w", err)
	}
	return &Sealer{aead: aead, rand: rnd}, nil
}

// Seal returns secret as stored for the webhook with the given ID.
func (s *Sealer) Seal(webhookID, secret string) (string, error) {
	if s == nil {
		return secret, nil
	}
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := io.ReadFull(s.rand, nonce); err != nil {
		return "", fmt.Errorf("sealing a webhook secret: %w", err)
	}
	out := s.aead.Seal(nonce, nonce, []byte(secret), []byte(webhookID))
	return sealedPrefix + base64.RawStdEncoding.EncodeToString(out), nil
}

// Open returns the secret stored for the webhook with the given ID. A secret stored unsealed
// (no Sealer when it was made) is returned as it is.
func (s *Sealer) Open(webhookID, stored string) (string, error) {
	rest, sealed := strings.CutPrefix(stored, sealedPrefix)
	if !sealed {
		return stored, nil
	}
	if s == nil {
		return "", fmt.Errorf("webhook %s: sealed, and no key to open it: %w", webhookID, ErrSealed)
	}
	b, err := base64.RawStdEncoding.DecodeString(rest)
	if err != nil || len(b) < s.aead.NonceSize() {
		return "", fmt.Errorf("webhook %s: %w", webhookID, ErrSealed)
	}
	n := s.aead.NonceSize()
	plain, err := s.aead.Open(nil, b[:n], b[n:], []byte(webhookID))
	if err != nil {
		return "", fmt.Errorf("webhook %s: %w", webhookID, ErrSealed)
	}
	return string(plain), nil
}
