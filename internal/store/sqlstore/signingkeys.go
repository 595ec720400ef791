package sqlstore

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/rampart-iot/rampart/internal/store"
)

const signingKeyCols = `k.id, k.tenant_id, k.purpose, k.public_der, k.key_ciphertext, k.created_at, k.revoked_at`

func scanSigningKey(s scanner) (store.SigningKey, error) {
	var x store.SigningKey
	var created, revoked sql.NullInt64
	if err := s.Scan(&x.ID, &x.TenantID, &x.Purpose, &x.PublicDER, &x.KeyCiphertext, &created, &revoked); err != nil {
		return store.SigningKey{}, err
	}
	x.PublicDER, x.KeyCiphertext = bytesOf(x.PublicDER), bytesOf(x.KeyCiphertext)
	x.CreatedAt, x.RevokedAt = timeOf(created), timeOf(revoked)
	return x, nil
}

// CreateSigningKey implements store.Tx.
func (t *tx) CreateSigningKey(ctx context.Context, k store.SigningKey) error {
	what := fmt.Sprintf("create signing key %q", k.ID)
	if err := t.checkTenant(ctx, k.TenantID); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	n, err := t.exec(ctx, `INSERT INTO signing_keys (id, tenant_id, purpose, public_der, key_ciphertext, created_at,
			revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		k.ID, k.TenantID, k.Purpose, bytesArg(k.PublicDER), bytesArg(k.KeyCiphertext),
		timeArg(k.CreatedAt), timeArg(k.RevokedAt))
	if err != nil {
		return t.dbErr(err, what, store.ErrNotFound)
	}
	if n == 0 {
		return fmt.Errorf("a signing key with ID %q already exists: %w", k.ID, store.ErrConflict)
	}
	return nil
}

// ListSigningKeys implements store.Tx. Keys are ordered by CreatedAt, a zero time first, then
// by ID.
func (t *tx) ListSigningKeys(ctx context.Context, tenantID, purpose string) ([]store.SigningKey, error) {
	rows, err := t.query(ctx, `SELECT `+signingKeyCols+` FROM signing_keys k WHERE k.tenant_id = ? AND k.purpose = ?
		ORDER BY k.created_at IS NOT NULL, k.created_at, k.id`, tenantID, purpose)
	if err != nil {
		return nil, fmt.Errorf("list %s keys of tenant %q: %w", purpose, tenantID, err)
	}
	defer rows.Close()
	out := []store.SigningKey{}
	for rows.Next() {
		x, err := scanSigningKey(rows)
		if err != nil {
			return nil, fmt.Errorf("list %s keys of tenant %q: %w", purpose, tenantID, err)
		}
		out = append(out, x)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list %s keys of tenant %q: %w", purpose, tenantID, err)
	}
	return out, nil
}

// UpdateSigningKey implements store.Tx. It finds the key by ID and TenantID and writes its
// KeyCiphertext and RevokedAt as given.
func (t *tx) UpdateSigningKey(ctx context.Context, k store.SigningKey) error {
	n, err := t.exec(ctx, `UPDATE signing_keys SET key_ciphertext = ?, revoked_at = ? WHERE tenant_id = ? AND id = ?`,
		bytesArg(k.KeyCiphertext), timeArg(k.RevokedAt), k.TenantID, k.ID)
	if err != nil {
		return t.dbErr(err, fmt.Sprintf("update signing key %q", k.ID), nil)
	}
	if n == 0 {
		return fmt.Errorf("signing key %q of tenant %q: %w", k.ID, k.TenantID, store.ErrNotFound)
	}
	return nil
}
