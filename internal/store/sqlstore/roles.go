package sqlstore

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/rampart-iot/rampart/internal/store"
)

const roleCols = `r.tenant_id, r.user_id, u.name, r.role, r.created_at, r.updated_at`

const roleFrom = ` FROM roles r JOIN users u ON u.id = r.user_id`

func scanRole(s scanner) (store.RoleAssignment, error) {
	var x store.RoleAssignment
	var created, updated sql.NullInt64
	if err := s.Scan(&x.TenantID, &x.UserID, &x.UserName, &x.Role, &created, &updated); err != nil {
		return store.RoleAssignment{}, err
	}
	x.CreatedAt, x.UpdatedAt = timeOf(created), timeOf(updated)
	return x, nil
}

// PutRole implements store.Tx. Replacing a role keeps its CreatedAt.
func (t *tx) PutRole(ctx context.Context, r store.RoleAssignment) error {
	what := fmt.Sprintf("give user %q a role in tenant %q", r.UserID, r.TenantID)
	if err := t.checkTenant(ctx, r.TenantID); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := t.checkUser(ctx, r.UserID); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	_, err := t.exec(ctx, `INSERT INTO roles (tenant_id, user_id, role, created_at, updated_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (tenant_id, user_id) DO UPDATE SET role = excluded.role, updated_at = excluded.updated_at`,
		r.TenantID, r.UserID, string(r.Role), timeArg(r.CreatedAt), timeArg(r.UpdatedAt))
	if err != nil {
		return t.dbErr(err, what, store.ErrNotFound)
	}
	return nil
}

// GetRole implements store.Tx.
func (t *tx) GetRole(ctx context.Context, tenantID, userID string) (store.RoleAssignment, error) {
	x, err := scanRole(t.queryRow(ctx, `SELECT `+roleCols+roleFrom+` WHERE r.tenant_id = ? AND r.user_id = ?`,
		tenantID, userID))
	if err != nil {
		return store.RoleAssignment{}, notFound(err, fmt.Sprintf("role of user %q in tenant %q", userID, tenantID))
	}
	return x, nil
}

// DeleteRole implements store.Tx.
func (t *tx) DeleteRole(ctx context.Context, tenantID, userID string) error {
	n, err := t.exec(ctx, `DELETE FROM roles WHERE tenant_id = ? AND user_id = ?`, tenantID, userID)
	if err != nil {
		return t.dbErr(err, fmt.Sprintf("delete role of user %q in tenant %q", userID, tenantID), nil)
	}
	if n == 0 {
		return fmt.Errorf("role of user %q in tenant %q: %w", userID, tenantID, store.ErrNotFound)
	}
	return nil
}

// ListRoles implements store.Tx.
func (t *tx) ListRoles(ctx context.Context, tenantID string, opt store.ListOptions) (store.Page[store.RoleAssignment], error) {
	opt = opt.Normalize()
	var w where
	w.add(`r.tenant_id = ?`, tenantID)
	if opt.After != "" {
		w.add(`r.user_id > ?`, opt.After)
	}
	p, err := list(ctx, t, opt, `SELECT `+roleCols+roleFrom+w.String()+` ORDER BY r.user_id LIMIT ?`, w.args,
		scanRole, func(x store.RoleAssignment) string { return x.UserID })
	if err != nil {
		return p, fmt.Errorf("list roles in tenant %q: %w", tenantID, err)
	}
	return p, nil
}

// CountRoles implements store.Tx.
func (t *tx) CountRoles(ctx context.Context, tenantID string, role store.Role) (int, error) {
	n, err := t.count(ctx, `SELECT COUNT(*) FROM roles WHERE tenant_id = ? AND role = ?`, tenantID, string(role))
	if err != nil {
		return 0, fmt.Errorf("count %s roles in tenant %q: %w", role, tenantID, err)
	}
	return n, nil
}
