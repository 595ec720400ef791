package rottest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"fmt"

	"github.com/google/go-tpm/tpm2"
)

// freshKey makes a new public key of the given TPM type as DER SubjectPublicKeyInfo: RSA 2048
// or ECC P-256.
func freshKey(typ tpm2.TPMAlgID) ([]byte, error) {
	var pub any
	switch typ {
	case tpm2.TPMAlgRSA:
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, err
		}
		pub = &k.PublicKey
	case tpm2.TPMAlgECC:
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		pub = &k.PublicKey
	default:
		return nil, fmt.Errorf("key type %v", typ)
	}
	return x509.MarshalPKIXPublicKey(pub)
}
