package updatemeta

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rampart-iot/rampart/imagepkg"
	"github.com/rampart-iot/rampart/internal/store"
	"github.com/rampart-iot/rampart/internal/tufrepo"
)

// RotateOptions say how RotateRoot rotates.
type RotateOptions struct {
	// RootKeysPEM are current root keys (PKCS #8 PEM) as exported, for the ones that are
	// offline: with the online ones they must reach the current root threshold. They sign the
	// new roots and are not stored. A key given twice, or given and online, counts once; a key
	// that is not a current root key is refused (ErrBadKey).
	RootKeysPEM [][]byte
	// NewKeys is how many new root keys to make (1 to MaxRootKeys; 0 means 1), and Threshold
	// how many of them must sign a root from then on (1 to NewKeys; 0 means 1).
	NewKeys, Threshold int
	// Offline keeps the new root keys offline at once: RotateRoot returns them and the store
	// keeps only their public halves.
	Offline bool
	// OnlineKeys also replaces every repository's online key (targets, snapshot, timestamp).
	OnlineKeys bool
}

// ErrBadThreshold means a rotation asked for an unusable number of root keys or threshold.
var ErrBadThreshold = errors.New("unusable root keys or threshold")

// Rotation is what RotateRoot did.
type Rotation struct {
	OldKeyIDs, NewKeyIDs []string
	// OldThreshold and Threshold are the root thresholds before and after.
	OldThreshold, Threshold int
	// NewKeysPEM are the new root keys (PKCS #8 PEM, in NewKeyIDs' order) when
	// RotateOptions.Offline was set, else nil.
	NewKeysPEM [][]byte
	// OldSignerIDs and NewSignerIDs are, for a rotation with detached signatures
	// (CompleteRotation), the current and the new root keys whose signatures counted towards
	// the old and the new threshold on at least one root (a key in both roots is in both).
	OldSignerIDs, NewSignerIDs []string
	// Repositories are the repositories re-signed, each now at root version RootVersions[i].
	Repositories []string
	RootVersions []int64
}

