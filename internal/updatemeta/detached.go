package updatemeta

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/cjson"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/rampart-iot/rampart/imagepkg"
	"github.com/rampart-iot/rampart/internal/store"
	"github.com/rampart-iot/rampart/internal/tufrepo"
)

// Detached root signatures: a rotation whose root keys, old and new, never reach the service.
// PrepareRotation returns root N+1 of every repository, unsigned, listing new keys whose
// holders made them and gave only the public halves; each holder of an old or new key signs
// those roots where the key lives (tufrepo.SignRoot); CompleteRotation takes the roots and the
// signatures back, checks them as a device will, and publishes. Nothing is stored in between:
// if a repository changed its root meanwhile (or a group got its first repository), the
// prepared roots no longer fit and the rotation must be prepared again.

// MaxRotationRoots bounds the roots of one prepared rotation (one per repository: the image
// repository and two per device group). A completion at the bound, in the worst case (8 old and
// 8 new root keys each signing every root, group repository names), is about 6.8 MB: it fits
// MaxCompleteRequestBytes with about a fifth to spare (internal/cli.TestDetachedRotationFitsAtMaxRoots).
// A tenant with more repositories rotates with 'rotate-root --root-key' instead.
const MaxRotationRoots = 768

// MaxCompleteRequestBytes is the size limit of a completion request (the route's limit in
// internal/httpapi; keep them equal).
const MaxCompleteRequestBytes = 8 << 20

// ErrPrepared means prepared roots or signatures do not fit the tenant's repositories as they
// are now (another rotation or a new repository came in between): prepare again.
var ErrPrepared = errors.New("the prepared rotation does not fit the tenant's repositories")

// ErrKeyTaken means a new root key cannot become one of the tenant's root keys: it is one of
// the tenant's revoked root keys, its key for another purpose, or another tenant's key.
var ErrKeyTaken = errors.New("the key cannot become one of the tenant's root keys")

// ErrBadSignature means a detached signature does not verify with the key it names.
var ErrBadSignature = errors.New("a root signature does not verify")

// PreparedRoot is one repository's root N+1, unsigned as PrepareRotation made it.
type PreparedRoot struct {
	Repository string
	Root       []byte
}

// RootSignature is a detached signature over one repository's prepared root.
type RootSignature struct {
	Repository string
	KeyID      string // the TUF key ID (root.json's keyids)
	Signature  []byte // ASN.1 DER ECDSA over SHA-256 of the canonical JSON of "signed"
}

// PrepareRotation returns, for every repository of the tenant, root version N+1 listing
// newKeys (ECDSA P-256 public keys, 1 to MaxRootKeys, distinct) with threshold, and the
// repository's current online key; unsigned, expiring a root lifetime from now. A new key that
// is one of the tenant's revoked root keys or its key for another purpose is refused
// (ErrKeyTaken; see checkNewRootKeys). It changes nothing but may make a repository's missing
// online key.
func (s *Service) PrepareRotation(ctx context.Context, tx store.Tx, tenantID string, newKeys []crypto.PublicKey, threshold int) ([]PreparedRoot, error) {
	if len(newKeys) < 1 || len(newKeys) > MaxRootKeys || threshold < 1 || threshold > len(newKeys) {
		return nil, fmt.Errorf("%w: %d new keys with threshold %d; want 1 to %d keys and a threshold from 1 to their number", ErrBadThreshold, len(newKeys), threshold, MaxRootKeys)
	}
	for i, k := range newKeys {
		if pub, ok := k.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
			return nil, fmt.Errorf("%w: new key %d is not an ECDSA P-256 public key", ErrBadKey, i+1)
		}
	}
	repos, err := s.repositories(ctx, tx, tenantID)
	if err != nil {
		return nil, err
	}
	if len(repos) == 0 {
		return nil, fmt.Errorf("the tenant has no update metadata yet (upload an image first): %w", store.ErrNotFound)
	}
	if len(repos) > MaxRotationRoots {
		return nil, fmt.Errorf("%w: the tenant has %d repositories; a rotation with detached signatures covers at most %d (rotate with 'rampart keys rotate-root --root-key' instead)",
			ErrBadThreshold, len(repos), MaxRotationRoots)
	}
	set, err := s.roots(ctx, tx, tenantID, nil, false)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, k := range newKeys {
		id, err := imagepkg.KeyID(k)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
		}
		ids = append(ids, id)
	}
	if err := s.checkNewRootKeys(ctx, tx, tenantID, repos, set, ids); err != nil {
		return nil, err
	}
	role := tufrepo.RoleKeys{Keys: newKeys, Threshold: threshold}
	var out []PreparedRoot
	for _, repo := range repos {
		cur, err := load(ctx, tx, tenantID, repo)
		if err != nil {
			return nil, err
		}
		online, err := s.online(ctx, tx, tenantID, repo)
		if err != nil {
			return nil, err
		}
		one := tufrepo.RoleKeys{Keys: []crypto.PublicKey{online.Targets[0].Public()}, Threshold: 1}
		b, err := online.NextRoot(cur, tufrepo.Roles{Root: role, Targets: one, Snapshot: one, Timestamp: one}, s.now())
		if errors.Is(err, tufrepo.ErrKeys) {
			return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
		}
		if err != nil {
			return nil, fmt.Errorf("preparing the root of %s: %w", repo, err)
		}
		out = append(out, PreparedRoot{Repository: repo, Root: b})
	}
	return out, nil
}

