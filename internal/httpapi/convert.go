package httpapi

import (
	"encoding/json"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/attestsvc"
	"github.com/rampart-iot/rampart/internal/manage"
	"github.com/rampart-iot/rampart/internal/store"
)

func toTenant(t manage.TenantView) v1.Tenant {
	return v1.Tenant{ID: t.ID, Name: t.Name, Role: string(t.Role), CreatedAt: t.CreatedAt}
}

func toUser(u store.User) v1.User {
	return v1.User{ID: u.ID, Name: u.Name, ServiceAdmin: u.ServiceAdmin, CreatedAt: u.CreatedAt}
}

func toRole(r store.RoleAssignment) v1.RoleAssignment {
	return v1.RoleAssignment{UserID: r.UserID, User: r.UserName, Role: string(r.Role), CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
}

func toToken(t store.Token) v1.Token {
	return v1.Token{ID: t.ID, UserID: t.UserID, TenantID: t.TenantID, Description: t.Description,
		CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt, Revoked: !t.RevokedAt.IsZero()}
}

func toIssuedToken(t manage.IssuedToken) v1.Token {
	out := toToken(t.Token)
	out.User = t.UserName
	out.Secret = t.Secret
	return out
}

func toProduct(p store.Product) v1.Product {
	return v1.Product{ID: p.ID, TenantID: p.TenantID, Name: p.Name, Description: p.Description, CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt}
}

func toGroup(g store.DeviceGroup) v1.DeviceGroup {
	return v1.DeviceGroup{ID: g.ID, TenantID: g.TenantID, ProductID: g.ProductID, Name: g.Name, Description: g.Description,
		OSFeed: string(g.OSFeed), UpdatePolicy: string(g.UpdatePolicy), CheckInIntervalSeconds: int64(g.CheckInInterval.Seconds()),
		CertLifetimeSeconds: certLifetimeSeconds(g.CertLifetime),
		CreatedAt:           g.CreatedAt, UpdatedAt: g.UpdatedAt}
}

func toGroups(gs []store.DeviceGroup) []v1.DeviceGroup {
	out := make([]v1.DeviceGroup, len(gs))
	for i, g := range gs {
		out[i] = toGroup(g)
	}
	return out
}

func toDevice(d store.Device) v1.Device {
	out := v1.Device{ID: d.ID, TenantID: d.TenantID, ProductID: d.ProductID, DeviceGroupID: d.DeviceGroupID,
		RootOfTrust: d.RootOfTrust, AgentVersion: d.AgentVersion, EKCertificate: len(d.EKCertificate) > 0,
		ClaimedAt: d.ClaimedAt, ClaimedBy: d.ClaimedBy, UpdatedAt: d.UpdatedAt,
		Disabled: d.Disabled, AKActivated: !d.AKActivated.IsZero(), SecurityCounter: d.SecurityCounter}
	if !d.LastAttestation.IsZero() {
		out.LastAttestation = &v1.AttestationSummary{Time: d.LastAttestation, Result: d.LastResult, Reason: d.LastReason,
			Message: d.LastMessage, CertificateExpires: d.CertificateExpires}
	}
	return out
}

func toAttestation(a store.Attestation) v1.Attestation {
	out := v1.Attestation{ID: a.ID, Time: a.Time, Result: a.Result, Reason: a.Reason, Message: a.Message,
		OSReleaseID: a.OSReleaseID, CertificateSerial: a.CertificateSerial, CertificateExpires: a.CertificateExpires}
	if a.Measurements != "" && json.Valid([]byte(a.Measurements)) {
		out.Measurements = json.RawMessage(a.Measurements)
	}
	return out
}

func toOSRelease(r store.OSRelease) v1.OSRelease {
	return v1.OSRelease{ID: r.ID, TenantID: r.TenantID, Version: r.Version, Description: r.Description,
		Measurements: r.Measurements, Feed: string(r.Feed), ImageID: r.ImageID, SecurityVersion: r.SecurityVersion,
		CreatedAt: r.CreatedAt}
}

func toAudit(e store.AuditEntry) v1.AuditEntry {
	out := v1.AuditEntry{Seq: e.Seq, TenantID: e.TenantID, Time: e.Time, ActorID: e.ActorID, Actor: e.ActorName,
		Action: e.Action, ResourceType: e.ResourceType, ResourceID: e.ResourceID, Result: e.Result,
		ErrorCode: e.ErrorCode, Message: e.Message}
	if e.Details != "" && json.Valid([]byte(e.Details)) {
		out.Details = json.RawMessage(e.Details)
	}
	return out
}

// certLifetimeSeconds reports a group's certificate lifetime, the default when unset.
func certLifetimeSeconds(d time.Duration) int64 {
	if d == 0 {
		d = attestsvc.DefaultCertLifetime
	}
	return int64(d / time.Second)
}
