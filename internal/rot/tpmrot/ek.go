package tpmrot

import (
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"

	"github.com/google/go-tpm/tpm2"
)

// NV indices of EK certificates (TCG EK Credential Profile, "low range"), in the order the
// backend looks for them.
const (
	NVIndexRSAEKCert tpm2.TPMHandle = 0x01c00002 // RSA 2048 EK certificate
	NVIndexECCEKCert tpm2.TPMHandle = 0x01c0000a // ECC NIST P-256 EK certificate
)

// maxEKCert bounds an EK certificate read from NV.
const maxEKCert = 4096

// endorsement is the EK the backend uses.
type endorsement struct {
	template tpm2.TPMTPublic // the TCG default template it is created from
	public   []byte          // DER SubjectPublicKeyInfo
	cert     []byte          // DER, or nil
}

// endorsementLocked finds the EK: the one whose certificate is in NV, RSA first; RSA if there
// is no certificate.
func (r *TPM) endorsementLocked() (*endorsement, error) {
	if r.ek != nil {
		return r.ek, nil
	}
	candidates := []struct {
		index    tpm2.TPMHandle
		template tpm2.TPMTPublic
	}{
		{NVIndexRSAEKCert, tpm2.RSAEKTemplate},
		{NVIndexECCEKCert, tpm2.ECCEKTemplate},
	}
	for _, c := range candidates {
		cert, err := r.readEKCert(c.index)
		if err != nil {
			return nil, err
		}
		if cert == nil {
			continue
		}
		ek, err := r.ekPublic(c.template)
		if err != nil {
			return nil, err
		}
		parsed, err := x509.ParseCertificate(cert)
		if err != nil {
			return nil, fmt.Errorf("TPM root of trust: the EK certificate in NV index %#x: %w", uint32(c.index), err)
		}
		want, err := x509.ParsePKIXPublicKey(ek)
		if err != nil {
			return nil, fmt.Errorf("TPM root of trust: %w", err)
		}
		if k, ok := parsed.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !k.Equal(want) {
			return nil, fmt.Errorf("TPM root of trust: the EK certificate in NV index %#x certifies another key than the EK the default template makes", uint32(c.index))
		}
		r.ek = &endorsement{template: c.template, public: ek, cert: cert}
		return r.ek, nil
	}
	ek, err := r.ekPublic(tpm2.RSAEKTemplate)
	if err != nil {
		return nil, err
	}
	r.ek = &endorsement{template: tpm2.RSAEKTemplate, public: ek}
	return r.ek, nil
}

// createEK creates the EK from template in the endorsement hierarchy. The caller flushes it.
func (r *TPM) createEK(template tpm2.TPMTPublic) (*tpm2.CreatePrimaryResponse, error) {
	ek, err := tpm2.CreatePrimary{
		PrimaryHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHEndorsement, Auth: tpm2.PasswordAuth(nil)},
		InPublic:      tpm2.New2B(template),
	}.Execute(r.tpm)
	if err != nil {
		return nil, fmt.Errorf("TPM root of trust: creating the endorsement key: %w", err)
	}
	return ek, nil
}

