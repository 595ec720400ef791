package v1

import (
	"encoding/json"
	"time"
)

// The device-facing API. Devices authenticate with TPM evidence to get certificates, and with
// those certificates (mutual TLS) everywhere else.

// CodeAttestationFailed is the error code of a failed attestation (403); Extra["reason"]
// holds the verifier's stable reason, such as "measurement_not_allowed".
const CodeAttestationFailed = "attestation_failed"

// AttestationNonceRequest asks for a single-use attestation nonce.
type AttestationNonceRequest struct {
	DeviceID string `json:"device_id"`
}

// AttestationNonce is a challenge. The device quotes PCRs over the qualifying data that binds
// the nonce and the keys it wants certified, and answers any credential-activation challenge.
type AttestationNonce struct {
	Nonce     []byte    `json:"nonce"`
	ExpiresAt time.Time `json:"expires_at"`
	PCRs      []int     `json:"pcrs" doc:"the SHA-256 PCRs the quote must cover"`
	// FirmwarePCRs are the PCRs a device adds to its quote when it also sends its firmware's
	// measured-boot event log (firmware_event_log). Absent from services that do not take one.
	FirmwarePCRs []int `json:"firmware_pcrs,omitempty" doc:"the SHA-256 PCRs to add to the quote with a firmware event log"`
	// Activation is present until the device has proved, once, that its AK lives in the TPM
	// that holds its EK (TPM2_MakeCredential / TPM2_ActivateCredential).
	Activation *CredentialChallenge `json:"activation,omitempty"`
}

// CredentialChallenge is the output of TPM2_MakeCredential against the device's EK and AK name.
type CredentialChallenge struct {
	IDObject        []byte `json:"id_object" doc:"TPM2B_ID_OBJECT contents"`
	EncryptedSecret []byte `json:"encrypted_secret" doc:"TPM2B_ENCRYPTED_SECRET contents"`
}

// AttestationRequest is a device's evidence.
type AttestationRequest struct {
	DeviceID         string          `json:"device_id"`
	Nonce            []byte          `json:"nonce"`
	ActivationSecret []byte          `json:"activation_secret,omitempty"`
	Quote            Quote           `json:"quote"`
	EventLog         json.RawMessage `json:"event_log" doc:"the security monitor's measurement log (CEL-JSON-shaped records)"`
	Keys             []CertifyKey    `json:"keys" doc:"public keys to certify: the agent's (component \"\") and one per app with DeviceAuthentication"`
	// FirmwareEventLog is the UEFI firmware's measured-boot event log, in the TCG binary format
	// (Linux: /sys/kernel/security/tpm0/binary_bios_measurements), sent by devices whose root of
	// trust is a kernel TPM when the nonce named firmware_pcrs. The quote then covers pcrs and
	// firmware_pcrs, and PCRValues holds every PCR it covers.
	FirmwareEventLog []byte `json:"firmware_event_log,omitempty" doc:"TCG PC Client binary event log (at most 512 KiB), with pcr_values"`
	// PCRValues are the values of the quoted PCRs, by index; required with FirmwareEventLog.
	PCRValues map[int][]byte `json:"pcr_values,omitempty" doc:"SHA-256 PCR values the quote covers, by PCR index"`
}

// Quote is a TPM2_Quote.
type Quote struct {
	Attest    []byte `json:"attest" doc:"TPMS_ATTEST"`
	Signature []byte `json:"signature" doc:"TPMT_SIGNATURE"`
}

// CertifyKey is a public key a device asks to have certified.
type CertifyKey struct {
	Component string `json:"component"`
	PublicKey []byte `json:"public_key" doc:"DER SubjectPublicKeyInfo, ECDSA P-256"`
}

// AttestationResult is a passed attestation.
type AttestationResult struct {
	Certificates []IssuedCertificate `json:"certificates"`
	// ServerTime is the service's clock, which devices without a real-time clock may trust.
	ServerTime time.Time `json:"server_time"`
	// RenewAfter is when the device should attest again (half the certificate's lifetime).
	RenewAfter time.Time `json:"renew_after"`
	OSRelease  string    `json:"os_release" doc:"the release whose measurements matched"`
}

