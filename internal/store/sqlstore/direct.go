package sqlstore

import (
	"context"
	"time"

	"github.com/rampart-iot/rampart/internal/store"
)

// The methods below are the store's direct calls: reads go straight to the reader pool, and
// each write runs in its own write transaction, exactly as if called inside Update.

func (s *DB) write(ctx context.Context, fn func(*tx) error) error {
	return s.inWriteTx(ctx, func(q querier) error { return fn(&tx{d: s.d, q: q}) })
}

// CreateTenant implements store.Tx.
func (s *DB) CreateTenant(ctx context.Context, t store.Tenant) error {
	return s.write(ctx, func(w *tx) error { return w.CreateTenant(ctx, t) })
}

// GetTenant implements store.Tx.
func (s *DB) GetTenant(ctx context.Context, id string) (store.Tenant, error) {
	return s.read.GetTenant(ctx, id)
}

// GetTenantByName implements store.Tx.
func (s *DB) GetTenantByName(ctx context.Context, name string) (store.Tenant, error) {
	return s.read.GetTenantByName(ctx, name)
}

// ListTenantsForUser implements store.Tx.
func (s *DB) ListTenantsForUser(ctx context.Context, userID string, opt store.ListOptions) (store.Page[store.Tenant], error) {
	return s.read.ListTenantsForUser(ctx, userID, opt)
}

// CreateUser implements store.Tx.
func (s *DB) CreateUser(ctx context.Context, u store.User) error {
	return s.write(ctx, func(w *tx) error { return w.CreateUser(ctx, u) })
}

// GetUser implements store.Tx.
func (s *DB) GetUser(ctx context.Context, id string) (store.User, error) {
	return s.read.GetUser(ctx, id)
}

// GetUserByName implements store.Tx.
func (s *DB) GetUserByName(ctx context.Context, name string) (store.User, error) {
	return s.read.GetUserByName(ctx, name)
}

// CreateToken implements store.Tx.
func (s *DB) CreateToken(ctx context.Context, t store.Token) error {
	return s.write(ctx, func(w *tx) error { return w.CreateToken(ctx, t) })
}

// GetToken implements store.Tx.
func (s *DB) GetToken(ctx context.Context, id string) (store.Token, error) {
	return s.read.GetToken(ctx, id)
}

// GetTokenByHash implements store.Tx.
func (s *DB) GetTokenByHash(ctx context.Context, hash []byte) (store.Token, error) {
	return s.read.GetTokenByHash(ctx, hash)
}

// ListTokens implements store.Tx.
func (s *DB) ListTokens(ctx context.Context, filter store.TokenFilter, opt store.ListOptions) (store.Page[store.Token], error) {
	return s.read.ListTokens(ctx, filter, opt)
}

// RevokeToken implements store.Tx.
func (s *DB) RevokeToken(ctx context.Context, id string, at time.Time) error {
	return s.write(ctx, func(w *tx) error { return w.RevokeToken(ctx, id, at) })
}

// PutRole implements store.Tx.
func (s *DB) PutRole(ctx context.Context, r store.RoleAssignment) error {
	return s.write(ctx, func(w *tx) error { return w.PutRole(ctx, r) })
}

// GetRole implements store.Tx.
func (s *DB) GetRole(ctx context.Context, tenantID, userID string) (store.RoleAssignment, error) {
	return s.read.GetRole(ctx, tenantID, userID)
}

// DeleteRole implements store.Tx.
func (s *DB) DeleteRole(ctx context.Context, tenantID, userID string) error {
	return s.write(ctx, func(w *tx) error { return w.DeleteRole(ctx, tenantID, userID) })
}

// ListRoles implements store.Tx.
func (s *DB) ListRoles(ctx context.Context, tenantID string, opt store.ListOptions) (store.Page[store.RoleAssignment], error) {
	return s.read.ListRoles(ctx, tenantID, opt)
}

// CountRoles implements store.Tx.
func (s *DB) CountRoles(ctx context.Context, tenantID string, role store.Role) (int, error) {
	return s.read.CountRoles(ctx, tenantID, role)
}

