package sqlstore

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/rampart-iot/rampart/internal/store"
)

// The service root's certificates have a NULL tenant_id, read back as "".
const caCols = `c.id, COALESCE(c.tenant_id, ''), c.cert_der, c.key_ciphertext, c.not_before, c.not_after,
	c.active_from, c.revoked_at, c.created_at`

func scanCA(s scanner) (store.CACertificate, error) {
	var x store.CACertificate
	var notBefore, notAfter, active, revoked, created sql.NullInt64
	if err := s.Scan(&x.ID, &x.TenantID, &x.CertDER, &x.KeyCiphertext, &notBefore, &notAfter,
		&active, &revoked, &created); err != nil {
		return store.CACertificate{}, err
	}
	x.CertDER, x.KeyCiphertext = bytesOf(x.CertDER), bytesOf(x.KeyCiphertext)
	x.NotBefore, x.NotAfter = timeOf(notBefore), timeOf(notAfter)
	x.ActiveFrom, x.RevokedAt, x.CreatedAt = timeOf(active), timeOf(revoked), timeOf(created)
	return x, nil
}

// caName names a CA certificate in messages.
func caName(tenantID, id string) string {
	if tenantID == "" {
		return fmt.Sprintf("service root CA certificate %q", id)
	}
	return fmt.Sprintf("CA certificate %q of tenant %q", id, tenantID)
}

// CreateCACertificate implements store.Tx.
func (t *tx) CreateCACertificate(ctx context.Context, c store.CACertificate) error {
	if c.TenantID != "" {
		if err := t.checkTenant(ctx, c.TenantID); err != nil {
			return fmt.Errorf("create %s: %w", caName(c.TenantID, c.ID), err)
		}
	}
	n, err := t.exec(ctx, `INSERT INTO ca_certificates (id, tenant_id, cert_der, key_ciphertext, not_before, not_after,
			active_from, revoked_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		c.ID, stringArg(c.TenantID), bytesArg(c.CertDER), bytesArg(c.KeyCiphertext), timeArg(c.NotBefore),
		timeArg(c.NotAfter), timeArg(c.ActiveFrom), timeArg(c.RevokedAt), timeArg(c.CreatedAt))
	if err != nil {
		return t.dbErr(err, "create "+caName(c.TenantID, c.ID), store.ErrNotFound)
	}
	if n == 0 {
		return fmt.Errorf("a CA certificate with ID %q already exists: %w", c.ID, store.ErrConflict)
	}
	return nil
}

// UpdateCACertificate implements store.Tx. It finds the certificate by ID and TenantID and
// writes its KeyCiphertext, ActiveFrom and RevokedAt as given.
func (t *tx) UpdateCACertificate(ctx context.Context, c store.CACertificate) error {
	n, err := t.exec(ctx, `UPDATE ca_certificates SET key_ciphertext = ?, active_from = ?, revoked_at = ?
		WHERE id = ? AND COALESCE(tenant_id, '') = ?`,
		bytesArg(c.KeyCiphertext), timeArg(c.ActiveFrom), timeArg(c.RevokedAt), c.ID, c.TenantID)
	if err != nil {
		return t.dbErr(err, "update "+caName(c.TenantID, c.ID), nil)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", caName(c.TenantID, c.ID), store.ErrNotFound)
	}
	return nil
}

// ListCACertificates implements store.Tx. Certificates are ordered by CreatedAt, a zero time
// first, then by ID.
func (t *tx) ListCACertificates(ctx context.Context, tenantID string) ([]store.CACertificate, error) {
	var w where
	if tenantID == "" {
		w.add(`c.tenant_id IS NULL`)
	} else {
		w.add(`c.tenant_id = ?`, tenantID)
	}
	rows, err := t.query(ctx, `SELECT `+caCols+` FROM ca_certificates c`+w.String()+
		` ORDER BY c.created_at IS NOT NULL, c.created_at, c.id`, w.args...)
	if err != nil {
		return nil, fmt.Errorf("list CA certificates: %w", err)
	}
	defer rows.Close()
	out := []store.CACertificate{}
	for rows.Next() {
		x, err := scanCA(rows)
		if err != nil {
			return nil, fmt.Errorf("list CA certificates: %w", err)
		}
		out = append(out, x)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list CA certificates: %w", err)
	}
	return out, nil
}
