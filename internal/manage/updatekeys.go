package manage

import (
	"context"
	"errors"
	"fmt"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/authz"
	"github.com/rampart-iot/rampart/internal/problem"
	"github.com/rampart-iot/rampart/internal/store"
	"github.com/rampart-iot/rampart/internal/updatemeta"
)

// MaxKeyPEM bounds an imported key.
const MaxKeyPEM = 16 << 10

// ExportUpdateRoot takes the tenant's update-metadata root key offline: it returns the private
// key and removes it from the service. Until it is imported again, no group can get its first
// deployment (existing repositories go on with their online keys).
func (m *Manager) ExportUpdateRoot(ctx context.Context, p *authz.Principal, tenantID string) ([]byte, error) {
	var out []byte
	o := op{tenantID: tenantID, action: authz.UpdateKeyManage, resourceType: "update-key", resourceID: "root"}
	err := m.write(ctx, p, o, func(tx store.Tx, n *note) error {
		if m.meta == nil {
			return errors.New("update metadata is not configured on this server")
		}
		n.message = "exported the update-metadata root key (now offline)"
		var err error
		out, err = m.meta.ExportRoot(ctx, tx, tenantID)
		return err
	})
	return out, err
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

// RotateUpdateRoot replaces the tenant's update-metadata root key: every repository gets a
// root version signed by the old and the new key, which devices follow at their next refresh.
// The old key is revoked. req.KeyPEM is the current key when it is offline; with req.Offline
// the new key is returned and not kept; with req.OnlineKeys every repository's online key is
// replaced too.
func (m *Manager) RotateUpdateRoot(ctx context.Context, p *authz.Principal, tenantID string, req v1.UpdateRootRotate) (v1.UpdateRootRotation, error) {
	var out v1.UpdateRootRotation
	o := op{tenantID: tenantID, action: authz.UpdateKeyManage, resourceType: "update-key", resourceID: "root"}
	err := m.write(ctx, p, o, func(tx store.Tx, n *note) error {
		if m.meta == nil {
			return errors.New("update metadata is not configured on this server")
		}
		if len(req.KeyPEM) > MaxKeyPEM {
			return problem.Invalid(v1.ErrorDetail{Field: "key_pem", Message: "the key is larger than 16 KiB"})
		}
		rot, err := m.meta.RotateRoot(ctx, tx, tenantID, updatemeta.RotateOptions{OldRootPEM: []byte(req.KeyPEM),
			Offline: req.Offline, OnlineKeys: req.OnlineKeys})
		if errors.Is(err, updatemeta.ErrBadKey) {
			return problem.Invalid(v1.ErrorDetail{Field: "key_pem", Message: err.Error()})
		}
		if err != nil {
			return err
		}
		out = v1.UpdateRootRotation{OldKeyID: rot.OldKeyID, NewKeyID: rot.NewKeyID, KeyPEM: string(rot.NewKeyPEM),
			Repositories: []v1.RotatedRepository{}}
		for i, r := range rot.Repositories {
			out.Repositories = append(out.Repositories, v1.RotatedRepository{Repository: r, RootVersion: rot.RootVersions[i]})
		}
		n.message = "rotated the update-metadata root key"
		n.detail("old_key_id", rot.OldKeyID)
		n.detail("new_key_id", rot.NewKeyID)
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
	out := v1.UpdateRootStatus{KeyID: rs.KeyID, Online: rs.Online, RenewBeforeSeconds: int64(rs.RenewBefore / time.Second),
		Repositories: []v1.RepositoryRoot{}}
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
