// Package tpmrot is the root of trust in a TPM 2.0, through go-tpm's tpm2 API. It registers
// three backends:
//
//   - "tpm" or "tpm:PATH": the TPM device at PATH, by default /dev/tpmrm0 (the kernel's
//     resource manager; /dev/tpm0 works but leaks transient objects if the agent dies mid-way);
//     FirmwareEventLog then reads the firmware's measured-boot log the kernel keeps for it;
//   - "swtpm:unix:PATH" and "swtpm:tcp:HOST:PORT": a swtpm process's data channel in socket
//     mode (swtpm socket --server type=unixio,path=PATH, or type=tcp,port=PORT);
//   - "tpm-sim": the reference TPM simulator in this process (go-tpm-tools); it needs cgo, and
//     is absent from CGO_ENABLED=0 builds. See sim.go for what its identity is worth.
//
// The EK is the TCG default EK that the TPM's EK certificate certifies: the RSA one when NV
// index 0x01c00002 holds a certificate, else the ECC P-256 one when 0x01c0000a does, else the
// RSA one without a certificate. It is created again with TPM2_CreatePrimary whenever it is
// needed, and must match its certificate. The AK is an ECDSA P-256 restricted signing key under
// the owner hierarchy's ECC storage root key (also re-created with TPM2_CreatePrimary, from the
// TCG template). Its public area and its private blob, which only this TPM can load, are kept in
// DIR/ak.json with the name of the storage root key they belong to; DIR is STATE/rot-tpm, or
// STATE/rot-tpm-sim for the simulator. Each operation loads what it needs and flushes it before
// returning. Commands answered with a retry warning are retried (see Retry).
//
// TPM also keeps the anti-rollback counter (rot.Counter) in two NV indices of the owner
// hierarchy, 0x01300001 (an NV counter) and 0x01300002 (its base); see counter.go for the
// design and what it resists.
//
// Trust: the TPM keeps the private keys; this package trusts ak.json only as far as the TPM
// accepts the blob, and checks that the AK it describes is an attestation key. It assumes empty
// owner and endorsement hierarchy authorizations, as a provisioned-by-default TPM has. Commands
// and responses cross the bus in the clear (no parameter encryption), so someone on the bus
// can read the secret ActivateCredential returns; quotes are protected by their signature.
package tpmrot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/rampart-iot/rampart/enrollment"
	"github.com/rampart-iot/rampart/internal/rot"
)

// TPM is a root of trust in a TPM 2.0. It is safe for concurrent use: one mutex serializes its
// commands.
type TPM struct {
	dir string
	// firmwareLog is the kernel's copy of the firmware event log, "" if the TPM is not a
	// kernel TPM device (see FirmwareEventLog).
	firmwareLog string

	mu     sync.Mutex
	tpm    transport.TPM // wrapped by Retry
	closer transport.TPMCloser
	closed bool
	ek     *endorsement    // nil until first needed
	ak     *attestationKey // set by Open
}

// errClosed is returned by every method after Close.
var errClosed = errors.New("TPM root of trust: closed")

// Open returns the root of trust in the TPM behind t, which it owns and closes on Close. dir
// holds ak.json; Open creates the directory, and the AK on first use, and fails if ak.json holds
// an AK that this TPM cannot load (it belongs to another TPM, or this one was cleared).
func Open(ctx context.Context, t transport.TPMCloser, dir string) (*TPM, error) {
	if dir == "" {
		_ = t.Close()
		return nil, errors.New("the TPM root of trust needs a state directory")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		_ = t.Close()
		return nil, fmt.Errorf("TPM root of trust: %w", err)
	}
	r := &TPM{dir: dir, tpm: Retry(t), closer: t}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := ctx.Err(); err != nil {
		_ = t.Close()
		return nil, err
	}
	ak, err := r.loadOrCreateAK()
	if err != nil {
		_ = t.Close()
		return nil, err
	}
	r.ak = ak
	return r, nil
}

// Kind reports "tpm".
func (r *TPM) Kind() string { return enrollment.RootOfTrustTPM }

// lock takes the mutex and checks the context and that r is open.
func (r *TPM) lock(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return errClosed
	}
	return nil
}

// Endorsement returns the EK's public key and its certificate from NV, if the TPM holds one.
func (r *TPM) Endorsement(ctx context.Context) ([]byte, []byte, error) {
	if err := r.lock(ctx); err != nil {
		return nil, nil, err
	}
	defer r.mu.Unlock()
	ek, err := r.endorsementLocked()
	if err != nil {
		return nil, nil, err
	}
	return clone(ek.public), clone(ek.cert), nil
}

// AttestationKey returns the AK's TPMT_PUBLIC.
func (r *TPM) AttestationKey(ctx context.Context) ([]byte, error) {
	if err := r.lock(ctx); err != nil {
		return nil, err
	}
	defer r.mu.Unlock()
	return clone(r.ak.public), nil
}

// Close closes the transport. Nothing stays loaded in the TPM between operations.
func (r *TPM) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	return r.closer.Close()
}

// flush flushes a transient handle, ignoring errors: the handle is gone either way once the
// TPM restarts, and a failed flush must not hide the error that matters.
func (r *TPM) flush(h tpm2.TPMHandle) {
	_, _ = tpm2.FlushContext{FlushHandle: h}.Execute(r.tpm)
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

var _ rot.RootOfTrust = (*TPM)(nil)
