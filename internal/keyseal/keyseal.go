// Package keyseal seals the service's private keys at rest: AES-256-GCM under the service's
// key-encryption key, with the ID of the record that holds the key as additional data, so a
// sealed key cannot be moved to another record. The CA's keys and the tenants' image-signing
// keys are sealed this way.
//
// Format (version 1): 0x01 || 12-byte random nonce || ciphertext of the PKCS #8 DER key.
package keyseal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
)

const version = 1

// ErrSealed means a sealed key cannot be opened: a wrong key-encryption key, another record's
// ciphertext, or tampering.
var ErrSealed = errors.New("sealed key cannot be opened (wrong key-encryption key, or tampered ciphertext)")

// Sealer seals and opens keys. It is safe for concurrent use.
type Sealer struct {
	aead cipher.AEAD
	rand io.Reader
}

// New returns a Sealer for a 32-byte key-encryption key; rnd defaults to crypto/rand.
func New(kek []byte, rnd io.Reader) (*Sealer, error) {
	if len(kek) != 32 {
		return nil, fmt.Errorf("key-encryption key is %d bytes; it must be 32", len(kek))
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	return &Sealer{aead: aead, rand: rnd}, nil
}

// Seal encrypts key for the record with the given ID.
func (s *Sealer) Seal(id string, key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encoding the key of %s: %w", id, err)
	}
	defer clear(der)
	out := make([]byte, 1+s.aead.NonceSize(), 1+s.aead.NonceSize()+len(der)+s.aead.Overhead())
	out[0] = version
	if _, err := io.ReadFull(s.rand, out[1:]); err != nil {
		return nil, fmt.Errorf("reading a nonce to seal the key of %s: %w", id, err)
	}
	return s.aead.Seal(out, out[1:], der, []byte(id)), nil
}

// Open decrypts the key sealed for the record with the given ID.
func (s *Sealer) Open(id string, sealed []byte) (*ecdsa.PrivateKey, error) {
	n := s.aead.NonceSize()
	if len(sealed) < 1+n+s.aead.Overhead() || sealed[0] != version {
		return nil, fmt.Errorf("%s: %w", id, ErrSealed)
	}
	der, err := s.aead.Open(nil, sealed[1:1+n], sealed[1+n:], []byte(id))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", id, ErrSealed)
	}
	defer clear(der)
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("%s: parsing the unsealed key: %w", id, err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: unsealed a %T, want an ECDSA key", id, k)
	}
	return key, nil
}
