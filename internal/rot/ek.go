package rot

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"fmt"

	"github.com/google/go-tpm/tpm2"
)

// EKPublicArea rebuilds an endorsement key's TPMT_PUBLIC from its public key (DER
// SubjectPublicKeyInfo, as Endorsement returns it): the TCG default EK template, RSA 2048
// (tpm2.RSAEKTemplate) or ECC P-256 (tpm2.ECCEKTemplate), with the key as its unique field. It
// is what a verifier passes to tpm2.ImportEncapsulationKey before tpm2.CreateCredential, and
// tpm2.ObjectName of it is the EK's name. Keys no default template produces are an error.
func EKPublicArea(ekPublicDER []byte) (*tpm2.TPMTPublic, error) {
	pub, err := x509.ParsePKIXPublicKey(ekPublicDER)
	if err != nil {
		return nil, fmt.Errorf("EK public key: %w", err)
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() != 2048 || k.E != 65537 {
			return nil, fmt.Errorf("EK is an RSA key of %d bits with exponent %d; the default template makes RSA 2048 keys with exponent 65537", k.N.BitLen(), k.E)
		}
		area := tpm2.RSAEKTemplate
		area.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgRSA, &tpm2.TPM2BPublicKeyRSA{Buffer: k.N.FillBytes(make([]byte, 256))})
		return &area, nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("EK is an ECC key on %s; the default template makes P-256 keys", k.Curve.Params().Name)
		}
		point, err := k.ECDH()
		if err != nil {
			return nil, fmt.Errorf("EK public key: %w", err)
		}
		b := point.Bytes() // 0x04 || X || Y
		area := tpm2.ECCEKTemplate
		area.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{
			X: tpm2.TPM2BECCParameter{Buffer: b[1:33]},
			Y: tpm2.TPM2BECCParameter{Buffer: b[33:65]},
		})
		return &area, nil
	default:
		return nil, fmt.Errorf("EK is a %T; want RSA or ECC", pub)
	}
}
