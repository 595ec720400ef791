package tpmrot

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"

	"github.com/rampart-iot/rampart/internal/rot"
	"github.com/rampart-iot/rampart/internal/rot/rottest"
	"github.com/rampart-iot/rampart/internal/rot/swtpmtest"
)

func openSpec(t testing.TB, spec, dir string) rot.RootOfTrust {
	t.Helper()
	r, err := rot.Open(context.Background(), spec, dir)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestSWTPMConformance(t *testing.T) {
	spec, _ := swtpmtest.Start(t)
	rottest.Run(t, rottest.Backend{
		Open:              func(t *testing.T, dir string) rot.RootOfTrust { return openSpec(t, spec, dir) },
		WantEKCertificate: true,
	})
}

func TestSWTPMOverTCP(t *testing.T) {
	s := swtpmtest.StartWith(t, swtpmtest.Options{TCP: true})
	if !strings.HasPrefix(s.Spec, "swtpm:tcp:127.0.0.1:") {
		t.Fatalf("spec %q", s.Spec)
	}
	rottest.Run(t, rottest.Backend{
		Open:              func(t *testing.T, dir string) rot.RootOfTrust { return openSpec(t, s.Spec, dir) },
		WantEKCertificate: true,
	})
}

// recorder notes the response code of every command.
type recorder struct {
	tpm   *socketTPM
	mu    sync.Mutex
	log   []string // "command code -> response code"
	codes []tpm2.TPMRC
}

func (r *recorder) Send(cmd []byte) ([]byte, error) {
	rsp, err := r.tpm.Send(cmd)
	if err == nil && len(rsp) >= 10 && len(cmd) >= 10 {
		r.mu.Lock()
		rc := tpm2.TPMRC(binary.BigEndian.Uint32(rsp[6:10]))
		r.codes = append(r.codes, rc)
		r.log = append(r.log, fmt.Sprintf("%#x->%#x", binary.BigEndian.Uint32(cmd[6:10]), uint32(rc)))
		r.mu.Unlock()
	}
	return rsp, err
}

func (r *recorder) Close() error { return nil }

// TestSWTPMFirstCommandRetry: swtpm 0.7 answers the first signing command after a fresh start
// (here TPM2_Quote, 0x158) with TPM_RC_RETRY; the backend retries it and goes on.
func TestSWTPMFirstCommandRetry(t *testing.T) {
	spec, _ := swtpmtest.Start(t)
	st, err := socketTransport(strings.TrimPrefix(spec, NameSWTPM+":"))
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{tpm: st}
	r, err := Open(context.Background(), rec, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Quote(context.Background(), []int{0}, nil); err != nil {
		t.Fatal(err)
	}
	retries := 0
	for _, c := range rec.codes {
		if c == tpm2.TPMRCRetry {
			retries++
		}
	}
	t.Logf("commands and responses: %v", rec.log)
	if retries == 0 {
		t.Fatalf("swtpm sent no TPM_RC_RETRY; codes %v", rec.codes)
	}
	if rec.codes[len(rec.codes)-1] != 0 {
		t.Fatalf("the last command failed: %v", rec.codes)
	}
}

// TestSWTPMEKCertificateChain: swtpm's EK certificate comes back from NV, certifies the EK, and
// chains to the local CA that swtpm_setup used.
func TestSWTPMEKCertificateChain(t *testing.T) {
	s := swtpmtest.StartWith(t, swtpmtest.Options{})
	r := openSpec(t, s.Spec, t.TempDir())
	defer r.Close()
	ek, certDER, err := r.Endorsement(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if certDER == nil {
		t.Fatal("no EK certificate")
	}
	cert, err := x509.ParseCertificate(certDER)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(cert.RawSubjectPublicKeyInfo, ek) {
		t.Fatal("the EK certificate's key is not byte for byte the EK public key")
	}
	t.Logf("EK certificate: subject %q issuer %q, %d unhandled critical extensions %v, EKU %v %v",
		cert.Subject, cert.Issuer, len(cert.UnhandledCriticalExtensions), cert.UnhandledCriticalExtensions, cert.ExtKeyUsage, cert.UnknownExtKeyUsage)
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(s.LocalCA[0])
	inter.AddCert(s.LocalCA[1])
	opts := x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}, CurrentTime: time.Now()}
	// crypto/x509 parses no directoryName in a SAN, so it leaves the critical SAN of TPM
	// attributes unhandled and refuses the certificate.
	if _, err := cert.Verify(opts); err == nil || !strings.Contains(err.Error(), "unhandled critical extension") {
		t.Fatalf("plain crypto/x509 Verify: %v; want an unhandled critical extension", err)
	}
	// A verifier that checks the SAN holds TPM attributes (TCG EK Credential Profile) and
	// marks it handled gets the chain.
	attrs, err := tpmAttributes(cert)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("TPM attributes in the SAN: %v", attrs)
	if attrs[oidTPMManufacturer.String()] != "id:00001014" || attrs[oidTPMModel.String()] != "swtpm" {
		t.Fatalf("TPM attributes %v", attrs)
	}
	handled := *cert
	handled.UnhandledCriticalExtensions = slices.DeleteFunc(slices.Clone(cert.UnhandledCriticalExtensions),
		func(id asn1.ObjectIdentifier) bool { return id.Equal(oidSubjectAltName) })
	chains, err := handled.Verify(opts)
	if err != nil {
		t.Fatalf("with the SAN handled: %v", err)
	}
	for _, c := range chains[0] {
		t.Logf("chain: %q issued by %q (%v)", c.Subject, c.Issuer, c.PublicKeyAlgorithm)
	}
	if len(chains[0]) != 3 || !chains[0][2].Equal(s.LocalCA[0]) {
		t.Fatalf("chain %v", chains)
	}

	// Another CA does not vouch for it.
	other := selfSignedCA(t)
	opts.Roots = x509.NewCertPool()
	opts.Roots.AddCert(other)
	if _, err := handled.Verify(opts); err == nil {
		t.Fatal("the EK certificate verifies against an unrelated CA")
	}
}

var (
	oidSubjectAltName  = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidTPMManufacturer = asn1.ObjectIdentifier{2, 23, 133, 2, 1}
	oidTPMModel        = asn1.ObjectIdentifier{2, 23, 133, 2, 2}
	oidTPMVersion      = asn1.ObjectIdentifier{2, 23, 133, 2, 3}
)

// tpmAttributes reads the TPM manufacturer, model and version from an EK certificate's SAN,
// a directoryName, and fails if the SAN holds anything else.
func tpmAttributes(cert *x509.Certificate) (map[string]string, error) {
	for _, ext := range cert.Extensions {
		if !ext.Id.Equal(oidSubjectAltName) {
			continue
		}
		var names []asn1.RawValue
		if rest, err := asn1.Unmarshal(ext.Value, &names); err != nil || len(rest) > 0 {
			return nil, fmt.Errorf("SAN: %v", err)
		}
		attrs := map[string]string{}
		for _, n := range names {
			if n.Class != asn1.ClassContextSpecific || n.Tag != 4 {
				return nil, fmt.Errorf("SAN holds a name of tag %d, not a directoryName", n.Tag)
			}
			var rdns pkix.RDNSequence
			if rest, err := asn1.Unmarshal(n.Bytes, &rdns); err != nil || len(rest) > 0 {
				return nil, fmt.Errorf("SAN directoryName: %v", err)
			}
			for _, rdn := range rdns {
				for _, atv := range rdn {
					switch {
					case atv.Type.Equal(oidTPMManufacturer), atv.Type.Equal(oidTPMModel), atv.Type.Equal(oidTPMVersion):
						attrs[atv.Type.String()] = fmt.Sprint(atv.Value)
					default:
						return nil, fmt.Errorf("SAN directoryName holds %v", atv.Type)
					}
				}
			}
		}
		return attrs, nil
	}
	return nil, errors.New("no SAN")
}

func selfSignedCA(t *testing.T) *x509.Certificate {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "swtpm-localca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c
}

func BenchmarkSWTPMQuote(b *testing.B) {
	spec, _ := swtpmtest.Start(b)
	r := openSpec(b, spec, b.TempDir())
	defer r.Close()
	nonce := sha256.Sum256(nil)
	for b.Loop() {
		if _, err := r.Quote(context.Background(), []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, nonce[:]); err != nil {
			b.Fatal(err)
		}
	}
}
