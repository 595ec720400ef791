package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/rampart-iot/rampart/internal/store"
)

const tokenCols = `k.id, k.user_id, COALESCE(k.tenant_id, ''), k.hash, k.description, k.created_by,
	k.created_at, k.expires_at, k.revoked_at`

func scanToken(s scanner) (store.Token, error) {
	var x store.Token
	var created, expires, revoked sql.NullInt64
	if err := s.Scan(&x.ID, &x.UserID, &x.TenantID, &x.Hash, &x.Description, &x.CreatedBy,
		&created, &expires, &revoked); err != nil {
		return store.Token{}, err
	}
	x.CreatedAt, x.ExpiresAt, x.RevokedAt = timeOf(created), timeOf(expires), timeOf(revoked)
	return x, nil
}

// CreateToken implements store.Tx.
func (t *tx) CreateToken(ctx context.Context, x store.Token) error {
	if err := t.checkUser(ctx, x.UserID); err != nil {
		return fmt.Errorf("create token %q: %w", x.ID, err)
	}
	if x.TenantID != "" {
		if err := t.checkTenant(ctx, x.TenantID); err != nil {
			return fmt.Errorf("create token %q: %w", x.ID, err)
		}
	}
	n, err := t.exec(ctx, `INSERT INTO tokens (id, user_id, tenant_id, hash, description, created_by,
			created_at, expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT DO NOTHING`,
		x.ID, x.UserID, stringArg(x.TenantID), x.Hash, x.Description, x.CreatedBy,
		timeArg(x.CreatedAt), timeArg(x.ExpiresAt), timeArg(x.RevokedAt))
	if err != nil {
		return t.dbErr(err, fmt.Sprintf("create token %q", x.ID), store.ErrNotFound)
	}
	if n == 0 {
		return t.insertConflict(ctx, "tokens", "token", x.ID, "a token with the same secret hash already exists")
	}
	return nil
}

// GetToken implements store.Tx.
func (t *tx) GetToken(ctx context.Context, id string) (store.Token, error) {
	x, err := scanToken(t.queryRow(ctx, `SELECT `+tokenCols+` FROM tokens k WHERE k.id = ?`, id))
	if err != nil {
		return store.Token{}, notFound(err, fmt.Sprintf("token %q", id))
	}
	return x, nil
}

// GetTokenByHash implements store.Tx.
func (t *tx) GetTokenByHash(ctx context.Context, hash []byte) (store.Token, error) {
	x, err := scanToken(t.queryRow(ctx, `SELECT `+tokenCols+` FROM tokens k WHERE k.hash = ?`, hash))
	if err != nil {
		return store.Token{}, notFound(err, "token with the given secret hash")
	}
	return x, nil
}

// ListTokens implements store.Tx.
func (t *tx) ListTokens(ctx context.Context, filter store.TokenFilter, opt store.ListOptions) (store.Page[store.Token], error) {
	opt = opt.Normalize()
	var w where
	if filter.UserID != "" {
		w.add(`k.user_id = ?`, filter.UserID)
	}
	if filter.TenantID != "" {
		w.add(`k.tenant_id = ?`, filter.TenantID)
	}
	if opt.After != "" {
		w.add(`k.id > ?`, opt.After)
	}
	p, err := list(ctx, t, opt, `SELECT `+tokenCols+` FROM tokens k`+w.String()+` ORDER BY k.id LIMIT ?`, w.args,
		scanToken, func(x store.Token) string { return x.ID })
	if err != nil {
		return p, fmt.Errorf("list tokens: %w", err)
	}
	return p, nil
}

// RevokeToken implements store.Tx. A token revoked before keeps its first revocation time.
func (t *tx) RevokeToken(ctx context.Context, id string, at time.Time) error {
	n, err := t.exec(ctx, `UPDATE tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?`, timeArg(at), id)
	if err != nil {
		return t.dbErr(err, fmt.Sprintf("revoke token %q", id), nil)
	}
	if n == 0 {
		return fmt.Errorf("token %q: %w", id, store.ErrNotFound)
	}
	return nil
}
