package ca

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"io"
	"math/big"
	"strings"
	"time"
)

// LeafRequest is what the attestation verifier, having decided that a device deserves a
// certificate, asks Issue to certify. Issue checks its form, not its merit.
type LeafRequest struct {
	// PublicKey is the key to certify: an *ecdsa.PublicKey on P-256.
	PublicKey crypto.PublicKey
	// DeviceID is the device's ID, 64 lowercase hex digits.
	DeviceID string
	// Component is "" for the agent's own certificate, else the component ID (a UUID, in any
	// case; it is certified in lowercase) of the app the certificate is for.
	Component string
	// Lifetime is how long the certificate lasts: 0 means DefaultLeafLifetime, otherwise it
	// must be within [MinLeafLifetime, MaxLeafLifetime]. The certificate never outlives its CA.
	Lifetime time.Duration
	// Measurements are opaque bytes (the verifier's JSON) recorded in the OIDMeasurements
	// extension; at most MaxMeasurementsSize, none if empty.
	Measurements []byte
	// SoftwareRootOfTrust marks the certificate development only (OIDDevelopmentOnly and the
	// DevelopmentOnlyOU subject), so that relying parties can refuse it.
	SoftwareRootOfTrust bool
}

// Issued is a device certificate and the chain that verifies it. The certificates are shared
// and must not be modified.
type Issued struct {
	Leaf *x509.Certificate
	// Chain is the issuing tenant CA, then the root that signed it.
	Chain []*x509.Certificate
}

// SPIFFEID returns the URI a device certificate names: spiffe://TENANT/device/DEVICE, and
// /app/COMPONENT after it for an app's certificate.
func SPIFFEID(tenantID, deviceID, component string) string {
	s := "spiffe://" + tenantID + "/device/" + deviceID
	if component != "" {
		s += "/app/" + component
	}
	return s
}

// Issue signs a device certificate with the tenant's active CA. The certificate has:
//   - subject CN = the device ID (as IoT hubs expect), and OU = DevelopmentOnlyOU for the
//     software root of trust;
//   - one URI SAN, SPIFFEID(tenantID, DeviceID, Component);
//   - key usage digitalSignature, critical; extended key usage clientAuth only, for the
//     agent and for apps alike: a device is a TLS client, and a device key that could also
//     authenticate servers would let a device impersonate a service to a relying party that
//     trusts the tenant CA;
//   - basic constraints CA:false, critical; the authority key ID of the CA;
//   - the OIDMeasurements and OIDDevelopmentOnly extensions when asked for;
//   - a random 128-bit serial; NotBefore ClockSkew ago, NotAfter Lifetime from now, both
//     kept within the CA's validity.
//
// Issue reads the store only when its copy of the tenant's CAs is older than RefreshInterval
// or has no active CA; it fails with ErrNoCA if the tenant has none (see EnsureTenant).
func (a *Authority) Issue(ctx context.Context, tenantID string, req LeafRequest) (*Issued, error) {
	sg, err := a.Sign(ctx, tenantID, req)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(sg.DER)
	if err != nil {
		return nil, fmt.Errorf("parsing the certificate just signed: %w", err)
	}
	return &Issued{Leaf: leaf, Chain: sg.Chain}, nil
}

// Signed is a device certificate as Sign returns it: encoded, not parsed. The chain and its
// PEM are shared and must not be modified.
type Signed struct {
	DER      []byte
	Serial   *big.Int
	NotAfter time.Time
	// Chain is the issuing tenant CA, then the root that signed it; ChainPEM is the same in
	// PEM.
	Chain    []*x509.Certificate
	ChainPEM []byte
}

