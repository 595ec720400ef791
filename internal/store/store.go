// Package store defines the security service's persistent state: the records it keeps (tenants,
// users, tokens, roles, products, device groups, devices, the audit log; for attestation the
// devices' attestation history, nonces, OS releases and CA certificates; for renewable security
// the images, which tenant owns each component, the device groups' deployments and the tenants'
// signing keys; for failure reporting the events devices report) and the Store interface that
// every storage backend implements. Backends register themselves by name (see Register); the
// built-ins are "sqlite" (the default, embedded) and "postgres".
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
	// ErrComponentOwned means a component ID already belongs to another tenant.
	ErrComponentOwned = errors.New("component ID is owned by another tenant")
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
	// of those groups holds a device or has a deployment.
	DeleteProduct(ctx context.Context, tenantID, id string) error
	ListProducts(ctx context.Context, tenantID string, filter ProductFilter, opt ListOptions) (Page[Product], error)

	CreateDeviceGroup(ctx context.Context, g DeviceGroup) error
	GetDeviceGroup(ctx context.Context, tenantID, id string) (DeviceGroup, error)
	// UpdateDeviceGroup writes every field of a device group but its ID, TenantID, ProductID
	// and CreatedAt: a group never moves to another product.
	UpdateDeviceGroup(ctx context.Context, g DeviceGroup) error
	// DeleteDeviceGroup fails with ErrNotEmpty if the group holds a device or has a deployment:
	// deployments are history, never deleted, so a group that was ever deployed to stays.
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

	AttestationTx
	UpdateTx
	CheckInTx
	ReportTx
	RolloutTx
	WebhookTx
	ConsoleTx
}

// AttestationTx is the state of remote attestation and the certificate authorities.
type AttestationTx interface {
	// GetDeviceByID returns a device whatever its tenant: for the device-facing service, which
	// learns the tenant from the device. Management code must use GetDevice.
	GetDeviceByID(ctx context.Context, id string) (Device, error)
	// GetDeviceByIDWithGeneration returns what GetDeviceByID returns and, read in the same
	// statement, the PolicyGeneration of the device's tenant.
	GetDeviceByIDWithGeneration(ctx context.Context, id string) (Device, int64, error)
	// PolicyGeneration returns the tenant's attestation policy generation, a number that
	// every write to the tenant's OS releases (CreateOSRelease, SetOSReleaseFeed,
	// DeleteOSRelease) or device groups (CreateDeviceGroup, UpdateDeviceGroup,
	// DeleteDeviceGroup, DeleteProduct) raises in its own transaction. A reader that keeps a
	// copy of releases or groups may use it only while the generation it read before them is
	// unchanged, so a change is seen by every replica at its next read of the generation. It
	// fails with ErrNotFound if there is no such tenant.
	PolicyGeneration(ctx context.Context, tenantID string) (int64, error)
	// SetDeviceDisabled enables or disables a device of the tenant and sets its UpdatedAt to
	// at. It fails with ErrNotFound if the tenant has no such device.
	SetDeviceDisabled(ctx context.Context, tenantID, deviceID string, disabled bool, at time.Time) error
	// RaiseDeviceSecurityCounter raises a device's SecurityCounter to v; a v at or below it
	// changes nothing and is not an error. UpdatedAt is not touched.
	RaiseDeviceSecurityCounter(ctx context.Context, tenantID, deviceID string, v uint64) error
	// SetDeviceAKActivated records that credential activation proved the device's AK and EK
	// share one TPM. It is set once; later calls keep the first time. It does not change the
	// device's UpdatedAt, and fails with ErrNotFound if there is no such device.
	SetDeviceAKActivated(ctx context.Context, deviceID string, at time.Time) error
	// RecordAttestation appends an attestation to the device's history and updates the
	// device's latest-attestation fields, in one step: LastAttestation, LastResult,
	// LastReason and LastMessage always become a's Time, Result, Reason and Message, while
	// CertificateExpires becomes a's only if that is not zero, so that a failed attestation
	// keeps the expiry of the certificate the device still holds. UpdatedAt is not changed.
	// It fails with ErrNotFound unless a.TenantID has the device, and with ErrConflict if an
	// attestation with a.ID exists. a.OSReleaseID is not checked: the history outlives the
	// releases it names.
	RecordAttestation(ctx context.Context, a Attestation) error
	// ListAttestations lists a device's attestations newest first, that is by ID descending
	// (IDs are UUIDv7); After is the ID of the last attestation of the page before. It fails
	// with ErrNotFound if the tenant has no such device.
	ListAttestations(ctx context.Context, tenantID, deviceID string, opt ListOptions) (Page[Attestation], error)

	// CreateNonce stores an attestation nonce, keyed by the SHA-256 of its value. The nonce
	// must have a Hash and an ExpiresAt. It fails with ErrNotFound unless n.TenantID has the
	// device n.DeviceID, and with ErrConflict if a nonce with the same hash exists.
	CreateNonce(ctx context.Context, n Nonce) error
	// DeleteExpiredNonces deletes the nonces whose ExpiresAt is before the given time
	// (compared to the microsecond, as times are stored) and returns how many it deleted.
	DeleteExpiredNonces(ctx context.Context, before time.Time) (int, error)

	// CreateOSRelease registers an OS release and its golden measurements. Versions are unique
	// within a tenant (exactly, not case-folded), IDs globally: either taken is ErrConflict.
	// It fails with ErrNotFound if the tenant does not exist.
	CreateOSRelease(ctx context.Context, r OSRelease) error
	GetOSRelease(ctx context.Context, tenantID, id string) (OSRelease, error)
	// DeleteOSRelease deletes a release of the tenant. Attestations that name it keep its ID.
	DeleteOSRelease(ctx context.Context, tenantID, id string) error
	ListOSReleases(ctx context.Context, tenantID string, opt ListOptions) (Page[OSRelease], error)
	// SetOSReleaseFeed publishes the tenant's release to feed (or takes it back to
	// FeedUnpublished). ErrNotFound unless the tenant has the release.
	SetOSReleaseFeed(ctx context.Context, tenantID, id string, feed OSFeed) error

	// CreateCACertificate stores a CA certificate; TenantID "" is the service root. IDs are
	// unique across tenants and the root (ErrConflict); a TenantID that does not exist is
	// ErrNotFound.
	CreateCACertificate(ctx context.Context, c CACertificate) error
	// UpdateCACertificate writes the KeyCiphertext (nil to drop the key), ActiveFrom and
	// RevokedAt of the CA certificate with c's ID and TenantID, as given; it ignores the other
	// fields. It fails with ErrNotFound if that tenant (or the root, for "") has no such
	// certificate.
	UpdateCACertificate(ctx context.Context, c CACertificate) error
	// ListCACertificates lists a tenant's CA certificates ("" for the service root's), oldest
	// first (by CreatedAt, then ID), all of them.
	ListCACertificates(ctx context.Context, tenantID string) ([]CACertificate, error)
}