// CreateProduct implements store.Tx.
func (s *DB) CreateProduct(ctx context.Context, p store.Product) error {
	return s.write(ctx, func(w *tx) error { return w.CreateProduct(ctx, p) })
}

// GetProduct implements store.Tx.
func (s *DB) GetProduct(ctx context.Context, tenantID, id string) (store.Product, error) {
	return s.read.GetProduct(ctx, tenantID, id)
}

// UpdateProduct implements store.Tx.
func (s *DB) UpdateProduct(ctx context.Context, p store.Product) error {
	return s.write(ctx, func(w *tx) error { return w.UpdateProduct(ctx, p) })
}

// DeleteProduct implements store.Tx.
func (s *DB) DeleteProduct(ctx context.Context, tenantID, id string) error {
	return s.write(ctx, func(w *tx) error { return w.DeleteProduct(ctx, tenantID, id) })
}

// ListProducts implements store.Tx.
func (s *DB) ListProducts(ctx context.Context, tenantID string, filter store.ProductFilter, opt store.ListOptions) (store.Page[store.Product], error) {
	return s.read.ListProducts(ctx, tenantID, filter, opt)
}

// CreateDeviceGroup implements store.Tx.
func (s *DB) CreateDeviceGroup(ctx context.Context, g store.DeviceGroup) error {
	return s.write(ctx, func(w *tx) error { return w.CreateDeviceGroup(ctx, g) })
}

// GetDeviceGroup implements store.Tx.
func (s *DB) GetDeviceGroup(ctx context.Context, tenantID, id string) (store.DeviceGroup, error) {
	return s.read.GetDeviceGroup(ctx, tenantID, id)
}

// UpdateDeviceGroup implements store.Tx.
func (s *DB) UpdateDeviceGroup(ctx context.Context, g store.DeviceGroup) error {
	return s.write(ctx, func(w *tx) error { return w.UpdateDeviceGroup(ctx, g) })
}

// DeleteDeviceGroup implements store.Tx.
func (s *DB) DeleteDeviceGroup(ctx context.Context, tenantID, id string) error {
	return s.write(ctx, func(w *tx) error { return w.DeleteDeviceGroup(ctx, tenantID, id) })
}

// ListDeviceGroups implements store.Tx.
func (s *DB) ListDeviceGroups(ctx context.Context, tenantID string, filter store.DeviceGroupFilter, opt store.ListOptions) (store.Page[store.DeviceGroup], error) {
	return s.read.ListDeviceGroups(ctx, tenantID, filter, opt)
}

// ClaimDevice implements store.Tx.
func (s *DB) ClaimDevice(ctx context.Context, d store.Device) (stored store.Device, claimed bool, err error) {
	err = s.write(ctx, func(w *tx) error {
		var err error
		stored, claimed, err = w.ClaimDevice(ctx, d)
		return err
	})
	if err != nil {
		return store.Device{}, false, err
	}
	return stored, claimed, nil
}

// GetDevice implements store.Tx.
func (s *DB) GetDevice(ctx context.Context, tenantID, id string) (store.Device, error) {
	return s.read.GetDevice(ctx, tenantID, id)
}

// SetDeviceGroup implements store.Tx.
func (s *DB) SetDeviceGroup(ctx context.Context, tenantID, deviceID, groupID string, at time.Time) error {
	return s.write(ctx, func(w *tx) error { return w.SetDeviceGroup(ctx, tenantID, deviceID, groupID, at) })
}

// ListDevices implements store.Tx.
func (s *DB) ListDevices(ctx context.Context, tenantID string, filter store.DeviceFilter, opt store.ListOptions) (store.Page[store.Device], error) {
	return s.read.ListDevices(ctx, tenantID, filter, opt)
}

// CountDevices implements store.Tx.
func (s *DB) CountDevices(ctx context.Context, tenantID string, filter store.DeviceFilter) (int, error) {
	return s.read.CountDevices(ctx, tenantID, filter)
}

// AppendAudit implements store.Tx.
func (s *DB) AppendAudit(ctx context.Context, e store.AuditEntry) (int64, error) {
	var seq int64
	err := s.write(ctx, func(w *tx) error {
		var err error
		seq, err = w.AppendAudit(ctx, e)
		return err
	})
	if err != nil {
		return 0, err
	}
	return seq, nil
}