// Sign is Issue without parsing the certificate it made, for a caller that only passes it
// on: it makes the same certificate, under the same checks.
func (a *Authority) Sign(ctx context.Context, tenantID string, req LeafRequest) (*Signed, error) {
	if err := checkTenantID(tenantID); err != nil {
		return nil, err
	}
	spki, component, lifetime, err := req.check()
	if err != nil {
		return nil, err
	}
	now := a.clock()
	s, err := a.snapshot(ctx, tenantID, false)
	if err != nil {
		return nil, err
	}
	e := s.active(now)
	if e == nil { // perhaps another replica just made one
		if s, err = a.snapshot(ctx, tenantID, true); err != nil {
			return nil, err
		}
		if e = s.active(now); e == nil {
			return nil, fmt.Errorf("tenant %s: %w", tenantID, ErrNoCA)
		}
	}
	key, err := e.signer(a)
	if err != nil {
		return nil, err
	}
	serial, err := a.serial()
	if err != nil {
		return nil, err
	}
	f := leafFields{
		serial:       serial,
		issuer:       e.cert.RawSubject,
		notBefore:    now.Add(-ClockSkew).Truncate(time.Second),
		notAfter:     now.Add(lifetime).Truncate(time.Second),
		deviceID:     req.DeviceID,
		devOnly:      req.SoftwareRootOfTrust,
		spki:         spki,
		akid:         e.cert.SubjectKeyId,
		uri:          SPIFFEID(tenantID, req.DeviceID, component),
		measurements: req.Measurements,
	}
	if f.notBefore.Before(e.cert.NotBefore) {
		f.notBefore = e.cert.NotBefore
	}
	if f.notAfter.After(e.cert.NotAfter) {
		f.notAfter = e.cert.NotAfter
	}
	der, err := signLeaf(a.rand, key, f)
	if err != nil {
		return nil, fmt.Errorf("signing a device certificate: %w", err)
	}
	return &Signed{DER: der, Serial: serial, NotAfter: f.notAfter.UTC(), Chain: []*x509.Certificate{e.cert, e.issuer}, ChainPEM: e.chainPEM()}, nil
}

// check validates the request and returns the key's SubjectPublicKeyInfo, the component ID
// in lowercase and the lifetime.
func (r *LeafRequest) check() (spki []byte, component string, lifetime time.Duration, err error) {
	pub, ok := r.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub == nil {
		return nil, "", 0, fmt.Errorf("%w: the public key is a %T; only ECDSA P-256 keys are certified", ErrInvalid, r.PublicKey)
	}
	if pub.Curve != elliptic.P256() {
		return nil, "", 0, fmt.Errorf("%w: the public key is on %s; only ECDSA P-256 keys are certified", ErrInvalid, pub.Curve.Params().Name)
	}
	point, err := pub.ECDH() // checks that the point is on the curve
	if err != nil {
		return nil, "", 0, fmt.Errorf("%w: invalid P-256 public key: %w", ErrInvalid, err)
	}
	if !isDeviceID(r.DeviceID) {
		return nil, "", 0, fmt.Errorf("%w: device ID %q is not 64 lowercase hex digits", ErrInvalid, r.DeviceID)
	}
	if r.Component != "" {
		component = strings.ToLower(r.Component)
		if !isUUID(component) {
			return nil, "", 0, fmt.Errorf("%w: component ID %q is not a UUID", ErrInvalid, r.Component)
		}
	}
	lifetime = r.Lifetime
	if lifetime == 0 {
		lifetime = DefaultLeafLifetime
	}
	if lifetime < MinLeafLifetime || lifetime > MaxLeafLifetime {
		return nil, "", 0, fmt.Errorf("%w: certificate lifetime %v is outside [%v, %v]", ErrInvalid, r.Lifetime, MinLeafLifetime, MaxLeafLifetime)
	}
	if len(r.Measurements) > MaxMeasurementsSize {
		return nil, "", 0, fmt.Errorf("%w: measurements are %d bytes, more than %d", ErrInvalid, len(r.Measurements), MaxMeasurementsSize)
	}
	// SubjectPublicKeyInfo{id-ecPublicKey, prime256v1}, then the uncompressed point: what
	// x509.MarshalPKIXPublicKey makes, without its reflection.
	spki = append(append(make([]byte, 0, len(derP256SPKIPrefix)+65), derP256SPKIPrefix...), point.Bytes()...)
	return spki, component, lifetime, nil
}

