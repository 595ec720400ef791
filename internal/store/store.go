// Package store defines the security service's persistent state: the records it keeps (tenants,
// users, tokens, roles, products, device groups, devices and the audit log) and the Store interface
// that every storage backend implements. Backends register themselves by name (see Register);
// the built-ins are "sqlite" (the default, embedded) and "postgres".
//
// A store trusts its caller: it enforces uniqueness, referential integrity and atomicity, never
// authorization. Callers must check roles and tenant ownership before they call a store.
package store

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors. Backends wrap them with %w and a message naming the record, so callers can
// test with errors.Is and still show a useful message.
var (
	// ErrNotFound means the record does not exist (or is not in the given tenant).
	ErrNotFound = errors.New("not found")
	// ErrConflict means a uniqueness rule was violated, such as a name already taken.
	ErrConflict = errors.New("conflict")
	// ErrClaimedByOtherTenant means a device is already claimed by a different tenant.
	ErrClaimedByOtherTenant = errors.New("device is claimed by another tenant")
	// ErrNotEmpty means a record cannot be deleted because others still refer to it.
	ErrNotEmpty = errors.New("not empty")
	// ErrSchemaTooNew means the database was migrated by a newer version of Rampart.
	ErrSchemaTooNew = errors.New("database schema is newer than this binary")
)

// Store is a storage backend. Its Tx methods each run in their own transaction; Update runs a
// function in one read-write transaction that commits only if the function returns nil.
type Store interface {
	Tx
	// Update runs fn in a single read-write transaction. If fn returns an error, or the
	// commit fails, nothing fn wrote is kept and the error is returned. Update transactions
	// are serializable, so a read-modify-write inside fn never loses a concurrent write, and
	// a Tx method that fails with one of the sentinel errors leaves tx usable, so fn may
	// handle the error and go on. fn must work through tx only: calling the Store from fn
	// may deadlock.
	Update(ctx context.Context, fn func(tx Tx) error) error
	// Ping reports whether the backend can serve requests.
	Ping(ctx context.Context) error
	// Close releases the backend's resources.
	Close() error
}

// Tx is the set of operations on stored records. Times are stored with microsecond precision
// and returned in UTC.
type Tx interface {
	CreateTenant(ctx context.Context, t Tenant) error
	GetTenant(ctx context.Context, id string) (Tenant, error)
	GetTenantByName(ctx context.Context, name string) (Tenant, error)
	// ListTenantsForUser lists the tenants in which the user holds a role.
	ListTenantsForUser(ctx context.Context, userID string, opt ListOptions) (Page[Tenant], error)

	CreateUser(ctx context.Context, u User) error
	GetUser(ctx context.Context, id string) (User, error)
	GetUserByName(ctx context.Context, name string) (User, error)

	CreateToken(ctx context.Context, t Token) error
	GetToken(ctx context.Context, id string) (Token, error)
	// GetTokenByHash finds a token by the SHA-256 of its secret.
	GetTokenByHash(ctx context.Context, hash []byte) (Token, error)
	ListTokens(ctx context.Context, filter TokenFilter, opt ListOptions) (Page[Token], error)
	// RevokeToken marks a token revoked at the given time. Revoking twice is not an error
	// and keeps the first time.
	RevokeToken(ctx context.Context, id string, at time.Time) error

	// PutRole gives a user a role in a tenant, replacing any role the user held there.
	PutRole(ctx context.Context, r RoleAssignment) error
	GetRole(ctx context.Context, tenantID, userID string) (RoleAssignment, error)
	DeleteRole(ctx context.Context, tenantID, userID string) error
	ListRoles(ctx context.Context, tenantID string, opt ListOptions) (Page[RoleAssignment], error)
	// CountRoles counts the users that hold the given role in a tenant.
	CountRoles(ctx context.Context, tenantID string, role Role) (int, error)

	CreateProduct(ctx context.Context, p Product) error
	GetProduct(ctx context.Context, tenantID, id string) (Product, error)
	// UpdateProduct writes a product's Name, Description and UpdatedAt.
	UpdateProduct(ctx context.Context, p Product) error
	// DeleteProduct deletes a product and its device groups. It fails with ErrNotEmpty if any
	// of those groups holds a device.
	DeleteProduct(ctx context.Context, tenantID, id string) error
	ListProducts(ctx context.Context, tenantID string, filter ProductFilter, opt ListOptions) (Page[Product], error)

	CreateDeviceGroup(ctx context.Context, g DeviceGroup) error
	GetDeviceGroup(ctx context.Context, tenantID, id string) (DeviceGroup, error)
	// UpdateDeviceGroup writes every field of a device group but its ID, TenantID, ProductID
	// and CreatedAt: a group never moves to another product.
	UpdateDeviceGroup(ctx context.Context, g DeviceGroup) error
	// DeleteDeviceGroup fails with ErrNotEmpty if the group holds a device.
	DeleteDeviceGroup(ctx context.Context, tenantID, id string) error
	ListDeviceGroups(ctx context.Context, tenantID string, filter DeviceGroupFilter, opt ListOptions) (Page[DeviceGroup], error)

	// ClaimDevice inserts d unless a device with its ID exists. If the device is already
	// claimed by d.TenantID it returns the stored device and claimed=false; if it is claimed
	// by another tenant it returns ErrClaimedByOtherTenant and nothing about that tenant.
	ClaimDevice(ctx context.Context, d Device) (stored Device, claimed bool, err error)
	GetDevice(ctx context.Context, tenantID, id string) (Device, error)
	// SetDeviceGroup moves a device to a group of its tenant ("" leaves it unassigned).
	SetDeviceGroup(ctx context.Context, tenantID, deviceID, groupID string, at time.Time) error
	ListDevices(ctx context.Context, tenantID string, filter DeviceFilter, opt ListOptions) (Page[Device], error)
	CountDevices(ctx context.Context, tenantID string, filter DeviceFilter) (int, error)

	// AppendAudit adds an entry to the audit log and returns its sequence number.
	AppendAudit(ctx context.Context, e AuditEntry) (int64, error)
	// ListAudit lists audit entries newest first. TenantID "" lists service-level entries.
	ListAudit(ctx context.Context, filter AuditFilter, opt ListOptions) (Page[AuditEntry], error)
}

