package manage

import (
	"context"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/authz"
	"github.com/rampart-iot/rampart/internal/problem"
	"github.com/rampart-iot/rampart/internal/store"
)

// ListAudit lists a tenant's audit log, newest first.
func (m *Manager) ListAudit(ctx context.Context, p *authz.Principal, tenantID string, f store.AuditFilter, opt store.ListOptions) (store.Page[store.AuditEntry], error) {
	if err := m.read(ctx, p, tenantID, authz.AuditRead); err != nil {
		return store.Page[store.AuditEntry]{}, err
	}
	f.TenantID = tenantID
	return m.store.ListAudit(ctx, f, opt)
}

// ListServiceAudit lists the service-level audit log (writes that belong to no tenant), for
// service administrators.
func (m *Manager) ListServiceAudit(ctx context.Context, p *authz.Principal, f store.AuditFilter, opt store.ListOptions) (store.Page[store.AuditEntry], error) {
	if p == nil {
		return store.Page[store.AuditEntry]{}, problem.New(v1.CodeUnauthenticated, "authentication required")
	}
	if !p.ServiceAdmin || p.TokenTenantID != "" {
		return store.Page[store.AuditEntry]{}, problem.New(v1.CodeForbidden, "forbidden: only service administrators may read the service audit log")
	}
	f.TenantID = ""
	return m.store.ListAudit(ctx, f, opt)
}
