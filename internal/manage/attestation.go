package manage

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"sort"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/authz"
	"github.com/rampart-iot/rampart/internal/ca"
	"github.com/rampart-iot/rampart/internal/problem"
	"github.com/rampart-iot/rampart/internal/store"
)

// Limits on OS releases.
const (
	MaxReleaseMeasurements = 16
	MinCertLifetime        = ca.MinLeafLifetime
	MaxCertLifetime        = 7 * 24 * 60 * 60 // seconds
)

var (
	versionPattern     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$`)
	measurementPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)
)

// SetDeviceDisabled disables or enables a device. A disabled device is refused at its next
// attestation and on mutual TLS, so its certificate stops working at once and lapses within
// one lifetime.
func (m *Manager) SetDeviceDisabled(ctx context.Context, p *authz.Principal, tenantID, deviceID string, disabled bool) (store.Device, error) {
	var out store.Device
	o := op{tenantID: tenantID, action: authz.DeviceDisable, resourceType: "device", resourceID: deviceID}
	err := m.write(ctx, p, o, func(tx store.Tx, n *note) error {
		n.detail("disabled", disabled)
		if err := tx.SetDeviceDisabled(ctx, tenantID, deviceID, disabled, m.timestamp()); err != nil {
			return err
		}
		var err error
		out, err = tx.GetDevice(ctx, tenantID, deviceID)
		return err
	})
	return out, err
}

// ListAttestations lists a device's attestations, newest first.
func (m *Manager) ListAttestations(ctx context.Context, p *authz.Principal, tenantID, deviceID string, opt store.ListOptions) (store.Page[store.Attestation], error) {
	if err := m.read(ctx, p, tenantID, authz.DeviceRead); err != nil {
		return store.Page[store.Attestation]{}, err
	}
	if _, err := m.store.GetDevice(ctx, tenantID, deviceID); err != nil {
		return store.Page[store.Attestation]{}, err
	}
	return m.store.ListAttestations(ctx, tenantID, deviceID, opt)
}

// CreateOSRelease registers a release's golden measurements, which the verifier then accepts.
func (m *Manager) CreateOSRelease(ctx context.Context, p *authz.Principal, tenantID string, req v1.OSReleaseCreate) (store.OSRelease, error) {
	var out store.OSRelease
	o := op{tenantID: tenantID, action: authz.OSReleaseCreate, resourceType: "os-release"}
	err := m.write(ctx, p, o, func(tx store.Tx, n *note) error {
		n.detail("version", req.Version)
		rel, err := m.newOSRelease(req, p.UserID)
		if err != nil {
			return err
		}
		rel.TenantID = tenantID
		n.resourceID = rel.ID
		n.detail("measurements", req.Measurements)
		out = rel
		return tx.CreateOSRelease(ctx, rel)
	})
	return out, err
}

// newOSRelease checks a request and makes the release it describes (TenantID left to the caller).
func (m *Manager) newOSRelease(req v1.OSReleaseCreate, createdBy string) (store.OSRelease, error) {
	var ps problems
	if !versionPattern.MatchString(req.Version) {
		ps.add("version", "must be 1 to 64 letters, digits, '.', '_', '+' or '-', starting with a letter or digit")
	}
	ps.checkDescription("description", req.Description)
	if len(req.Measurements) == 0 || len(req.Measurements) > MaxReleaseMeasurements {
		ps.add("measurements", "must name 1 to %d measurements", MaxReleaseMeasurements)
	}
	names := make([]string, 0, len(req.Measurements))
	for k := range req.Measurements {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		v := req.Measurements[k]
		if !measurementPattern.MatchString(k) {
			ps.add("measurements."+k, "measurement names are 1 to 32 of a-z, 0-9 and '-'")
		}
		if b, err := hex.DecodeString(v); err != nil || len(b) != 32 || hex.EncodeToString(b) != v {
			ps.add("measurements."+k, "must be a SHA-256 digest as 64 lowercase hexadecimal characters")
		}
	}
	if err := ps.err(); err != nil {
		return store.OSRelease{}, err
	}
	id, err := m.newID()
	if err != nil {
		return store.OSRelease{}, err
	}
	return store.OSRelease{ID: id, Version: req.Version, Description: req.Description,
		Measurements: req.Measurements, CreatedBy: createdBy, CreatedAt: m.timestamp()}, nil
}

// ListOSReleases lists the tenant's OS releases.
func (m *Manager) ListOSReleases(ctx context.Context, p *authz.Principal, tenantID string, opt store.ListOptions) (store.Page[store.OSRelease], error) {
	if err := m.read(ctx, p, tenantID, authz.OSReleaseRead); err != nil {
		return store.Page[store.OSRelease]{}, err
	}
	return m.store.ListOSReleases(ctx, tenantID, opt)
}

// DeleteOSRelease removes a release; devices measuring it fail their next attestation.
func (m *Manager) DeleteOSRelease(ctx context.Context, p *authz.Principal, tenantID, id string) error {
	o := op{tenantID: tenantID, action: authz.OSReleaseDelete, resourceType: "os-release", resourceID: id}
	return m.write(ctx, p, o, func(tx store.Tx, n *note) error {
		r, err := tx.GetOSRelease(ctx, tenantID, id)
		if err != nil {
			return err
		}
		n.detail("version", r.Version)
		return tx.DeleteOSRelease(ctx, tenantID, id)
	})
}

// ListCACertificates lists the tenant's CA certificates, making the first one if the tenant
// has none yet.
func (m *Manager) ListCACertificates(ctx context.Context, p *authz.Principal, tenantID string) ([]ca.Info, error) {
	t, err := m.caTenant(ctx, p, tenantID, authz.CARead)
	if err != nil {
		return nil, err
	}
	return m.ca.List(ctx, t.ID)
}

// CABundle returns what relying parties must trust to verify the tenant's device certificates:
// its current and next CA, and the service root.
func (m *Manager) CABundle(ctx context.Context, p *authz.Principal, tenantID string) ([]*x509.Certificate, error) {
	t, err := m.caTenant(ctx, p, tenantID, authz.CARead)
	if err != nil {
		return nil, err
	}
	return m.ca.Bundle(ctx, t.ID)
}

// PublicCABundle is CABundle for relying parties, who have no account: CA certificates are
// public. An unknown tenant gets not found.
func (m *Manager) PublicCABundle(ctx context.Context, tenantID string) ([]*x509.Certificate, error) {
	if _, err := m.store.GetTenant(ctx, tenantID); err != nil {
		return nil, tenantNotFound(tenantID)
	}
	return m.ca.Bundle(ctx, tenantID)
}

// ProofOfPossession issues a proof-of-possession certificate (CN = the verification code)
// signed by one of the tenant's CAs, for registering the CA with another cloud.
func (m *Manager) ProofOfPossession(ctx context.Context, p *authz.Principal, tenantID, caID, code string) (*x509.Certificate, error) {
	o := op{tenantID: tenantID, action: authz.CAProof, resourceType: "ca-certificate", resourceID: caID}
	n := &note{resourceID: caID}
	n.detail("verification_code", code)
	if _, err := m.caTenant(ctx, p, tenantID, authz.CAProof); err != nil {
		var pe *problem.Error
		if errors.As(err, &pe) && pe.Code == v1.CodeForbidden {
			m.auditFailure(ctx, p, o, n, err)
		}
		return nil, err
	}
	// The CA reads and signs outside the store transaction that records the success.
	out, err := m.ca.ProofOfPossession(ctx, tenantID, caID, code)
	if err != nil {
		err = caProblem(err)
		m.auditFailure(ctx, p, o, n, err)
		return nil, err
	}
	err = m.writeAuthorized(ctx, p, o, func(tx store.Tx, w *note) error {
		w.details, w.resourceID = n.details, caID
		return nil
	})
	return out, err
}

// caProblem turns the CA's refusals of bad input into validation errors.
func caProblem(err error) error {
	if errors.Is(err, ca.ErrInvalid) {
		return &problem.Error{Code: v1.CodeValidation, Message: err.Error(), Err: err}
	}
	return err
}

func (m *Manager) caTenant(ctx context.Context, p *authz.Principal, tenantID string, a authz.Action) (store.Tenant, error) {
	if err := m.read(ctx, p, tenantID, a); err != nil {
		return store.Tenant{}, err
	}
	t, err := m.store.GetTenant(ctx, tenantID)
	if err != nil {
		return store.Tenant{}, err
	}
	if err := m.ca.EnsureTenant(ctx, t.ID, t.Name); err != nil {
		return store.Tenant{}, fmt.Errorf("tenant CA: %w", err)
	}
	return t, nil
}

// EnsureOSRelease registers a release for an operator (the server's releases file), as the
// "system" actor: tenantRef is a tenant name or ID. A release of that version with the same
// measurements is left alone (created=false); with other measurements it is a conflict.
func (m *Manager) EnsureOSRelease(ctx context.Context, tenantRef string, req v1.OSReleaseCreate) (created bool, err error) {
	t, err := m.store.GetTenant(ctx, tenantRef)
	if errors.Is(err, store.ErrNotFound) {
		t, err = m.store.GetTenantByName(ctx, tenantRef)
	}
	if err != nil {
		return false, fmt.Errorf("tenant %q: %w", tenantRef, err)
	}
	opt := store.ListOptions{Limit: store.MaxLimit}
	for {
		page, err := m.store.ListOSReleases(ctx, t.ID, opt)
		if err != nil {
			return false, err
		}
		for _, r := range page.Items {
			if r.Version != req.Version {
				continue
			}
			if !sameMeasurements(r.Measurements, req.Measurements) {
				return false, fmt.Errorf("release %s is already registered with other measurements: %w", req.Version, store.ErrConflict)
			}
			return false, nil
		}
		if page.Next == "" {
			break
		}
		opt.After = page.Next
	}
	system := &authz.Principal{UserName: "system"}
	o := op{tenantID: t.ID, action: authz.OSReleaseCreate, resourceType: "os-release"}
	err = m.writeAuthorized(ctx, system, o, func(tx store.Tx, n *note) error {
		rel, err := m.newOSRelease(req, "")
		if err != nil {
			return err
		}
		rel.TenantID = t.ID
		n.resourceID = rel.ID
		n.message = "from the server's OS releases file"
		n.detail("version", req.Version)
		return tx.CreateOSRelease(ctx, rel)
	})
	return err == nil, err
}

func sameMeasurements(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
