// Package enrollment defines the enrollment record: the versioned JSON document that
// `rampart-agent enroll` writes at manufacture and `rampart device claim` sends to the security
// service. A record names a device and the public halves of the keys its root of trust holds; it
// carries no secret.
//
// Trust: Parse checks that a record is well formed and self-consistent (the device ID is the
// hash of the EK public key; an EK certificate, when present, certifies that key; the AK is a
// restricted signing key). It does not prove that the keys live in a TPM: that takes credential
// activation and an EK certificate chain, which the attestation verifier checks. A record whose
// root of trust is "software" comes from a development device with no hardware protection at all.
//
// Format, version 1 (binary fields are standard base64):
//
//	{
//	  "version": 1,
//	  "device_id": "<lowercase hex SHA-256 of ek_public>",
//	  "root_of_trust": "tpm" | "software",
//	  "agent_version": "<the enrolling agent's version, untrusted>",
//	  "ek_public": "<DER SubjectPublicKeyInfo of the endorsement key>",
//	  "ek_certificate": "<DER X.509 EK certificate, if the TPM holds one>",
//	  "ak_public": "<TPMT_PUBLIC of the attestation key, TPM 2.0 Part 2 encoding>"
//	}
package enrollment

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/google/go-tpm/tpm2"

	"github.com/rampart-iot/rampart/internal/strictjson"
)

// Version is the record version this package writes and the only one it reads.
const Version = 1

// Limits on a record and its fields.
const (
	MaxRecordSize       = 16 << 10
	MaxKeySize          = 2 << 10
	MaxCertificateSize  = 8 << 10
	MaxAgentVersionSize = 64
)

// Roots of trust.
const (
	RootOfTrustTPM      = "tpm"
	RootOfTrustSoftware = "software" // development only: keys in a file, no hardware protection
)

// Record is an enrollment record.
type Record struct {
	Version       int    `json:"version"`
	DeviceID      string `json:"device_id"`
	RootOfTrust   string `json:"root_of_trust"`
	AgentVersion  string `json:"agent_version,omitempty"`
	EKPublic      []byte `json:"ek_public"`
	EKCertificate []byte `json:"ek_certificate,omitempty"`
	AKPublic      []byte `json:"ak_public"`
}

// Problem is one thing wrong with a record.
type Problem struct {
	Field   string
	Message string
}

// Error lists every problem found in a record.
type Error struct {
	Problems []Problem
}

func (e *Error) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		if p.Field == "" {
			parts[i] = p.Message
		} else {
			parts[i] = p.Field + ": " + p.Message
		}
	}
	return "invalid enrollment record: " + strings.Join(parts, "; ")
}

// DeviceID returns the device ID for an EK public key in DER SubjectPublicKeyInfo form.
func DeviceID(ekPublicDER []byte) string {
	sum := sha256.Sum256(ekPublicDER)
	return hex.EncodeToString(sum[:])
}

