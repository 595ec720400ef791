// Package rottest is the conformance suite that every root-of-trust backend passes, and the
// verifier's side of the checks it makes: it builds credentials with tpm2.CreateCredential
// exactly as the attestation service does, and checks quotes against the AK's public area. It
// is for tests; the service's verifier decides for itself what to trust.
package rottest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-tpm/tpm2"

	"github.com/rampart-iot/rampart/enrollment"
	"github.com/rampart-iot/rampart/internal/rot"
	"github.com/rampart-iot/rampart/internal/rot/softrot"
)

// Backend describes the backend under test. The suite opens one root of trust at a time, so
// that it runs on the one-per-process simulator.
type Backend struct {
	// Open opens the root of trust kept in stateDir. The suite closes what it opens.
	Open func(t *testing.T, stateDir string) rot.RootOfTrust
	// FreshPCRs says the PCRs are as a PC Client TPM leaves them at startup the first time
	// each state directory is opened (true of the software root and the simulator).
	FreshPCRs bool
	// WantEKCertificate says the EK comes with a certificate.
	WantEKCertificate bool
}

// Run runs the suite.
func Run(t *testing.T, b Backend) {
	t.Run("Identity", func(t *testing.T) { testIdentity(t, b) })
	t.Run("PCRs", func(t *testing.T) { testPCRs(t, b) })
	t.Run("Quote", func(t *testing.T) { testQuote(t, b) })
	t.Run("Credential", func(t *testing.T) { testCredential(t, b) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, b) })
	t.Run("Closed", func(t *testing.T) { testClosed(t, b) })
}

