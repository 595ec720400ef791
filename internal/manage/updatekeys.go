package manage

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/imagepkg"
	"github.com/rampart-iot/rampart/internal/authz"
	"github.com/rampart-iot/rampart/internal/problem"
	"github.com/rampart-iot/rampart/internal/store"
	"github.com/rampart-iot/rampart/internal/updatemeta"
)

// MaxKeyPEM bounds an imported key.
const MaxKeyPEM = 16 << 10

// MaxRotateKeys bounds the root keys one rotation request may give.
const MaxRotateKeys = 16

// ExportUpdateRoot takes one of the tenant's update-metadata root keys offline: it returns the
// private key and removes it from the service. keyID names it ("" means the only online one).
// Until a threshold of root keys is online again, no group can get its first deployment
// (existing repositories go on with their online keys).
func (m *Manager) ExportUpdateRoot(ctx context.Context, p *authz.Principal, tenantID, keyID string) ([]byte, error) {
	var out []byte
	o := op{tenantID: tenantID, action: authz.UpdateKeyManage, resourceType: "update-key", resourceID: "root"}
	err := m.write(ctx, p, o, func(tx store.Tx, n *note) error {
		if m.meta == nil {
			return errors.New("update metadata is not configured on this server")
		}
		if keyID != "" && !isKeyID(keyID) {
			return problem.Invalid(v1.ErrorDetail{Field: "key_id", Message: "not a key ID (64 lower-case hex digits)"})
		}
		n.message = "exported an update-metadata root key (now offline)"
		var err error
		out, err = m.meta.ExportRoot(ctx, tx, tenantID, keyID)
		if errors.Is(err, updatemeta.ErrBadKey) {
			return problem.Invalid(v1.ErrorDetail{Field: "key_id", Message: err.Error()})
		}
		if err == nil {
			id, _ := keyIDOf(out)
			n.detail("key_id", id)
		}
		return err
	})
	return out, err
}