// UpdateTx is the state of renewable security: images, who owns each component, deployments,
// and the tenants' signing keys.
type UpdateTx interface {
	// CreateImage stores an uploaded image. It claims the image's component ID for the tenant
	// on first use, for good; a component ID owned by another tenant fails with
	// ErrComponentOwned (and nothing about that tenant), an image ID that exists in any tenant
	// with ErrConflict (ownership is checked first), a tenant that does not exist with
	// ErrNotFound. When it fails, nothing is written: the component is not claimed.
	CreateImage(ctx context.Context, img Image) error
	// GetImage fails with ErrNotFound unless the tenant has the image.
	GetImage(ctx context.Context, tenantID, id string) (Image, error)
	// ImagePackageReferenced reports whether an image of any tenant has the package digest
	// (PackageSHA256): the blob garbage collector keeps those blobs.
	ImagePackageReferenced(ctx context.Context, packageSHA256 string) (bool, error)
	ListImages(ctx context.Context, tenantID string, filter ImageFilter, opt ListOptions) (Page[Image], error)

	// CreateDeployment records a device group's new deployment, which becomes its current one.
	// Every image must be the tenant's and the group must be the tenant's (ErrNotFound
	// otherwise). Deployment IDs are unique across tenants, and d.ID must sort after the ID of
	// the group's current deployment, so that it does become current: either broken is
	// ErrConflict (the caller makes a new UUIDv7 and tries again).
	CreateDeployment(ctx context.Context, d Deployment) error
	// GetDeployment fails with ErrNotFound unless the tenant has the deployment.
	GetDeployment(ctx context.Context, tenantID, id string) (Deployment, error)
	// ListDeployments lists deployments newest first, that is by ID descending (IDs are
	// UUIDv7); After is the ID of the last deployment of the page before.
	ListDeployments(ctx context.Context, tenantID string, filter DeploymentFilter, opt ListOptions) (Page[Deployment], error)
	// CurrentDeployment is the group's newest deployment (the greatest ID); ErrNotFound if it
	// has none or the tenant has no such group.
	CurrentDeployment(ctx context.Context, tenantID, groupID string) (Deployment, error)

	// CreateSigningKey stores a tenant key (its private half sealed with the service's
	// key-encryption key). IDs are unique across tenants: an existing ID is ErrConflict; a
	// tenant that does not exist is ErrNotFound.
	CreateSigningKey(ctx context.Context, k SigningKey) error
	// ListSigningKeys lists a tenant's keys for one purpose (matched exactly), oldest first (by
	// CreatedAt, a zero time first, then ID), all of them, revoked or not.
	ListSigningKeys(ctx context.Context, tenantID, purpose string) ([]SigningKey, error)
	// UpdateSigningKey writes the KeyCiphertext (nil to drop the private key) and RevokedAt (zero
	// for not revoked) of the key with k's ID and TenantID, as given; it ignores the other
	// fields. It fails with ErrNotFound unless that tenant has such a key.
	UpdateSigningKey(ctx context.Context, k SigningKey) error
}

