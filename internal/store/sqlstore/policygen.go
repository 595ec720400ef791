package sqlstore

import (
	"context"
	"fmt"

	"github.com/rampart-iot/rampart/internal/store"
)

// raisePolicyGeneration raises the tenant's policy generation, inside the transaction of the
// release or group write that calls it (store.AttestationTx.PolicyGeneration).
func (t *tx) raisePolicyGeneration(ctx context.Context, tenantID string) error {
	if _, err := t.exec(ctx, `UPDATE tenants SET policy_generation = policy_generation + 1 WHERE id = ?`, tenantID); err != nil {
		return t.dbErr(err, fmt.Sprintf("raise the policy generation of tenant %q", tenantID), nil)
	}
	return nil
}

// PolicyGeneration implements store.Tx.
func (t *tx) PolicyGeneration(ctx context.Context, tenantID string) (int64, error) {
	var gen int64
	if err := t.queryRow(ctx, `SELECT policy_generation FROM tenants WHERE id = ?`, tenantID).Scan(&gen); err != nil {
		return 0, notFound(err, fmt.Sprintf("tenant %q", tenantID))
	}
	return gen, nil
}

// GetDeviceByIDWithGeneration implements store.Tx: the device and its tenant's policy
// generation in one statement.
func (t *tx) GetDeviceByIDWithGeneration(ctx context.Context, id string) (store.Device, int64, error) {
	var gen int64
	x, err := scanDevice(extraScanner{t.queryRow(ctx, `SELECT `+deviceCols+`, tn.policy_generation`+deviceFrom+
		` JOIN tenants tn ON tn.id = d.tenant_id WHERE d.id = ?`, id), []any{&gen}})
	if err != nil {
		return store.Device{}, 0, notFound(err, fmt.Sprintf("device %q", id))
	}
	return x, gen, nil
}

// extraScanner scans the columns its caller names, then extra.
type extraScanner struct {
	s     scanner
	extra []any
}

func (e extraScanner) Scan(dest ...any) error { return e.s.Scan(append(dest, e.extra...)...) }