// CompleteRotation publishes prepared roots with their detached signatures, within tx. Each
// root must be the next version of its repository, list the same root keys and threshold as the
// others and the repository's current online key for targets, snapshot and timestamp, and
// every repository must have one (ErrPrepared otherwise). Each signature must be by a key the
// repository's current or prepared root lists for the root role (ErrNotRootKey) and verify
// (ErrBadSignature); a key's second signature counts once. Current root keys the service holds
// online sign too. Each root needs a threshold of the current and of its own root keys
// (ErrBelowThreshold, naming how many signed and were needed; nothing changes). Then the old
// root keys the new roots do not list are revoked and the new ones recorded, offline (public
// halves only); a key in both stays as it was (so the same keys renew a root).
func (s *Service) CompleteRotation(ctx context.Context, tx store.Tx, tenantID string, roots []PreparedRoot, sigs []RootSignature) (Rotation, error) {
	if len(roots) > MaxRotationRoots {
		return Rotation{}, fmt.Errorf("%w: %d roots; at most %d", ErrPrepared, len(roots), MaxRotationRoots)
	}
	set, err := s.roots(ctx, tx, tenantID, nil, false)
	if err != nil {
		return Rotation{}, err
	}
	onlineByTUF := map[string]crypto.Signer{}
	for _, k := range set.signers {
		id, err := tufrepo.KeyID(&k.PublicKey)
		if err != nil {
			return Rotation{}, err
		}
		onlineByTUF[id] = k
	}
	repos, err := s.repositories(ctx, tx, tenantID)
	if err != nil {
		return Rotation{}, err
	}
	byRepo := map[string][]byte{}
	for _, r := range roots {
		if _, dup := byRepo[r.Repository]; dup || !slices.Contains(repos, r.Repository) {
			return Rotation{}, fmt.Errorf("%w: repository %q is not one of the tenant's, or is given twice: prepare again: %w", ErrPrepared, r.Repository, store.ErrConflict)
		}
		byRepo[r.Repository] = r.Root
	}
	if len(byRepo) != len(repos) {
		return Rotation{}, fmt.Errorf("%w: %d of the tenant's %d repositories prepared: prepare again: %w", ErrPrepared, len(byRepo), len(repos), store.ErrConflict)
	}
	for _, sig := range sigs {
		if _, ok := byRepo[sig.Repository]; !ok {
			return Rotation{}, fmt.Errorf("%w: a signature over repository %q, which is not prepared", ErrPrepared, sig.Repository)
		}
	}
	rot := Rotation{OldKeyIDs: set.ids(), OldThreshold: set.threshold}
	var newPubs []crypto.PublicKey
	var newRole *metadata.Role
	now := s.now()
	type checked struct {
		cur    *tufrepo.State
		online *tufrepo.Online
		root   []byte // signed
	}
	var ready []checked
	oldSigners, newSigners := map[string]bool{}, map[string]bool{} // signing-key IDs
	for _, repo := range repos {
		cur, err := load(ctx, tx, tenantID, repo)
		if err != nil {
			return Rotation{}, err
		}
		online, err := s.online(ctx, tx, tenantID, repo)
		if err != nil {
			return Rotation{}, err
		}
		oldRoot, err := metadata.Root().FromBytes(cur.Roots[len(cur.Roots)-1])
		if err != nil {
			return Rotation{}, err
		}
		next, err := s.checkPrepared(repo, byRepo[repo], oldRoot, online.Targets[0].Public())
		if err != nil {
			return Rotation{}, err
		}
		if err := s.checkRebuilt(repo, next, cur, online); err != nil {
			return Rotation{}, err
		}
		role := next.Signed.Roles[tufrepo.RoleRoot]
		if newRole == nil {
			newRole = role
			for _, id := range role.KeyIDs {
				pub, err := next.Signed.Keys[id].ToPublicKey()
				if err != nil {
					return Rotation{}, fmt.Errorf("%w: key %s: %v", ErrBadKey, id, err)
				}
				newPubs = append(newPubs, pub)
			}
		} else if newRole.Threshold != role.Threshold || !slices.Equal(newRole.KeyIDs, role.KeyIDs) {
			return Rotation{}, fmt.Errorf("%w: the roots of %s and %s list different root keys: %w", ErrPrepared, repos[0], repo, store.ErrConflict)
		}
		oldBy, newBy, err := attachSignatures(repo, next, oldRoot, sigs, onlineByTUF)
		if err != nil {
			return Rotation{}, err
		}
		for _, id := range oldBy {
			oldSigners[id] = true
		}
		for _, id := range newBy {
			newSigners[id] = true
		}
		b, err := next.ToBytes(false)
		if err != nil {
			return Rotation{}, err
		}
		ready = append(ready, checked{cur, online, b})
	}
	rot.Threshold = newRole.Threshold
	rot.OldSignerIDs = slices.Sorted(maps.Keys(oldSigners))
	rot.NewSignerIDs = slices.Sorted(maps.Keys(newSigners))
	// Before anything is published: every new key must be free to become this tenant's root key.
	revoked := now.UTC().Truncate(time.Microsecond)
	keep := map[string]bool{}
	for _, pub := range newPubs {
		id, err := imagepkg.KeyID(pub)
		if err != nil {
			return Rotation{}, err
		}
		rot.NewKeyIDs = append(rot.NewKeyIDs, id)
		keep[id] = true
	}
	if err := s.checkNewRootKeys(ctx, tx, tenantID, repos, set, rot.NewKeyIDs); err != nil {
		return Rotation{}, err
	}
	// Keys in both the current and the new root (a renewal, or a partial change) stay as they are.
	for _, rec := range set.recs {
		if keep[rec.ID] {
			continue
		}
		rec.KeyCiphertext, rec.RevokedAt = nil, revoked
		if err := tx.UpdateSigningKey(ctx, rec); err != nil {
			return Rotation{}, fmt.Errorf("revoking root key %s: %w", rec.ID, err)
		}
	}
	for i, pub := range newPubs {
		if set.current(rot.NewKeyIDs[i]) {
			continue
		}
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return Rotation{}, err
		}
		err = tx.CreateSigningKey(ctx, store.SigningKey{ID: rot.NewKeyIDs[i], TenantID: tenantID, Purpose: KeyRoot, PublicDER: der, CreatedAt: revoked})
		if errors.Is(err, store.ErrConflict) {
			// Not one of this tenant's (checkNewRootKeys looked): another tenant's; say not whose.
			return Rotation{}, fmt.Errorf("%w: new root key %s is already in use elsewhere; make a new key with 'rampart keys root-keygen'", ErrKeyTaken, rot.NewKeyIDs[i])
		}
		if err != nil {
			return Rotation{}, fmt.Errorf("recording root key %s: %w", rot.NewKeyIDs[i], err)
		}
	}
	for i, repo := range repos {
		st, err := ready[i].online.AcceptRoot(ready[i].cur, ready[i].root, now)
		if err != nil {
			return Rotation{}, fmt.Errorf("rotating the root of %s: %w", repo, err)
		}
		if err := save(ctx, tx, tenantID, repo, ready[i].cur, st, now); err != nil {
			return Rotation{}, err
		}
		rot.Repositories = append(rot.Repositories, repo)
		rot.RootVersions = append(rot.RootVersions, int64(len(st.Roots)))
	}
	return rot, nil
}

