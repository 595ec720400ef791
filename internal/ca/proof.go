package ca

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"time"

	"github.com/rampart-iot/rampart/internal/store"
)

// ProofOfPossession is `ca-certificate download-proof`: a certificate whose subject CN is the
// verification code another cloud (an IoT hub, a provisioning service) issued, signed by the
// tenant CA caID ("" for the active one), valid for ProofLifetime. It proves to that cloud
// that the tenant holds the CA's key. Any CA neither expired nor revoked can prove possession,
// so a successor can be registered before it becomes active. The certificate's key is thrown
// away: it certifies nothing anyone could use, and it has no extended key usage.
//
// A verification code is 1 to MaxVerificationCodeLen letters, digits and hyphens.
func (a *Authority) ProofOfPossession(ctx context.Context, tenantID, caID, verificationCode string) (*x509.Certificate, error) {
	if err := checkTenantID(tenantID); err != nil {
		return nil, err
	}
	if err := checkVerificationCode(verificationCode); err != nil {
		return nil, err
	}
	now := a.clock()
	s, err := a.snapshot(ctx, tenantID, true)
	if err != nil {
		return nil, err
	}
	var e *caEntry
	if caID == "" {
		if e = s.active(now); e == nil {
			return nil, fmt.Errorf("tenant %s: %w", tenantID, ErrNoCA)
		}
	} else {
		for i, r := range s.recs {
			if r.ID != caID {
				continue
			}
			if st := status(s.recs, i, activeIndex(s.recs, now), now); st == StatusExpired || st == StatusRevoked {
				return nil, fmt.Errorf("%w: CA %s is %s; only an active or inactive CA can prove possession", ErrInvalid, caID, st)
			}
			e = s.entries[i]
		}
		if e == nil {
			return nil, fmt.Errorf("CA %s of tenant %s: %w", caID, tenantID, store.ErrNotFound)
		}
	}
	caKey, err := e.signer(a)
	if err != nil {
		return nil, err
	}
	throwaway, err := ecdsa.GenerateKey(elliptic.P256(), a.rand)
	if err != nil {
		return nil, fmt.Errorf("generating the proof key: %w", err)
	}
	serial, err := a.serial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: verificationCode},
		NotBefore:             now.Add(-ClockSkew).Truncate(time.Second),
		NotAfter:              now.Add(ProofLifetime).Truncate(time.Second),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	if tmpl.NotBefore.Before(e.cert.NotBefore) {
		tmpl.NotBefore = e.cert.NotBefore
	}
	if tmpl.NotAfter.After(e.cert.NotAfter) {
		tmpl.NotAfter = e.cert.NotAfter
	}
	der, err := x509.CreateCertificate(a.rand, tmpl, e.cert, &throwaway.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("signing the proof of possession: %w", err)
	}
	return x509.ParseCertificate(der)
}

func checkVerificationCode(code string) error {
	if code == "" || len(code) > MaxVerificationCodeLen {
		return fmt.Errorf("%w: a verification code is 1 to %d characters", ErrInvalid, MaxVerificationCodeLen)
	}
	for _, c := range []byte(code) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return fmt.Errorf("%w: a verification code holds only letters, digits and '-'", ErrInvalid)
		}
	}
	return nil
}
