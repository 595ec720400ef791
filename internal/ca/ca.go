// Package ca is the security service's certificate authorities: the service root and each
// tenant's CA, their rotation, and the only code in Rampart that signs certificates. It signs
// what it is asked to sign and decides nothing about who deserves a certificate: the
// attestation verifier decides, then calls Issue. It does check the form of every request
// (key type, device and component IDs, lifetime bounds) and the chain of every device
// certificate presented to VerifyDevice.
//
// Private keys are sealed with AES-256-GCM under the key-encryption key (KEK) in Config before
// they reach the store, with the CA's ID as additional data; unsealed keys live only in memory.
// The root's key can be taken offline (ExportRoot) and brought back (ImportRoot).
//
// What it trusts: the store, for the integrity of each CA's record (its activation time and
// revocation); the KEK, for the confidentiality and integrity of private keys. Every tenant CA
// read from the store must verify against a stored root, and every unsealed key must match its
// certificate, or the CA is refused.
//
// Rotation follows Azure Sphere's tenant CA: a tenant CA lasts TenantLifetime; RotateBefore
// its expiry EnsureTenant makes a successor, which signs from ActivateAfter later. Relying
// parties trust Bundle, which holds both during the overlap.
package ca

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/rampart-iot/rampart/internal/ids"
	"github.com/rampart-iot/rampart/internal/keyseal"
	"github.com/rampart-iot/rampart/internal/store"
)

// Lifetimes and the rotation schedule.
const (
	// RootLifetime is the validity of the service root.
	RootLifetime = 10 * 365 * 24 * time.Hour
	// TenantLifetime is the validity of a tenant CA (two years, as Azure Sphere's).
	TenantLifetime = 730 * 24 * time.Hour
	// RotateBefore is how long before a tenant CA expires its successor is made.
	RotateBefore = 90 * 24 * time.Hour
	// ActivateAfter is how long after it is made a successor starts signing.
	ActivateAfter = 45 * 24 * time.Hour

	// DefaultLeafLifetime is the lifetime of a device certificate when the request names none.
	DefaultLeafLifetime = 24 * time.Hour
	// MinLeafLifetime and MaxLeafLifetime bound a requested lifetime.
	MinLeafLifetime = 5 * time.Minute
	MaxLeafLifetime = 7 * 24 * time.Hour
	// ProofLifetime is the validity of a proof-of-possession certificate.
	ProofLifetime = time.Hour

	// ClockSkew is how far every certificate's NotBefore is backdated, for devices and relying
	// parties whose clocks run behind.
	ClockSkew = 5 * time.Minute

	// RefreshInterval is the longest the Authority serves its in-memory copy of a tenant's CAs
	// without reading the store again; changes made through this Authority take effect at
	// once, changes made by another replica within this interval.
	RefreshInterval = 5 * time.Second
)

// Input limits.
const (
	// MaxMeasurementsSize bounds LeafRequest.Measurements, which every TLS handshake carries.
	MaxMeasurementsSize = 8 << 10
	// MaxVerificationCodeLen bounds a proof-of-possession verification code.
	MaxVerificationCodeLen = 64
	// MaxChainLen bounds the certificates VerifyDevice accepts.
	MaxChainLen = 4
)

// Errors. Each is wrapped with the CA or tenant it concerns; test with errors.Is.
var (
	// ErrRootOffline means the service root's private key is not in the store (see ExportRoot),
	// so no tenant CA can be made. Existing tenant CAs keep signing.
	ErrRootOffline = errors.New("the service root key is offline")
	// ErrNoRoot means there is no service root fit to sign a tenant CA: none exists, or every
	// one is revoked or expires within TenantLifetime. EnsureRoot makes one.
	ErrNoRoot = errors.New("no service root CA can sign a tenant CA")
	// ErrNoCA means the tenant has no CA that can sign now (EnsureTenant makes one).
	ErrNoCA = errors.New("tenant has no active certificate authority")
	// ErrInvalid means a request was malformed: the message says what is wrong.
	ErrInvalid = errors.New("invalid request")
	// ErrSealedKey means a sealed private key could not be opened: the key-encryption key is
	// wrong or the ciphertext was altered.
	ErrSealedKey = errors.New("sealed CA key cannot be opened (wrong key-encryption key or tampered ciphertext)")
	// ErrKeyMismatch means a private key does not belong to the certificate it was meant for.
	ErrKeyMismatch = errors.New("private key does not match the CA certificate")
	// ErrUntrusted means a device certificate was refused by VerifyDevice.
	ErrUntrusted = errors.New("device certificate not trusted")
	// ErrCorrupt means a CA record in the store is inconsistent: an unparsable certificate, or
	// a tenant CA no stored root signed.
	ErrCorrupt = errors.New("CA record is corrupt")
)

// Config configures an Authority. Store and KEK are required.
type Config struct {
	Store store.Store
	// KEK is the 32-byte AES-256-GCM key that seals every CA private key at rest. New copies
	// what it needs; losing it makes every sealed key unusable.
	KEK []byte
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Rand is the source of serial numbers, identifiers and sealing nonces; nil means
	// crypto/rand. (Since Go 1.26 key generation and ECDSA signing use crypto/rand whatever
	// reader they are given.)
	Rand io.Reader
}

// Authority is the service's certificate authorities. It is safe for concurrent use, and
// several Authorities (replicas) may share one store.
type Authority struct {
	store  store.Store
	sealer *keyseal.Sealer
	now    func() time.Time
	rand   io.Reader
	ids    *ids.Generator

	caches sync.Map // tenant ID ("" for the roots) -> *tenantCache
}

// New returns an Authority, or every problem with cfg at once.
func New(cfg Config) (*Authority, error) {
	var errs []error
	if cfg.Store == nil {
		errs = append(errs, errors.New("ca: Store is required"))
	}
	rnd := cfg.Rand
	if rnd == nil {
		rnd = rand.Reader
	}
	sealer, err := keyseal.New(cfg.KEK, rnd)
	if err != nil {
		errs = append(errs, fmt.Errorf("ca: KEK: %w", err))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	a := &Authority{store: cfg.Store, sealer: sealer, now: cfg.Now, rand: rnd}
	if a.now == nil {
		a.now = time.Now
	}
	a.ids = &ids.Generator{Now: a.now, Rand: a.rand}
	return a, nil
}

// Status is a CA certificate's state, as Azure Sphere shows it.
type Status string

// Statuses. A tenant has at most one Active CA: the newest whose ActiveFrom has passed. A
// successor waiting for its ActiveFrom, and a predecessor it replaced, are Inactive until
// they expire.
const (
	StatusActive   Status = "Active"
	StatusInactive Status = "Inactive"
	StatusExpired  Status = "Expired"
	StatusRevoked  Status = "Revoked"
)

// Info describes one CA certificate.
type Info struct {
	ID             string
	Cert           *x509.Certificate
	Status         Status
	ThumbprintSHA1 string // uppercase hex SHA-1 of the DER, as Azure Sphere shows it
	NotBefore      time.Time
	NotAfter       time.Time
	ActiveFrom     time.Time
	RevokedAt      time.Time // zero if not revoked
	KeyOffline     bool      // the private key is not in the store (the root, after ExportRoot)
}

// PEM encodes certificates as concatenated PEM "CERTIFICATE" blocks.
func PEM(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// clock returns the current time in UTC.
func (a *Authority) clock() time.Time { return a.now().UTC() }
