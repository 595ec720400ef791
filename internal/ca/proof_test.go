package ca

import (
	"errors"
	"strings"
	"testing"

	"github.com/rampart-iot/rampart/internal/store"
)

func TestProofOfPossession(t *testing.T) {
	f := sqliteFixture(t)
	tid := f.tenant.ID
	if _, err := f.a.ProofOfPossession(f.ctx, tid, "", "CODE"); !errors.Is(err, ErrNoCA) {
		t.Fatalf("tenant without a CA: %v, want ErrNoCA", err)
	}
	f.ensure(tid)
	first := f.list(tid)[0]

	for _, code := range []string{"", "a b", "a_b", "naïve", strings.Repeat("A", MaxVerificationCodeLen+1), "x\n"} {
		if _, err := f.a.ProofOfPossession(f.ctx, tid, "", code); !errors.Is(err, ErrInvalid) {
			t.Errorf("code %q: %v, want ErrInvalid", code, err)
		}
	}
	code := "0A1B2C3D4E5F60718293A4B5C6D7E8F90A1B2C3D4E5F6071"
	proof, err := f.a.ProofOfPossession(f.ctx, tid, "", code)
	if err != nil {
		t.Fatal(err)
	}
	if proof.Subject.CommonName != code || len(proof.Subject.Names) != 1 {
		t.Errorf("subject %v, want only CN=%s", proof.Subject, code)
	}
	if err := proof.CheckSignatureFrom(first.Cert); err != nil {
		t.Errorf("not signed by the active CA: %v", err)
	}
	now := f.clk.Now()
	if !proof.NotAfter.Equal(now.Add(ProofLifetime)) || proof.NotBefore.After(now) {
		t.Errorf("valid %v..%v", proof.NotBefore, proof.NotAfter)
	}
	if proof.IsCA || len(proof.ExtKeyUsage) > 0 || len(proof.URIs) > 0 {
		t.Errorf("proof certificate could be used for more than proof: CA %v EKU %v URIs %v", proof.IsCA, proof.ExtKeyUsage, proof.URIs)
	}
	out, err := opensslVerify(t, now, "-partial_chain", "-CAfile", writePEM(t, "ca.pem", first.Cert), writePEM(t, "proof.pem", proof))
	if err != nil {
		t.Errorf("openssl verify: %v\n%s", err, out)
	}
	if p, err := f.a.ProofOfPossession(f.ctx, tid, first.ID, strings.Repeat("z", MaxVerificationCodeLen)); err != nil || p.CheckSignatureFrom(first.Cert) != nil {
		t.Errorf("by ID: %v", err)
	}

	// A waiting successor can prove possession before it signs anything.
	f.clk.Set(first.NotAfter.Add(-RotateBefore))
	f.ensure(tid)
	next := f.list(tid)[1]
	if next.Status != StatusInactive {
		t.Fatalf("successor is %s", next.Status)
	}
	p, err := f.a.ProofOfPossession(f.ctx, tid, next.ID, "NEXT")
	if err != nil || p.CheckSignatureFrom(next.Cert) != nil {
		t.Fatalf("waiting successor: %v", err)
	}

	if _, err := f.a.ProofOfPossession(f.ctx, tid, "no-such-ca", "X"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown CA: %v, want ErrNotFound", err)
	}
	other := f.newTenant("Fabrikam")
	f.ensure(other.ID)
	if _, err := f.a.ProofOfPossession(f.ctx, other.ID, first.ID, "X"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("another tenant's CA: %v, want ErrNotFound", err)
	}
	f.clk.Set(first.NotAfter)
	if _, err := f.a.ProofOfPossession(f.ctx, tid, first.ID, "X"); !errors.Is(err, ErrInvalid) {
		t.Errorf("expired CA: %v, want ErrInvalid", err)
	}
	if err := f.a.Revoke(f.ctx, tid, next.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.a.ProofOfPossession(f.ctx, tid, next.ID, "X"); !errors.Is(err, ErrInvalid) {
		t.Errorf("revoked CA: %v, want ErrInvalid", err)
	}
}