// CheckInTx is what devices report at check-in and the signed update metadata they fetch.
type CheckInTx interface {
	// PutDeviceReport writes a device's latest check-in report over the one before. It fails
	// with ErrNotFound unless the tenant has the device.
	PutDeviceReport(ctx context.Context, r DeviceReport) error
	// GetDeviceReport fails with ErrNotFound unless the tenant's device has checked in.
	GetDeviceReport(ctx context.Context, tenantID, deviceID string) (DeviceReport, error)
	// RecordDeviceHours records that the tenant's device was up in every hour from from to to
	// (inclusive; at most MaxDeviceHoursPerRecord, the latest), running deploymentID; an hour
	// already recorded takes the newer deployment.
	RecordDeviceHours(ctx context.Context, tenantID, deviceID, deploymentID string, from, to time.Time) error
	// MarkCrashedHour records that an application of the device crashed in the hour of at. An
	// hour not recorded as up yet is recorded, with the deployment of the device's latest hour.
	MarkCrashedHour(ctx context.Context, tenantID, deviceID string, at time.Time) error
	// CohortHours counts a deployment's recorded device-hours, and those with a crash.
	CohortHours(ctx context.Context, tenantID, deploymentID string) (CohortHours, error)
	// DeleteDeviceHoursBefore deletes the hours before t and says how many went (retention).
	DeleteDeviceHoursBefore(ctx context.Context, t time.Time) (int64, error)
	// AddBoardPress queues a press of button for the tenant's device, taken at its next
	// check-in; ErrConflict when MaxBoardPresses are already waiting, ErrNotFound for another
	// tenant's device.
	AddBoardPress(ctx context.Context, tenantID, deviceID, button string, at time.Time) error
	// TakeBoardPresses removes and returns the device's waiting presses, oldest first.
	TakeBoardPresses(ctx context.Context, tenantID, deviceID string) ([]string, error)

	// PutTUFMetadata stores one version of one role of a repository. Versions are never
	// rewritten: an existing (tenant, repository, role, version) is ErrConflict, and a tenant
	// that does not exist is ErrNotFound.
	PutTUFMetadata(ctx context.Context, m TUFMetadata) error
	// GetTUFMetadata returns one version of a role, or its newest when version is 0;
	// ErrNotFound if there is none.
	GetTUFMetadata(ctx context.Context, tenantID, repository, role string, version int64) (TUFMetadata, error)
	// ListTUFExpiring lists, across tenants, the newest version of role in each repository
	// when it expires before the given time, soonest first, at most limit of them.
	ListTUFExpiring(ctx context.Context, role string, before time.Time, limit int) ([]TUFMetadata, error)
}

