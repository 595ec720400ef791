package tpmrot

import (
	"context"
	"fmt"

	"github.com/google/go-tpm/tpm2"
)

// maxCredentialPart bounds ActivateCredential's inputs.
const maxCredentialPart = 4096

// ActivateCredential runs TPM2_ActivateCredential with the AK and the EK, authorizing the EK
// with its default policy, TPM2_PolicySecret(TPM_RH_ENDORSEMENT).
func (r *TPM) ActivateCredential(ctx context.Context, idObject, encSecret []byte) ([]byte, error) {
	// Both are TPM2Bs, sized in 16 bits; real ones are a few hundred bytes.
	if len(idObject) > maxCredentialPart || len(encSecret) > maxCredentialPart {
		return nil, fmt.Errorf("TPM root of trust: credential of %d+%d bytes is too large", len(idObject), len(encSecret))
	}
	if err := r.lock(ctx); err != nil {
		return nil, err
	}
	defer r.mu.Unlock()
	info, err := r.endorsementLocked()
	if err != nil {
		return nil, err
	}
	// At most two objects are loaded at once (the AK, then the EK) and one session: the
	// reference implementation has room for three objects and three sessions.
	ak, err := r.loadAK()
	if err != nil {
		return nil, err
	}
	defer r.flush(ak.Handle)
	ek, err := r.createEK(info.template)
	if err != nil {
		return nil, err
	}
	defer r.flush(ek.ObjectHandle)

	sess, closeSession, err := tpm2.PolicySession(r.tpm, tpm2.TPMAlgSHA256, 16)
	if err != nil {
		return nil, fmt.Errorf("TPM root of trust: starting a policy session: %w", err)
	}
	defer func() { _ = closeSession() }()
	if _, err := (tpm2.PolicySecret{
		AuthHandle:    tpm2.AuthHandle{Handle: tpm2.TPMRHEndorsement, Auth: tpm2.PasswordAuth(nil)},
		PolicySession: sess.Handle(),
		NonceTPM:      sess.NonceTPM(),
	}).Execute(r.tpm); err != nil {
		return nil, fmt.Errorf("TPM root of trust: satisfying the EK's policy: %w", err)
	}
	rsp, err := tpm2.ActivateCredential{
		ActivateHandle: ak,
		KeyHandle:      tpm2.AuthHandle{Handle: ek.ObjectHandle, Name: ek.Name, Auth: sess},
		CredentialBlob: tpm2.TPM2BIDObject{Buffer: idObject},
		Secret:         tpm2.TPM2BEncryptedSecret{Buffer: encSecret},
	}.Execute(r.tpm)
	if err != nil {
		return nil, fmt.Errorf("TPM root of trust: activating the credential: %w", err)
	}
	return clone(rsp.CertInfo.Buffer), nil
}
