package tpmrot

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/google/go-tpm/tpm2"

	"github.com/rampart-iot/rampart/internal/rot"
)

// Extend extends a PCR's SHA-256 bank (TPM2_PCR_Extend at locality 0). Other banks the TPM has
// active are left alone.
func (r *TPM) Extend(ctx context.Context, pcr int, digest []byte) error {
	if err := rot.CheckPCRs([]int{pcr}); err != nil {
		return fmt.Errorf("TPM root of trust: %w", err)
	}
	if len(digest) != sha256.Size {
		return fmt.Errorf("TPM root of trust: extending PCR %d with a %d-byte digest; want %d", pcr, len(digest), sha256.Size)
	}
	if err := r.lock(ctx); err != nil {
		return err
	}
	defer r.mu.Unlock()
	_, err := tpm2.PCRExtend{
		PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(pcr), Auth: tpm2.PasswordAuth(nil)},
		Digests:   tpm2.TPMLDigestValues{Digests: []tpm2.TPMTHA{{HashAlg: tpm2.TPMAlgSHA256, Digest: digest}}},
	}.Execute(r.tpm)
	if err != nil {
		return fmt.Errorf("TPM root of trust: extending PCR %d: %w", pcr, err)
	}
	return nil
}

// ReadPCRs reads SHA-256 PCRs with TPM2_PCR_Read, which returns at most 8 PCRs at a time; if
// another process extends a PCR between two reads, it reads them all again.
func (r *TPM) ReadPCRs(ctx context.Context, pcrs []int) (map[int][]byte, error) {
	if err := rot.CheckPCRs(pcrs); err != nil {
		return nil, fmt.Errorf("TPM root of trust: %w", err)
	}
	if err := r.lock(ctx); err != nil {
		return nil, err
	}
	defer r.mu.Unlock()
	for range 3 {
		vals, consistent, err := r.readPCRsOnce(pcrs)
		if err != nil || consistent {
			return vals, err
		}
	}
	return nil, errors.New("TPM root of trust: the PCRs kept changing while they were read")
}

func (r *TPM) readPCRsOnce(pcrs []int) (vals map[int][]byte, consistent bool, err error) {
	vals = make(map[int][]byte, len(pcrs))
	want := map[int]bool{}
	for _, p := range pcrs {
		want[p] = true
	}
	var counter uint32
	for first := true; len(want) > 0; first = false {
		var left []int
		for p := range want {
			left = append(left, p)
		}
		rsp, err := tpm2.PCRRead{PCRSelectionIn: rot.PCRSelection(left)}.Execute(r.tpm)
		if err != nil {
			return nil, false, fmt.Errorf("TPM root of trust: reading PCRs: %w", err)
		}
		if !first && rsp.PCRUpdateCounter != counter {
			return nil, false, nil
		}
		counter = rsp.PCRUpdateCounter
		got := selected(rsp.PCRSelectionOut)
		if len(got) == 0 {
			return nil, false, errors.New("TPM root of trust: the TPM returned no SHA-256 PCRs; is its SHA-256 bank active?")
		}
		if len(got) != len(rsp.PCRValues.Digests) {
			return nil, false, fmt.Errorf("TPM root of trust: the TPM returned %d PCR values for %d PCRs", len(rsp.PCRValues.Digests), len(got))
		}
		for i, p := range got {
			if !want[p] || len(rsp.PCRValues.Digests[i].Buffer) != sha256.Size {
				return nil, false, fmt.Errorf("TPM root of trust: the TPM returned PCR %d unasked or malformed", p)
			}
			vals[p] = clone(rsp.PCRValues.Digests[i].Buffer)
			delete(want, p)
		}
	}
	return vals, true, nil
}

// selected lists, in ascending order, the SHA-256 PCRs a selection selects.
func selected(sel tpm2.TPMLPCRSelection) []int {
	var pcrs []int
	for _, s := range sel.PCRSelections {
		if s.Hash != tpm2.TPMAlgSHA256 {
			continue
		}
		for i, b := range s.PCRSelect {
			for bit := range 8 {
				if b&(1<<bit) != 0 {
					pcrs = append(pcrs, 8*i+bit)
				}
			}
		}
	}
	return pcrs
}

// Quote runs TPM2_Quote with the AK over the SHA-256 bank and returns the TPMS_ATTEST exactly as
// the TPM signed it, and the marshalled TPMT_SIGNATURE.
func (r *TPM) Quote(ctx context.Context, pcrs []int, qualifyingData []byte) (*rot.Quote, error) {
	if len(pcrs) == 0 {
		return nil, errors.New("TPM root of trust: a quote needs at least one PCR")
	}
	if err := rot.CheckPCRs(pcrs); err != nil {
		return nil, fmt.Errorf("TPM root of trust: %w", err)
	}
	if len(qualifyingData) > rot.MaxQualifyingData {
		return nil, fmt.Errorf("TPM root of trust: %d bytes of qualifying data; the limit is %d", len(qualifyingData), rot.MaxQualifyingData)
	}
	if err := r.lock(ctx); err != nil {
		return nil, err
	}
	defer r.mu.Unlock()
	ak, err := r.loadAK()
	if err != nil {
		return nil, err
	}
	defer r.flush(ak.Handle)
	rsp, err := tpm2.Quote{
		SignHandle:     ak,
		QualifyingData: tpm2.TPM2BData{Buffer: qualifyingData},
		InScheme:       tpm2.TPMTSigScheme{Scheme: tpm2.TPMAlgNull},
		PCRSelect:      rot.PCRSelection(pcrs),
	}.Execute(r.tpm)
	if err != nil {
		return nil, fmt.Errorf("TPM root of trust: quoting: %w", err)
	}
	return &rot.Quote{Attest: clone(rsp.Quoted.Bytes()), Signature: tpm2.Marshal(rsp.Signature)}, nil
}