// ListAudit implements store.Tx.
func (s *DB) ListAudit(ctx context.Context, filter store.AuditFilter, opt store.ListOptions) (store.Page[store.AuditEntry], error) {
	return s.read.ListAudit(ctx, filter, opt)
}

// GetDeviceByID implements store.Tx.
func (s *DB) GetDeviceByID(ctx context.Context, id string) (store.Device, error) {
	return s.read.GetDeviceByID(ctx, id)
}

// GetDeviceByIDWithGeneration implements store.Tx.
func (s *DB) GetDeviceByIDWithGeneration(ctx context.Context, id string) (store.Device, int64, error) {
	return s.read.GetDeviceByIDWithGeneration(ctx, id)
}

// PolicyGeneration implements store.Tx.
func (s *DB) PolicyGeneration(ctx context.Context, tenantID string) (int64, error) {
	return s.read.PolicyGeneration(ctx, tenantID)
}

// SetDeviceDisabled implements store.Tx.
func (s *DB) SetDeviceDisabled(ctx context.Context, tenantID, deviceID string, disabled bool, at time.Time) error {
	return s.write(ctx, func(w *tx) error { return w.SetDeviceDisabled(ctx, tenantID, deviceID, disabled, at) })
}

// RaiseDeviceSecurityCounter implements store.Tx.
func (s *DB) RaiseDeviceSecurityCounter(ctx context.Context, tenantID, deviceID string, v uint64) error {
	return s.write(ctx, func(w *tx) error { return w.RaiseDeviceSecurityCounter(ctx, tenantID, deviceID, v) })
}

// SetDeviceAKActivated implements store.Tx.
func (s *DB) SetDeviceAKActivated(ctx context.Context, deviceID string, at time.Time) error {
	return s.write(ctx, func(w *tx) error { return w.SetDeviceAKActivated(ctx, deviceID, at) })
}

// RecordAttestation implements store.Tx: the history row and the device's latest fields are
// written in one transaction.
func (s *DB) RecordAttestation(ctx context.Context, a store.Attestation) error {
	return s.write(ctx, func(w *tx) error { return w.RecordAttestation(ctx, a) })
}

// ListAttestations implements store.Tx.
func (s *DB) ListAttestations(ctx context.Context, tenantID, deviceID string, opt store.ListOptions) (store.Page[store.Attestation], error) {
	return s.read.ListAttestations(ctx, tenantID, deviceID, opt)
}

// CreateNonce implements store.Tx.
func (s *DB) CreateNonce(ctx context.Context, n store.Nonce) error {
	return s.write(ctx, func(w *tx) error { return w.CreateNonce(ctx, n) })
}

