package rot

import (
	"crypto/sha256"
	"fmt"
	"slices"

	"github.com/google/go-tpm/tpm2"
)

// NumPCRs is the number of SHA-256 PCRs every backend has, numbered 0 to NumPCRs-1 as on a
// PC Client TPM.
const NumPCRs = 24

// MaxQualifyingData is the most qualifying data Quote accepts: a TPM2B_DATA holds a TPMT_HA, so
// a TPM that implements SHA-512 takes 64 bytes and one with SHA-256 alone only 32. Portable
// callers pass a SHA-256 digest.
const MaxQualifyingData = 64

// CheckPCRs reports an error if a PCR index is out of range.
func CheckPCRs(pcrs []int) error {
	for _, p := range pcrs {
		if p < 0 || p >= NumPCRs {
			return fmt.Errorf("PCR %d does not exist (PCRs are 0 to %d)", p, NumPCRs-1)
		}
	}
	return nil
}

// PCRSelection is the TPML_PCR_SELECTION of the given SHA-256 PCRs, as TPM2_Quote and
// TPM2_PCR_Read take it and as a quote reports it. The PCRs must be valid (see CheckPCRs);
// duplicates select a PCR once.
func PCRSelection(pcrs []int) tpm2.TPMLPCRSelection {
	bitmap := make([]byte, NumPCRs/8)
	for _, p := range pcrs {
		bitmap[p/8] |= 1 << (p % 8)
	}
	return tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{{Hash: tpm2.TPMAlgSHA256, PCRSelect: bitmap}}}
}

// PCRDigest is a quote's pcrDigest: SHA-256 over the values of the selected PCRs, in
// ascending PCR order, each PCR once. values must hold every PCR in pcrs.
func PCRDigest(pcrs []int, values map[int][]byte) []byte {
	sorted := slices.Clone(pcrs)
	slices.Sort(sorted)
	sorted = slices.Compact(sorted)
	h := sha256.New()
	for _, p := range sorted {
		h.Write(values[p])
	}
	return h.Sum(nil)
}
