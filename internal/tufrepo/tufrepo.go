// Package tufrepo makes the signed update metadata of one TUF repository (go-tuf v2's metadata
// package; TUF specification 1.0.31): the image repository of a tenant, whose targets role lists
// every image the tenant released, or the director repository of a device group, whose targets
// role lists exactly the group's current deployment (Uptane's split). It is pure logic: no
// storage and no HTTP. Every operation takes the current State, which the caller stored, and
// returns the next one, whose bytes the caller stores and serves (State.File).
//
// Keys: the root role's keys may be offline, so the operations that need them (Init,
// RotateRoot) take root signers explicitly; the online roles (targets, snapshot, timestamp)
// are signed with an Online, which is all Publish and Renew need. Keys are ECDSA P-256 behind
// crypto.Signer (TUF key type "ecdsa", scheme "ecdsa-sha2-nistp256", key IDs as go-tuf
// computes them). Every signature is checked against the root, threshold included, before a
// State is returned, so the package never hands out metadata a device would refuse.
//
// Trust: it trusts its caller, the State passed back to it and the signers; it checks the
// targets it is asked to publish against the bounds devices enforce.
package tufrepo

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Role names, as TUF spells them.
const (
	RoleRoot      = metadata.ROOT
	RoleTargets   = metadata.TARGETS
	RoleSnapshot  = metadata.SNAPSHOT
	RoleTimestamp = metadata.TIMESTAMP
)

// Bounds. Devices (internal/tufclient) refuse metadata files larger than these; Publish refuses
// to make them.
const (
	MaxRootSize      = 64 << 10 // bytes of one root.json
	MaxTimestampSize = 16 << 10 // bytes of timestamp.json
	MaxSnapshotSize  = 64 << 10 // bytes of snapshot.json
	MaxTargetsSize   = 4 << 20  // bytes of targets.json
	MaxTargets       = 4096     // targets in one targets.json
	MaxKeysPerRole   = 16       // keys the root lists for one role
	MaxTargetLength  = 5 << 30  // bytes of one target (an image package: at most 4 GiB payload plus envelope)
)

// Default lifetimes: each role's metadata expires this long after it is signed.
const (
	DefaultRootLifetime      = 365 * 24 * time.Hour
	DefaultTargetsLifetime   = 90 * 24 * time.Hour
	DefaultSnapshotLifetime  = 90 * 24 * time.Hour
	DefaultTimestampLifetime = 24 * time.Hour
)

// Errors, wrapped with details; match them with errors.Is.
var (
	// ErrKeys: a role's keys or threshold are unusable (wrong key type, duplicates, bad threshold).
	ErrKeys = errors.New("unusable role keys")
	// ErrThreshold: the signers given do not meet a role's threshold of the keys the root lists.
	ErrThreshold = errors.New("the signers do not meet the role's threshold")
	// ErrTarget: a target to publish is malformed or beyond the bounds.
	ErrTarget = errors.New("invalid target")
	// ErrState: the State passed in is not one this package made.
	ErrState = errors.New("invalid repository state")
)

// RoleKeys are the public keys the root lists for one role and how many of them must sign.
type RoleKeys struct {
	Keys      []crypto.PublicKey // ECDSA P-256, 1 to MaxKeysPerRole, distinct
	Threshold int                // 1 to len(Keys)
}

// Roles are the keys of all four top-level roles: what a root says.
type Roles struct {
	Root, Targets, Snapshot, Timestamp RoleKeys
}

// Lifetimes say how long each role's metadata is valid; a zero field takes its default.
type Lifetimes struct {
	Root, Targets, Snapshot, Timestamp time.Duration
}

func (l Lifetimes) withDefaults() Lifetimes {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&l.Root, DefaultRootLifetime)
	def(&l.Targets, DefaultTargetsLifetime)
	def(&l.Snapshot, DefaultSnapshotLifetime)
	def(&l.Timestamp, DefaultTimestampLifetime)
	return l
}