// checkNewRootKeys refuses (ErrKeyTaken) new root key IDs (imagepkg.KeyID) that cannot become the
// tenant's root keys: one of the tenant's revoked root keys, or one of its keys for another
// purpose (a repository's online key, now or before, or an image-signing key). Keys already
// current root keys pass. A key of another tenant is found only when it is recorded (the
// store's key IDs are unique across tenants), and refused then without saying whose.
func (s *Service) checkNewRootKeys(ctx context.Context, tx store.Tx, tenantID string, repos []string, set *rootSet, ids []string) error {
	purposes := []string{KeyRoot, store.KeyImageSigning}
	seen := map[string]bool{}
	for _, repo := range repos {
		p := KeyOnlinePrefix + strings.TrimSuffix(repo, heldSuffix)
		if !seen[p] {
			seen[p] = true
			purposes = append(purposes, p)
		}
	}
	known := map[string]store.SigningKey{}
	for _, p := range purposes {
		keys, err := tx.ListSigningKeys(ctx, tenantID, p)
		if err != nil {
			return err
		}
		for _, k := range keys {
			known[k.ID] = k
		}
	}
	for _, id := range ids {
		k, ok := known[id]
		switch {
		case !ok || set.current(id):
		case k.Purpose == KeyRoot:
			return fmt.Errorf("%w: new root key %s is a revoked root key of this tenant; a revoked key cannot return: make a new key", ErrKeyTaken, id)
		case strings.HasPrefix(k.Purpose, KeyOnlinePrefix):
			return fmt.Errorf("%w: new root key %s is (or was) the online key of %s; a root key must be a key of its own", ErrKeyTaken, id, strings.TrimPrefix(k.Purpose, KeyOnlinePrefix))
		default:
			return fmt.Errorf("%w: new root key %s is this tenant's %s key; a root key must be a key of its own", ErrKeyTaken, id, k.Purpose)
		}
	}
	return nil
}

