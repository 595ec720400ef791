// Package rot is the device's root of trust: the keys that identify a device and that never
// leave it. A RootOfTrust is opened from a spec naming a backend; backends register by name.
// The built-in "software" backend keeps its keys in files and is for development only: it
// protects nothing, and every record made from it says so (enrollment.RootOfTrustSoftware).
//
// Trust: callers trust a backend to keep its private keys; the backend trusts nothing it reads
// back from its state directory beyond what it checks.
package rot

import (
	"context"
	"strings"

	"github.com/rampart-iot/rampart/internal/registry"
)

// RootOfTrust holds a device's endorsement key (EK), its attestation key (AK) and its
// platform configuration registers (PCRs, SHA-256 bank). Implementations are safe for
// concurrent use.
type RootOfTrust interface {
	// Kind is "tpm" or "software", as written in enrollment records.
	Kind() string
	// Endorsement returns the EK public key as DER SubjectPublicKeyInfo, and the EK
	// certificate as DER if the root of trust holds one (nil otherwise). The EK is created
	// from the TCG default template (RSA 2048 or ECC P-256, AES-128-CFB, SHA-256), so a verifier
	// can rebuild its public area from the key alone.
	Endorsement(ctx context.Context) (ekPublic, ekCertificate []byte, err error)
	// AttestationKey returns the AK's public area (TPMT_PUBLIC), creating the AK on first use
	// and returning the same key afterwards.
	AttestationKey(ctx context.Context) ([]byte, error)
	// ActivateCredential recovers the secret a verifier sealed with TPM2_MakeCredential to the
	// EK and the AK's name (TPM2_ActivateCredential). idObject and encSecret are the
	// contents of the TPM2B_ID_OBJECT and TPM2B_ENCRYPTED_SECRET.
	ActivateCredential(ctx context.Context, idObject, encSecret []byte) ([]byte, error)
	// Extend extends a SHA-256 PCR with a 32-byte digest: PCR = SHA-256(PCR || digest).
	// As on a PC Client TPM at locality 0, where the agent runs, PCRs 17 to 22 (the dynamic
	// root of trust's) cannot be extended; they read as all ones until a DRTM launch.
	Extend(ctx context.Context, pcr int, digest []byte) error
	// ReadPCRs reads SHA-256 PCRs, returning a copy of each value keyed by its index.
	ReadPCRs(ctx context.Context, pcrs []int) (map[int][]byte, error)
	// Quote signs the selected SHA-256 PCRs (at least one) with the AK over qualifyingData
	// (at most MaxQualifyingData bytes) (TPM2_Quote). The attestation's qualifiedSigner is the
	// AK's qualified name, which depends on the AK's parent, not the AK's name: a verifier
	// identifies the AK by the signature, not by that field.
	Quote(ctx context.Context, pcrs []int, qualifyingData []byte) (*Quote, error)
	Close() error
}

// Counter is the anti-rollback counter a root of trust may keep: a number that only goes up,
// held where writing the agent's state directory cannot lower it. The OS update machine keeps
// its security-version floor in it. A backend that has one implements Counter beside
// RootOfTrust; callers find it with a type assertion.
//
// The TPM backends keep it in an NV counter index, whose value the TPM never lets go down, and
// which a redefined index resumes from at or above its highest value; the software backend
// keeps it in a sealed file, which resists editing but not putting back an older copy.
type Counter interface {
	// ReadCounter returns the counter: 0 until it is first advanced.
	ReadCounter(ctx context.Context) (uint64, error)
	// AdvanceCounter raises the counter to v. A v at or below the counter changes nothing; a v
	// more than MaxCounterStep above it is refused, so a bad value cannot wear the TPM's NV
	// or take an hour of increments.
	AdvanceCounter(ctx context.Context, v uint64) error
}

// MaxCounterStep is the most one AdvanceCounter call raises a Counter by.
const MaxCounterStep = 1 << 12

// Quote is a TPM quote: the marshalled TPMS_ATTEST and the TPMT_SIGNATURE over it.
type Quote struct {
	Attest    []byte
	Signature []byte
}

// Opener opens a backend. arg is what follows "NAME:" in the spec ("" if nothing does), and
// stateDir is the agent's state directory, where a backend may keep what it must remember.
type Opener func(ctx context.Context, arg, stateDir string) (RootOfTrust, error)

var backends = registry.New[Opener]("root of trust")

// Register makes a backend available under name; registering a name twice panics.
func Register(name string, open Opener) { backends.Register(name, open) }

// Backends lists the registered backend names.
func Backends() []string { return backends.Names() }

// Open opens the root of trust that spec names: "NAME" or "NAME:ARG", for example
// "software" or "swtpm:unix:/run/swtpm.sock".
func Open(ctx context.Context, spec, stateDir string) (RootOfTrust, error) {
	name, arg, _ := strings.Cut(spec, ":")
	open, err := backends.Lookup(name)
	if err != nil {
		return nil, err
	}
	return open(ctx, arg, stateDir)
}