// Parse decodes and checks a record. The returned error is an *Error listing every problem.
func Parse(data []byte) (*Record, error) {
	if len(data) > MaxRecordSize {
		return nil, &Error{Problems: []Problem{{Message: fmt.Sprintf("record is %d bytes; the limit is %d", len(data), MaxRecordSize)}}}
	}
	var r Record
	if err := strictjson.Decode(data, &r); err != nil {
		se := err.(*strictjson.Error)
		e := &Error{}
		for _, p := range se.Problems {
			e.Problems = append(e.Problems, Problem{Field: p.Path, Message: p.Message})
		}
		return nil, e
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

// Marshal encodes a record as JSON, after checking it.
func (r *Record) Marshal() ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return json.MarshalIndent(r, "", "  ")
}

// Validate checks a record's fields and their consistency, reporting every problem.
func (r *Record) Validate() error {
	var probs []Problem
	add := func(field, format string, args ...any) {
		probs = append(probs, Problem{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	if r.Version != Version {
		add("version", "unsupported version %d; this software reads version %d", r.Version, Version)
		return &Error{Problems: probs}
	}
	switch r.RootOfTrust {
	case RootOfTrustTPM, RootOfTrustSoftware:
	case "":
		add("root_of_trust", "is required")
	default:
		add("root_of_trust", "must be %q or %q, not %q", RootOfTrustTPM, RootOfTrustSoftware, r.RootOfTrust)
	}
	if len(r.AgentVersion) > MaxAgentVersionSize {
		add("agent_version", "is longer than %d bytes", MaxAgentVersionSize)
	} else if !printable(r.AgentVersion) {
		add("agent_version", "contains non-printable characters")
	}

	ekOK := false
	switch {
	case len(r.EKPublic) == 0:
		add("ek_public", "is required")
	case len(r.EKPublic) > MaxKeySize:
		add("ek_public", "is longer than %d bytes", MaxKeySize)
	default:
		if err := checkEKPublic(r.EKPublic); err != nil {
			add("ek_public", "%v", err)
		} else {
			ekOK = true
		}
	}
	switch {
	case r.DeviceID == "":
		add("device_id", "is required")
	case !isLowerHex64(r.DeviceID):
		add("device_id", "must be 64 lowercase hexadecimal characters")
	case ekOK && r.DeviceID != DeviceID(r.EKPublic):
		add("device_id", "is not the SHA-256 of ek_public")
	}
	if len(r.EKCertificate) > 0 {
		if len(r.EKCertificate) > MaxCertificateSize {
			add("ek_certificate", "is longer than %d bytes", MaxCertificateSize)
		} else if cert, err := x509.ParseCertificate(r.EKCertificate); err != nil {
			add("ek_certificate", "is not a DER X.509 certificate: %v", err)
		} else if ekOK && !bytes.Equal(cert.RawSubjectPublicKeyInfo, r.EKPublic) {
			add("ek_certificate", "certifies a different key than ek_public")
		}
	}
	switch {
	case len(r.AKPublic) == 0:
		add("ak_public", "is required")
	case len(r.AKPublic) > MaxKeySize:
		add("ak_public", "is longer than %d bytes", MaxKeySize)
	default:
		if _, err := ParseAKPublic(r.AKPublic); err != nil {
			add("ak_public", "%v", err)
		}
	}
	if len(probs) > 0 {
		return &Error{Problems: probs}
	}
	return nil
}

// IsSoftware reports whether the record comes from the development-only software root of trust.
func (r *Record) IsSoftware() bool { return r.RootOfTrust == RootOfTrustSoftware }

func checkEKPublic(der []byte) error {
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return fmt.Errorf("is not a DER SubjectPublicKeyInfo: %v", err)
	}
	if canon, err := x509.MarshalPKIXPublicKey(pub); err != nil || !bytes.Equal(canon, der) {
		return fmt.Errorf("is not in canonical DER form")
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if bits := k.N.BitLen(); bits < 2048 || bits > 4096 {
			return fmt.Errorf("RSA key of %d bits; want 2048 to 4096", bits)
		}
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return fmt.Errorf("ECC key on curve %s; want P-256 or P-384", k.Curve.Params().Name)
		}
	default:
		return fmt.Errorf("unsupported key type %T; want RSA or ECC", pub)
	}
	return nil
}

// AKPublic is a parsed attestation key.
type AKPublic struct {
	Public tpm2.TPMTPublic
	Key    any // *ecdsa.PublicKey or *rsa.PublicKey
}

// ParseAKPublic decodes a TPMT_PUBLIC and checks that it describes a restricted signing key
// whose sensitive part the TPM generated and cannot export, as an attestation key must be.
func ParseAKPublic(b []byte) (*AKPublic, error) {
	pub, err := unmarshalPublic(b)
	if err != nil {
		return nil, fmt.Errorf("is not a TPMT_PUBLIC: %v", err)
	}
	if !bytes.Equal(tpm2.Marshal(pub), b) {
		return nil, fmt.Errorf("is not a canonical TPMT_PUBLIC (trailing or non-canonical bytes)")
	}
	if pub.NameAlg != tpm2.TPMAlgSHA256 {
		return nil, fmt.Errorf("name algorithm %v; want SHA-256", pub.NameAlg)
	}
	a := pub.ObjectAttributes
	if !a.FixedTPM || !a.FixedParent || !a.SensitiveDataOrigin || !a.Restricted || !a.SignEncrypt || a.Decrypt {
		return nil, fmt.Errorf("is not a restricted, non-duplicable, TPM-generated signing key")
	}
	var key any
	switch pub.Type {
	case tpm2.TPMAlgECC:
		parms, err := pub.Parameters.ECCDetail()
		if err != nil {
			return nil, fmt.Errorf("ECC parameters: %v", err)
		}
		if parms.CurveID != tpm2.TPMECCNistP256 {
			return nil, fmt.Errorf("ECC curve %v; want NIST P-256", parms.CurveID)
		}
		pt, err := pub.Unique.ECC()
		if err != nil {
			return nil, fmt.Errorf("ECC point: %v", err)
		}
		k, err := tpm2.ECDSAPub(parms, pt)
		if err != nil {
			return nil, err
		}
		if _, err := k.ECDH(); err != nil { // rejects points not on the curve
			return nil, fmt.Errorf("ECC point is not on the curve")
		}
		key = k
	case tpm2.TPMAlgRSA:
		parms, err := pub.Parameters.RSADetail()
		if err != nil {
			return nil, fmt.Errorf("RSA parameters: %v", err)
		}
		if parms.KeyBits != 2048 {
			return nil, fmt.Errorf("RSA key of %d bits; want 2048", parms.KeyBits)
		}
		n, err := pub.Unique.RSA()
		if err != nil {
			return nil, fmt.Errorf("RSA modulus: %v", err)
		}
		k, err := tpm2.RSAPub(parms, n)
		if err != nil {
			return nil, err
		}
		if k.N.BitLen() != 2048 {
			return nil, fmt.Errorf("RSA modulus of %d bits; want 2048", k.N.BitLen())
		}
		key = k
	default:
		return nil, fmt.Errorf("key type %v; want ECC or RSA", pub.Type)
	}
	return &AKPublic{Public: *pub, Key: key}, nil
}

// unmarshalPublic wraps tpm2.Unmarshal, turning a panic on hostile input into an error.
func unmarshalPublic(b []byte) (pub *tpm2.TPMTPublic, err error) {
	defer func() {
		if r := recover(); r != nil {
			pub, err = nil, fmt.Errorf("malformed: %v", r)
		}
	}()
	return tpm2.Unmarshal[tpm2.TPMTPublic](b)
}

func isLowerHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func printable(s string) bool {
	for _, c := range s {
		if c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}