// ReportTx is the error reports devices upload: their events and how many their queues dropped.
type ReportTx interface {
	// AddErrorReports stores events devices reported, assigning each its Seq. Each report's
	// TenantID must have its DeviceID (ErrNotFound otherwise, and nothing is stored). An event
	// whose (DeviceID, ID) is stored already is skipped and keeps what was stored first: a
	// retried upload does not duplicate. It returns how many it stored.
	AddErrorReports(ctx context.Context, reports []ErrorReport) (int, error)
	// PutErrorReportDrops records the total number of events a device's queue has dropped; the
	// greatest total reported is kept. It fails with ErrNotFound unless the tenant has the device.
	PutErrorReportDrops(ctx context.Context, tenantID, deviceID string, dropped int64, at time.Time) error
	// ListErrorReports lists a tenant's reports newest first, that is by Seq descending; After
	// is the decimal Seq of the last report of the page before.
	ListErrorReports(ctx context.Context, tenantID string, filter ErrorReportFilter, opt ListOptions) (Page[ErrorReport], error)
	// ListErrorBuckets aggregates the reports filter selects by type, component, image, signal
	// and exit code (and device, if perDevice), most events first, then the latest last seen
	// first, then by key; at most limit buckets (clamped to 1..MaxBucketLimit).
	ListErrorBuckets(ctx context.Context, tenantID string, filter ErrorReportFilter, perDevice bool, limit int) ([]ErrorBucket, error)
	// CountDroppedErrorReports sums the dropped totals of the tenant's devices that filter's
	// ProductID, DeviceGroupID and DeviceID select, by the devices' current groups; the other
	// fields are ignored.
	CountDroppedErrorReports(ctx context.Context, tenantID string, filter ErrorReportFilter) (int64, error)
	// DeleteErrorReportsBefore deletes, across tenants, at most limit reports received before
	// the given time, oldest first, and returns how many it deleted.
	DeleteErrorReportsBefore(ctx context.Context, before time.Time, limit int) (int, error)
}

// RolloutTx is the state of health-gated rollouts: one per deployment that has a policy, and
// the batch of each device in it.
type RolloutTx interface {
	// CreateRollout stores a deployment's rollout and its devices' batches. It fails with
	// ErrNotFound unless the tenant has the deployment, and ErrConflict if it has a rollout.
	CreateRollout(ctx context.Context, r Rollout, devices []RolloutDevice) error
	// GetRollout fails with ErrNotFound unless the tenant's deployment has a rollout.
	GetRollout(ctx context.Context, tenantID, deploymentID string) (Rollout, error)
	// ActiveRollout is the group's running or paused rollout; ErrNotFound if none.
	ActiveRollout(ctx context.Context, tenantID, groupID string) (Rollout, error)
	// UpdateRollout writes a rollout's State, Batch, Reason, RevertDeploymentID, BatchStartedAt
	// and UpdatedAt.
	UpdateRollout(ctx context.Context, r Rollout) error
	// ListRolloutDevices lists a rollout's devices by batch, then device ID.
	ListRolloutDevices(ctx context.Context, tenantID, deploymentID string) ([]RolloutDevice, error)
	// GetRolloutDevice fails with ErrNotFound unless the device is in the rollout.
	GetRolloutDevice(ctx context.Context, tenantID, deploymentID, deviceID string) (RolloutDevice, error)
	// ReleaseRolloutDevices marks the given devices of a rollout released at the given time;
	// devices released already keep their time.
	ReleaseRolloutDevices(ctx context.Context, tenantID, deploymentID string, deviceIDs []string, at time.Time) error
	// ListActiveRollouts lists, across tenants, the running rollouts, oldest first, at most
	// limit of them.
	ListActiveRollouts(ctx context.Context, limit int) ([]Rollout, error)
}

// Rollout states.
const (
	RolloutRunning   = "running"
	RolloutPaused    = "paused"
	RolloutCompleted = "completed"
	RolloutAborted   = "aborted"
)

// Rollout is a deployment's health-gated rollout.
type Rollout struct {
	TenantID             string
	DeploymentID         string
	DeviceGroupID        string
	PreviousDeploymentID string // what held devices run; what an abort returns the group to
	Policy               []byte // JSON v1.RolloutPolicy
	State                string
	Batch                int // the current batch, from 0
	Reason               string
	RevertDeploymentID   string // the deployment an abort made, "" if none
	CreatedAt            time.Time
	BatchStartedAt       time.Time
	UpdatedAt            time.Time
}

// RolloutDevice is a device's batch in a rollout.
type RolloutDevice struct {
	DeviceID   string
	Batch      int
	ReleasedAt time.Time // zero while held
}

