package attest

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/google/go-tpm/tpm2"
)

// go-tpm's reflective Unmarshal, with a Marshal to prove the encoding canonical, cost more
// than the quote's signature check. A quote has one fixed shape, so it is read here directly,
// strictly: every length within the input, every byte consumed, TPMI_YES_NO only 0 or 1, so
// that what it accepts is canonical by construction. FuzzParseQuote holds it to go-tpm's
// reading of the same bytes.

// quoteAttest is the part of a TPMS_ATTEST the verifier uses.
type quoteAttest struct {
	extraData []byte
	quote     tpm2.TPMSQuoteInfo
}

// Limits beyond the TPM's own: a TPM has a handful of PCR banks (HASH_COUNT) and at most 32
// PCRs a bank here, so a bitmap of 4 bytes.
const (
	maxPCRBanks     = 16
	maxPCRSelectLen = 255
)

type tpmReader struct {
	b   []byte
	err error
}

func (r *tpmReader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n > len(r.b) {
		r.err = errors.New("truncated")
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

func (r *tpmReader) u8() uint8 {
	if b := r.take(1); b != nil {
		return b[0]
	}
	return 0
}

func (r *tpmReader) u16() uint16 {
	if b := r.take(2); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (r *tpmReader) u32() uint32 {
	if b := r.take(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

// tpm2b reads a TPM2B: a 16-bit size, then that many bytes.
func (r *tpmReader) tpm2b() []byte { return r.take(int(r.u16())) }

// parseQuoteAttest reads a TPMS_ATTEST that must be a TPM-generated quote.
func parseQuoteAttest(b []byte) (*quoteAttest, *Failure) {
	r := &tpmReader{b: b}
	magic, typ := r.u32(), r.u16()
	if r.err == nil && (tpm2.TPMGenerated(magic) != tpm2.TPMGeneratedValue || tpm2.TPMST(typ) != tpm2.TPMSTAttestQuote) {
		return nil, fail(ReasonQuoteMalformed, "not a TPM-generated quote")
	}
	r.tpm2b() // qualifiedSigner: the AK's qualified name, see checkQuote
	q := &quoteAttest{extraData: r.tpm2b()}
	r.take(8 + 4 + 4) // clockInfo: clock, resetCount, restartCount
	if safe := r.u8(); safe > 1 {
		return nil, fail(ReasonQuoteMalformed, "TPMS_ATTEST: clockInfo.safe is %d, not a TPMI_YES_NO", safe)
	}
	r.take(8) // firmwareVersion
	n := r.u32()
	if r.err == nil && n > maxPCRBanks {
		return nil, fail(ReasonQuoteMalformed, "TPMS_ATTEST: %d PCR selections", n)
	}
	for i := uint32(0); i < n && r.err == nil; i++ {
		hash := tpm2.TPMIAlgHash(r.u16())
		sel := r.take(int(r.u8()))
		q.quote.PCRSelect.PCRSelections = append(q.quote.PCRSelect.PCRSelections, tpm2.TPMSPCRSelection{Hash: hash, PCRSelect: sel})
	}
	q.quote.PCRDigest.Buffer = r.tpm2b()
	if r.err != nil {
		return nil, fail(ReasonQuoteMalformed, "TPMS_ATTEST: %v", r.err)
	}
	if len(r.b) > 0 {
		return nil, fail(ReasonQuoteMalformed, "TPMS_ATTEST has trailing or non-canonical bytes")
	}
	return q, nil
}

// quoteSignature is a TPMT_SIGNATURE of one of the two schemes AKs use.
type quoteSignature struct {
	alg  tpm2.TPMIAlgSigScheme // TPMAlgECDSA or TPMAlgRSASSA
	hash tpm2.TPMIAlgHash
	r, s []byte // ECDSA
	rsa  []byte // RSASSA
}

// errSignatureScheme is a signature of a scheme no AK here signs with.
var errSignatureScheme = errors.New("the signature scheme is neither ECDSA nor RSASSA")

// parseQuoteSignature reads a TPMT_SIGNATURE, ECDSA or RSASSA, with nothing after it.
func parseQuoteSignature(b []byte) (*quoteSignature, error) {
	r := &tpmReader{b: b}
	sig := &quoteSignature{alg: tpm2.TPMIAlgSigScheme(r.u16())}
	if r.err != nil {
		return nil, r.err
	}
	sig.hash = tpm2.TPMIAlgHash(r.u16())
	switch sig.alg {
	case tpm2.TPMAlgECDSA:
		sig.r, sig.s = r.tpm2b(), r.tpm2b()
	case tpm2.TPMAlgRSASSA:
		sig.rsa = r.tpm2b()
	default:
		return nil, fmt.Errorf("%w: %v", errSignatureScheme, sig.alg)
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(r.b) > 0 {
		return nil, errors.New("trailing bytes")
	}
	return sig, nil
}