// RotateRoot replaces the tenant's root keys, within tx: it makes opt.NewKeys new root keys
// with threshold opt.Threshold and, for every repository of the tenant (the image repository,
// made first if the tenant has none yet, each group's director and held director), signs root
// version N+1 that lists the new keys, signed by a threshold of the current root keys (online
// or given) and by every new key (TUF 5.3.4), then re-signs targets, snapshot and timestamp. A
// device that trusts root N follows the chain to N+1 at its next refresh and from then on
// refuses roots and metadata signed below the new threshold. The old keys are revoked (their
// private halves dropped): they can never be imported again. With OnlineKeys, each
// repository's online key is replaced in the same root version. Repositories made later use
// the new keys. With fewer current root keys at hand than the threshold it returns an error
// wrapping ErrBelowThreshold and changes nothing.
func (s *Service) RotateRoot(ctx context.Context, tx store.Tx, tenantID string, opt RotateOptions) (Rotation, error) {
	n, k := max(opt.NewKeys, 1), max(opt.Threshold, 1)
	if opt.NewKeys < 0 || opt.Threshold < 0 || n > MaxRootKeys || k > n {
		return Rotation{}, fmt.Errorf("%w: %d new keys with threshold %d; want 1 to %d keys and a threshold from 1 to their number", ErrBadThreshold, opt.NewKeys, opt.Threshold, MaxRootKeys)
	}
	set, err := s.roots(ctx, tx, tenantID, opt.RootKeysPEM, true)
	if err != nil {
		return Rotation{}, err
	}
	oldSigners, err := set.sign()
	if err != nil {
		return Rotation{}, err
	}
	// The tenant's threshold lives in its roots: make sure it has one to keep it in.
	if err := s.ensureImages(ctx, tx, tenantID, set, oldSigners); err != nil {
		return Rotation{}, err
	}
	rot := Rotation{OldKeyIDs: set.ids(), OldThreshold: set.threshold, Threshold: k}
	var newSigners []crypto.Signer
	var newPubs []crypto.PublicKey
	for range n {
		key, err := ecdsa.GenerateKey(elliptic.P256(), s.rand)
		if err != nil {
			return Rotation{}, err
		}
		id, err := imagepkg.KeyID(&key.PublicKey)
		if err != nil {
			return Rotation{}, err
		}
		rot.NewKeyIDs = append(rot.NewKeyIDs, id)
		newSigners, newPubs = append(newSigners, key), append(newPubs, &key.PublicKey)
		if opt.Offline {
			b, err := encodeKey(key)
			if err != nil {
				return Rotation{}, err
			}
			rot.NewKeysPEM = append(rot.NewKeysPEM, b)
		}
	}
	revoked := s.now().UTC().Truncate(time.Microsecond)
	for _, rec := range set.recs {
		rec.KeyCiphertext, rec.RevokedAt = nil, revoked
		if err := tx.UpdateSigningKey(ctx, rec); err != nil {
			return Rotation{}, fmt.Errorf("revoking root key %s: %w", rec.ID, err)
		}
	}
	for i, key := range newSigners {
		if !opt.Offline {
			if err := s.storeKey(ctx, tx, tenantID, KeyRoot, key.(*ecdsa.PrivateKey)); err != nil {
				return Rotation{}, err
			}
			continue
		}
		// Offline: the private half is never written, not even to be cleared in the same
		// transaction (it would survive in the write-ahead log and in backups).
		der, err := x509.MarshalPKIXPublicKey(newPubs[i])
		if err != nil {
			return Rotation{}, err
		}
		if err := tx.CreateSigningKey(ctx, store.SigningKey{ID: rot.NewKeyIDs[i], TenantID: tenantID, Purpose: KeyRoot, PublicDER: der,
			CreatedAt: revoked}); err != nil {
			return Rotation{}, fmt.Errorf("recording root key %s: %w", rot.NewKeyIDs[i], err)
		}
	}
	repos, err := s.repositories(ctx, tx, tenantID)
	if err != nil {
		return Rotation{}, err
	}
	newRole := tufrepo.RoleKeys{Keys: newPubs, Threshold: k}
	rotated := map[string]bool{} // online keys already replaced, by base repository
	// One time for every repository: a group's director and held director get the same root.
	now := s.now()
	for _, repo := range repos {
		base := strings.TrimSuffix(repo, heldSuffix)
		if opt.OnlineKeys && !rotated[base] {
			if err := s.replaceOnline(ctx, tx, tenantID, base); err != nil {
				return Rotation{}, err
			}
			rotated[base] = true
		}
		v, err := s.rotateRepository(ctx, tx, tenantID, repo, newRole, oldSigners, newSigners, now)
		if err != nil {
			return Rotation{}, err
		}
		rot.Repositories = append(rot.Repositories, repo)
		rot.RootVersions = append(rot.RootVersions, v)
	}
	return rot, nil
}

// ensureImages makes the tenant's image repository, signed by signers, if it has none.
func (s *Service) ensureImages(ctx context.Context, tx store.Tx, tenantID string, set *rootSet, signers []crypto.Signer) error {
	_, err := tx.GetTUFMetadata(ctx, tenantID, store.TUFImages, store.TUFRoot, 1)
	if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	online, err := s.online(ctx, tx, tenantID, store.TUFImages)
	if err != nil {
		return err
	}
	cur, err := s.initState(online, set, signers, store.TUFImages)
	if err != nil {
		return err
	}
	targets, err := imageTargets(ctx, tx, tenantID)
	if err != nil {
		return err
	}
	next, err := online.Publish(cur, targets, s.now())
	if err != nil {
		return fmt.Errorf("publishing repository %s: %w", store.TUFImages, err)
	}
	return save(ctx, tx, tenantID, store.TUFImages, nil, next, s.now())
}

// MaxKeyPEM bounds a private key given in PEM.
const MaxKeyPEM = 16 << 10

