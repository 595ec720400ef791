package ca

import (
	"crypto/ecdsa"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/rampart-iot/rampart/internal/keyseal"
)

// seal encrypts key for the CA with the given ID (see internal/keyseal for the format).
func (a *Authority) seal(id string, key *ecdsa.PrivateKey) ([]byte, error) {
	return a.sealer.Seal(id, key)
}

// unseal decrypts the key sealed for the CA with the given ID and checks that it belongs to
// cert.
func (a *Authority) unseal(id string, sealed []byte, cert *x509.Certificate) (*ecdsa.PrivateKey, error) {
	key, err := a.sealer.Open(id, sealed)
	if errors.Is(err, keyseal.ErrSealed) {
		return nil, fmt.Errorf("CA %s: %w", id, ErrSealedKey)
	}
	if err != nil {
		return nil, err
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("CA %s: %w", id, ErrKeyMismatch)
	}
	return key, nil
}