// checkPrepared parses a prepared root (signatures dropped) and checks that it is the next
// version after old, that it expires no later than a root lifetime from now (as prepared) and
// later than the renewal window plus RootCompleteMargin from now, that its root role is 1 to
// MaxRootKeys ECDSA P-256 keys with a usable threshold, and that it lists exactly the
// repository's online key, threshold 1, for the online roles.
func (s *Service) checkPrepared(repo string, b []byte, old *metadata.Metadata[metadata.RootType], onlinePub crypto.PublicKey) (*metadata.Metadata[metadata.RootType], error) {
	if len(b) > tufrepo.MaxRootSize {
		return nil, fmt.Errorf("%w: the root of %s is %d bytes; at most %d", ErrPrepared, repo, len(b), tufrepo.MaxRootSize)
	}
	next, err := metadata.Root().FromBytes(b)
	if err != nil {
		return nil, fmt.Errorf("%w: the root of %s: %v", ErrPrepared, repo, err)
	}
	next.ClearSignatures()
	if next.Signed.Version != old.Signed.Version+1 {
		return nil, fmt.Errorf("%w: the root of %s is version %d, the repository is at %d: prepare again: %w", ErrPrepared, repo, next.Signed.Version, old.Signed.Version, store.ErrConflict)
	}
	lifetime := s.lifetimesWithDefaults().Root
	if latest := s.now().Add(lifetime); next.Signed.Expires.After(latest) {
		return nil, fmt.Errorf("%w: the root of %s expires at %s, later than a root lifetime from now (%s)", ErrPrepared, repo,
			next.Signed.Expires.UTC().Format(time.RFC3339), latest.UTC().Format(time.RFC3339))
	}
	if earliest := s.now().Add(lifetime/RootRenewFraction + lifetime/RootCompleteMargin); !next.Signed.Expires.After(earliest) {
		return nil, fmt.Errorf("%w: the root of %s expires at %s, not later than the renewal window (%s) and a margin (%s) from now (%s): prepare again", ErrPrepared, repo,
			next.Signed.Expires.UTC().Format(time.RFC3339), lifetime/RootRenewFraction, lifetime/RootCompleteMargin, earliest.UTC().Format(time.RFC3339))
	}
	onlineID, err := tufrepo.KeyID(onlinePub)
	if err != nil {
		return nil, err
	}
	for _, name := range []string{tufrepo.RoleTargets, tufrepo.RoleSnapshot, tufrepo.RoleTimestamp} {
		r := next.Signed.Roles[name]
		if r == nil || r.Threshold != 1 || !slices.Equal(r.KeyIDs, []string{onlineID}) {
			return nil, fmt.Errorf("%w: the root of %s does not list the repository's online key for %s: prepare again: %w", ErrPrepared, repo, name, store.ErrConflict)
		}
	}
	role := next.Signed.Roles[tufrepo.RoleRoot]
	if role == nil || len(role.KeyIDs) < 1 || len(role.KeyIDs) > MaxRootKeys || role.Threshold < 1 || role.Threshold > len(role.KeyIDs) {
		return nil, fmt.Errorf("%w: the root of %s: want 1 to %d root keys and a threshold from 1 to their number", ErrBadThreshold, repo, MaxRootKeys)
	}
	for _, id := range role.KeyIDs {
		k := next.Signed.Keys[id]
		if k == nil || k.Type != metadata.KeyTypeECDSA_SHA2_P256 || k.Scheme != metadata.KeySchemeECDSA_SHA2_P256 {
			return nil, fmt.Errorf("%w: the root of %s lists root key %s, not an ECDSA P-256 key", ErrBadKey, repo, id)
		}
		pub, err := k.ToPublicKey()
		if err != nil {
			return nil, fmt.Errorf("%w: the root of %s, key %s: %v", ErrBadKey, repo, id, err)
		}
		if e, ok := pub.(*ecdsa.PublicKey); !ok || e.Curve != elliptic.P256() {
			return nil, fmt.Errorf("%w: the root of %s lists root key %s, not an ECDSA P-256 key", ErrBadKey, repo, id)
		}
		if got, err := tufrepo.KeyID(pub); err != nil || got != id {
			return nil, fmt.Errorf("%w: the root of %s lists key %s under another ID", ErrBadKey, repo, id)
		}
	}
	return next, nil
}

