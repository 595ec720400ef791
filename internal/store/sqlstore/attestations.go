package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/rampart-iot/rampart/internal/store"
)

const attestationCols = `a.id, a.tenant_id, a.device_id, a.at, a.result, a.reason, a.message, a.os_release_id,
	a.measurements, a.certificate_serial, a.certificate_expires`

func scanAttestation(s scanner) (store.Attestation, error) {
	var x store.Attestation
	var at, expires sql.NullInt64
	if err := s.Scan(&x.ID, &x.TenantID, &x.DeviceID, &at, &x.Result, &x.Reason, &x.Message, &x.OSReleaseID,
		&x.Measurements, &x.CertificateSerial, &expires); err != nil {
		return store.Attestation{}, err
	}
	x.Time, x.CertificateExpires = timeOf(at), timeOf(expires)
	return x, nil
}

// RecordAttestation implements store.Tx. The device's LastAttestation, LastResult, LastReason
// and LastMessage always become a's; its CertificateExpires only if a's is not zero, so that a
// failed attestation does not hide the certificate the device still holds.
//
// It is on every attestation's path, so it is two statements: the device's update, which
// happens only if the tenant has the device and no attestation has a's ID (so that nothing is
// changed when either rule is broken), and the insert, which then cannot break them. Which rule
// was broken is read only when the update changed nothing.
func (t *tx) RecordAttestation(ctx context.Context, a store.Attestation) error {
	what := fmt.Sprintf("record attestation %q of device %q", a.ID, a.DeviceID)
	n, err := t.exec(ctx, `UPDATE devices SET last_attestation = ?, last_result = ?, last_reason = ?, last_message = ?,
			certificate_expires = COALESCE(?, certificate_expires)
		WHERE tenant_id = ? AND id = ? AND NOT EXISTS (SELECT 1 FROM attestations WHERE id = ?)`,
		timeArg(a.Time), a.Result, a.Reason, a.Message, timeArg(a.CertificateExpires), a.TenantID, a.DeviceID, a.ID)
	if err != nil {
		return t.dbErr(err, what, nil)
	}
	if n == 0 {
		if err := t.checkDevice(ctx, a.TenantID, a.DeviceID); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return fmt.Errorf("an attestation with ID %q already exists: %w", a.ID, store.ErrConflict)
	}
	_, err = t.exec(ctx, `INSERT INTO attestations (id, tenant_id, device_id, at, result, reason, message,
			os_release_id, measurements, certificate_serial, certificate_expires)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		a.ID, a.TenantID, a.DeviceID, timeArg(a.Time), a.Result, a.Reason, a.Message,
		a.OSReleaseID, a.Measurements, a.CertificateSerial, timeArg(a.CertificateExpires))
	if err != nil {
		// Never a store sentinel: the device was updated already, and a sentinel would let the
		// transaction commit that without the record (the guard makes this unreachable).
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// ListAttestations implements store.Tx. Attestations are listed by ID, descending, which is
// newest first for UUIDv7 IDs; After is the ID of the last attestation of the page before.
func (t *tx) ListAttestations(ctx context.Context, tenantID, deviceID string, opt store.ListOptions) (store.Page[store.Attestation], error) {
	opt = opt.Normalize()
	if err := t.checkDevice(ctx, tenantID, deviceID); err != nil {
		return store.Page[store.Attestation]{}, fmt.Errorf("list attestations: %w", err)
	}
	var w where
	w.add(`a.tenant_id = ?`, tenantID)
	w.add(`a.device_id = ?`, deviceID)
	if opt.After != "" {
		w.add(`a.id < ?`, opt.After)
	}
	p, err := list(ctx, t, opt, `SELECT `+attestationCols+` FROM attestations a`+w.String()+` ORDER BY a.id DESC LIMIT ?`,
		w.args, scanAttestation, func(x store.Attestation) string { return x.ID })
	if err != nil {
		return p, fmt.Errorf("list attestations of device %q: %w", deviceID, err)
	}
	return p, nil
}

// CreateNonce implements store.Tx. A nonce must have a hash and an expiry time. It is on
// every attestation's path: where a failed statement leaves the transaction usable, the nonce's
// foreign key checks the device, without a query of its own.
func (t *tx) CreateNonce(ctx context.Context, n store.Nonce) error {
	what := fmt.Sprintf("create nonce for device %q", n.DeviceID)
	if len(n.Hash) == 0 || n.ExpiresAt.IsZero() {
		return fmt.Errorf("%s: a nonce needs a hash and an expiry time", what)
	}
	if !t.d.FailedStatementKeepsTx {
		if err := t.checkDevice(ctx, n.TenantID, n.DeviceID); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	rows, err := t.exec(ctx, `INSERT INTO nonces (hash, tenant_id, device_id, created_at, expires_at) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT DO NOTHING`, n.Hash, n.TenantID, n.DeviceID, timeArg(n.CreatedAt), timeArg(n.ExpiresAt))
	if err != nil {
		return t.dbErr(err, what, store.ErrNotFound)
	}
	if rows == 0 {
		return fmt.Errorf("%s: a nonce with the same hash exists: %w", what, store.ErrConflict)
	}
	return nil
}

// DeleteExpiredNonces implements store.Tx. Times compare at microsecond precision, as they
// are stored.
func (t *tx) DeleteExpiredNonces(ctx context.Context, before time.Time) (int, error) {
	n, err := t.exec(ctx, `DELETE FROM nonces WHERE expires_at < ?`, before.UnixMicro())
	if err != nil {
		return 0, t.dbErr(err, "delete expired nonces", nil)
	}
	return int(n), nil
}
