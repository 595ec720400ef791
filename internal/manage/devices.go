package manage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/enrollment"
	"github.com/rampart-iot/rampart/internal/authz"
	"github.com/rampart-iot/rampart/internal/problem"
	"github.com/rampart-iot/rampart/internal/store"
)

// ClaimOutcome is the result of claiming one enrollment record.
type ClaimOutcome struct {
	Index    int
	DeviceID string // empty if the record was too broken to name a device
	Result   string // v1.ClaimClaimed, v1.ClaimAlreadyClaimed or v1.ClaimFailed
	Device   store.Device
	Err      error // set when Result is v1.ClaimFailed
}

// Claim claims devices into the tenant from their enrollment records, optionally straight
// into one of its device groups. Records are independent: each gets its own outcome and its
// own audit entry, and one failure does not undo another's success. A device already claimed
// by this tenant is reported as such and left where it is. The returned error covers the
// request as a whole (authorization, too many records, an unknown group, the store).
func (m *Manager) Claim(ctx context.Context, p *authz.Principal, tenantID string, records []json.RawMessage, groupID string) ([]ClaimOutcome, error) {
	o := op{tenantID: tenantID, action: authz.DeviceClaim, resourceType: "device"}
	role, err := m.authorize(ctx, p, tenantID, authz.DeviceClaim)
	if err != nil {
		if role != "" {
			m.auditFailure(ctx, p, o, &note{}, err)
		}
		return nil, err
	}
	var ps problems
	switch {
	case len(records) == 0:
		ps.add("enrollments", "at least one enrollment record is required")
	case len(records) > MaxBulkClaim:
		ps.add("enrollments", "%d records; at most %d may be claimed in one request", len(records), MaxBulkClaim)
	}
	if groupID != "" {
		ps.checkID("device_group_id", groupID)
	}
	if err := ps.err(); err != nil {
		m.auditFailure(ctx, p, o, &note{}, err)
		return nil, err
	}
	if groupID != "" {
		if _, err := m.store.GetDeviceGroup(ctx, tenantID, groupID); err != nil {
			m.auditFailure(ctx, p, o, &note{}, err)
			return nil, err
		}
	}

	// Parse and check every record before the transaction, so it stays short.
	outcomes := make([]ClaimOutcome, len(records))
	parsed := make([]*enrollment.Record, len(records))
	for i, raw := range records {
		outcomes[i] = ClaimOutcome{Index: i}
		rec, err := enrollment.Parse(raw)
		if err != nil {
			outcomes[i].Result, outcomes[i].Err = v1.ClaimFailed, recordProblem(err)
			continue
		}
		outcomes[i].DeviceID = rec.DeviceID
		if rec.IsSoftware() && !m.policy.AllowSoftwareRootOfTrust {
			outcomes[i].Result = v1.ClaimFailed
			outcomes[i].Err = problem.New(v1.CodeRootOfTrustRejected,
				"device %s uses the development-only software root of trust, which this server's policy refuses", rec.DeviceID)
			continue
		}
		parsed[i] = rec
	}

	err = m.store.Update(ctx, func(tx store.Tx) error {
		now := m.timestamp()
		for i, rec := range parsed {
			oc := &outcomes[i]
			if rec != nil {
				d := store.Device{ID: rec.DeviceID, TenantID: tenantID, DeviceGroupID: groupID, RootOfTrust: rec.RootOfTrust,
					AgentVersion: rec.AgentVersion, EKPublic: rec.EKPublic, EKCertificate: rec.EKCertificate,
					AKPublic: rec.AKPublic, Enrollment: records[i], ClaimedBy: p.UserID, ClaimedAt: now, UpdatedAt: now}
				stored, claimed, err := tx.ClaimDevice(ctx, d)
				switch {
				case errors.Is(err, store.ErrClaimedByOtherTenant):
					oc.Result = v1.ClaimFailed
					oc.Err = problem.New(v1.CodeDeviceClaimed, "device %s is already claimed by another tenant; a device can belong to only one tenant", rec.DeviceID)
				case err != nil:
					return err
				case claimed:
					oc.Result, oc.Device = v1.ClaimClaimed, stored
				default:
					oc.Result, oc.Device = v1.ClaimAlreadyClaimed, stored
				}
			}
			n := &note{resourceID: oc.DeviceID}
			n.detail("index", i)
			if groupID != "" {
				n.detail("device_group_id", groupID)
			}
			if oc.Result == v1.ClaimAlreadyClaimed {
				n.message = "already claimed by this tenant"
			}
			if _, err := tx.AppendAudit(ctx, m.auditEntry(p, o, n, oc.Err)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		m.auditFailure(ctx, p, o, &note{}, err)
		return nil, err
	}
	for _, oc := range outcomes {
		if oc.Result == v1.ClaimFailed && problemCode(oc.Err) == v1.CodeDeviceClaimed {
			m.log.Warn("claim of a device owned by another tenant refused", "tenant", tenantID, "user", p.UserName, "device", oc.DeviceID)
		}
	}
	return outcomes, nil
}

// recordProblem turns a record's parse error into a validation problem with one detail per
// field.
func recordProblem(err error) error {
	var e *enrollment.Error
	if !errors.As(err, &e) {
		return problem.New(v1.CodeValidation, "invalid enrollment record: %v", err)
	}
	details := make([]v1.ErrorDetail, len(e.Problems))
	for i, p := range e.Problems {
		details[i] = v1.ErrorDetail{Field: p.Field, Message: p.Message}
	}
	pe := problem.Invalid(details...)
	pe.Message = e.Error()
	return pe
}

func problemCode(err error) string {
	var pe *problem.Error
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// GetDevice returns a device of the tenant.
func (m *Manager) GetDevice(ctx context.Context, p *authz.Principal, tenantID, id string) (store.Device, error) {
	if err := m.read(ctx, p, tenantID, authz.DeviceRead); err != nil {
		return store.Device{}, err
	}
	return m.store.GetDevice(ctx, tenantID, id)
}

// ListDevices lists the tenant's devices.
func (m *Manager) ListDevices(ctx context.Context, p *authz.Principal, tenantID string, f store.DeviceFilter, opt store.ListOptions) (store.Page[store.Device], error) {
	if err := m.read(ctx, p, tenantID, authz.DeviceRead); err != nil {
		return store.Page[store.Device]{}, err
	}
	return m.store.ListDevices(ctx, tenantID, f, opt)
}

// CountDevices counts the tenant's devices that match the filter.
func (m *Manager) CountDevices(ctx context.Context, p *authz.Principal, tenantID string, f store.DeviceFilter) (int, error) {
	if err := m.read(ctx, p, tenantID, authz.DeviceRead); err != nil {
		return 0, err
	}
	return m.store.CountDevices(ctx, tenantID, f)
}

// MoveDevice moves a device to another group of its tenant ("" leaves it in no group).
func (m *Manager) MoveDevice(ctx context.Context, p *authz.Principal, tenantID, deviceID, groupID string) (store.Device, error) {
	var out store.Device
	o := op{tenantID: tenantID, action: authz.DeviceMove, resourceType: "device", resourceID: deviceID}
	err := m.write(ctx, p, o, func(tx store.Tx, n *note) error {
		if groupID != "" {
			var ps problems
			ps.checkID("device_group_id", groupID)
			if err := ps.err(); err != nil {
				return err
			}
		}
		cur, err := tx.GetDevice(ctx, tenantID, deviceID)
		if err != nil {
			return err
		}
		n.detail("from", cur.DeviceGroupID)
		n.detail("to", groupID)
		if groupID != "" {
			if _, err := tx.GetDeviceGroup(ctx, tenantID, groupID); err != nil {
				return err
			}
		}
		if err := tx.SetDeviceGroup(ctx, tenantID, deviceID, groupID, m.timestamp()); err != nil {
			return err
		}
		out, err = tx.GetDevice(ctx, tenantID, deviceID)
		if err != nil {
			return fmt.Errorf("reading the moved device: %w", err)
		}
		return nil
	})
	if err == nil && m.notify != nil {
		m.notify.DeviceMoved(tenantID, deviceID)
	}
	return out, err
}

// GetDeviceReport returns what the tenant's device reported at its latest check-in;
// ErrNotFound if it never checked in.
func (m *Manager) GetDeviceReport(ctx context.Context, p *authz.Principal, tenantID, id string) (store.DeviceReport, error) {
	if err := m.read(ctx, p, tenantID, authz.DeviceRead); err != nil {
		return store.DeviceReport{}, err
	}
	return m.store.GetDeviceReport(ctx, tenantID, id)
}