// DeleteExpiredNonces implements store.Tx.
func (s *DB) DeleteExpiredNonces(ctx context.Context, before time.Time) (n int, err error) {
	err = s.write(ctx, func(w *tx) error {
		var err error
		n, err = w.DeleteExpiredNonces(ctx, before)
		return err
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// CreateOSRelease implements store.Tx.
func (s *DB) CreateOSRelease(ctx context.Context, r store.OSRelease) error {
	return s.write(ctx, func(w *tx) error { return w.CreateOSRelease(ctx, r) })
}

// GetOSRelease implements store.Tx.
func (s *DB) GetOSRelease(ctx context.Context, tenantID, id string) (store.OSRelease, error) {
	return s.read.GetOSRelease(ctx, tenantID, id)
}

// DeleteOSRelease implements store.Tx.
func (s *DB) DeleteOSRelease(ctx context.Context, tenantID, id string) error {
	return s.write(ctx, func(w *tx) error { return w.DeleteOSRelease(ctx, tenantID, id) })
}

// ListOSReleases implements store.Tx.
func (s *DB) ListOSReleases(ctx context.Context, tenantID string, opt store.ListOptions) (store.Page[store.OSRelease], error) {
	return s.read.ListOSReleases(ctx, tenantID, opt)
}

// CreateCACertificate implements store.Tx.
func (s *DB) CreateCACertificate(ctx context.Context, c store.CACertificate) error {
	return s.write(ctx, func(w *tx) error { return w.CreateCACertificate(ctx, c) })
}

// UpdateCACertificate implements store.Tx.
func (s *DB) UpdateCACertificate(ctx context.Context, c store.CACertificate) error {
	return s.write(ctx, func(w *tx) error { return w.UpdateCACertificate(ctx, c) })
}

// ListCACertificates implements store.Tx.
func (s *DB) ListCACertificates(ctx context.Context, tenantID string) ([]store.CACertificate, error) {
	return s.read.ListCACertificates(ctx, tenantID)
}

// CreateImage implements store.Tx.
func (s *DB) CreateImage(ctx context.Context, img store.Image) error {
	return s.write(ctx, func(w *tx) error { return w.CreateImage(ctx, img) })
}

// GetImage implements store.Tx.
func (s *DB) GetImage(ctx context.Context, tenantID, id string) (store.Image, error) {
	return s.read.GetImage(ctx, tenantID, id)
}

// ListImages implements store.Tx.
func (s *DB) ListImages(ctx context.Context, tenantID string, filter store.ImageFilter, opt store.ListOptions) (store.Page[store.Image], error) {
	return s.read.ListImages(ctx, tenantID, filter, opt)
}

// CreateDeployment implements store.Tx.
func (s *DB) CreateDeployment(ctx context.Context, d store.Deployment) error {
	return s.write(ctx, func(w *tx) error { return w.CreateDeployment(ctx, d) })
}

// GetDeployment implements store.Tx.
func (s *DB) GetDeployment(ctx context.Context, tenantID, id string) (store.Deployment, error) {
	return s.read.GetDeployment(ctx, tenantID, id)
}

// ListDeployments implements store.Tx.
func (s *DB) ListDeployments(ctx context.Context, tenantID string, filter store.DeploymentFilter, opt store.ListOptions) (store.Page[store.Deployment], error) {
	return s.read.ListDeployments(ctx, tenantID, filter, opt)
}

// CurrentDeployment implements store.Tx.
func (s *DB) CurrentDeployment(ctx context.Context, tenantID, groupID string) (store.Deployment, error) {
	return s.read.CurrentDeployment(ctx, tenantID, groupID)
}

// CreateSigningKey implements store.Tx.
func (s *DB) CreateSigningKey(ctx context.Context, k store.SigningKey) error {
	return s.write(ctx, func(w *tx) error { return w.CreateSigningKey(ctx, k) })
}

// ListSigningKeys implements store.Tx.
func (s *DB) ListSigningKeys(ctx context.Context, tenantID, purpose string) ([]store.SigningKey, error) {
	return s.read.ListSigningKeys(ctx, tenantID, purpose)
}

// UpdateSigningKey implements store.Tx.
func (s *DB) UpdateSigningKey(ctx context.Context, k store.SigningKey) error {
	return s.write(ctx, func(w *tx) error { return w.UpdateSigningKey(ctx, k) })
}

// PutDeviceReport implements store.Tx.
func (s *DB) PutDeviceReport(ctx context.Context, r store.DeviceReport) error {
	return s.write(ctx, func(w *tx) error { return w.PutDeviceReport(ctx, r) })
}

// GetDeviceReport implements store.Tx.
func (s *DB) GetDeviceReport(ctx context.Context, tenantID, deviceID string) (store.DeviceReport, error) {
	return s.read.GetDeviceReport(ctx, tenantID, deviceID)
}

// PutTUFMetadata implements store.Tx.
func (s *DB) PutTUFMetadata(ctx context.Context, m store.TUFMetadata) error {
	return s.write(ctx, func(w *tx) error { return w.PutTUFMetadata(ctx, m) })
}

// GetTUFMetadata implements store.Tx.
func (s *DB) GetTUFMetadata(ctx context.Context, tenantID, repository, role string, version int64) (store.TUFMetadata, error) {
	return s.read.GetTUFMetadata(ctx, tenantID, repository, role, version)
}

// ListTUFExpiring implements store.Tx.
func (s *DB) ListTUFExpiring(ctx context.Context, role string, before time.Time, limit int) ([]store.TUFMetadata, error) {
	return s.read.ListTUFExpiring(ctx, role, before, limit)
}

// AddErrorReports implements store.Tx.
func (s *DB) AddErrorReports(ctx context.Context, reports []store.ErrorReport) (n int, err error) {
	err = s.write(ctx, func(w *tx) error {
		var err error
		n, err = w.AddErrorReports(ctx, reports)
		return err
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// PutErrorReportDrops implements store.Tx.
func (s *DB) PutErrorReportDrops(ctx context.Context, tenantID, deviceID string, dropped int64, at time.Time) error {
	return s.write(ctx, func(w *tx) error { return w.PutErrorReportDrops(ctx, tenantID, deviceID, dropped, at) })
}

// ListErrorReports implements store.Tx.
func (s *DB) ListErrorReports(ctx context.Context, tenantID string, filter store.ErrorReportFilter, opt store.ListOptions) (store.Page[store.ErrorReport], error) {
	return s.read.ListErrorReports(ctx, tenantID, filter, opt)
}

// ListErrorBuckets implements store.Tx.
func (s *DB) ListErrorBuckets(ctx context.Context, tenantID string, filter store.ErrorReportFilter, perDevice bool, limit int) ([]store.ErrorBucket, error) {
	return s.read.ListErrorBuckets(ctx, tenantID, filter, perDevice, limit)
}

// CountDroppedErrorReports implements store.Tx.
func (s *DB) CountDroppedErrorReports(ctx context.Context, tenantID string, filter store.ErrorReportFilter) (int64, error) {
	return s.read.CountDroppedErrorReports(ctx, tenantID, filter)
}

// DeleteErrorReportsBefore implements store.Tx.
func (s *DB) DeleteErrorReportsBefore(ctx context.Context, before time.Time, limit int) (n int, err error) {
	err = s.write(ctx, func(w *tx) error {
		var err error
		n, err = w.DeleteErrorReportsBefore(ctx, before, limit)
		return err
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// SetOSReleaseFeed implements store.Tx.
func (s *DB) SetOSReleaseFeed(ctx context.Context, tenantID, id string, feed store.OSFeed) error {
	return s.write(ctx, func(w *tx) error { return w.SetOSReleaseFeed(ctx, tenantID, id, feed) })
}

// CreateRollout implements store.Tx.
func (s *DB) CreateRollout(ctx context.Context, r store.Rollout, devices []store.RolloutDevice) error {
	return s.write(ctx, func(w *tx) error { return w.CreateRollout(ctx, r, devices) })
}

// GetRollout implements store.Tx.
func (s *DB) GetRollout(ctx context.Context, tenantID, deploymentID string) (store.Rollout, error) {
	return s.read.GetRollout(ctx, tenantID, deploymentID)
}

// ActiveRollout implements store.Tx.
func (s *DB) ActiveRollout(ctx context.Context, tenantID, groupID string) (store.Rollout, error) {
	return s.read.ActiveRollout(ctx, tenantID, groupID)
}

// UpdateRollout implements store.Tx.
func (s *DB) UpdateRollout(ctx context.Context, r store.Rollout) error {
	return s.write(ctx, func(w *tx) error { return w.UpdateRollout(ctx, r) })
}

// ListRolloutDevices implements store.Tx.
func (s *DB) ListRolloutDevices(ctx context.Context, tenantID, deploymentID string) ([]store.RolloutDevice, error) {
	return s.read.ListRolloutDevices(ctx, tenantID, deploymentID)
}

// GetRolloutDevice implements store.Tx.
func (s *DB) GetRolloutDevice(ctx context.Context, tenantID, deploymentID, deviceID string) (store.RolloutDevice, error) {
	return s.read.GetRolloutDevice(ctx, tenantID, deploymentID, deviceID)
}

// ReleaseRolloutDevices implements store.Tx.
func (s *DB) ReleaseRolloutDevices(ctx context.Context, tenantID, deploymentID string, deviceIDs []string, at time.Time) error {
	return s.write(ctx, func(w *tx) error { return w.ReleaseRolloutDevices(ctx, tenantID, deploymentID, deviceIDs, at) })
}

// ListActiveRollouts implements store.Tx.
func (s *DB) ListActiveRollouts(ctx context.Context, limit int) ([]store.Rollout, error) {
	return s.read.ListActiveRollouts(ctx, limit)
}
