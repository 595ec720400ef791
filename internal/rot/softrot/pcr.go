package softrot

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/google/go-tpm/tpm2"

	"github.com/rampart-iot/rampart/internal/rot"
)

// Extend extends a PCR as TPM2_PCR_Extend does on the SHA-256 bank at locality 0.
func (s *Software) Extend(_ context.Context, pcr int, digest []byte) error {
	if err := rot.CheckPCRs([]int{pcr}); err != nil {
		return fmt.Errorf("software root of trust: %w", err)
	}
	if len(digest) != sha256.Size {
		return fmt.Errorf("software root of trust: extending PCR %d with a %d-byte digest; want %d", pcr, len(digest), sha256.Size)
	}
	if pcr >= 17 && pcr <= 22 {
		return fmt.Errorf("software root of trust: PCR %d cannot be extended at locality 0 (as on a PC Client TPM)", pcr)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	h := sha256.New()
	h.Write(s.pcrs[pcr][:])
	h.Write(digest)
	h.Sum(s.pcrs[pcr][:0])
	return nil
}

// ReadPCRs returns copies of the PCRs' values.
func (s *Software) ReadPCRs(_ context.Context, pcrs []int) (map[int][]byte, error) {
	if err := rot.CheckPCRs(pcrs); err != nil {
		return nil, fmt.Errorf("software root of trust: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.readLocked(pcrs), nil
}

func (s *Software) readLocked(pcrs []int) map[int][]byte {
	vals := make(map[int][]byte, len(pcrs))
	for _, p := range pcrs {
		vals[p] = bytes.Clone(s.pcrs[p][:])
	}
	return vals
}

// Quote signs the PCRs as TPM2_Quote does with a restricted ECDSA P-256 key: a TPMS_ATTEST of
// type TPM_ST_ATTEST_QUOTE whose pcrDigest is SHA-256 over the selected PCRs in ascending order,
// and an ECDSA SHA-256 TPMT_SIGNATURE over SHA-256 of it. clockInfo counts milliseconds since
// Open, with no resets or restarts; firmwareVersion is 0.
func (s *Software) Quote(_ context.Context, pcrs []int, qualifyingData []byte) (*rot.Quote, error) {
	if len(pcrs) == 0 {
		return nil, errors.New("software root of trust: a quote needs at least one PCR")
	}
	if err := rot.CheckPCRs(pcrs); err != nil {
		return nil, fmt.Errorf("software root of trust: %w", err)
	}
	if len(qualifyingData) > rot.MaxQualifyingData {
		return nil, fmt.Errorf("software root of trust: %d bytes of qualifying data; the limit is %d", len(qualifyingData), rot.MaxQualifyingData)
	}
	s.mu.Lock()
	digest := rot.PCRDigest(pcrs, s.readLocked(pcrs))
	s.mu.Unlock()

	attest := tpm2.Marshal(tpm2.TPMSAttest{
		Magic:           tpm2.TPMGeneratedValue,
		Type:            tpm2.TPMSTAttestQuote,
		QualifiedSigner: tpm2.TPM2BName{Buffer: s.akQN},
		ExtraData:       tpm2.TPM2BData{Buffer: bytes.Clone(qualifyingData)},
		ClockInfo: tpm2.TPMSClockInfo{
			Clock: uint64(time.Since(s.start).Milliseconds()),
			Safe:  true,
		},
		Attested: tpm2.NewTPMUAttest(tpm2.TPMSTAttestQuote, &tpm2.TPMSQuoteInfo{
			PCRSelect: rot.PCRSelection(pcrs),
			PCRDigest: tpm2.TPM2BDigest{Buffer: digest},
		}),
	})
	sum := sha256.Sum256(attest)
	r, sig, err := ecdsa.Sign(nil, s.ak, sum[:])
	if err != nil {
		return nil, fmt.Errorf("software root of trust: signing the quote: %w", err)
	}
	signature := tpm2.Marshal(tpm2.TPMTSignature{
		SigAlg: tpm2.TPMAlgECDSA,
		Signature: tpm2.NewTPMUSignature(tpm2.TPMAlgECDSA, &tpm2.TPMSSignatureECC{
			Hash:       tpm2.TPMAlgSHA256,
			SignatureR: tpm2.TPM2BECCParameter{Buffer: r.FillBytes(make([]byte, 32))},
			SignatureS: tpm2.TPM2BECCParameter{Buffer: sig.FillBytes(make([]byte, 32))},
		}),
	})
	return &rot.Quote{Attest: attest, Signature: signature}, nil
}

// qualifiedName is the qualified name of an object whose parent is the hierarchy h: a TPM
// computes it as nameAlg || SHA-256(QN(parent) || name), and a hierarchy's QN is its handle.
func qualifiedName(h tpm2.TPMHandle, name []byte) []byte {
	sum := sha256.New()
	_ = binary.Write(sum, binary.BigEndian, uint32(h))
	sum.Write(name)
	return sum.Sum(binary.BigEndian.AppendUint16(nil, uint16(tpm2.TPMAlgSHA256)))
}
