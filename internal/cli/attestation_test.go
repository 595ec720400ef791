package cli

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/rampart-iot/rampart/api/v1"
)

// TestE2ECACertificatesOSReleasesAndDeviceState drives the attestation-management commands:
// ca-certificate list|download|download-chain|download-proof, os-release add|list|delete, and
// device disable|enable|attestations.
func TestE2ECACertificatesOSReleasesAndDeviceState(t *testing.T) {
	e := startE2E(t)
	r := e.admin
	dir := t.TempDir()

	var cas []v1.CACertificate
	r.json(t, &cas, "ca-certificate", "list")
	if len(cas) != 1 || cas[0].Status != "Active" || cas[0].ThumbprintSHA1 == "" {
		t.Fatalf("CA certificates %+v", cas)
	}
	caFile := filepath.Join(dir, "ca.pem")
	r.ok(t, "ca-certificate", "download", "--output-file", caFile)
	chainFile := filepath.Join(dir, "chain.pem")
	r.ok(t, "ca-certificate", "download-chain", "--output-file", chainFile)
	proofFile := filepath.Join(dir, "proof.pem")
	r.ok(t, "ca-certificate", "download-proof", "--verification-code", "AB12CD34", "--output-file", proofFile)
	roots := x509.NewCertPool()
	chain, _ := os.ReadFile(chainFile)
	if !roots.AppendCertsFromPEM(chain) {
		t.Fatal("the chain holds no certificate")
	}
	proof := readCert(t, proofFile)
	if proof.Subject.CommonName != "AB12CD34" {
		t.Fatalf("proof CN %q", proof.Subject.CommonName)
	}
	if _, err := proof.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Fatalf("the proof does not verify against the downloaded chain: %v", err)
	}
	if ca := readCert(t, caFile); !ca.IsCA {
		t.Fatal("download gave a non-CA certificate")
	}
	if res := r.run(t, "ca-certificate", "download-proof", "--verification-code", "bad code!"); res.code != 1 {
		t.Fatalf("bad verification code: %d %s", res.code, res.err)
	}

	digest := strings.Repeat("ab", 32)
	var rel v1.OSRelease
	r.json(t, &rel, "os-release", "add", "--version", "1.0", "--measurement", "os-bundle="+digest, "--measurement", "agent="+strings.Repeat("cd", 32))
	if rel.Measurements["os-bundle"] != digest {
		t.Fatalf("release %+v", rel)
	}
	mfile := filepath.Join(dir, "m.json")
	_ = os.WriteFile(mfile, []byte(`{"measurements":{"os-bundle":"`+strings.Repeat("ef", 32)+`"}}`), 0o600)
	r.ok(t, "os-release", "add", "--version", "1.1", "--measurements-file", mfile)
	if out := r.ok(t, "os-release", "list"); !strings.Contains(out, "1.0") || !strings.Contains(out, "1.1") {
		t.Fatalf("list: %s", out)
	}
	if res := r.run(t, "os-release", "add", "--version", "1.2", "--measurement", "os-bundle=XYZ"); res.code != 1 || !strings.Contains(res.err, "SHA-256") {
		t.Fatalf("bad digest: %d %s", res.code, res.err)
	}
	r.ok(t, "os-release", "delete", "1.0")
	if out := r.ok(t, "os-release", "list"); strings.Contains(out, "1.0 ") {
		t.Fatalf("deleted release still listed: %s", out)
	}

	recs, _ := writeRecords(t, 1, false)
	r.ok(t, "device", "claim", "--enrollment", recs)
	var devs []v1.Device
	r.json(t, &devs, "device", "list")
	id := devs[0].ID
	var d v1.Device
	r.json(t, &d, "device", "disable", id)
	if !d.Disabled {
		t.Fatal("not disabled")
	}
	if out := r.ok(t, "device", "show", id); !strings.Contains(out, "Last attestation") || !strings.Contains(out, "never") {
		t.Fatalf("show: %s", out)
	}
	r.json(t, &d, "device", "enable", id)
	if d.Disabled {
		t.Fatal("still disabled")
	}
	var atts []v1.Attestation
	r.json(t, &atts, "device", "attestations", id)
	if len(atts) != 0 {
		t.Fatalf("attestations of a device that never attested: %+v", atts)
	}
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s holds no PEM", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