// IssuedCertificate is a certificate for one component, with the chain up to the service root.
type IssuedCertificate struct {
	Component   string    `json:"component"`
	Certificate string    `json:"certificate" doc:"PEM"`
	Chain       string    `json:"chain" doc:"PEM: the issuing tenant CA, then the service root"`
	NotAfter    time.Time `json:"not_after"`
}

// DeviceSelf is what a device learns about itself over mutual TLS.
type DeviceSelf struct {
	DeviceID      string    `json:"device_id"`
	TenantID      string    `json:"tenant_id"`
	DeviceGroupID string    `json:"device_group_id,omitempty"`
	Component     string    `json:"component,omitempty"`
	NotAfter      time.Time `json:"not_after" doc:"of the client certificate used"`
}

// Attestation is one attestation attempt as the service recorded it.
type Attestation struct {
	ID                 string          `json:"id"`
	Time               time.Time       `json:"time"`
	Result             string          `json:"result" enum:"pass,fail"`
	Reason             string          `json:"reason,omitempty"`
	Message            string          `json:"message,omitempty"`
	OSReleaseID        string          `json:"os_release_id,omitempty"`
	Measurements       json.RawMessage `json:"measurements,omitempty"`
	CertificateSerial  string          `json:"certificate_serial,omitempty"`
	CertificateExpires time.Time       `json:"certificate_expires,omitzero"`
}

// OSRelease is a release whose golden measurements the verifier accepts.
type OSRelease struct {
	ID           string            `json:"id"`
	TenantID     string            `json:"tenant_id"`
	Version      string            `json:"version"`
	Description  string            `json:"description,omitempty"`
	Measurements map[string]string `json:"measurements" doc:"measurement name (policy, agent, os-bundle) to lowercase hex SHA-256"`
	Feed         string            `json:"feed" enum:",Unpublished,RetailEval,Retail,Withdrawn" doc:"'' for a release registered by hand (every group); a release made from an OS image is Unpublished until published to RetailEval (groups that follow it) or Retail (every group); Withdrawn: offered to no group, accepted only from devices that already run it"`
	ImageID      string            `json:"image_id,omitempty" doc:"the OS image the release was made from"`
	// SecurityVersion is the release's security version, from its image's signed metadata.
	SecurityVersion uint64    `json:"security_version" doc:"from the OS image's signed metadata (0 for a release registered by hand): devices that committed a higher one may not run this release"`
	CreatedAt       time.Time `json:"created_at"`
}

// OSReleasePublish publishes a release made from an OS image to a feed.
type OSReleasePublish struct {
	Feed string `json:"feed" enum:"Retail,RetailEval,Unpublished"`
}

// OSReleaseCreate registers an OS release.
type OSReleaseCreate struct {
	Version      string            `json:"version"`
	Description  string            `json:"description,omitempty"`
	Measurements map[string]string `json:"measurements"`
}

// CACertificate describes one of a tenant's CA certificates.
type CACertificate struct {
	ID             string    `json:"id"`
	Status         string    `json:"status" enum:"Active,Inactive,Expired,Revoked"`
	Subject        string    `json:"subject"`
	ThumbprintSHA1 string    `json:"thumbprint"`
	NotBefore      time.Time `json:"not_before"`
	NotAfter       time.Time `json:"not_after"`
	ActiveFrom     time.Time `json:"active_from"`
	Certificate    string    `json:"certificate" doc:"PEM"`
}

// ProofOfPossessionRequest asks for a proof-of-possession certificate.
type ProofOfPossessionRequest struct {
	VerificationCode string `json:"verification_code"`
}

// PEMBundle is one or more PEM certificates.
type PEMBundle struct {
	PEM string `json:"pem"`
}
