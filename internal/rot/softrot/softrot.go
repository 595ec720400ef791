// Package softrot is the "software" root of trust: an EK and an AK that are ordinary ECDSA P-256
// keys in files under the agent's state directory. It exists so that development and tests run
// without a TPM. It protects nothing: anyone who can read the state directory can impersonate
// the device, which is why every record it produces is marked "software" and production
// servers refuse it.
//
// It speaks the TPM's formats and cryptography so that a verifier treats it exactly as a TPM
// until it reads the record's root_of_trust: the EK behaves as an ECC P-256 EK made from the TCG
// default template (ActivateCredential is TPM2_ActivateCredential in software), the AK as a
// restricted ECDSA P-256 signing key that is a primary key in the owner hierarchy, and Quote
// returns a TPMS_ATTEST and TPMT_SIGNATURE as TPM2_Quote does.
//
// Its PCRs live in memory and start afresh with each process, as a PC Client TPM's do at boot:
// 0 to 16 and 23 all zeros, 17 to 22 all ones. No firmware measured anything before the agent
// started, so a quote from this root proves nothing about how the device booted.
//
// Its anti-rollback counter (rot.Counter) is a file sealed with a key derived from the EK,
// STATE/rot-software/antirollback: it resists editing, not putting back an older copy, and
// whoever reads the state directory has the key (see counter.go).
package softrot

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

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

// Software is the software root of trust. It is safe for concurrent use.
type Software struct {
	start time.Time // the "TPM" clock counts milliseconds from here
	dir   string    // STATE/rot-software

	// Immutable after Open.
	ek       *ecdsa.PrivateKey
	ekECDH   *ecdh.PrivateKey
	ekX      []byte // the EK's X coordinate, 32 bytes
	ak       *ecdsa.PrivateKey
	akPublic []byte // TPMT_PUBLIC
	akName   []byte // TPM2B_NAME contents: nameAlg || SHA-256(akPublic)
	akQN     []byte // qualified name, as a primary key in the owner hierarchy

	mu   sync.Mutex
	pcrs [rot.NumPCRs][sha256.Size]byte

	counterMu sync.Mutex // serializes the anti-rollback counter's read and write
}

// Open loads the keys under stateDir/rot-software, creating them on first use. rnd is passed to
// ecdsa.GenerateKey, which since Go 1.26 ignores it and uses the system's randomness unless
// GODEBUG=cryptocustomrand=1; tests that need fixed keys use testing/cryptotest.SetGlobalRandom.
func Open(stateDir string, rnd io.Reader) (*Software, error) {
	if stateDir == "" {
		return nil, errors.New("the software root of trust needs a state directory")
	}
	dir := filepath.Join(stateDir, "rot-software")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("software root of trust: %w", err)
	}
	s := &Software{start: time.Now(), dir: dir}
	var err error
	if s.ek, err = loadOrCreate(filepath.Join(dir, "ek.pem"), rnd); err != nil {
		return nil, err
	}
	if s.ak, err = loadOrCreate(filepath.Join(dir, "ak.pem"), rnd); err != nil {
		return nil, err
	}
	if s.ekECDH, err = s.ek.ECDH(); err != nil {
		return nil, fmt.Errorf("software root of trust: EK: %w", err)
	}
	s.ekX = s.ekECDH.PublicKey().Bytes()[1:33]
	pub := AKPublic(&s.ak.PublicKey)
	s.akPublic = tpm2.Marshal(pub)
	name, err := tpm2.ObjectName(&pub)
	if err != nil {
		return nil, fmt.Errorf("software root of trust: AK name: %w", err)
	}
	s.akName = name.Buffer
	s.akQN = qualifiedName(tpm2.TPMRHOwner, s.akName)
	for i := range s.pcrs {
		if i >= 17 && i <= 22 {
			s.pcrs[i] = [sha256.Size]byte(bytes.Repeat([]byte{0xff}, sha256.Size))
		}
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
	return bytes.Clone(s.akPublic), nil
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