// isKeyID reports whether s is a key ID: 64 lower-case hex digits.
func isKeyID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// keyIDOf is the ID of a PKCS #8 PEM key the service made.
func keyIDOf(keyPEM []byte) (string, error) {
	blk, _ := pem.Decode(keyPEM)
	if blk == nil {
		return "", errors.New("no PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return "", err
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return "", errors.New("not a signing key")
	}
	return imagepkg.KeyID(s.Public())
}

// ImportUpdateRoot brings the tenant's exported update-metadata root key back online.
func (m *Manager) ImportUpdateRoot(ctx context.Context, p *authz.Principal, tenantID string, keyPEM []byte) error {
	o := op{tenantID: tenantID, action: authz.UpdateKeyManage, resourceType: "update-key", resourceID: "root"}
	return m.write(ctx, p, o, func(tx store.Tx, n *note) error {
		if m.meta == nil {
			return errors.New("update metadata is not configured on this server")
		}
		if len(keyPEM) > MaxKeyPEM {
			return problem.Invalid(v1.ErrorDetail{Message: "the key is larger than 16 KiB"})
		}
		n.message = "imported the update-metadata root key"
		err := m.meta.ImportRoot(ctx, tx, tenantID, keyPEM)
		if errors.Is(err, updatemeta.ErrBadKey) {
			return problem.Invalid(v1.ErrorDetail{Message: err.Error()})
		}
		return err
	})
}

// RotateUpdateRoot replaces the tenant's update-metadata root keys with req.NewKeys new ones of
// which req.Threshold must sign: every repository gets a root version signed by a threshold of
// the old keys and of the new, which devices follow at their next refresh. The old keys are
// revoked. req.KeyPEM and req.KeyPEMs are current keys that are offline; with req.Offline the
// new keys are returned and not kept; with req.OnlineKeys every repository's online key is
// replaced too. Below the current threshold nothing changes (409, naming how many keys were
// at hand and needed).
func (m *Manager) RotateUpdateRoot(ctx context.Context, p *authz.Principal, tenantID string, req v1.UpdateRootRotate) (v1.UpdateRootRotation, error) {
	var out v1.UpdateRootRotation
	o := op{tenantID: tenantID, action: authz.UpdateKeyManage, resourceType: "update-key", resourceID: "root"}
	err := m.write(ctx, p, o, func(tx store.Tx, n *note) error {
		if m.meta == nil {
			return errors.New("update metadata is not configured on this server")
		}
		var given [][]byte
		if req.KeyPEM != "" {
			given = append(given, []byte(req.KeyPEM))
		}
		for _, k := range req.KeyPEMs {
			given = append(given, []byte(k))
		}
		if len(given) > MaxRotateKeys {
			return problem.Invalid(v1.ErrorDetail{Field: "key_pems", Message: fmt.Sprintf("%d keys given; at most %d", len(given), MaxRotateKeys)})
		}
		for _, k := range given {
			if len(k) > MaxKeyPEM {
				return problem.Invalid(v1.ErrorDetail{Field: "key_pems", Message: "a key is larger than 16 KiB"})
			}
		}
		if req.NewKeys < 0 || req.NewKeys > updatemeta.MaxRootKeys {
			return problem.Invalid(v1.ErrorDetail{Field: "new_keys", Message: fmt.Sprintf("want 1 to %d", updatemeta.MaxRootKeys)})
		}
		if req.Threshold < 0 || req.Threshold > max(req.NewKeys, 1) {
			return problem.Invalid(v1.ErrorDetail{Field: "threshold", Message: "want 1 to new_keys"})
		}
		rot, err := m.meta.RotateRoot(ctx, tx, tenantID, updatemeta.RotateOptions{RootKeysPEM: given,
			NewKeys: req.NewKeys, Threshold: req.Threshold, Offline: req.Offline, OnlineKeys: req.OnlineKeys})
		switch {
		case errors.Is(err, updatemeta.ErrBadKey), errors.Is(err, updatemeta.ErrNotRootKey):
			return problem.Invalid(v1.ErrorDetail{Field: "key_pems", Message: err.Error()})
		case errors.Is(err, updatemeta.ErrBadThreshold):
			return problem.Invalid(v1.ErrorDetail{Field: "threshold", Message: err.Error()})
		case err != nil:
			return err
		}
		out = v1.UpdateRootRotation{OldKeyID: rot.OldKeyIDs[0], NewKeyID: rot.NewKeyIDs[0], OldKeyIDs: rot.OldKeyIDs,
			NewKeyIDs: rot.NewKeyIDs, OldThreshold: rot.OldThreshold, Threshold: rot.Threshold, Repositories: []v1.RotatedRepository{}}
		for _, k := range rot.NewKeysPEM {
			out.KeyPEMs = append(out.KeyPEMs, string(k))
		}
		if len(out.KeyPEMs) == 1 {
			out.KeyPEM = out.KeyPEMs[0]
		}
		for i, r := range rot.Repositories {
			out.Repositories = append(out.Repositories, v1.RotatedRepository{Repository: r, RootVersion: rot.RootVersions[i]})
		}
		n.message = "rotated the update-metadata root key"
		if len(rot.OldKeyIDs) > 1 || len(rot.NewKeyIDs) > 1 {
			n.message = "rotated the update-metadata root keys"
		}
		n.detail("old_key_id", rot.OldKeyIDs[0])
		n.detail("new_key_id", rot.NewKeyIDs[0])
		n.detail("old_key_ids", rot.OldKeyIDs)
		n.detail("new_key_ids", rot.NewKeyIDs)
		n.detail("old_threshold", rot.OldThreshold)
		n.detail("threshold", rot.Threshold)
		n.detail("keys_given", len(given))
		n.detail("repositories", len(rot.Repositories))
		n.detail("new_key_offline", req.Offline)
		n.detail("online_keys", req.OnlineKeys)
		return nil
	})
	return out, err
}

// UpdateRootStatus reports the tenant's update-metadata root key and when each repository's
// root expires.
func (m *Manager) UpdateRootStatus(ctx context.Context, p *authz.Principal, tenantID string) (v1.UpdateRootStatus, error) {
	if err := m.read(ctx, p, tenantID, authz.ImageRead); err != nil {
		return v1.UpdateRootStatus{}, err
	}
	if m.meta == nil {
		return v1.UpdateRootStatus{}, errors.New("update metadata is not configured on this server")
	}
	rs, err := m.meta.RootStatus(ctx, m.store, tenantID)
	if err != nil {
		return v1.UpdateRootStatus{}, err
	}
	out := v1.UpdateRootStatus{Keys: []v1.UpdateRootKeyInfo{}, Threshold: rs.Threshold, Online: rs.Online,
		RenewBeforeSeconds: int64(rs.RenewBefore / time.Second), Repositories: []v1.RepositoryRoot{}}
	for _, k := range rs.Keys {
		out.Keys = append(out.Keys, v1.UpdateRootKeyInfo{KeyID: k.ID, TUFKeyID: k.TUFKeyID, Online: k.Online})
	}
	if len(rs.Keys) > 0 {
		out.KeyID = rs.Keys[0].ID
	}
	now := m.now()
	for _, r := range rs.Repositories {
		out.Repositories = append(out.Repositories, v1.RepositoryRoot{Repository: r.Repository, RootVersion: r.Version,
			ExpiresAt: r.Expires, Due: r.Expires.Sub(now) < rs.RenewBefore})
	}
	return out, nil
}

// ImagesRootMetadata returns the first root metadata (1.root.json) of the tenant's image
// repository: what a device's image should ship so that its first contact trusts that root, not
// whatever the service answers (the device follows later root rotations from it). ErrNotFound
// before the tenant's first image upload made the repository.
func (m *Manager) ImagesRootMetadata(ctx context.Context, p *authz.Principal, tenantID string) ([]byte, error) {
	if err := m.read(ctx, p, tenantID, authz.ImageRead); err != nil {
		return nil, err
	}
	md, err := m.store.GetTUFMetadata(ctx, tenantID, store.TUFImages, store.TUFRoot, 1)
	if err != nil {
		return nil, fmt.Errorf("the tenant's image repository root: %w", err)
	}
	return md.Body, nil
}

// PrepareUpdateRoot returns root N+1 of every repository of the tenant, listing the new root
// keys whose public halves req gives (their holders keep the private halves) and req.Threshold,
// unsigned: the holders of the current and the new keys sign them where the keys are
// ('rampart keys root-sign'), and CompleteUpdateRoot publishes them. It publishes nothing but
// may make a repository's missing online key, so it is a write and audited, recording the new
// root keys and threshold.
func (m *Manager) PrepareUpdateRoot(ctx context.Context, p *authz.Principal, tenantID string, req v1.UpdateRootPrepare) (v1.UpdateRootPrepared, error) {
	if err := m.read(ctx, p, tenantID, authz.UpdateKeyManage); err != nil {
		return v1.UpdateRootPrepared{}, err
	}
	if m.meta == nil {
		return v1.UpdateRootPrepared{}, errors.New("update metadata is not configured on this server")
	}
	if len(req.PublicKeysPEM) < 1 || len(req.PublicKeysPEM) > updatemeta.MaxRootKeys {
		return v1.UpdateRootPrepared{}, problem.Invalid(v1.ErrorDetail{Field: "public_keys_pem", Message: fmt.Sprintf("want 1 to %d keys", updatemeta.MaxRootKeys)})
	}
	if req.Threshold < 1 || req.Threshold > len(req.PublicKeysPEM) {
		return v1.UpdateRootPrepared{}, problem.Invalid(v1.ErrorDetail{Field: "threshold", Message: "want 1 to the number of keys"})
	}
	var keys []crypto.PublicKey
	var ids []string
	for i, b := range req.PublicKeysPEM {
		k, err := updatemeta.ParsePublicKey([]byte(b))
		if err != nil {
			return v1.UpdateRootPrepared{}, problem.Invalid(v1.ErrorDetail{Field: "public_keys_pem", Message: fmt.Sprintf("key %d: %v", i+1, err)})
		}
		id, err := imagepkg.KeyID(k)
		if err != nil {
			return v1.UpdateRootPrepared{}, err
		}
		keys, ids = append(keys, k), append(ids, id)
	}
	out := v1.UpdateRootPrepared{TenantID: tenantID, Roots: []v1.PreparedRoot{}}
	// Prepare publishes nothing; it writes only if a repository lacks its online key, which it
	// then makes. Audited as the write it may be.
	o := op{tenantID: tenantID, action: authz.UpdateKeyManage, resourceType: "update-key", resourceID: "root"}
	err := m.writeAuthorized(ctx, p, o, func(tx store.Tx, n *note) error {
		n.message = "prepared an update-metadata root rotation with detached signatures"
		n.detail("new_key_ids", ids)
		n.detail("threshold", req.Threshold)
		roots, err := m.meta.PrepareRotation(ctx, tx, tenantID, keys, req.Threshold)
		if errors.Is(err, updatemeta.ErrBadKey) || errors.Is(err, updatemeta.ErrBadThreshold) || errors.Is(err, updatemeta.ErrKeyTaken) {
			return problem.Invalid(v1.ErrorDetail{Field: "public_keys_pem", Message: err.Error()})
		}
		if err != nil {
			return err
		}
		for _, r := range roots {
			out.Roots = append(out.Roots, v1.PreparedRoot{Repository: r.Repository, Root: r.Root})
		}
		n.detail("repositories", len(roots))
		return nil
	})
	if err != nil {
		return v1.UpdateRootPrepared{}, err
	}
	return out, nil
}

// CompleteUpdateRoot publishes a prepared rotation with the holders' detached signatures: each
// root must still be its repository's next, and be signed by a threshold of the current and of
// the new root keys (the service adds signatures by current keys it holds). Nothing changes
// otherwise (409 naming how many signed and were needed, or that the rotation must be prepared
// again; 422 for a signature by a key neither root lists or one that does not verify).
func (m *Manager) CompleteUpdateRoot(ctx context.Context, p *authz.Principal, tenantID string, req v1.UpdateRootComplete) (v1.UpdateRootRotation, error) {
	var out v1.UpdateRootRotation
	o := op{tenantID: tenantID, action: authz.UpdateKeyManage, resourceType: "update-key", resourceID: "root"}
	err := m.write(ctx, p, o, func(tx store.Tx, n *note) error {
		if m.meta == nil {
			return errors.New("update metadata is not configured on this server")
		}
		if len(req.Roots) < 1 || len(req.Roots) > updatemeta.MaxRotationRoots {
			return problem.Invalid(v1.ErrorDetail{Field: "roots", Message: fmt.Sprintf("want 1 to %d roots", updatemeta.MaxRotationRoots)})
		}
		if len(req.Signatures) > updatemeta.MaxRotationRoots*2*updatemeta.MaxRootKeys {
			return problem.Invalid(v1.ErrorDetail{Field: "signatures", Message: "too many signatures"})
		}
		roots := make([]updatemeta.PreparedRoot, len(req.Roots))
		for i, r := range req.Roots {
			roots[i] = updatemeta.PreparedRoot{Repository: r.Repository, Root: r.Root}
		}
		sigs := make([]updatemeta.RootSignature, len(req.Signatures))
		for i, s := range req.Signatures {
			sig, err := updatemeta.ParseRootSignature(s.Repository, s.KeyID, s.Sig)
			if err != nil {
				return problem.Invalid(v1.ErrorDetail{Field: "signatures", Message: err.Error()})
			}
			sigs[i] = sig
		}
		rot, err := m.meta.CompleteRotation(ctx, tx, tenantID, roots, sigs)
		switch {
		case errors.Is(err, updatemeta.ErrNotRootKey), errors.Is(err, updatemeta.ErrBadSignature):
			return problem.Invalid(v1.ErrorDetail{Field: "signatures", Message: err.Error()})
		case errors.Is(err, updatemeta.ErrBadKey), errors.Is(err, updatemeta.ErrBadThreshold), errors.Is(err, updatemeta.ErrKeyTaken):
			return problem.Invalid(v1.ErrorDetail{Field: "roots", Message: err.Error()})
		case errors.Is(err, updatemeta.ErrPrepared) && !errors.Is(err, store.ErrConflict):
			return problem.Invalid(v1.ErrorDetail{Field: "roots", Message: err.Error()})
		case err != nil:
			return err
		}
		out = v1.UpdateRootRotation{OldKeyID: rot.OldKeyIDs[0], NewKeyID: rot.NewKeyIDs[0], OldKeyIDs: rot.OldKeyIDs,
			NewKeyIDs: rot.NewKeyIDs, OldThreshold: rot.OldThreshold, Threshold: rot.Threshold, Repositories: []v1.RotatedRepository{}}
		for i, r := range rot.Repositories {
			out.Repositories = append(out.Repositories, v1.RotatedRepository{Repository: r, RootVersion: rot.RootVersions[i]})
		}
		n.message = "rotated the update-metadata root keys with detached signatures"
		n.detail("old_key_ids", rot.OldKeyIDs)
		n.detail("new_key_ids", rot.NewKeyIDs)
		n.detail("old_threshold", rot.OldThreshold)
		n.detail("threshold", rot.Threshold)
		n.detail("signatures", len(sigs))
		n.detail("old_signer_key_ids", rot.OldSignerIDs)
		n.detail("new_signer_key_ids", rot.NewSignerIDs)
		n.detail("repositories", len(rot.Repositories))
		return nil
	})
	return out, err
}