// ekPublic creates the EK from template and returns its public key as DER SubjectPublicKeyInfo.
func (r *TPM) ekPublic(template tpm2.TPMTPublic) ([]byte, error) {
	ek, err := r.createEK(template)
	if err != nil {
		return nil, err
	}
	r.flush(ek.ObjectHandle)
	pub, err := ek.OutPublic.Contents()
	if err != nil {
		return nil, fmt.Errorf("TPM root of trust: the EK's public area: %w", err)
	}
	var key any
	switch pub.Type {
	case tpm2.TPMAlgRSA:
		parms, err := pub.Parameters.RSADetail()
		if err != nil {
			return nil, fmt.Errorf("TPM root of trust: the EK's public area: %w", err)
		}
		n, err := pub.Unique.RSA()
		if err != nil {
			return nil, fmt.Errorf("TPM root of trust: the EK's public area: %w", err)
		}
		if key, err = tpm2.RSAPub(parms, n); err != nil {
			return nil, fmt.Errorf("TPM root of trust: the EK's public area: %w", err)
		}
	case tpm2.TPMAlgECC:
		parms, err := pub.Parameters.ECCDetail()
		if err != nil {
			return nil, fmt.Errorf("TPM root of trust: the EK's public area: %w", err)
		}
		pt, err := pub.Unique.ECC()
		if err != nil {
			return nil, fmt.Errorf("TPM root of trust: the EK's public area: %w", err)
		}
		if key, err = tpm2.ECDSAPub(parms, pt); err != nil {
			return nil, fmt.Errorf("TPM root of trust: the EK's public area: %w", err)
		}
	default:
		return nil, fmt.Errorf("TPM root of trust: the EK is of type %v", pub.Type)
	}
	der, err := x509.MarshalPKIXPublicKey(key)
	if err != nil {
		return nil, fmt.Errorf("TPM root of trust: the EK's public key: %w", err)
	}
	return der, nil
}

// readEKCert reads the certificate in an NV index, or returns nil if the index is not defined.
// Certificates may be padded in NV; the DER element is cut at its own length.
func (r *TPM) readEKCert(index tpm2.TPMHandle) ([]byte, error) {
	rp, err := tpm2.NVReadPublic{NVIndex: index}.Execute(r.tpm)
	if errors.Is(err, tpm2.TPMRCHandle) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("TPM root of trust: reading NV index %#x: %w", uint32(index), err)
	}
	pub, err := rp.NVPublic.Contents()
	if err != nil {
		return nil, fmt.Errorf("TPM root of trust: NV index %#x: %w", uint32(index), err)
	}
	if pub.DataSize == 0 || pub.DataSize > maxEKCert {
		return nil, fmt.Errorf("TPM root of trust: NV index %#x holds %d bytes, not a certificate", uint32(index), pub.DataSize)
	}
	auth := tpm2.AuthHandle{Handle: index, Name: rp.NVName, Auth: tpm2.PasswordAuth(nil)}
	if !pub.Attributes.AuthRead && pub.Attributes.OwnerRead {
		auth = tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)}
	}
	chunk := r.nvBufferMax()
	var data []byte
	for off := 0; off < int(pub.DataSize); off += chunk {
		n := min(chunk, int(pub.DataSize)-off)
		rsp, err := tpm2.NVRead{
			AuthHandle: auth,
			NVIndex:    tpm2.NamedHandle{Handle: index, Name: rp.NVName},
			Size:       uint16(n),
			Offset:     uint16(off),
		}.Execute(r.tpm)
		if err != nil {
			return nil, fmt.Errorf("TPM root of trust: reading NV index %#x: %w", uint32(index), err)
		}
		data = append(data, rsp.Data.Buffer...)
	}
	var raw asn1.RawValue
	if _, err := asn1.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("TPM root of trust: NV index %#x does not hold a DER certificate: %w", uint32(index), err)
	}
	return raw.FullBytes, nil
}

// nvBufferMax is the most the TPM returns from one TPM2_NV_Read.
func (r *TPM) nvBufferMax() int {
	const fallback = 512 // below every TPM's MAX_NV_BUFFER_SIZE
	rsp, err := tpm2.GetCapability{
		Capability:    tpm2.TPMCapTPMProperties,
		Property:      uint32(tpm2.TPMPTNVBufferMax),
		PropertyCount: 1,
	}.Execute(r.tpm)
	if err != nil {
		return fallback
	}
	props, err := rsp.CapabilityData.Data.TPMProperties()
	if err != nil || len(props.TPMProperty) == 0 || props.TPMProperty[0].Property != tpm2.TPMPTNVBufferMax {
		return fallback
	}
	if v := int(props.TPMProperty[0].Value); v >= 64 && v <= 4096 {
		return v
	}
	return fallback
}
