package softrot

import (
	"bytes"
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/google/go-tpm/tpm2"
)

// ErrCredential is the error ActivateCredential returns for a credential that was not made for
// this EK and AK or was altered: one error for every cause, as a TPM gives away no more.
var ErrCredential = errors.New("software root of trust: the credential does not open with this EK and AK")

// The labels of TPM 2.0 Part 1, "Credential Protection" and "Secret Sharing".
const (
	labelIdentity  = "IDENTITY"
	labelIntegrity = "INTEGRITY"
	labelStorage   = "STORAGE"
)

// ActivateCredential is TPM2_ActivateCredential for an ECC P-256 EK made from the TCG default
// template (SHA-256 name algorithm, AES-128-CFB): it recovers the seed from the ephemeral point
// in encSecret by ECDH with the EK and KDFe, checks the outer HMAC over the encrypted identity
// and the AK's name, and decrypts the credential. Every failure is ErrCredential, except input
// too malformed to be a credential at all.
func (s *Software) ActivateCredential(_ context.Context, idObject, encSecret []byte) ([]byte, error) {
	seed, err := s.credentialSeed(encSecret)
	if err != nil {
		return nil, err
	}

	// TPMS_ID_OBJECT: integrityHMAC (TPM2B_DIGEST) || encIdentity.
	if len(idObject) < 2 {
		return nil, fmt.Errorf("software root of trust: credential blob of %d bytes is truncated", len(idObject))
	}
	hmacLen := int(binary.BigEndian.Uint16(idObject))
	if hmacLen != sha256.Size || len(idObject) <= 2+hmacLen {
		return nil, ErrCredential
	}
	integrity, encIdentity := idObject[2:2+hmacLen], idObject[2+hmacLen:]

	mac := hmac.New(sha256.New, tpm2.KDFa(crypto.SHA256, seed, labelIntegrity, nil, nil, 8*sha256.Size))
	mac.Write(encIdentity)
	mac.Write(s.akName)
	if !hmac.Equal(mac.Sum(nil), integrity) {
		return nil, ErrCredential
	}

	block, err := aes.NewCipher(tpm2.KDFa(crypto.SHA256, seed, labelStorage, s.akName, nil, 128))
	if err != nil {
		return nil, fmt.Errorf("software root of trust: %w", err)
	}
	plain := make([]byte, len(encIdentity))
	//lint:ignore SA1019 TPM credential protection is AES-CFB with a zero IV, by specification.
	cipher.NewCFBDecrypter(block, make([]byte, aes.BlockSize)).XORKeyStream(plain, encIdentity)
	// The plaintext is a TPM2B_DIGEST whose size must account for every byte.
	if len(plain) < 2 || int(binary.BigEndian.Uint16(plain)) != len(plain)-2 || len(plain)-2 > 64 {
		return nil, ErrCredential
	}
	return bytes.Clone(plain[2:]), nil
}

// credentialSeed recovers the seed that the verifier encapsulated to the EK: encSecret is a
// TPMS_ECC_POINT, the verifier's ephemeral public key; the seed is
// KDFe(SHA-256, Z, "IDENTITY", ephemeral.X, EK.X) with Z the X coordinate of the ECDH point.
func (s *Software) credentialSeed(encSecret []byte) ([]byte, error) {
	point, err := unmarshalPoint(encSecret)
	if err != nil {
		return nil, fmt.Errorf("software root of trust: encrypted secret: %w", err)
	}
	x, y := point.X.Buffer, point.Y.Buffer
	if len(x) > 32 || len(y) > 32 {
		return nil, ErrCredential
	}
	uncompressed := make([]byte, 65)
	uncompressed[0] = 4
	copy(uncompressed[1+32-len(x):33], x)
	copy(uncompressed[33+32-len(y):], y)
	eph, err := ecdh.P256().NewPublicKey(uncompressed) // rejects points off the curve
	if err != nil {
		return nil, ErrCredential
	}
	z, err := s.ekECDH.ECDH(eph)
	if err != nil {
		return nil, ErrCredential
	}
	return tpm2.KDFe(crypto.SHA256, z, labelIdentity, x, s.ekX, 8*sha256.Size), nil
}

// unmarshalPoint decodes a TPMS_ECC_POINT that must fill b exactly, turning go-tpm's panics on
// hostile input into errors.
func unmarshalPoint(b []byte) (p *tpm2.TPMSECCPoint, err error) {
	defer func() {
		if r := recover(); r != nil {
			p, err = nil, fmt.Errorf("malformed TPMS_ECC_POINT: %v", r)
		}
	}()
	p, err = tpm2.Unmarshal[tpm2.TPMSECCPoint](b)
	if err != nil {
		return nil, fmt.Errorf("malformed TPMS_ECC_POINT: %w", err)
	}
	if !bytes.Equal(tpm2.Marshal(*p), b) {
		return nil, errors.New("malformed TPMS_ECC_POINT: trailing bytes")
	}
	return p, nil
}