func open(t *testing.T, b Backend, dir string) rot.RootOfTrust {
	t.Helper()
	r := b.Open(t, dir)
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func testIdentity(t *testing.T, b Backend) {
	ctx := context.Background()
	dir := t.TempDir()
	r := open(t, b, dir)
	ek, cert, err := r.Endorsement(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ak, err := r.AttestationKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if b.WantEKCertificate != (cert != nil) {
		t.Errorf("EK certificate present: %v; want %v", cert != nil, b.WantEKCertificate)
	}
	rec := &enrollment.Record{
		Version: enrollment.Version, DeviceID: enrollment.DeviceID(ek), RootOfTrust: r.Kind(),
		EKPublic: ek, EKCertificate: cert, AKPublic: ak,
	}
	if err := rec.Validate(); err != nil {
		t.Fatalf("the backend's keys make an invalid record: %v", err)
	}
	if _, err := rot.EKPublicArea(ek); err != nil {
		t.Fatalf("the EK is not a default-template EK: %v", err)
	}
	ak2, _ := r.AttestationKey(ctx)
	if !bytes.Equal(ak, ak2) {
		t.Fatal("AttestationKey changed between calls")
	}
	ak2[0] ^= 1
	if ak3, _ := r.AttestationKey(ctx); !bytes.Equal(ak, ak3) {
		t.Fatal("AttestationKey returned its own buffer")
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	// The same state, reopened, is the same device; another state directory may be another
	// device (a TPM has one EK, so only the software root promises a new EK).
	r2 := open(t, b, dir)
	ekAgain, certAgain, err := r2.Endorsement(ctx)
	if err != nil {
		t.Fatal(err)
	}
	akAgain, err := r2.AttestationKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ek, ekAgain) || !bytes.Equal(cert, certAgain) || !bytes.Equal(ak, akAgain) {
		t.Fatal("identity changed across reopen of the same state directory")
	}
	if err := r2.Close(); err != nil {
		t.Fatal(err)
	}
	r3 := open(t, b, t.TempDir())
	akOther, err := r3.AttestationKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(ak, akOther) {
		t.Fatal("two state directories share an AK")
	}
}

// pcrsAtStartup are a PC Client TPM's SHA-256 PCRs after TPM2_Startup(CLEAR), before
// anything is measured: zeros, except the dynamic root's 17 to 22, which are all ones.
func pcrsAtStartup(pcr int) []byte {
	if pcr >= 17 && pcr <= 22 {
		return bytes.Repeat([]byte{0xff}, 32)
	}
	return make([]byte, 32)
}

func allPCRs() []int {
	var all []int
	for i := range rot.NumPCRs {
		all = append(all, i)
	}
	return all
}

func testPCRs(t *testing.T, b Backend) {
	ctx := context.Background()
	r := open(t, b, t.TempDir())
	before, err := r.ReadPCRs(ctx, allPCRs())
	if err != nil {
		t.Fatal(err)
	}
	if len(before) != rot.NumPCRs {
		t.Fatalf("read %d PCRs; want %d", len(before), rot.NumPCRs)
	}
	if b.FreshPCRs {
		for p, v := range before {
			if !bytes.Equal(v, pcrsAtStartup(p)) {
				t.Errorf("PCR %d starts at %x", p, v)
			}
		}
	}
	d := sha256.Sum256([]byte("measured"))
	for _, p := range []int{0, 9, 16, 23} {
		if err := r.Extend(ctx, p, d[:]); err != nil {
			t.Fatalf("extend PCR %d: %v", p, err)
		}
	}
	after, err := r.ReadPCRs(ctx, []int{23, 0, 9, 16, 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []int{0, 9, 16, 23} {
		want := sha256.Sum256(append(slices.Clone(before[p]), d[:]...))
		if !bytes.Equal(after[p], want[:]) {
			t.Errorf("PCR %d = %x after extend; want SHA-256(old || digest) = %x", p, after[p], want)
		}
	}
	if !bytes.Equal(after[1], before[1]) || len(after) != 5 {
		t.Errorf("read %d PCRs; PCR 1 %x -> %x", len(after), before[1], after[1])
	}
	after[0][0] ^= 1
	if again, _ := r.ReadPCRs(ctx, []int{0}); bytes.Equal(again[0], after[0]) {
		t.Error("ReadPCRs returned the backend's own buffer")
	}

	for _, c := range []struct {
		pcr    int
		digest []byte
	}{
		{-1, d[:]}, {rot.NumPCRs, d[:]}, {17, d[:]}, {22, d[:]}, {0, d[:31]}, {0, nil}, {0, make([]byte, 48)},
	} {
		if err := r.Extend(ctx, c.pcr, c.digest); err == nil {
			t.Errorf("Extend(PCR %d, %d bytes) succeeded", c.pcr, len(c.digest))
		}
	}
	if _, err := r.ReadPCRs(ctx, []int{0, rot.NumPCRs}); err == nil {
		t.Error("ReadPCRs of a PCR that does not exist succeeded")
	}
	if got, _ := r.ReadPCRs(ctx, []int{17}); !bytes.Equal(got[17], pcrsAtStartup(17)) && b.FreshPCRs {
		t.Errorf("PCR 17 changed to %x after a refused extend", got[17])
	}
}

func testQuote(t *testing.T, b Backend) {
	ctx := context.Background()
	r := open(t, b, t.TempDir())
	ak, err := r.AttestationKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256([]byte("kernel"))
	if err := r.Extend(ctx, 8, d[:]); err != nil {
		t.Fatal(err)
	}
	nonce := sha256.Sum256([]byte("nonce"))
	for _, pcrs := range [][]int{{8}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 23}, allPCRs()} {
		q, err := r.Quote(ctx, pcrs, nonce[:])
		if err != nil {
			t.Fatalf("quote %v: %v", pcrs, err)
		}
		attest, err := VerifyQuote(ak, q)
		if err != nil {
			t.Fatalf("quote %v: %v", pcrs, err)
		}
		vals, err := r.ReadPCRs(ctx, pcrs)
		if err != nil {
			t.Fatal(err)
		}
		if err := CheckQuote(attest, pcrs, vals, nonce[:]); err != nil {
			t.Fatalf("quote %v: %v", pcrs, err)
		}
		name, _ := AKName(ak)
		if bytes.Equal(attest.QualifiedSigner.Buffer, name) {
			t.Error("qualifiedSigner is the AK's name; a TPM puts its qualified name there")
		}

		// Any change to the attestation or the signature breaks the signature.
		for _, i := range []int{0, len(q.Attest) / 2, len(q.Attest) - 1} {
			bad := &rot.Quote{Attest: slices.Clone(q.Attest), Signature: q.Signature}
			bad.Attest[i] ^= 0x01
			if _, err := VerifyQuote(ak, bad); err == nil {
				t.Fatalf("a quote altered at byte %d verifies", i)
			}
		}
		bad := &rot.Quote{Attest: q.Attest, Signature: slices.Clone(q.Signature)}
		bad.Signature[len(bad.Signature)-1] ^= 0x01
		if _, err := VerifyQuote(ak, bad); err == nil {
			t.Fatal("a quote with an altered signature verifies")
		}
	}

	// Another AK does not verify this device's quote.
	otherAK, _, err := OtherAK()
	if err != nil {
		t.Fatal(err)
	}
	q, err := r.Quote(ctx, []int{8}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyQuote(otherAK, q); err == nil {
		t.Fatal("a quote verifies with another AK")
	}

	if _, err := r.Quote(ctx, nil, nonce[:]); err == nil {
		t.Error("a quote of no PCRs succeeded")
	}
	if _, err := r.Quote(ctx, []int{24}, nonce[:]); err == nil {
		t.Error("a quote of PCR 24 succeeded")
	}
	if _, err := r.Quote(ctx, []int{0}, make([]byte, rot.MaxQualifyingData+1)); err == nil {
		t.Error("a quote with too much qualifying data succeeded")
	}
}

func testCredential(t *testing.T, b Backend) {
	ctx := context.Background()
	r := open(t, b, t.TempDir())
	ek, _, err := r.Endorsement(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ak, err := r.AttestationKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	name, err := AKName(ak)
	if err != nil {
		t.Fatal(err)
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		t.Fatal(err)
	}
	idObject, encSecret, err := MakeCredential(ek, name, secret)
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.ActivateCredential(ctx, idObject, encSecret)
	if err != nil {
		t.Fatalf("activating a credential made for this EK and AK: %v", err)
	}
	if !bytes.Equal(got, secret) {
		t.Fatalf("activated %x; want %x", got, secret)
	}

	// Tampering, another AK's name, and another EK all fail.
	flip := func(b []byte, i int) []byte { b = slices.Clone(b); b[i] ^= 0x80; return b }
	_, otherName, err := OtherAK()
	if err != nil {
		t.Fatal(err)
	}
	wrongName, wrongNameSecret, err := MakeCredential(ek, otherName, secret)
	if err != nil {
		t.Fatal(err)
	}
	otherEK, err := OtherEK(ek)
	if err != nil {
		t.Fatal(err)
	}
	wrongEK, wrongEKSecret, err := MakeCredential(otherEK, name, secret)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name                string
		idObject, encSecret []byte
	}{
		{"HMAC altered", flip(idObject, 3), encSecret},
		{"identity altered", flip(idObject, len(idObject)-1), encSecret},
		{"secret altered", idObject, flip(encSecret, len(encSecret)/2)},
		{"truncated", idObject[:len(idObject)-1], encSecret},
		{"empty", nil, nil},
		{"for another AK", wrongName, wrongNameSecret},
		{"for another EK", wrongEK, wrongEKSecret},
		{"blob from one, secret from another", idObject, wrongEKSecret},
	} {
		if got, err := r.ActivateCredential(ctx, c.idObject, c.encSecret); err == nil {
			t.Errorf("%s: activated %x", c.name, got)
		}
	}
	// The root of trust still works after the failures.
	if got, err := r.ActivateCredential(ctx, idObject, encSecret); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("after failures: %x, %v", got, err)
	}
}

func testConcurrent(t *testing.T, b Backend) {
	ctx := context.Background()
	r := open(t, b, t.TempDir())
	ak, err := r.AttestationKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 4 {
		wg.Go(func() {
			d := sha256.Sum256([]byte{byte(i)})
			for range 5 {
				if err := r.Extend(ctx, 10+i, d[:]); err != nil {
					errs <- err
					return
				}
				q, err := r.Quote(ctx, []int{10, 11, 12, 13}, d[:])
				if err != nil {
					errs <- err
					return
				}
				if _, err := VerifyQuote(ak, q); err != nil {
					errs <- err
					return
				}
				if _, err := r.ReadPCRs(ctx, allPCRs()); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func testClosed(t *testing.T, b Backend) {
	r := b.Open(t, t.TempDir())
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// AKName is the TPM name of an AK given its TPMT_PUBLIC.
func AKName(akPublic []byte) ([]byte, error) {
	ak, err := enrollment.ParseAKPublic(akPublic)
	if err != nil {
		return nil, err
	}
	name, err := tpm2.ObjectName(&ak.Public)
	if err != nil {
		return nil, err
	}
	return name.Buffer, nil
}

// MakeCredential seals secret to an EK (DER SubjectPublicKeyInfo) and an AK name as the
// attestation service does: tpm2.CreateCredential with the EK's public area rebuilt from the
// default template.
func MakeCredential(ekPublic, akName, secret []byte) (idObject, encSecret []byte, err error) {
	area, err := rot.EKPublicArea(ekPublic)
	if err != nil {
		return nil, nil, err
	}
	key, err := tpm2.ImportEncapsulationKey(area)
	if err != nil {
		return nil, nil, err
	}
	return tpm2.CreateCredential(rand.Reader, key, akName, secret)
}

// OtherEK returns a fresh public key of the same kind as ekPublic, as DER SubjectPublicKeyInfo.
func OtherEK(ekPublic []byte) ([]byte, error) {
	area, err := rot.EKPublicArea(ekPublic)
	if err != nil {
		return nil, err
	}
	return freshKey(area.Type)
}

// OtherAK returns the public area and name of a fresh attestation key that no root of trust
// holds.
func OtherAK() (akPublic, name []byte, err error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	akPublic = tpm2.Marshal(softrot.AKPublic(&k.PublicKey))
	name, err = AKName(akPublic)
	return akPublic, name, err
}

// VerifyQuote checks a quote's signature with the AK's public area and returns the parsed
// attestation, which must be a TPM-generated quote. It does not check what was quoted.
func VerifyQuote(akPublic []byte, q *rot.Quote) (*tpm2.TPMSAttest, error) {
	ak, err := enrollment.ParseAKPublic(akPublic)
	if err != nil {
		return nil, err
	}
	pub, ok := ak.Key.(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("AK is a %T; this check handles ECDSA AKs", ak.Key)
	}
	sig, err := unmarshal[tpm2.TPMTSignature](q.Signature)
	if err != nil {
		return nil, fmt.Errorf("signature: %w", err)
	}
	if sig.SigAlg != tpm2.TPMAlgECDSA {
		return nil, fmt.Errorf("signature algorithm %v; want ECDSA", sig.SigAlg)
	}
	ecc, err := sig.Signature.ECDSA()
	if err != nil {
		return nil, fmt.Errorf("signature: %w", err)
	}
	if ecc.Hash != tpm2.TPMAlgSHA256 {
		return nil, fmt.Errorf("signature hash %v; want SHA-256", ecc.Hash)
	}
	digest := sha256.Sum256(q.Attest)
	rr := new(big.Int).SetBytes(ecc.SignatureR.Buffer)
	ss := new(big.Int).SetBytes(ecc.SignatureS.Buffer)
	if !ecdsa.Verify(pub, digest[:], rr, ss) {
		return nil, errors.New("the quote's signature does not verify with the AK")
	}
	attest, err := unmarshal[tpm2.TPMSAttest](q.Attest)
	if err != nil {
		return nil, fmt.Errorf("attestation: %w", err)
	}
	if attest.Magic != tpm2.TPMGeneratedValue || attest.Type != tpm2.TPMSTAttestQuote {
		return nil, fmt.Errorf("attestation is not a TPM-generated quote (magic %#x, type %#x)", uint32(attest.Magic), uint16(attest.Type))
	}
	return attest, nil
}

// CheckQuote checks that an attestation quotes exactly pcrs, with the digest of their values,
// over qualifyingData.
func CheckQuote(attest *tpm2.TPMSAttest, pcrs []int, values map[int][]byte, qualifyingData []byte) error {
	info, err := attest.Attested.Quote()
	if err != nil {
		return err
	}
	if !bytes.Equal(attest.ExtraData.Buffer, qualifyingData) {
		return fmt.Errorf("extraData %x; want %x", attest.ExtraData.Buffer, qualifyingData)
	}
	if got, want := tpm2.Marshal(info.PCRSelect), tpm2.Marshal(rot.PCRSelection(pcrs)); !bytes.Equal(got, want) {
		return fmt.Errorf("pcrSelect %x; want %x", got, want)
	}
	if want := rot.PCRDigest(pcrs, values); !bytes.Equal(info.PCRDigest.Buffer, want) {
		return fmt.Errorf("pcrDigest %x; the PCRs read give %x", info.PCRDigest.Buffer, want)
	}
	return nil
}

// unmarshal decodes a TPM structure that must fill b exactly, turning go-tpm's panics on
// malformed input into errors.
func unmarshal[T tpm2.Marshallable, P interface {
	*T
	tpm2.Unmarshallable
}](b []byte) (v *T, err error) {
	defer func() {
		if r := recover(); r != nil {
			v, err = nil, fmt.Errorf("malformed: %v", r)
		}
	}()
	v, err = tpm2.Unmarshal[T, P](b)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(tpm2.Marshal(*v), b) {
		return nil, errors.New("trailing or non-canonical bytes")
	}
	return v, nil
}