// parseKey parses an ECDSA P-256 private key in PKCS #8 PEM: exactly one "PRIVATE KEY" block
// without headers, at most MaxKeyPEM bytes, nothing but white space around it.
func parseKey(keyPEM []byte) (*ecdsa.PrivateKey, error) {
	if len(keyPEM) > MaxKeyPEM {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrBadKey, len(keyPEM), MaxKeyPEM)
	}
	trimmed := bytes.TrimSpace(keyPEM)
	blk, rest := pem.Decode(trimmed)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%w: no PEM 'PRIVATE KEY' block", ErrBadKey)
	}
	if len(blk.Headers) != 0 || len(bytes.TrimSpace(rest)) != 0 || !bytes.HasPrefix(trimmed, []byte("-----BEGIN PRIVATE KEY-----")) ||
		bytes.Count(trimmed, []byte("-----BEGIN")) != 1 {
		return nil, fmt.Errorf("%w: not exactly one PEM block", ErrBadKey)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	key, ok := parsed.(*ecdsa.PrivateKey)
	if !ok || key.Curve != elliptic.P256() {
		return nil, fmt.Errorf("%w: another kind of key", ErrBadKey)
	}
	return key, nil
}

// repositories lists the tenant's repositories that exist: the image repository, then each
// group's director and held director.
func (s *Service) repositories(ctx context.Context, tx store.Tx, tenantID string) ([]string, error) {
	var out []string
	exists := func(repo string) (bool, error) {
		_, err := tx.GetTUFMetadata(ctx, tenantID, repo, store.TUFRoot, 1)
		if errors.Is(err, store.ErrNotFound) {
			return false, nil
		}
		return err == nil, err
	}
	candidates := []string{store.TUFImages}
	opt := store.ListOptions{Limit: store.MaxLimit}
	for {
		page, err := tx.ListDeviceGroups(ctx, tenantID, store.DeviceGroupFilter{}, opt)
		if err != nil {
			return nil, err
		}
		for _, g := range page.Items {
			candidates = append(candidates, DirectorRepository(g.ID), HeldDirectorRepository(g.ID))
		}
		if page.Next == "" {
			break
		}
		opt.After = page.Next
	}
	for _, repo := range candidates {
		ok, err := exists(repo)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, repo)
		}
	}
	return out, nil
}

// replaceOnline revokes a repository's online key and makes a new one.
func (s *Service) replaceOnline(ctx context.Context, tx store.Tx, tenantID, repository string) error {
	purpose := KeyOnlinePrefix + repository
	keys, err := tx.ListSigningKeys(ctx, tenantID, purpose)
	if err != nil {
		return err
	}
	at := s.now().UTC().Truncate(time.Microsecond)
	for _, k := range keys {
		if k.RevokedAt.IsZero() {
			k.KeyCiphertext, k.RevokedAt = nil, at
			if err := tx.UpdateSigningKey(ctx, k); err != nil {
				return fmt.Errorf("revoking the online key of %s: %w", repository, err)
			}
		}
	}
	_, err = s.key(ctx, tx, tenantID, purpose, true)
	return err
}

// rotateRepository signs the repository's next root, listing root and the repository's current
// online key, with oldSigners (a threshold of the current root's keys) and newSigners (a
// threshold of root's), and stores it; it returns the new root version.
func (s *Service) rotateRepository(ctx context.Context, tx store.Tx, tenantID, repo string, root tufrepo.RoleKeys, oldSigners, newSigners []crypto.Signer, now time.Time) (int64, error) {
	cur, err := load(ctx, tx, tenantID, repo)
	if err != nil {
		return 0, err
	}
	if cur == nil {
		return 0, fmt.Errorf("repository %s vanished: %w", repo, store.ErrConflict)
	}
	online, err := s.online(ctx, tx, tenantID, repo)
	if err != nil {
		return 0, err
	}
	one := tufrepo.RoleKeys{Keys: []crypto.PublicKey{online.Targets[0].Public()}, Threshold: 1}
	roles := tufrepo.Roles{Root: root, Targets: one, Snapshot: one, Timestamp: one}
	next, err := online.RotateRoot(cur, roles, oldSigners, newSigners, now)
	if err != nil {
		return 0, fmt.Errorf("rotating the root of %s: %w", repo, err)
	}
	if err := save(ctx, tx, tenantID, repo, cur, next, now); err != nil {
		return 0, err
	}
	return int64(len(next.Roots)), nil
}