// ListOptions selects one page of a list. Lists are ordered by ID (the audit log, attestations
// and deployments: newest first) and paged by keyset: After is the Next value of the previous
// page.
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
	// CertLifetime is how long device certificates issued to the group's devices last;
	// zero means the service default (24 hours). Whole seconds.
	CertLifetime time.Duration
	CreatedAt    time.Time
	UpdatedAt    time.Time
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

	// The fields below are written by SetDeviceDisabled, SetDeviceAKActivated and
	// RecordAttestation; ClaimDevice ignores them.
	Disabled    bool
	AKActivated time.Time // zero until credential activation succeeded
	// The latest attestation, zero if none.
	LastAttestation    time.Time
	LastResult         string // AttestationPass or AttestationFail
	LastReason         string
	LastMessage        string
	CertificateExpires time.Time // of the latest certificate issued, zero if none
	// SecurityCounter is the highest anti-rollback counter the device has reported at
	// check-in (RaiseDeviceSecurityCounter): the security version of the newest OS release it
	// committed. It never goes down.
	SecurityCounter uint64
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

// Attestation results.
const (
	AttestationPass = "pass"
	AttestationFail = "fail"
)

// Attestation is one attestation attempt of a device and its outcome.
type Attestation struct {
	ID           string // UUIDv7, chosen by the caller
	TenantID     string
	DeviceID     string
	Time         time.Time
	Result       string // AttestationPass or AttestationFail
	Reason       string // a stable reason code on failure, "" on a pass
	Message      string
	OSReleaseID  string // the release whose measurements matched, on a pass
	Measurements string // JSON of the attested measurements, may be empty
	// On a pass: the agent certificate issued.
	CertificateSerial  string
	CertificateExpires time.Time
}

