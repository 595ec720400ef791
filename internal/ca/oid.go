package ca

import (
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"slices"
)

// Rampart's certificate extensions live under OIDArc.
//
// PLACEHOLDER: 1.3.6.1.4.1.32473 is the private enterprise number IANA reserves for
// documentation (RFC 5612). It collides with no real organization's extensions, but Rampart
// must register its own PEN (free, at https://pen.iana.org) and move these OIDs under it
// before relying parties outside this repository depend on them.
var (
	// OIDArc is the arc of Rampart's device-certificate extensions.
	OIDArc = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 32473, 1}
	// OIDMeasurements is a non-critical extension that records the measurements the service
	// attested before it issued the certificate: its extnValue is a DER OCTET STRING holding
	// the verifier's bytes unchanged (JSON).
	OIDMeasurements = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 32473, 1, 1}
	// OIDDevelopmentOnly is a non-critical extension that marks a certificate whose device
	// attested with the software root of trust: development only, no hardware protects its
	// keys or measurements. Its extnValue is DER NULL. Such a certificate also carries
	// "development only" as its subject's organizational unit.
	OIDDevelopmentOnly = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 32473, 1, 2}
)

// DevelopmentOnlyOU is the subject organizational unit of a certificate issued to a device
// with the software root of trust.
const DevelopmentOnlyOU = "development only"

// Measurements returns the attested measurements a device certificate records, or nil if it
// records none.
func Measurements(cert *x509.Certificate) ([]byte, error) {
	for _, e := range cert.Extensions {
		if !e.Id.Equal(OIDMeasurements) {
			continue
		}
		var m []byte
		rest, err := asn1.Unmarshal(e.Value, &m)
		if err != nil {
			return nil, fmt.Errorf("malformed measurements extension: %w", err)
		}
		if len(rest) > 0 {
			return nil, errors.New("malformed measurements extension: trailing data")
		}
		return m, nil
	}
	return nil, nil
}

// DevelopmentOnly reports whether a device certificate is marked as issued to a device with
// the software root of trust, by the extension or by its subject.
func DevelopmentOnly(cert *x509.Certificate) bool {
	for _, e := range cert.Extensions {
		if e.Id.Equal(OIDDevelopmentOnly) {
			return true
		}
	}
	return slices.Contains(cert.Subject.OrganizationalUnit, DevelopmentOnlyOU)
}

func mustMarshalOID(oid asn1.ObjectIdentifier) []byte {
	b, err := asn1.Marshal(oid)
	if err != nil {
		panic(err)
	}
	return b
}
