// Package enrollmenttest makes valid enrollment records with fresh software keys, for tests of
// everything that consumes records. The keys are throwaway; nothing here is secure.
package enrollmenttest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"

	"github.com/rampart-iot/rampart/enrollment"
	"github.com/rampart-iot/rampart/internal/rot/softrot"
)

// Device is a generated device identity.
type Device struct {
	Record *enrollment.Record
	EK     *ecdsa.PrivateKey
	AK     *ecdsa.PrivateKey
}

// Options change what New generates.
type Options struct {
	RootOfTrust   string // default "software"
	EKCertificate bool   // include a self-signed EK certificate
}

// New generates a device with fresh EK and AK keys and a valid record.
func New(t testing.TB, opt Options) *Device {
	t.Helper()
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ak, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ekDER, err := x509.MarshalPKIXPublicKey(&ek.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	rot := opt.RootOfTrust
	if rot == "" {
		rot = enrollment.RootOfTrustSoftware
	}
	rec := &enrollment.Record{
		Version:      enrollment.Version,
		DeviceID:     enrollment.DeviceID(ekDER),
		RootOfTrust:  rot,
		AgentVersion: "test",
		EKPublic:     ekDER,
		AKPublic:     tpm2.Marshal(AKTemplate(&ak.PublicKey)),
	}
	if opt.EKCertificate {
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(1),
			Subject:      pkix.Name{CommonName: "test EK"},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(24 * time.Hour),
		}
		rec.EKCertificate, err = x509.CreateCertificate(rand.Reader, tmpl, tmpl, &ek.PublicKey, ek)
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := rec.Validate(); err != nil {
		t.Fatalf("enrollmenttest made an invalid record: %v", err)
	}
	return &Device{Record: rec, EK: ek, AK: ak}
}

// Record returns the JSON of a fresh valid software-rooted record.
func Record(t testing.TB) []byte {
	t.Helper()
	b, err := New(t, Options{}).Record.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// AKTemplate describes an ECDSA P-256 public key as a TPM restricted signing key, exactly as
// the software root of trust does.
func AKTemplate(pub *ecdsa.PublicKey) tpm2.TPMTPublic { return softrot.AKPublic(pub) }