// RootCompleteMargin: a prepared root must have more than the renewal window and
// 1/RootCompleteMargin of the root lifetime left when its rotation completes (a year's root:
// about 91 and 45 days), so a rotation must complete within about seven months of being
// prepared, and the root it publishes is not due for renewal for over a month.
const RootCompleteMargin = 8

// checkRebuilt makes the root PrepareRotation makes for repo now, with next's root keys (in
// its order), threshold and expiry, and refuses next unless its canonical "signed" is that
// root's byte for byte (ErrPrepared, naming the fields that differ): no extra role, key or
// field, the same spec_version, version and consistent_snapshot.
func (s *Service) checkRebuilt(repo string, next *metadata.Metadata[metadata.RootType], cur *tufrepo.State, online *tufrepo.Online) error {
	role := next.Signed.Roles[tufrepo.RoleRoot]
	var pubs []crypto.PublicKey
	for _, id := range role.KeyIDs {
		pub, err := next.Signed.Keys[id].ToPublicKey()
		if err != nil {
			return fmt.Errorf("%w: the root of %s, key %s: %v", ErrBadKey, repo, id, err)
		}
		pubs = append(pubs, pub)
	}
	one := tufrepo.RoleKeys{Keys: []crypto.PublicKey{online.Targets[0].Public()}, Threshold: 1}
	roles := tufrepo.Roles{Root: tufrepo.RoleKeys{Keys: pubs, Threshold: role.Threshold}, Targets: one, Snapshot: one, Timestamp: one}
	wantB, err := online.NextRootExpiring(cur, roles, next.Signed.Expires)
	if errors.Is(err, tufrepo.ErrKeys) {
		return fmt.Errorf("%w: the root of %s: %v", ErrBadKey, repo, err)
	}
	if err != nil {
		return fmt.Errorf("rebuilding the root of %s: %w", repo, err)
	}
	want, err := metadata.Root().FromBytes(wantB)
	if err != nil {
		return err
	}
	got, err := cjson.EncodeCanonical(next.Signed)
	if err != nil {
		return fmt.Errorf("%w: the root of %s: %v", ErrPrepared, repo, err)
	}
	exp, err := cjson.EncodeCanonical(want.Signed)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, exp) {
		// Canonical JSON leaves control characters unescaped: compare plain JSON to name fields.
		a, errA := json.Marshal(next.Signed)
		b, errB := json.Marshal(want.Signed)
		differ := []string{"signed"}
		if errA == nil && errB == nil {
			differ = diffJSON(a, b)
		}
		return fmt.Errorf("%w: the root of %s is not the root the service prepares (%s differ): prepare again", ErrPrepared, repo, strings.Join(differ, ", "))
	}
	return nil
}

