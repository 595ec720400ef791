package softrot_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"math/big"
	"testing"

	"github.com/google/go-tpm/tpm2"

	"github.com/rampart-iot/rampart/internal/rot"
	"github.com/rampart-iot/rampart/internal/rot/rottest"
	"github.com/rampart-iot/rampart/internal/rot/softrot"
)

func TestConformance(t *testing.T) {
	rottest.Run(t, rottest.Backend{
		Open: func(t *testing.T, dir string) rot.RootOfTrust {
			r, err := rot.Open(context.Background(), "software", dir)
			if err != nil {
				t.Fatal(err)
			}
			return r
		},
		FreshPCRs: true,
	})
}

// TestActivateCredentialAgainstGoTPM builds the credential exactly as the server does, from the
// TCG ECC EK template by hand (not through rot.EKPublicArea), and activates it.
func TestActivateCredentialAgainstGoTPM(t *testing.T) {
	ctx := context.Background()
	s, err := softrot.Open(t.TempDir(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ekDER, _, _ := s.Endorsement(ctx)
	pub, err := x509.ParsePKIXPublicKey(ekDER)
	if err != nil {
		t.Fatal(err)
	}
	xy, err := pub.(*ecdsa.PublicKey).Bytes() // 0x04 || X || Y
	if err != nil {
		t.Fatal(err)
	}
	ekArea := tpm2.ECCEKTemplate
	ekArea.Unique = tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{
		X: tpm2.TPM2BECCParameter{Buffer: xy[1:33]},
		Y: tpm2.TPM2BECCParameter{Buffer: xy[33:65]},
	})
	if area, err := rot.EKPublicArea(ekDER); err != nil || !bytes.Equal(tpm2.Marshal(*area), tpm2.Marshal(ekArea)) {
		t.Fatalf("rot.EKPublicArea disagrees with the template: %v", err)
	}
	akBytes, _ := s.AttestationKey(ctx)
	akPub, err := tpm2.Unmarshal[tpm2.TPMTPublic](akBytes)
	if err != nil {
		t.Fatal(err)
	}
	akName, err := tpm2.ObjectName(akPub)
	if err != nil {
		t.Fatal(err)
	}
	key, err := tpm2.ImportEncapsulationKey(&ekArea)
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{1, 16, 32, 64} {
		secret := make([]byte, size)
		_, _ = rand.Read(secret)
		idObject, encSecret, err := tpm2.CreateCredential(rand.Reader, key, akName.Buffer, secret)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.ActivateCredential(ctx, idObject, encSecret)
		if err != nil {
			t.Fatalf("%d-byte secret: %v", size, err)
		}
		if !bytes.Equal(got, secret) {
			t.Fatalf("%d-byte secret: got %x, want %x", size, got, secret)
		}
	}

	// Failures that reach the integrity check all give the one error.
	secret := []byte("0123456789abcdef0123456789abcdef")
	idObject, encSecret, _ := tpm2.CreateCredential(rand.Reader, key, akName.Buffer, secret)
	other, _, _ := tpm2.CreateCredential(rand.Reader, key, []byte("another name"), secret)
	for _, c := range []struct{ idObject, encSecret []byte }{
		{other, encSecret},
		{append(bytes.Clone(idObject[:10]), idObject[11:]...), encSecret},
	} {
		if _, err := s.ActivateCredential(ctx, c.idObject, c.encSecret); err != softrot.ErrCredential {
			t.Errorf("got %v; want ErrCredential", err)
		}
	}
}

// TestQuoteIsATPMQuote checks the quote field by field with go-tpm's types.
func TestQuoteIsATPMQuote(t *testing.T) {
	ctx := context.Background()
	s, err := softrot.Open(t.TempDir(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256([]byte("boot"))
	if err := s.Extend(ctx, 4, d[:]); err != nil {
		t.Fatal(err)
	}
	nonce := []byte("a nonce of some 32 bytes, really")
	q, err := s.Quote(ctx, []int{7, 4, 4}, nonce)
	if err != nil {
		t.Fatal(err)
	}
	attest, err := tpm2.Unmarshal[tpm2.TPMSAttest](q.Attest)
	if err != nil {
		t.Fatal(err)
	}
	info, err := attest.Attested.Quote()
	if err != nil {
		t.Fatal(err)
	}
	pcr4 := sha256.Sum256(append(make([]byte, 32), d[:]...))
	wantDigest := sha256.Sum256(append(pcr4[:], make([]byte, 32)...)) // PCR 4, then PCR 7 (zero)
	akBytes, _ := s.AttestationKey(ctx)
	akPub, _ := tpm2.Unmarshal[tpm2.TPMTPublic](akBytes)
	akName, _ := tpm2.ObjectName(akPub)
	owner := []byte{0x40, 0x00, 0x00, 0x01}
	qn := sha256.Sum256(append(owner, akName.Buffer...))
	switch {
	case attest.Magic != tpm2.TPMGeneratedValue, attest.Type != tpm2.TPMSTAttestQuote:
		t.Errorf("magic %x type %x", attest.Magic, attest.Type)
	case !bytes.Equal(attest.ExtraData.Buffer, nonce):
		t.Errorf("extraData %q", attest.ExtraData.Buffer)
	case !bytes.Equal(attest.QualifiedSigner.Buffer, append([]byte{0, 0x0b}, qn[:]...)):
		t.Errorf("qualifiedSigner %x", attest.QualifiedSigner.Buffer)
	case attest.FirmwareVersion != 0 || !attest.ClockInfo.Safe:
		t.Errorf("firmware %d clock %+v", attest.FirmwareVersion, attest.ClockInfo)
	case len(info.PCRSelect.PCRSelections) != 1 || info.PCRSelect.PCRSelections[0].Hash != tpm2.TPMAlgSHA256 ||
		!bytes.Equal(info.PCRSelect.PCRSelections[0].PCRSelect, []byte{0x90, 0, 0}):
		t.Errorf("pcrSelect %+v", info.PCRSelect)
	case !bytes.Equal(info.PCRDigest.Buffer, wantDigest[:]):
		t.Errorf("pcrDigest %x; want %x", info.PCRDigest.Buffer, wantDigest)
	}
	sig, err := tpm2.Unmarshal[tpm2.TPMTSignature](q.Signature)
	if err != nil {
		t.Fatal(err)
	}
	ecc, err := sig.Signature.ECDSA()
	if err != nil || sig.SigAlg != tpm2.TPMAlgECDSA || ecc.Hash != tpm2.TPMAlgSHA256 {
		t.Fatalf("signature %+v %v", sig, err)
	}
	parms, _ := akPub.Parameters.ECCDetail()
	point, _ := akPub.Unique.ECC()
	pub, err := tpm2.ECDSAPub(parms, point)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(q.Attest)
	if !ecdsa.Verify(pub, sum[:], new(big.Int).SetBytes(ecc.SignatureR.Buffer), new(big.Int).SetBytes(ecc.SignatureS.Buffer)) {
		t.Fatal("signature does not verify with the AK from AttestationKey")
	}

	// The clock runs forward.
	q2, _ := s.Quote(ctx, []int{0}, nil)
	attest2, _ := tpm2.Unmarshal[tpm2.TPMSAttest](q2.Attest)
	if attest2.ClockInfo.Clock < attest.ClockInfo.Clock {
		t.Errorf("clock went back from %d to %d", attest.ClockInfo.Clock, attest2.ClockInfo.Clock)
	}
}

// TestPCRsStartAfreshPerProcess: a reopened software root has fresh PCRs, as after a reboot.
func TestPCRsStartAfreshPerProcess(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, _ := softrot.Open(dir, rand.Reader)
	d := sha256.Sum256(nil)
	if err := s.Extend(ctx, 0, d[:]); err != nil {
		t.Fatal(err)
	}
	s2, _ := softrot.Open(dir, rand.Reader)
	v, _ := s2.ReadPCRs(ctx, []int{0})
	if !bytes.Equal(v[0], make([]byte, 32)) {
		t.Fatalf("PCR 0 = %x in a new instance", v[0])
	}
}

// FuzzActivateCredential: a credential comes from the network, so any input must give a
// secret or an error, never a panic.
func FuzzActivateCredential(f *testing.F) {
	s, err := softrot.Open(f.TempDir(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()
	ekDER, _, _ := s.Endorsement(ctx)
	akBytes, _ := s.AttestationKey(ctx)
	akPub, _ := tpm2.Unmarshal[tpm2.TPMTPublic](akBytes)
	akName, _ := tpm2.ObjectName(akPub)
	area, _ := rot.EKPublicArea(ekDER)
	key, _ := tpm2.ImportEncapsulationKey(area)
	idObject, encSecret, err := tpm2.CreateCredential(rand.Reader, key, akName.Buffer, []byte("secret"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(idObject, encSecret)
	f.Add([]byte{}, []byte{})
	f.Add([]byte{0, 32}, []byte{0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, idObject, encSecret []byte) {
		_, _ = s.ActivateCredential(ctx, idObject, encSecret)
	})
}
