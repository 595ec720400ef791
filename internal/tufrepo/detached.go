package tufrepo

import (
	"crypto"
	"fmt"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Detached root signatures: NextRoot makes root N+1 unsigned, each root-key holder signs it
// where the key lives (SignRoot), and AcceptRoot takes it back with the signatures attached.
// The root keys never reach the service.

// RootRenewFraction: a root with less than 1/RootRenewFraction of the root lifetime left is
// due for renewal (a year's root: about three months before it expires). AcceptRoot refuses a
// root that would be due at once.
const RootRenewFraction = 4

// NextRoot returns root version N+1 of s listing roles, with no signatures and expiring a root
// lifetime after now: what root-key holders sign with SignRoot, for AcceptRoot.
func (o *Online) NextRoot(s *State, roles Roles, now time.Time) ([]byte, error) {
	now = now.UTC().Truncate(time.Second)
	return o.NextRootExpiring(s, roles, now.Add(o.Lifetimes.withDefaults().Root))
}

// NextRootExpiring is NextRoot with the expiry given (truncated to the second): the same root,
// byte for byte, that NextRoot made with that expiry.
func (o *Online) NextRootExpiring(s *State, roles Roles, expires time.Time) ([]byte, error) {
	r, err := s.parse()
	if err != nil {
		return nil, err
	}
	next := metadata.Root(expires.UTC().Truncate(time.Second))
	next.Signed.Version = r.root.Signed.Version + 1
	next.Signed.ConsistentSnapshot = r.root.Signed.ConsistentSnapshot
	if err := setRoles(&next.Signed, roles); err != nil {
		return nil, err
	}
	return next.ToBytes(false)
}

// SignRoot signs root metadata with key and returns the signature's TUF key ID and bytes (ASN.1
// DER ECDSA over SHA-256 of the canonical JSON of "signed"), detached: root is not changed.
func SignRoot(root []byte, key crypto.Signer) (keyID string, sig []byte, err error) {
	if len(root) > MaxRootSize {
		return "", nil, fmt.Errorf("%w: root metadata of %d bytes; at most %d", ErrState, len(root), MaxRootSize)
	}
	m, err := metadata.Root().FromBytes(root)
	if err != nil {
		return "", nil, fmt.Errorf("%w: root: %v", ErrState, err)
	}
	m.ClearSignatures()
	if err := sign(m, RoleRoot, []crypto.Signer{key}); err != nil {
		return "", nil, err
	}
	return m.Signatures[0].KeyID, m.Signatures[0].Signature, nil
}

// AcceptRoot appends root, version N+1 of s with its signatures attached, after checking it as
// a device will: a threshold of root N's root keys and a threshold of its own signed it (TUF
// 5.3.4), its version is N+1, its consistent_snapshot setting is unchanged and it has more than
// the renewal window (1/RootRenewFraction of the root lifetime) left at now: a root due for
// renewal at once would need its root keys again at once, and they may be offline. Then it re-signs targets, snapshot and timestamp (each version+1) with o,
// whose keys root must list for those roles. Signatures by keys neither root lists are
// ignored, as a device ignores them.
func (o *Online) AcceptRoot(s *State, root []byte, now time.Time) (*State, error) {
	now = now.UTC().Truncate(time.Second)
	lt := o.Lifetimes.withDefaults()
	if len(root) > MaxRootSize {
		return nil, fmt.Errorf("%w: root metadata of %d bytes; at most %d", ErrKeys, len(root), MaxRootSize)
	}
	r, err := s.parse()
	if err != nil {
		return nil, err
	}
	old := r.root
	next, err := metadata.Root().FromBytes(root)
	if err != nil {
		return nil, fmt.Errorf("%w: root: %v", ErrKeys, err)
	}
	switch {
	case next.Signed.Version != old.Signed.Version+1:
		return nil, fmt.Errorf("%w: root version %d; want %d", ErrKeys, next.Signed.Version, old.Signed.Version+1)
	case next.Signed.ConsistentSnapshot != old.Signed.ConsistentSnapshot:
		return nil, fmt.Errorf("%w: root version %d changes consistent_snapshot", ErrKeys, next.Signed.Version)
	case !next.Signed.Expires.After(now):
		return nil, fmt.Errorf("%w: root version %d expired at %s", ErrKeys, next.Signed.Version, next.Signed.Expires.Format(time.RFC3339))
	case next.Signed.Expires.Sub(now) <= lt.Root/RootRenewFraction:
		return nil, fmt.Errorf("%w: root version %d expires at %s, within the renewal window (%s before expiry) at once", ErrKeys,
			next.Signed.Version, next.Signed.Expires.UTC().Format(time.RFC3339), lt.Root/RootRenewFraction)
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