// Online signs the online roles. The service keeps these keys; Publish and Renew need nothing
// else. Each list must hold at least the role's threshold of the keys the current root lists
// for it.
type Online struct {
	Targets, Snapshot, Timestamp []crypto.Signer
	// Lifetimes of the metadata this Online signs (Root is used by Init and RotateRoot).
	Lifetimes Lifetimes
}

// Init makes a new repository: root version 1 (listing roles, signed by rootSigners), an empty
// targets version 1, snapshot version 1 and timestamp version 1, signed by o.
func (o *Online) Init(roles Roles, rootSigners []crypto.Signer, now time.Time) (*State, error) {
	now = now.UTC().Truncate(time.Second)
	lt := o.Lifetimes.withDefaults()
	root := metadata.Root(now.Add(lt.Root))
	if err := setRoles(&root.Signed, roles); err != nil {
		return nil, err
	}
	if err := sign(root, RoleRoot, rootSigners); err != nil {
		return nil, err
	}
	if err := root.VerifyDelegate(RoleRoot, root); err != nil {
		return nil, fmt.Errorf("%w: root: %v", ErrThreshold, err)
	}
	rootJSON, err := root.ToBytes(false)
	if err != nil {
		return nil, fmt.Errorf("root: %w", err)
	}
	targets := metadata.Targets(now.Add(lt.Targets))
	r := &repo{root: root, rootVersions: [][]byte{rootJSON}}
	if err := r.resign(o, targets, now); err != nil {
		return nil, err
	}
	return r.state(), nil
}

// RotateRoot makes root version N+1 listing roles, signed by a threshold of the current root's
// root keys (oldRootSigners) and a threshold of the new root keys (newRootSigners), as TUF's
// client workflow (5.3.4) requires; a key in both sets may be passed in both. Then it re-signs
// targets, snapshot and timestamp (each version+1) with o, whose keys must be those roles'
// keys in the new root: that is how an online key is rotated. Calling it with the current
// roles renews the root before it expires.
func (o *Online) RotateRoot(s *State, roles Roles, oldRootSigners, newRootSigners []crypto.Signer, now time.Time) (*State, error) {
	now = now.UTC().Truncate(time.Second)
	lt := o.Lifetimes.withDefaults()
	r, err := s.parse()
	if err != nil {
		return nil, err
	}
	old := r.root
	next := metadata.Root(now.Add(lt.Root))
	next.Signed.Version = old.Signed.Version + 1
	next.Signed.ConsistentSnapshot = old.Signed.ConsistentSnapshot
	if err := setRoles(&next.Signed, roles); err != nil {
		return nil, err
	}
	if err := sign(next, RoleRoot, append(append([]crypto.Signer{}, oldRootSigners...), newRootSigners...)); err != nil {
		return nil, err
	}
	if err := old.VerifyDelegate(RoleRoot, next); err != nil {
		return nil, fmt.Errorf("%w: root version %d is not signed by a threshold of version %d's root keys: %v", ErrThreshold, next.Signed.Version, old.Signed.Version, err)
	}
	if err := next.VerifyDelegate(RoleRoot, next); err != nil {
		return nil, fmt.Errorf("%w: root version %d is not signed by a threshold of its own root keys: %v", ErrThreshold, next.Signed.Version, err)
	}
	rootJSON, err := next.ToBytes(false)
	if err != nil {
		return nil, fmt.Errorf("root: %w", err)
	}
	r.root = next
	r.rootVersions = append(r.rootVersions, rootJSON)
	t := r.targets
	t.Signed.Version++
	t.Signed.Expires = now.Add(lt.Targets)
	if err := r.resign(o, t, now); err != nil {
		return nil, err
	}
	return r.state(), nil
}

