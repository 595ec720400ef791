package httpapi

import (
	"encoding/json"

	v1 "github.com/rampart-iot/rampart/api/v1"
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
		CreatedAt: g.CreatedAt, UpdatedAt: g.UpdatedAt}
}

func toGroups(gs []store.DeviceGroup) []v1.DeviceGroup {
	out := make([]v1.DeviceGroup, len(gs))
	for i, g := range gs {
		out[i] = toGroup(g)
	}
	return out
}

func toDevice(d store.Device) v1.Device {
	return v1.Device{ID: d.ID, TenantID: d.TenantID, ProductID: d.ProductID, DeviceGroupID: d.DeviceGroupID,
		RootOfTrust: d.RootOfTrust, AgentVersion: d.AgentVersion, EKCertificate: len(d.EKCertificate) > 0,
		ClaimedAt: d.ClaimedAt, ClaimedBy: d.ClaimedBy, UpdatedAt: d.UpdatedAt}
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
