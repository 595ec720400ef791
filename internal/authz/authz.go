// Package authz decides what a caller may do: it names every action on the management plane and
// says which tenant roles allow it. It decides and never acts; the management plane asks it before
// every read and write. Principal describes an authenticated caller; authz trusts the principal it
// is given, which the API's authentication has already checked.
package authz

import (
	"slices"
	"time"

	"github.com/rampart-iot/rampart/internal/store"
)

// Action is something a caller does to a tenant's resources. Actions double as the audit log's
// action names.
type Action string

// The actions. Reads are allowed to every role; writes as in Azure Sphere: Contributors may
// create and change but not delete; only Administrators manage roles and others' tokens.
const (
	TenantRead Action = "tenant.read"

	RoleRead   Action = "role.read"
	RoleAdd    Action = "role.add"
	RoleDelete Action = "role.delete"

	TokenCreate Action = "token.create" // a token for another user of the tenant
	TokenRevoke Action = "token.revoke" // another user's tenant-scoped token

	ProductRead   Action = "product.read"
	ProductCreate Action = "product.create"
	ProductUpdate Action = "product.update"
	ProductDelete Action = "product.delete"

	DeviceGroupRead   Action = "device-group.read"
	DeviceGroupCreate Action = "device-group.create"
	DeviceGroupUpdate Action = "device-group.update"
	DeviceGroupDelete Action = "device-group.delete"

	DeviceRead    Action = "device.read"
	DeviceClaim   Action = "device.claim"
	DeviceMove    Action = "device.move"
	DeviceDisable Action = "device.disable" // and enable
	// DevicePress presses a button of an emulated device's board.
	DevicePress Action = "device.press"

	OSReleaseRead   Action = "os-release.read"
	OSReleaseCreate Action = "os-release.create"
	OSReleaseDelete Action = "os-release.delete"

	CARead  Action = "ca-certificate.read"
	CAProof Action = "ca-certificate.proof"

	ImageRead        Action = "image.read"
	ImageAdd         Action = "image.add"
	DeploymentRead   Action = "deployment.read"
	DeploymentCreate Action = "deployment.create"

	// UpdateKeyManage takes the tenant's update-metadata root key offline and back.
	UpdateKeyManage Action = "update-key.manage"

	AuditRead Action = "audit.read"

	// ErrorReportRead reads the error reports the tenant's devices uploaded.
	ErrorReportRead Action = "error-report.read"

	// WebhookRead lists webhooks (never their secrets) and their deliveries; WebhookManage
	// creates and deletes them.
	WebhookRead   Action = "webhook.read"
	WebhookManage Action = "webhook.manage"
)

// Service-level actions, which no tenant role grants.
const (
	TenantCreate     Action = "tenant.create"      // service administrators only
	ServiceAuditRead Action = "service-audit.read" // service administrators only
	SelfTokenCreate  Action = "token.create-own"   // any caller, for itself
	SelfTokenRevoke  Action = "token.revoke-own"   // any caller, its own tokens
)

var reads = []Action{TenantRead, RoleRead, ProductRead, DeviceGroupRead, DeviceRead, AuditRead, OSReleaseRead, CARead,
	ImageRead, DeploymentRead, ErrorReportRead, WebhookRead}

var contributorWrites = []Action{ProductCreate, ProductUpdate, DeviceGroupCreate, DeviceGroupUpdate, DeviceClaim, DeviceMove,
	DeviceDisable, DevicePress, OSReleaseCreate, CAProof, ImageAdd, DeploymentCreate}

var adminOnly = []Action{RoleAdd, RoleDelete, TokenCreate, TokenRevoke, ProductDelete, DeviceGroupDelete, OSReleaseDelete,
	UpdateKeyManage, WebhookManage}

// TenantActions lists every action a tenant role can grant, for tests and documentation.
func TenantActions() []Action {
	return slices.Concat(reads, contributorWrites, adminOnly)
}

// Allowed reports whether role permits action in its tenant.
func Allowed(role store.Role, a Action) bool {
	switch role {
	case store.RoleAdministrator:
		return slices.Contains(reads, a) || slices.Contains(contributorWrites, a) || slices.Contains(adminOnly, a)
	case store.RoleContributor:
		return slices.Contains(reads, a) || slices.Contains(contributorWrites, a)
	case store.RoleReader:
		return slices.Contains(reads, a)
	}
	return false
}

// IsWrite reports whether an action changes state, and so is audited.
func IsWrite(a Action) bool { return !slices.Contains(reads, a) && a != ServiceAuditRead }

// ParseRole returns the role named s, exactly as Azure Sphere spells it.
func ParseRole(s string) (store.Role, bool) {
	switch r := store.Role(s); r {
	case store.RoleAdministrator, store.RoleContributor, store.RoleReader:
		return r, true
	}
	return "", false
}

// Principal is an authenticated caller.
type Principal struct {
	UserID       string
	UserName     string
	ServiceAdmin bool
	TokenID      string
	// TokenTenantID limits the caller to one tenant when set.
	TokenTenantID string
	ExpiresAt     time.Time
}

// InScope reports whether the principal's token may be used in tenantID at all.
func (p *Principal) InScope(tenantID string) bool {
	return p.TokenTenantID == "" || p.TokenTenantID == tenantID
}