// Nonce is a single-use attestation challenge.
type Nonce struct {
	Hash      []byte // SHA-256 of the nonce value; the value itself is not stored
	DeviceID  string
	TenantID  string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// OSRelease is a software release whose golden measurements the verifier accepts.
type OSRelease struct {
	ID          string
	TenantID    string
	Version     string
	Description string
	// Measurements maps a measurement name (such as "os-bundle", "agent", "policy") to the
	// lowercase hex SHA-256 the release must produce. Stores return an empty map as nil.
	Measurements map[string]string
	// Feed is where the release is published: FeedManual (registered by hand: every group),
	// FeedUnpublished (made from an OS image: no group yet), or a group feed (OSFeedRetail:
	// every group; OSFeedRetailEval: groups that follow RetailEval).
	Feed OSFeed
	// ImageID is the OS image the release was made from, "" for a release registered by hand.
	ImageID string
	// SecurityVersion is the release's security version, from its image's signed metadata (0
	// for a release registered by hand): attestation refuses a device that runs a release
	// below the security version it has committed (Device.SecurityCounter).
	SecurityVersion uint64
	CreatedBy       string
	CreatedAt       time.Time
}

// For reports whether a device of a group that follows groupFeed may run the release: a
// release registered by hand or published to Retail is for every group; one published to
// RetailEval for groups that follow RetailEval; an unpublished one for none.
func (r OSRelease) For(groupFeed OSFeed) bool {
	switch r.Feed {
	case FeedManual, OSFeedRetail:
		return true
	case OSFeedRetailEval:
		return groupFeed == OSFeedRetailEval
	}
	return false
}

// Release feeds beyond the group feeds (OSFeedRetail, OSFeedRetailEval).
const (
	FeedManual      OSFeed = ""
	FeedUnpublished OSFeed = "Unpublished"
	// FeedWithdrawn: taken out of its feed; offered to no group, and accepted by the verifier
	// only for devices that already passed an attestation with it (they cannot downgrade).
	FeedWithdrawn OSFeed = "Withdrawn"
)

// CACertificate is a certificate authority's certificate and its sealed private key.
type CACertificate struct {
	ID       string
	TenantID string // "" for the service root
	CertDER  []byte
	// KeyCiphertext is the private key sealed with the service's key-encryption key; nil when
	// the key is held offline.
	KeyCiphertext []byte
	NotBefore     time.Time
	NotAfter      time.Time
	// ActiveFrom is when the CA starts signing (a successor is made early and activated later).
	ActiveFrom time.Time
	RevokedAt  time.Time // zero if not revoked
	CreatedAt  time.Time
}

// Image kinds.
const (
	ImageApplication = "application"
	ImageOS          = "os"
	ImageBoardConfig = "board-config"
)

// Image is an uploaded image package, countersigned by its tenant.
type Image struct {
	ID          string // the package's image ID (UUID)
	TenantID    string
	ComponentID string // UUID, owned by one tenant
	Kind        string // ImageApplication, ImageOS or ImageBoardConfig
	Name        string
	Version     string // semantic version
	// PayloadSHA256 and PayloadSize name the payload the metadata signs.
	PayloadSHA256 string
	PayloadSize   int64
	// PackageSHA256 and PackageSize name the stored, countersigned package file in the blob
	// store, which is what devices download.
	PackageSHA256 string
	PackageSize   int64
	Metadata      []byte // the package metadata as signed (JSON)
	Development   bool   // uploaded signed only with the development key
	UploadedBy    string
	CreatedAt     time.Time
}

// ImageFilter selects images. Empty fields match everything.
type ImageFilter struct {
	ComponentID string
	Kind        string
}

// Deployment is the set of images a device group runs, from the time it was made until the
// next one.
type Deployment struct {
	ID            string // UUIDv7
	TenantID      string
	DeviceGroupID string
	ImageIDs      []string // in the order given; stores return them so (an empty list as nil)
	CreatedBy     string
	CreatedAt     time.Time
}

// DeploymentFilter selects deployments. Empty fields match everything.
type DeploymentFilter struct {
	DeviceGroupID string
}

// Signing key purposes.
const (
	KeyImageSigning = "image-signing"
)

// SigningKey is a tenant's signing key.
type SigningKey struct {
	ID            string // lowercase hex SHA-256 of the public key's DER SPKI
	TenantID      string
	Purpose       string
	PublicDER     []byte // SubjectPublicKeyInfo
	KeyCiphertext []byte // nil when held offline
	CreatedAt     time.Time
	RevokedAt     time.Time // zero if not revoked
}

// MaxBoardPresses bounds the button presses waiting for one device.
const MaxBoardPresses = 16

// MaxDeviceHoursPerRecord bounds the hours one RecordDeviceHours writes.
const MaxDeviceHoursPerRecord = 24

// CohortHours are a deployment cohort's device-hours: hours in which a device running the
// deployment was up, and how many of them saw an application crash.
type CohortHours struct {
	Devices      int64
	Hours        int64
	CrashedHours int64
}

// DeviceReport is what a device said at its latest check-in. Untrusted: the device says it.
type DeviceReport struct {
	TenantID    string
	DeviceID    string
	Report      []byte // JSON, as validated at the API boundary
	CheckedInAt time.Time
}

// TUF roles and repositories.
const (
	TUFRoot      = "root"
	TUFTargets   = "targets"
	TUFSnapshot  = "snapshot"
	TUFTimestamp = "timestamp"
	// TUFImages is the repository of every image a tenant released; a device group's director
	// repository is TUFDirectorPrefix + the group's ID.
	TUFImages         = "images"
	TUFDirectorPrefix = "director/"
)

// TUFMetadata is one signed version of one role of a repository.
type TUFMetadata struct {
	TenantID   string
	Repository string // TUFImages or TUFDirectorPrefix + group ID
	Role       string // TUFRoot, TUFTargets, TUFSnapshot or TUFTimestamp
	Version    int64
	Body       []byte // the signed metadata file, verbatim
	ExpiresAt  time.Time
	CreatedAt  time.Time
}

// NoExitCode is the ExitCode of an error report that has none.
const NoExitCode = -1

// MaxBucketLimit bounds one aggregation of error reports.
const MaxBucketLimit = 10000

// ErrorReport is one event a device reported, with the device's place in the fleet when the
// service received it. Untrusted: the device says what happened and when.
type ErrorReport struct {
	Seq           int64 // assigned by the store
	TenantID      string
	DeviceID      string
	ID            string // the event's ID, chosen by the device: unique per device
	DeviceGroupID string // the device's group at ingest, "" if none
	ProductID     string // that group's product
	DeploymentID  string // that group's current deployment, "" if none
	Type          string
	ComponentID   string
	ImageID       string
	Signal        int // 0 for none
	ExitCode      int // NoExitCode for none
	Phase         string
	Reason        string
	Message       string
	Time          time.Time // by the device's clock
	ReceivedAt    time.Time
}

// ErrorReportFilter selects error reports. Empty fields match everything; the product, group
// and deployment are those recorded at ingest. Since is inclusive and Until exclusive, on the
// event's time.
type ErrorReportFilter struct {
	ProductID     string
	DeviceGroupID string
	DeviceID      string
	Type          string
	Since         time.Time
	Until         time.Time
}

// ErrorBucket counts the error reports that share a type, component, image, signal and exit
// code (and device, when aggregated per device).
type ErrorBucket struct {
	DeviceID    string // "" unless per device
	Type        string
	ComponentID string
	ImageID     string
	Signal      int
	ExitCode    int
	Count       int64
	Devices     int64 // distinct devices
	FirstSeen   time.Time
	LastSeen    time.Time
}