// setRoles fills root's keys and roles from roles.
func setRoles(root *metadata.RootType, roles Roles) error {
	for _, rk := range []struct {
		name string
		keys RoleKeys
	}{{RoleRoot, roles.Root}, {RoleTargets, roles.Targets}, {RoleSnapshot, roles.Snapshot}, {RoleTimestamp, roles.Timestamp}} {
		n := len(rk.keys.Keys)
		if n == 0 || n > MaxKeysPerRole {
			return fmt.Errorf("%w: the %s role has %d keys; want 1 to %d", ErrKeys, rk.name, n, MaxKeysPerRole)
		}
		if rk.keys.Threshold < 1 || rk.keys.Threshold > n {
			return fmt.Errorf("%w: the %s role's threshold is %d; want 1 to its %d keys", ErrKeys, rk.name, rk.keys.Threshold, n)
		}
		root.Roles[rk.name] = &metadata.Role{KeyIDs: []string{}, Threshold: rk.keys.Threshold}
		for i, pub := range rk.keys.Keys {
			k, id, err := tufKey(pub)
			if err != nil {
				return fmt.Errorf("%w: the %s role's key %d: %v", ErrKeys, rk.name, i, err)
			}
			for _, have := range root.Roles[rk.name].KeyIDs {
				if have == id {
					return fmt.Errorf("%w: the %s role lists key %s twice", ErrKeys, rk.name, id)
				}
			}
			if err := root.AddKey(k, rk.name); err != nil {
				return fmt.Errorf("%w: the %s role: %v", ErrKeys, rk.name, err)
			}
		}
	}
	return nil
}

// tufKey converts an ECDSA P-256 public key to a TUF key and its ID.
func tufKey(pub crypto.PublicKey) (*metadata.Key, string, error) {
	ec, ok := pub.(*ecdsa.PublicKey)
	if !ok || ec.Curve != elliptic.P256() {
		return nil, "", fmt.Errorf("is a %T; want an ECDSA P-256 public key", pub)
	}
	k, err := metadata.KeyFromPublicKey(ec)
	if err != nil {
		return nil, "", err
	}
	id, err := k.ID()
	if err != nil {
		return nil, "", err
	}
	return k, id, nil
}

// KeyID returns the TUF key ID of an ECDSA P-256 public key.
func KeyID(pub crypto.PublicKey) (string, error) {
	_, id, err := tufKey(pub)
	return id, err
}

// sign signs m with each distinct signer; a signer whose key appears twice signs once.
func sign[T metadata.Roles](m *metadata.Metadata[T], role string, signers []crypto.Signer) error {
	if len(signers) == 0 {
		return fmt.Errorf("%w: no signers given for the %s role", ErrThreshold, role)
	}
	seen := map[string]bool{}
	for i, s := range signers {
		id, err := KeyID(s.Public())
		if err != nil {
			return fmt.Errorf("%w: the %s role's signer %d: %v", ErrKeys, role, i, err)
		}
		if seen[id] {
			continue
		}
		seen[id] = true
		if _, err := m.Sign(signerAdapter{s}); err != nil {
			return fmt.Errorf("signing %s with key %s: %w", role, id, err)
		}
	}
	return nil
}

// signerAdapter makes a crypto.Signer a sigstore signature.Signer, which go-tuf signs with:
// ECDSA over SHA-256 of the message, ASN.1 DER encoded (TUF's ecdsa-sha2-nistp256).
type signerAdapter struct{ s crypto.Signer }

func (a signerAdapter) PublicKey(...signature.PublicKeyOption) (crypto.PublicKey, error) {
	return a.s.Public(), nil
}

func (a signerAdapter) SignMessage(message io.Reader, _ ...signature.SignOption) ([]byte, error) {
	msg, err := io.ReadAll(message)
	if err != nil {
		return nil, err
	}
	digest := sha256.Sum256(msg)
	// A key in memory signs deterministically (RFC 6979) when given no randomness, so the
	// same inputs make the same metadata; other signers (HSM, KMS) get crypto/rand.
	var random io.Reader = rand.Reader
	if _, ok := a.s.(*ecdsa.PrivateKey); ok {
		random = nil
	}
	return a.s.Sign(random, digest[:], crypto.SHA256)
}
