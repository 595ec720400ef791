// Package softrot is the "software" root of trust: an EK and an AK that are ordinary ECDSA P-256
// keys in files under the agent's state directory. It exists so that development and tests run
// without a TPM. It protects nothing: anyone who can read the state directory can impersonate
// the device, which is why every record it produces is marked "software" and production
// servers refuse it.
package softrot

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/google/go-tpm/tpm2"

	"github.com/rampart-iot/rampart/enrollment"
	"github.com/rampart-iot/rampart/internal/atomicfile"
	"github.com/rampart-iot/rampart/internal/rot"
)

// Name is the backend's name in root-of-trust specs.
const Name = "software"

func init() {
	rot.Register(Name, func(_ context.Context, arg, stateDir string) (rot.RootOfTrust, error) {
		if arg != "" {
			return nil, fmt.Errorf("root of trust %q takes no argument", Name)
		}
		return Open(stateDir, rand.Reader)
	})
}

// Software is the software root of trust.
type Software struct {
	dir string
	ek  *ecdsa.PrivateKey
	ak  *ecdsa.PrivateKey
}

// Open loads the keys under stateDir/rot-software, creating them on first use from rnd.
func Open(stateDir string, rnd io.Reader) (*Software, error) {
	if stateDir == "" {
		return nil, errors.New("the software root of trust needs a state directory")
	}
	dir := filepath.Join(stateDir, "rot-software")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("software root of trust: %w", err)
	}
	s := &Software{dir: dir}
	var err error
	if s.ek, err = loadOrCreate(filepath.Join(dir, "ek.pem"), rnd); err != nil {
		return nil, err
	}
	if s.ak, err = loadOrCreate(filepath.Join(dir, "ak.pem"), rnd); err != nil {
		return nil, err
	}
	return s, nil
}

// Kind reports "software".
func (s *Software) Kind() string { return enrollment.RootOfTrustSoftware }

// Endorsement returns the EK public key; the software root has no EK certificate.
func (s *Software) Endorsement(context.Context) ([]byte, []byte, error) {
	der, err := x509.MarshalPKIXPublicKey(&s.ek.PublicKey)
	return der, nil, err
}

// AttestationKey describes the AK as a TPM restricted signing key would be described, so that
// the service handles both roots of trust alike.
func (s *Software) AttestationKey(context.Context) ([]byte, error) {
	return tpm2.Marshal(AKPublic(&s.ak.PublicKey)), nil
}

// Close does nothing; the keys stay in their files.
func (s *Software) Close() error { return nil }

// AKPublic is the TPMT_PUBLIC of an ECDSA P-256 key with a TPM attestation key's attributes.
func AKPublic(pub *ecdsa.PublicKey) tpm2.TPMTPublic {
	point, err := pub.ECDH()
	if err != nil {
		panic("softrot: AK is not a P-256 key: " + err.Error())
	}
	b := point.Bytes() // 0x04 || X || Y
	return tpm2.TPMTPublic{
		Type:    tpm2.TPMAlgECC,
		NameAlg: tpm2.TPMAlgSHA256,
		ObjectAttributes: tpm2.TPMAObject{
			FixedTPM: true, FixedParent: true, SensitiveDataOrigin: true, UserWithAuth: true,
			Restricted: true, SignEncrypt: true,
		},
		Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
			Scheme: tpm2.TPMTECCScheme{
				Scheme:  tpm2.TPMAlgECDSA,
				Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSigSchemeECDSA{HashAlg: tpm2.TPMAlgSHA256}),
			},
			CurveID: tpm2.TPMECCNistP256,
		}),
		Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{
			X: tpm2.TPM2BECCParameter{Buffer: b[1:33]},
			Y: tpm2.TPM2BECCParameter{Buffer: b[33:65]},
		}),
	}
}

func loadOrCreate(path string, rnd io.Reader) (*ecdsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rnd)
		if err != nil {
			return nil, fmt.Errorf("software root of trust: generating %s: %w", filepath.Base(path), err)
		}
		der, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			return nil, err
		}
		if err := atomicfile.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			return nil, err
		}
		return k, nil
	}
	if err != nil {
		return nil, fmt.Errorf("software root of trust: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "EC PRIVATE KEY" {
		return nil, fmt.Errorf("software root of trust: %s is not a PEM EC private key", path)
	}
	k, err := x509.ParseECPrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("software root of trust: %s: %w", path, err)
	}
	if k.Curve != elliptic.P256() {
		return nil, fmt.Errorf("software root of trust: %s is not a P-256 key", path)
	}
	return k, nil
}
