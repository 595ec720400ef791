package sqlstore

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/rampart-iot/rampart/internal/store"
)

const tenantCols = `t.id, t.name, t.created_at`

func scanTenant(s scanner) (store.Tenant, error) {
	var x store.Tenant
	var created sql.NullInt64
	if err := s.Scan(&x.ID, &x.Name, &created); err != nil {
		return store.Tenant{}, err
	}
	x.CreatedAt = timeOf(created)
	return x, nil
}

// CreateTenant implements store.Tx.
func (t *tx) CreateTenant(ctx context.Context, x store.Tenant) error {
	n, err := t.exec(ctx, `INSERT INTO tenants (id, name, name_key, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT DO NOTHING`, x.ID, x.Name, nameKey(x.Name), timeArg(x.CreatedAt))
	if err != nil {
		return t.dbErr(err, fmt.Sprintf("create tenant %q", x.ID), nil)
	}
	if n == 0 {
		return t.insertConflict(ctx, "tenants", "tenant", x.ID, fmt.Sprintf("a tenant named %q already exists", x.Name))
	}
	return nil
}

// insertConflict explains why an INSERT ... ON CONFLICT DO NOTHING into table inserted
// nothing: either the ID is taken, or else the other unique key, described by otherwise.
func (t *tx) insertConflict(ctx context.Context, table, kind, id, otherwise string) error {
	taken, err := t.exists(ctx, `SELECT 1 FROM `+table+` WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("create %s %q: %w", kind, id, err)
	}
	if taken {
		return fmt.Errorf("a %s with ID %q already exists: %w", kind, id, store.ErrConflict)
	}
	return fmt.Errorf("%s: %w", otherwise, store.ErrConflict)
}

// GetTenant implements store.Tx.
func (t *tx) GetTenant(ctx context.Context, id string) (store.Tenant, error) {
	x, err := scanTenant(t.queryRow(ctx, `SELECT `+tenantCols+` FROM tenants t WHERE t.id = ?`, id))
	if err != nil {
		return store.Tenant{}, notFound(err, fmt.Sprintf("tenant %q", id))
	}
	return x, nil
}

// GetTenantByName implements store.Tx.
func (t *tx) GetTenantByName(ctx context.Context, name string) (store.Tenant, error) {
	x, err := scanTenant(t.queryRow(ctx, `SELECT `+tenantCols+` FROM tenants t WHERE t.name_key = ?`, nameKey(name)))
	if err != nil {
		return store.Tenant{}, notFound(err, fmt.Sprintf("tenant named %q", name))
	}
	return x, nil
}

// ListTenantsForUser implements store.Tx.
func (t *tx) ListTenantsForUser(ctx context.Context, userID string, opt store.ListOptions) (store.Page[store.Tenant], error) {
	opt = opt.Normalize()
	var w where
	w.add(`r.user_id = ?`, userID)
	if opt.After != "" {
		w.add(`r.tenant_id > ?`, opt.After)
	}
	p, err := list(ctx, t, opt,
		`SELECT `+tenantCols+` FROM roles r JOIN tenants t ON t.id = r.tenant_id`+w.String()+
			` ORDER BY r.tenant_id LIMIT ?`, w.args,
		scanTenant, func(x store.Tenant) string { return x.ID })
	if err != nil {
		return p, fmt.Errorf("list tenants of user %q: %w", userID, err)
	}
	return p, nil
}