func isDeviceID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// isUUID reports whether s is a UUID in canonical lowercase form.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range []byte(s) {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
	}
	return true
}

// serial returns a random positive 128-bit serial number.
func (a *Authority) serial() (*big.Int, error) {
	var b [16]byte
	for {
		if _, err := io.ReadFull(a.rand, b[:]); err != nil {
			return nil, fmt.Errorf("reading a serial number: %w", err)
		}
		if n := new(big.Int).SetBytes(b[:]); n.Sign() > 0 {
			return n, nil
		}
	}
}

// A device certificate has one fixed shape, so Issue encodes it directly in DER and signs it
// once. x509.CreateCertificate would also verify its own signature, which costs twice the
// signature and buys nothing for an in-memory ECDSA key whose match with its certificate was
// checked when it was unsealed. TestLeafEncodingMatchesCreateCertificate holds the encoding to
// crypto/x509's, byte for byte.

// leafFields are the variable parts of a device certificate.
type leafFields struct {
	serial              *big.Int
	issuer              []byte // DER Name
	notBefore, notAfter time.Time
	deviceID            string // PrintableString-safe (checked)
	devOnly             bool
	spki                []byte // DER SubjectPublicKeyInfo
	akid                []byte
	uri                 string // IA5String-safe (built from checked parts)
	measurements        []byte
}

// DER encodings of fixed parts.
var (
	derVersion3      = []byte{0xa0, 0x03, 0x02, 0x01, 0x02}                                           // [0] INTEGER 2
	derECDSAWithSHA  = []byte{0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02} // ecdsa-with-SHA256
	derOIDCN         = []byte{0x06, 0x03, 0x55, 0x04, 0x03}
	derOIDOU         = []byte{0x06, 0x03, 0x55, 0x04, 0x0b}
	derOIDKeyUsage   = []byte{0x06, 0x03, 0x55, 0x1d, 0x0f}
	derOIDExtKeyUse  = []byte{0x06, 0x03, 0x55, 0x1d, 0x25}
	derOIDBasic      = []byte{0x06, 0x03, 0x55, 0x1d, 0x13}
	derOIDAKID       = []byte{0x06, 0x03, 0x55, 0x1d, 0x23}
	derOIDSAN        = []byte{0x06, 0x03, 0x55, 0x1d, 0x11}
	derKUDigitalSig  = []byte{0x03, 0x02, 0x07, 0x80}                                                 // BIT STRING digitalSignature
	derEKUClientAuth = []byte{0x30, 0x0a, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02} // SEQUENCE { id-kp-clientAuth }
	derNotCA         = []byte{0x30, 0x00}                                                             // BasicConstraints { cA FALSE }
	derNull          = []byte{0x05, 0x00}
	// SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING (65 bytes) } up to the point.
	derP256SPKIPrefix = []byte{0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01,
		0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00}
	derOIDMeasure = mustMarshalOID(OIDMeasurements)
	derOIDDevOnly = mustMarshalOID(OIDDevelopmentOnly)
)

// DER tags.
const (
	tagInteger         = 0x02
	tagBitString       = 0x03
	tagOctetString     = 0x04
	tagPrintableString = 0x13
	tagUTCTime         = 0x17
	tagGeneralizedTime = 0x18
	tagSequence        = 0x30
	tagSet             = 0x31
	tagContext0        = 0x80 // [0] IMPLICIT, primitive
	tagContext3        = 0xa3 // [3] EXPLICIT
	tagContext6        = 0x86 // [6] IMPLICIT, primitive
)

// signLeaf encodes the certificate f describes and signs it with key.
func signLeaf(rand io.Reader, key *ecdsa.PrivateKey, f leafFields) ([]byte, error) {
	tbs, err := leafTBS(f)
	if err != nil {
		return nil, err
	}
	digest := sha256.Sum256(tbs)
	sig, err := ecdsa.SignASN1(rand, key, digest[:])
	if err != nil {
		return nil, err
	}
	body := make([]byte, 0, len(tbs)+len(derECDSAWithSHA)+len(sig)+8)
	body = append(body, tbs...)
	body = append(body, derECDSAWithSHA...)
	body = appendTLV(body, tagBitString, append([]byte{0}, sig...))
	return appendTLV(make([]byte, 0, len(body)+4), tagSequence, body), nil
}