// diffJSON names the members of two JSON objects that differ: top-level members by name, and
// members of "roles" and "keys" as roles.NAME and keys.ID.
func diffJSON(a, b []byte) []string {
	var ma, mb map[string]any
	if json.Unmarshal(a, &ma) != nil || json.Unmarshal(b, &mb) != nil {
		return []string{"signed"}
	}
	var out []string
	for _, k := range unionKeys(ma, mb) {
		if reflect.DeepEqual(ma[k], mb[k]) {
			continue
		}
		sa, okA := ma[k].(map[string]any)
		sb, okB := mb[k].(map[string]any)
		if (k == "roles" || k == "keys") && okA && okB {
			for _, kk := range unionKeys(sa, sb) {
				if !reflect.DeepEqual(sa[kk], sb[kk]) {
					out = append(out, k+"."+kk)
				}
			}
			continue
		}
		out = append(out, k)
	}
	if len(out) == 0 {
		out = []string{"signed"}
	}
	return out
}

func unionKeys(a, b map[string]any) []string {
	var out []string
	for k := range a {
		out = append(out, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// attachSignatures attaches to next the signatures over repo's root, and signatures by the
// old root keys the service holds, after checking each; it fails with ErrBelowThreshold unless
// a threshold of old's and of next's root keys signed. It returns the signing-key IDs
// (imagepkg.KeyID) of old's and of next's root keys that signed.
func attachSignatures(repo string, next, old *metadata.Metadata[metadata.RootType], sigs []RootSignature, online map[string]crypto.Signer) (oldBy, newBy []string, err error) {
	oldRole, newRole := old.Signed.Roles[tufrepo.RoleRoot], next.Signed.Roles[tufrepo.RoleRoot]
	key := func(id string) *metadata.Key {
		if slices.Contains(newRole.KeyIDs, id) {
			return next.Signed.Keys[id]
		}
		if slices.Contains(oldRole.KeyIDs, id) {
			return old.Signed.Keys[id]
		}
		return nil
	}
	signed := map[string]bool{}
	for _, sig := range sigs {
		if sig.Repository != repo || signed[sig.KeyID] {
			continue
		}
		k := key(sig.KeyID)
		if k == nil {
			return nil, nil, fmt.Errorf("a signature over the root of %s by key %s, which is %w and not one of the new", repo, sig.KeyID, ErrNotRootKey)
		}
		probe := &metadata.Metadata[metadata.RootType]{Signed: next.Signed, Signatures: []metadata.Signature{{KeyID: sig.KeyID, Signature: sig.Signature}}}
		probeRole := &metadata.Metadata[metadata.RootType]{Signed: metadata.RootType{Keys: map[string]*metadata.Key{sig.KeyID: k},
			Roles: map[string]*metadata.Role{tufrepo.RoleRoot: {KeyIDs: []string{sig.KeyID}, Threshold: 1}}}}
		if err := probeRole.VerifyDelegate(tufrepo.RoleRoot, probe); err != nil {
			return nil, nil, fmt.Errorf("%w: key %s over the root of %s", ErrBadSignature, sig.KeyID, repo)
		}
		next.Signatures = append(next.Signatures, metadata.Signature{KeyID: sig.KeyID, Signature: sig.Signature})
		signed[sig.KeyID] = true
	}
	for _, id := range oldRole.KeyIDs {
		if k, ok := online[id]; ok && !signed[id] {
			b, err := next.ToBytes(false)
			if err != nil {
				return nil, nil, err
			}
			_, sig, err := tufrepo.SignRoot(b, k)
			if err != nil {
				return nil, nil, err
			}
			next.Signatures = append(next.Signatures, metadata.Signature{KeyID: id, Signature: sig})
			signed[id] = true
		}
	}
	count := func(ids []string) int {
		n := 0
		for _, id := range ids {
			if signed[id] {
				n++
			}
		}
		return n
	}
	oldN, newN := count(oldRole.KeyIDs), count(newRole.KeyIDs)
	if oldN < oldRole.Threshold || newN < newRole.Threshold {
		return nil, nil, fmt.Errorf("%w: the root of %s is signed by %d of the current %d root keys (%d needed) and %d of its %d new keys (%d needed): %w",
			ErrBelowThreshold, repo, oldN, len(oldRole.KeyIDs), oldRole.Threshold, newN, len(newRole.KeyIDs), newRole.Threshold, store.ErrConflict)
	}
	signedBy := func(root *metadata.Metadata[metadata.RootType], ids []string) ([]string, error) {
		var out []string
		for _, id := range ids {
			if !signed[id] {
				continue
			}
			pub, err := root.Signed.Keys[id].ToPublicKey()
			if err != nil {
				return nil, fmt.Errorf("%w: key %s: %v", ErrBadKey, id, err)
			}
			kid, err := imagepkg.KeyID(pub)
			if err != nil {
				return nil, err
			}
			out = append(out, kid)
		}
		return out, nil
	}
	if oldBy, err = signedBy(old, oldRole.KeyIDs); err != nil {
		return nil, nil, err
	}
	if newBy, err = signedBy(next, newRole.KeyIDs); err != nil {
		return nil, nil, err
	}
	return oldBy, newBy, nil
}

// MaxSignatureHex bounds a detached signature in hex (an ECDSA P-256 signature in DER is at
// most 72 bytes).
const MaxSignatureHex = 2 * 80

// ParseRootSignature checks and decodes a detached signature as a request or a signature file
// carries it: a repository name of at most 200 bytes, a TUF key ID of 64 lower-case hex digits,
// and the signature in lower-case hex, at most MaxSignatureHex digits.
func ParseRootSignature(repository, keyID, sigHex string) (RootSignature, error) {
	if repository == "" || len(repository) > 200 {
		return RootSignature{}, fmt.Errorf("%w: repository name of %d bytes", ErrBadSignature, len(repository))
	}
	if len(keyID) != 64 || !lowerHex(keyID) {
		return RootSignature{}, fmt.Errorf("%w: key ID %.80q is not 64 lower-case hex digits", ErrBadSignature, keyID)
	}
	if len(sigHex) == 0 || len(sigHex) > MaxSignatureHex || len(sigHex)%2 != 0 || !lowerHex(sigHex) {
		return RootSignature{}, fmt.Errorf("%w: the signature by %s is not 2 to %d lower-case hex digits", ErrBadSignature, keyID, MaxSignatureHex)
	}
	sig, err := hex.DecodeString(sigHex)
	if err != nil {
		return RootSignature{}, fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	return RootSignature{Repository: repository, KeyID: keyID, Signature: sig}, nil
}

func lowerHex(s string) bool {
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// MaxPublicKeyPEM bounds a public key given in PEM.
const MaxPublicKeyPEM = 4 << 10

// ParsePublicKey parses a new root key's public half: exactly one "PUBLIC KEY" PEM block
// (PKIX) without headers, nothing but white space around it, at most MaxPublicKeyPEM bytes,
// an ECDSA P-256 key.
func ParsePublicKey(b []byte) (*ecdsa.PublicKey, error) {
	if len(b) > MaxPublicKeyPEM {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrBadKey, len(b), MaxPublicKeyPEM)
	}
	trimmed := bytes.TrimSpace(b)
	blk, rest := pem.Decode(trimmed)
	if blk == nil || blk.Type != "PUBLIC KEY" || len(blk.Headers) != 0 || len(bytes.TrimSpace(rest)) != 0 ||
		!bytes.HasPrefix(trimmed, []byte("-----BEGIN PUBLIC KEY-----")) || bytes.Count(trimmed, []byte("-----BEGIN")) != 1 {
		return nil, fmt.Errorf("%w: not exactly one PEM 'PUBLIC KEY' block", ErrBadKey)
	}
	pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	k, ok := pub.(*ecdsa.PublicKey)
	if !ok || k.Curve != elliptic.P256() {
		return nil, fmt.Errorf("%w: not an ECDSA P-256 public key", ErrBadKey)
	}
	return k, nil
}