// ListOptions selects one page of a list. Lists are ordered by ID (audit: newest first) and
// paged by keyset: After is the Next value of the previous page.
type ListOptions struct {
	After string
	Limit int // 0 means DefaultLimit; values above MaxLimit are clamped
}

// Page limits.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// Normalize returns opt with Limit defaulted and clamped.
func (opt ListOptions) Normalize() ListOptions {
	if opt.Limit <= 0 {
		opt.Limit = DefaultLimit
	}
	if opt.Limit > MaxLimit {
		opt.Limit = MaxLimit
	}
	return opt
}

// Page is one page of a list. Next is empty on the last page.
type Page[T any] struct {
	Items []T
	Next  string
}

// Role is a user's role in a tenant.
type Role string

// The roles, as Azure Sphere users know them.
const (
	RoleAdministrator Role = "Administrator"
	RoleContributor   Role = "Contributor"
	RoleReader        Role = "Reader"
)

// OSFeed is the OS release feed a device group follows.
type OSFeed string

// OS feeds.
const (
	OSFeedRetail     OSFeed = "Retail"
	OSFeedRetailEval OSFeed = "RetailEval"
)

// UpdatePolicy says which deployments a device group receives.
type UpdatePolicy string

// Update policies.
const (
	UpdateAll            UpdatePolicy = "UpdateAll"
	No3rdPartyAppUpdates UpdatePolicy = "No3rdPartyAppUpdates"
)

// Tenant is an organization's isolated space.
type Tenant struct {
	ID        string
	Name      string
	CreatedAt time.Time
}

// User is a person or automation that authenticates with API tokens.
type User struct {
	ID   string
	Name string
	// ServiceAdmin users may create tenants and read the service-level audit log.
	ServiceAdmin bool
	CreatedAt    time.Time
}

// Token is an API token. Only the SHA-256 hash of its secret is stored.
type Token struct {
	ID          string
	UserID      string
	TenantID    string // "" for a token not limited to one tenant
	Hash        []byte
	Description string
	CreatedBy   string // user ID of the creator
	CreatedAt   time.Time
	ExpiresAt   time.Time
	RevokedAt   time.Time // zero if not revoked
}

// TokenFilter selects tokens. Empty fields match everything.
type TokenFilter struct {
	UserID   string
	TenantID string
}

// RoleAssignment is a user's role in a tenant. UserName is filled in by reads.
type RoleAssignment struct {
	TenantID  string
	UserID    string
	UserName  string
	Role      Role
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Product is a kind of device a tenant makes.
type Product struct {
	ID          string
	TenantID    string
	Name        string
	Description string
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// ProductFilter selects products. Name matches case-insensitively and exactly.
type ProductFilter struct {
	Name string
}

// DeviceGroup is a set of devices of one product that share an OS feed, update policy and
// check-in interval.
type DeviceGroup struct {
	ID              string
	TenantID        string
	ProductID       string
	Name            string
	Description     string
	OSFeed          OSFeed
	UpdatePolicy    UpdatePolicy
	CheckInInterval time.Duration // whole seconds
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

// DeviceGroupFilter selects device groups. Name matches case-insensitively and exactly.
type DeviceGroupFilter struct {
	ProductID string
	Name      string
}

// Device is a claimed device. Its identity fields come from its enrollment record.
type Device struct {
	ID            string // lowercase hex SHA-256 of the EK public key
	TenantID      string
	DeviceGroupID string // "" if unassigned
	ProductID     string // derived from the group on reads; ignored on writes
	RootOfTrust   string
	AgentVersion  string
	EKPublic      []byte
	EKCertificate []byte // nil if the TPM had none
	AKPublic      []byte
	Enrollment    []byte // the enrollment record as claimed, verbatim
	ClaimedBy     string // user ID
	ClaimedAt     time.Time
	UpdatedAt     time.Time
}

// DeviceFilter selects devices. Unassigned selects only devices in no group.
type DeviceFilter struct {
	ProductID     string
	DeviceGroupID string
	Unassigned    bool
}

// Audit results.
const (
	AuditSuccess = "success"
	AuditFailure = "failure"
)

// AuditEntry records one write attempt: who, what, when and the result.
type AuditEntry struct {
	Seq          int64 // assigned by the store
	TenantID     string
	Time         time.Time
	ActorID      string
	ActorName    string
	Action       string
	ResourceType string
	ResourceID   string
	Result       string // AuditSuccess or AuditFailure
	ErrorCode    string // empty on success
	Message      string
	Details      string // JSON object, may be empty
}

// AuditFilter selects audit entries. TenantID selects one tenant's log, "" the service-level
// log; the other empty fields match everything. Since is inclusive, Until exclusive.
type AuditFilter struct {
	TenantID     string
	ActorName    string
	Action       string
	ResourceType string
	ResourceID   string
	Result       string
	Since        time.Time
	Until        time.Time
}
