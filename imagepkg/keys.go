package imagepkg

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	_ "embed"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"sync"
)

// DevelopmentKeyID is the key ID of the development signing key.
const DevelopmentKeyID = "2bc726ca20a6476cecda990af9b9a2cb66ea178690f04fa29c920ec6355825d8"

// developmentKeyPEM is the development signing key. It is public on purpose, as Azure Sphere's
// test-signing key is: anyone can sign with it, so only devices in development mode trust it.
//
//go:embed development-key.pem
var developmentKeyPEM []byte

var developmentKey = sync.OnceValue(func() *ecdsa.PrivateKey {
	k, err := ParsePrivateKeyPEM(developmentKeyPEM)
	if err != nil {
		panic("imagepkg: the embedded development key is unusable: " + err.Error())
	}
	return k
})

// DevelopmentKey returns the well-known development signing key. Packages signed only with it
// carry "development": true, and only devices in development mode accept them.
func DevelopmentKey() *ecdsa.PrivateKey { return developmentKey() }

// DevelopmentPublicKey returns the public half of DevelopmentKey.
func DevelopmentPublicKey() *ecdsa.PublicKey { return &developmentKey().PublicKey }

// TrustedKeys returns the keys a device verifies packages with: its tenant's production keys,
// and the development key too when the device is in development mode.
func TrustedKeys(production []crypto.PublicKey, developmentMode bool) []crypto.PublicKey {
	out := append([]crypto.PublicKey(nil), production...)
	if developmentMode {
		out = append(out, DevelopmentPublicKey())
	}
	return out
}

// KeyID returns the key ID of an ECDSA P-256 public key: the lower-case hex SHA-256 of its DER
// SubjectPublicKeyInfo.
func KeyID(pub crypto.PublicKey) (string, error) {
	k, err := p256(pub)
	if err != nil {
		return "", err
	}
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:]), nil
}

// p256 returns pub as an ECDSA P-256 public key, the only kind of key that signs packages.
func p256(pub crypto.PublicKey) (*ecdsa.PublicKey, error) {
	k, ok := pub.(*ecdsa.PublicKey)
	if !ok || k == nil || k.Curve != elliptic.P256() {
		return nil, fmt.Errorf("want an ECDSA P-256 key, not %T", pub)
	}
	return k, nil
}

// ParsePrivateKeyPEM parses an ECDSA P-256 private key from PEM: an "EC PRIVATE KEY" (SEC 1) or
// a "PRIVATE KEY" (PKCS #8) block.
func ParsePrivateKeyPEM(data []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block found; want an EC private key")
	}
	var key any
	var err error
	switch block.Type {
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block is %q; want an EC PRIVATE KEY or a PRIVATE KEY", block.Type)
	}
	if err != nil {
		return nil, err
	}
	k, ok := key.(*ecdsa.PrivateKey)
	if !ok || k.Curve != elliptic.P256() {
		return nil, fmt.Errorf("the private key is %T; want an ECDSA P-256 key", key)
	}
	return k, nil
}

// ParsePublicKeyPEM parses an ECDSA P-256 public key from a PEM "PUBLIC KEY" block.
func ParsePublicKeyPEM(data []byte) (*ecdsa.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, errors.New("no PEM PUBLIC KEY block found")
	}
	key, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	return p256(key)
}

// signer signs DSSE's pre-authentication encoding with ECDSA P-256 over SHA-256, for the dsse
// package.
type signer struct {
	s     crypto.Signer
	keyID string
}

func newSigner(s crypto.Signer) (*signer, error) {
	if s == nil {
		return nil, errors.New("no signing key")
	}
	id, err := KeyID(s.Public())
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	return &signer{s: s, keyID: id}, nil
}

func (s *signer) Sign(_ context.Context, data []byte) ([]byte, error) {
	digest := sha256.Sum256(data)
	var random io.Reader = rand.Reader
	if _, ok := s.s.(*ecdsa.PrivateKey); ok {
		// A key in memory signs deterministically (RFC 6979), so a package built twice
		// from the same inputs is the same bytes.
		random = nil
	}
	return s.s.Sign(random, digest[:], crypto.SHA256)
}

func (s *signer) KeyID() (string, error) { return s.keyID, nil }

// verifier verifies a signature over DSSE's pre-authentication encoding with one trusted key.
type verifier struct {
	pub   *ecdsa.PublicKey
	keyID string
}

func (v *verifier) Verify(_ context.Context, data, sig []byte) error {
	digest := sha256.Sum256(data)
	if !ecdsa.VerifyASN1(v.pub, digest[:], sig) {
		return errors.New("signature does not verify")
	}
	return nil
}

func (v *verifier) KeyID() (string, error)   { return v.keyID, nil }
func (v *verifier) Public() crypto.PublicKey { return v.pub }
