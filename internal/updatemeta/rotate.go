package updatemeta

import (
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
	// OldRootPEM is the current root key (PKCS #8 PEM), needed when it is offline (exported);
	// it signs the new roots and is not stored. When the key is online it may be omitted; if
	// given, it must be that key.
	OldRootPEM []byte
	// Offline keeps the new root key offline at once: RotateRoot returns it and the store keeps
	// only its public half.
	Offline bool
	// OnlineKeys also replaces every repository's online key (targets, snapshot, timestamp).
	OnlineKeys bool
}

// Rotation is what RotateRoot did.
type Rotation struct {
	OldKeyID, NewKeyID string
	// NewKeyPEM is the new root key (PKCS #8 PEM) when RotateOptions.Offline was set, else nil.
	NewKeyPEM []byte
	// Repositories are the repositories re-signed, each now at root version RootVersions[i].
	Repositories []string
	RootVersions []int64
}

// RotateRoot replaces the tenant's root key, within tx: it makes a new root key and, for every
// repository of the tenant (the image repository, each group's director and held director),
// signs root version N+1 that lists the new key, signed by both the old and the new key (TUF
// 5.3.4), then re-signs targets, snapshot and timestamp. A device that trusts root N follows
// the chain to N+1 at its next refresh and from then on refuses metadata signed only by the
// old key. The old key is revoked (its private half dropped): it can never be imported again.
// With OnlineKeys, each repository's online key is replaced in the same root version.
// Repositories made later use the new key.
func (s *Service) RotateRoot(ctx context.Context, tx store.Tx, tenantID string, opt RotateOptions) (Rotation, error) {
	oldRec, oldKey, err := s.currentRoot(ctx, tx, tenantID, opt.OldRootPEM)
	if err != nil {
		return Rotation{}, err
	}
	newKey, err := ecdsa.GenerateKey(elliptic.P256(), s.rand)
	if err != nil {
		return Rotation{}, err
	}
	rot := Rotation{OldKeyID: oldRec.ID}
	if rot.NewKeyID, err = imagepkg.KeyID(&newKey.PublicKey); err != nil {
		return Rotation{}, err
	}
	// Revoke the old key first: key() then finds the new one as the newest unrevoked.
	oldRec.KeyCiphertext, oldRec.RevokedAt = nil, s.now().UTC().Truncate(time.Microsecond)
	if err := tx.UpdateSigningKey(ctx, oldRec); err != nil {
		return Rotation{}, fmt.Errorf("revoking root key %s: %w", oldRec.ID, err)
	}
	if err := s.storeKey(ctx, tx, tenantID, KeyRoot, newKey); err != nil {
		return Rotation{}, err
	}
	if opt.Offline {
		if err := tx.UpdateSigningKey(ctx, store.SigningKey{ID: rot.NewKeyID, TenantID: tenantID}); err != nil {
			return Rotation{}, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(newKey)
		if err != nil {
			return Rotation{}, err
		}
		rot.NewKeyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	repos, err := s.repositories(ctx, tx, tenantID)
	if err != nil {
		return Rotation{}, err
	}
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
		v, err := s.rotateRepository(ctx, tx, tenantID, repo, oldKey, newKey, now)
		if err != nil {
			return Rotation{}, err
		}
		rot.Repositories = append(rot.Repositories, repo)
		rot.RootVersions = append(rot.RootVersions, v)
	}
	return rot, nil
}

// currentRoot returns the tenant's current root key record and private key: the stored one if
// it is online, else the one passed (which must be it).
func (s *Service) currentRoot(ctx context.Context, tx store.Tx, tenantID string, keyPEM []byte) (store.SigningKey, *ecdsa.PrivateKey, error) {
	keys, err := tx.ListSigningKeys(ctx, tenantID, KeyRoot)
	if err != nil {
		return store.SigningKey{}, nil, err
	}
	var rec *store.SigningKey
	for i := len(keys) - 1; i >= 0; i-- {
		if keys[i].RevokedAt.IsZero() {
			rec = &keys[i]
			break
		}
	}
	if rec == nil {
		// No root yet: make one, so that the tenant's first rotation works like any other.
		k, err := s.rootKey(ctx, tx, tenantID)
		if err != nil {
			return store.SigningKey{}, nil, err
		}
		id, err := imagepkg.KeyID(&k.PublicKey)
		if err != nil {
			return store.SigningKey{}, nil, err
		}
		return store.SigningKey{ID: id, TenantID: tenantID}, k, nil
	}
	var given *ecdsa.PrivateKey
	if len(keyPEM) > 0 {
		if given, err = parseKey(keyPEM); err != nil {
			return store.SigningKey{}, nil, err
		}
		id, err := imagepkg.KeyID(&given.PublicKey)
		if err != nil {
			return store.SigningKey{}, nil, err
		}
		if id != rec.ID {
			return store.SigningKey{}, nil, fmt.Errorf("%w: key %s is not the tenant's current root key %s", ErrBadKey, id, rec.ID)
		}
	}
	if rec.KeyCiphertext == nil {
		if given == nil {
			return store.SigningKey{}, nil, fmt.Errorf("%w (key %s): pass the exported key to rotate it: %w", ErrRootOffline, rec.ID, store.ErrConflict)
		}
		return *rec, given, nil
	}
	k, err := s.sealer.Open(rec.ID, rec.KeyCiphertext)
	if err != nil {
		return store.SigningKey{}, nil, err
	}
	return *rec, k, nil
}

// parseKey parses an ECDSA P-256 private key in PKCS #8 PEM.
func parseKey(keyPEM []byte) (*ecdsa.PrivateKey, error) {
	blk, _ := pem.Decode(keyPEM)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%w: no PEM 'PRIVATE KEY' block", ErrBadKey)
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

// rotateRepository signs the repository's next root with the new root key and its current
// online key, and stores it; it returns the new root version.
func (s *Service) rotateRepository(ctx context.Context, tx store.Tx, tenantID, repo string, oldKey, newKey *ecdsa.PrivateKey, now time.Time) (int64, error) {
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
	one := func(pub crypto.PublicKey) tufrepo.RoleKeys {
		return tufrepo.RoleKeys{Keys: []crypto.PublicKey{pub}, Threshold: 1}
	}
	onlinePub := online.Targets[0].Public()
	roles := tufrepo.Roles{Root: one(&newKey.PublicKey), Targets: one(onlinePub), Snapshot: one(onlinePub), Timestamp: one(onlinePub)}
	next, err := online.RotateRoot(cur, roles, []crypto.Signer{oldKey}, []crypto.Signer{newKey}, now)
	if err != nil {
		return 0, fmt.Errorf("rotating the root of %s: %w", repo, err)
	}
	if err := save(ctx, tx, tenantID, repo, cur, next, now); err != nil {
		return 0, err
	}
	return int64(len(next.Roots)), nil
}
