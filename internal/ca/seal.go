package ca

import (
	"crypto/ecdsa"
	"crypto/x509"
	"fmt"
	"io"
)

// sealVersion is the first byte of a sealed key: version 1 is AES-256-GCM, a 12-byte random
// nonce, then the ciphertext of the PKCS #8 DER key, with the CA's ID as additional data.
const sealVersion = 1

// seal encrypts key for the CA with the given ID.
func (a *Authority) seal(id string, key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encoding the key of CA %s: %w", id, err)
	}
	defer clear(der)
	out := make([]byte, 1+a.aead.NonceSize(), 1+a.aead.NonceSize()+len(der)+a.aead.Overhead())
	out[0] = sealVersion
	if _, err := io.ReadFull(a.rand, out[1:]); err != nil {
		return nil, fmt.Errorf("reading a nonce to seal the key of CA %s: %w", id, err)
	}
	return a.aead.Seal(out, out[1:], der, []byte(id)), nil
}

// unseal decrypts the key sealed for the CA with the given ID and checks that it belongs to
// cert.
func (a *Authority) unseal(id string, sealed []byte, cert *x509.Certificate) (*ecdsa.PrivateKey, error) {
	n := a.aead.NonceSize()
	if len(sealed) < 1+n+a.aead.Overhead() || sealed[0] != sealVersion {
		return nil, fmt.Errorf("CA %s: %w", id, ErrSealedKey)
	}
	der, err := a.aead.Open(nil, sealed[1:1+n], sealed[1+n:], []byte(id))
	if err != nil {
		return nil, fmt.Errorf("CA %s: %w", id, ErrSealedKey)
	}
	defer clear(der)
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("CA %s: parsing the unsealed key: %w", id, err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("CA %s: unsealed a %T, want an ECDSA key", id, k)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("CA %s: %w", id, ErrKeyMismatch)
	}
	return key, nil
}
