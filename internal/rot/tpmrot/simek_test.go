//go:build cgo

package tpmrot

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"

	"github.com/rampart-iot/rampart/internal/rot"
	"github.com/rampart-iot/rampart/internal/rot/rottest"
)

// provisionEKCert writes an EK certificate for pub into an NV index of the simulator, as a TPM
// manufacturer would (platform authorization; readable with owner authorization only, so the
// backend's owner-read path runs).
func provisionEKCert(t *testing.T, r *TPM, index tpm2.TPMHandle, pub any) []byte {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "test EK"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageKeyAgreement,
	}
	cert, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, caKey)
	if err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	nvPub := tpm2.TPMSNVPublic{
		NVIndex: index,
		NameAlg: tpm2.TPMAlgSHA256,
		Attributes: tpm2.TPMANV{
			PPWrite: true, PPRead: true, OwnerRead: true, NoDA: true, PlatformCreate: true,
			NT: tpm2.TPMNTOrdinary,
		},
		DataSize: uint16(len(cert)),
	}
	platform := tpm2.AuthHandle{Handle: tpm2.TPMRHPlatform, Auth: tpm2.PasswordAuth(nil)}
	if _, err := (tpm2.NVDefineSpace{AuthHandle: platform, PublicInfo: tpm2.New2B(nvPub)}).Execute(r.tpm); err != nil {
		t.Fatal(err)
	}
	name, err := tpm2.NVName(&nvPub)
	if err != nil {
		t.Fatal(err)
	}
	// Written in pieces smaller than the TPM's buffer, to exercise reading it back in pieces too.
	for off := 0; off < len(cert); off += 256 {
		end := min(off+256, len(cert))
		if _, err := (tpm2.NVWrite{
			AuthHandle: platform,
			NVIndex:    tpm2.NamedHandle{Handle: index, Name: *name},
			Data:       tpm2.TPM2BMaxNVBuffer{Buffer: cert[off:end]},
			Offset:     uint16(off),
		}).Execute(r.tpm); err != nil {
			t.Fatal(err)
		}
	}
	return cert
}

// TestSimECCEKWithCertificate: with an ECC EK certificate in NV (and none for RSA), the backend
// uses the ECC P-256 EK, returns the certificate, and activates credentials made for it.
func TestSimECCEKWithCertificate(t *testing.T) {
	ctx := context.Background()
	r := openSimT(t, t.TempDir())
	defer r.Close()
	r.mu.Lock()
	ek, err := r.ekPublic(tpm2.ECCEKTemplate)
	r.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := x509.ParsePKIXPublicKey(ek)
	cert := provisionEKCert(t, r, NVIndexECCEKCert, pub)

	gotEK, gotCert, err := r.Endorsement(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(gotEK, ek) || !bytes.Equal(gotCert, cert) {
		t.Fatal("the backend did not pick the certified ECC EK")
	}
	area, err := rot.EKPublicArea(gotEK)
	if err != nil || area.Type != tpm2.TPMAlgECC {
		t.Fatalf("EK area %v %v", area, err)
	}
	ak, _ := r.AttestationKey(ctx)
	name, _ := rottest.AKName(ak)
	idObject, encSecret, err := rottest.MakeCredential(gotEK, name, []byte("ecc secret"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := r.ActivateCredential(ctx, idObject, encSecret); err != nil || string(got) != "ecc secret" {
		t.Fatalf("ECC EK activation: %q %v", got, err)
	}
}

// TestSimEKCertificateForAnotherKey: a certificate that does not certify the EK is an error,
// not a silent fallback.
func TestSimEKCertificateForAnotherKey(t *testing.T) {
	r := openSimT(t, t.TempDir())
	defer r.Close()
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	provisionEKCert(t, r, NVIndexECCEKCert, &other.PublicKey)
	if _, _, err := r.Endorsement(context.Background()); err == nil || !strings.Contains(err.Error(), "another key") {
		t.Fatalf("got %v", err)
	}
}