// leafTBS encodes the TBSCertificate of a device certificate, as x509.CreateCertificate would
// for the same template: the extensions in its order, then the two of ours.
func leafTBS(f leafFields) ([]byte, error) {
	if f.serial.Sign() <= 0 {
		return nil, fmt.Errorf("serial number must be positive")
	}
	serial := f.serial.Bytes()
	if serial[0]&0x80 != 0 {
		serial = append([]byte{0}, serial...)
	}
	var validity []byte
	validity = appendTime(validity, f.notBefore)
	validity = appendTime(validity, f.notAfter)

	var rdns []byte
	if f.devOnly {
		rdns = appendRDN(rdns, derOIDOU, DevelopmentOnlyOU)
	}
	rdns = appendRDN(rdns, derOIDCN, f.deviceID)

	var exts []byte
	exts = appendExtension(exts, derOIDKeyUsage, true, derKUDigitalSig)
	exts = appendExtension(exts, derOIDExtKeyUse, false, derEKUClientAuth)
	exts = appendExtension(exts, derOIDBasic, true, derNotCA)
	if len(f.akid) > 0 {
		exts = appendExtension(exts, derOIDAKID, false, appendTLV(nil, tagSequence, appendTLV(nil, tagContext0, f.akid)))
	}
	exts = appendExtension(exts, derOIDSAN, false, appendTLV(nil, tagSequence, appendTLV(nil, tagContext6, []byte(f.uri))))
	if len(f.measurements) > 0 {
		exts = appendExtension(exts, derOIDMeasure, false, appendTLV(nil, tagOctetString, f.measurements))
	}
	if f.devOnly {
		exts = appendExtension(exts, derOIDDevOnly, false, derNull)
	}

	body := make([]byte, 0, 512+len(f.measurements))
	body = append(body, derVersion3...)
	body = appendTLV(body, tagInteger, serial)
	body = append(body, derECDSAWithSHA...)
	body = append(body, f.issuer...)
	body = appendTLV(body, tagSequence, validity)
	body = appendTLV(body, tagSequence, rdns)
	body = append(body, f.spki...)
	body = appendTLV(body, tagContext3, appendTLV(nil, tagSequence, exts))
	return appendTLV(make([]byte, 0, len(body)+4), tagSequence, body), nil
}

// appendTLV appends a DER tag, definite length and content.
func appendTLV(b []byte, tag byte, content []byte) []byte {
	b = append(b, tag)
	switch n := len(content); {
	case n < 0x80:
		b = append(b, byte(n))
	case n < 0x100:
		b = append(b, 0x81, byte(n))
	case n < 0x10000:
		b = append(b, 0x82, byte(n>>8), byte(n))
	default:
		b = append(b, 0x83, byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, content...)
}

// appendRDN appends a relative distinguished name of one PrintableString attribute.
func appendRDN(b, oid []byte, value string) []byte {
	atv := appendTLV(append([]byte(nil), oid...), tagPrintableString, []byte(value))
	return appendTLV(b, tagSet, appendTLV(nil, tagSequence, atv))
}

// appendExtension appends an Extension; critical is encoded only when true (DER omits the
// default).
func appendExtension(b, oid []byte, critical bool, value []byte) []byte {
	ext := append([]byte(nil), oid...)
	if critical {
		ext = append(ext, 0x01, 0x01, 0xff)
	}
	ext = appendTLV(ext, tagOctetString, value)
	return appendTLV(b, tagSequence, ext)
}

// appendTime appends a Time as RFC 5280 requires: UTCTime through 2049, then GeneralizedTime.
func appendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	if y := t.Year(); y >= 1950 && y < 2050 {
		return appendTLV(b, tagUTCTime, t.AppendFormat(nil, "060102150405Z"))
	}
	return appendTLV(b, tagGeneralizedTime, t.AppendFormat(nil, "20060102150405Z"))
}
