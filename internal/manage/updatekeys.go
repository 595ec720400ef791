package manage

import (
	"context"
	"errors"

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
