// Package v1 holds the wire types of Rampart's REST API under /v1: the JSON objects the security
// service returns and accepts, the error shape, and the error codes. The server, the Go client and
// the CLI share these types; the OpenAPI document at /v1/openapi.json is generated from them.
//
// Field values that come from devices (for example a device's agent version) are reported as
// the device claimed them and are not verified unless the field's comment says so.
package v1

import (
	"encoding/json"
	"time"
)

// Error is the one error shape every endpoint returns with a non-2xx status.
type Error struct {
	Code    string         `json:"code" doc:"stable machine-readable error code, e.g. not_found"`
	Message string         `json:"message" doc:"one human-readable line"`
	Details []ErrorDetail  `json:"details,omitempty" doc:"per-field or per-item problems"`
	Extra   map[string]any `json:"extra,omitempty" doc:"structured context, e.g. the limit that was exceeded"`
}

// ErrorDetail names one problem with one part of a request.
type ErrorDetail struct {
	Field   string `json:"field,omitempty" doc:"JSON path of the offending field"`
	Message string `json:"message"`
}

// ErrorResponse wraps Error in responses: {"error": {...}}.
type ErrorResponse struct {
	Error Error `json:"error"`
}

// Error codes. Each maps to exactly one HTTP status.
const (
	CodeBadRequest          = "bad_request"           // 400: malformed JSON, unknown field, wrong type
	CodeValidation          = "validation_failed"     // 422: well-formed but invalid values
	CodeUnauthenticated     = "unauthenticated"       // 401: missing, bad, expired or revoked token
	CodeForbidden           = "forbidden"             // 403: the caller's role does not allow it
	CodeNotFound            = "not_found"             // 404: no such resource in the caller's tenants
	CodeConflict            = "conflict"              // 409: name taken, resource not empty, ...
	CodeDeviceClaimed       = "device_claimed"        // 409: device claimed by another tenant
	CodePayloadTooLarge     = "payload_too_large"     // 413: body over the endpoint's limit
	CodeUnsupportedMedia    = "unsupported_media"     // 415: body is not application/json
	CodeMethodNotAllowed    = "method_not_allowed"    // 405
	CodeInternal            = "internal"              // 500
	CodeUnavailable         = "unavailable"           // 503: not ready, shutting down
	CodeRateLimited         = "rate_limited"          // 429: too many calls from this client; see Retry-After
	CodeRootOfTrustRejected = "root_of_trust_refused" // 422: policy refuses this root of trust
)

// List is one page of a list. NextPageToken is empty on the last page; pass it as the
// page_token query parameter to get the next page. max_page_size (1..1000, default 100)
// bounds the page.
type List[T any] struct {
	Items         []T    `json:"items"`
	NextPageToken string `json:"next_page_token,omitempty"`
}

// Me describes the caller.
type Me struct {
	User      User      `json:"user"`
	TokenID   string    `json:"token_id"`
	TenantID  string    `json:"tenant_id,omitempty" doc:"set if the token is limited to one tenant"`
	ExpiresAt time.Time `json:"expires_at"`
}

// User is a person or automation that authenticates with API tokens.
type User struct {
	ID           string    `json:"id"`
	Name         string    `json:"name"`
	ServiceAdmin bool      `json:"service_admin,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
}

// Tenant is an organization's isolated space.
type Tenant struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Role      string    `json:"role,omitempty" doc:"the caller's role in this tenant"`
	CreatedAt time.Time `json:"created_at"`
}

// TenantCreate creates a tenant. Only service administrators may; the creator becomes its
// Administrator.
type TenantCreate struct {
	Name string `json:"name"`
}

// RoleAssignment is a user's role in a tenant.
type RoleAssignment struct {
	UserID    string    `json:"user_id"`
	User      string    `json:"user"`
	Role      string    `json:"role" enum:"Administrator,Contributor,Reader"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// RoleAdd gives a user a role in the tenant, creating the user if the name is new and
// replacing any role the user already held there.
type RoleAdd struct {
	User string `json:"user"`
	Role string `json:"role" enum:"Administrator,Contributor,Reader"`
}

// Token describes an API token. Secret is present only in the response that created it.
type Token struct {
	ID          string    `json:"id"`
	UserID      string    `json:"user_id"`
	User        string    `json:"user,omitempty"`
	TenantID    string    `json:"tenant_id,omitempty" doc:"set if the token is limited to one tenant"`
	Description string    `json:"description,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	ExpiresAt   time.Time `json:"expires_at"`
	Revoked     bool      `json:"revoked,omitempty"`
	Secret      string    `json:"secret,omitempty" doc:"the token itself; shown once"`
}

// TokenCreate creates an API token. ExpiresInSeconds defaults to 90 days and may not exceed
// one year.
type TokenCreate struct {
	Description      string `json:"description,omitempty"`
	ExpiresInSeconds int64  `json:"expires_in_seconds,omitempty"`
}

// Product is a kind of device a tenant makes.
type Product struct {
	ID          string    `json:"id"`
	TenantID    string    `json:"tenant_id"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// ProductCreate creates a product, and its five default device groups unless
// NoDefaultDeviceGroups is set.
type ProductCreate struct {
	Name                  string `json:"name"`
	Description           string `json:"description,omitempty"`
	NoDefaultDeviceGroups bool   `json:"no_default_device_groups,omitempty"`
}

// ProductUpdate changes the fields that are present.
type ProductUpdate struct {
	Name        *string `json:"name,omitempty"`
	Description *string `json:"description,omitempty"`
}

// DeviceGroup is a set of devices of one product.
type DeviceGroup struct {
	ID                     string    `json:"id"`
	TenantID               string    `json:"tenant_id"`
	ProductID              string    `json:"product_id"`
	Name                   string    `json:"name"`
	Description            string    `json:"description"`
	OSFeed                 string    `json:"os_feed" enum:"Retail,RetailEval"`
	UpdatePolicy           string    `json:"update_policy" enum:"UpdateAll,No3rdPartyAppUpdates"`
	CheckInIntervalSeconds int64     `json:"check_in_interval_seconds"`
	CertLifetimeSeconds    int64     `json:"cert_lifetime_seconds" doc:"lifetime of device certificates, 300 to 604800 (default 86400)"`
	CreatedAt              time.Time `json:"created_at"`
	UpdatedAt              time.Time `json:"updated_at"`
}

// DeviceGroupCreate creates a device group in a product. Empty fields take their defaults:
// OS feed Retail, update policy UpdateAll, check-in every 3600 seconds.
type DeviceGroupCreate struct {
	Name                   string `json:"name"`
	Description            string `json:"description,omitempty"`
	OSFeed                 string `json:"os_feed,omitempty" enum:"Retail,RetailEval"`
	UpdatePolicy           string `json:"update_policy,omitempty" enum:"UpdateAll,No3rdPartyAppUpdates"`
	CheckInIntervalSeconds int64  `json:"check_in_interval_seconds,omitempty"`
	CertLifetimeSeconds    int64  `json:"cert_lifetime_seconds,omitempty"`
}

// DeviceGroupUpdate changes the fields that are present.
type DeviceGroupUpdate struct {
	Name                   *string `json:"name,omitempty"`
	Description            *string `json:"description,omitempty"`
	OSFeed                 *string `json:"os_feed,omitempty" enum:"Retail,RetailEval"`
	UpdatePolicy           *string `json:"update_policy,omitempty" enum:"UpdateAll,No3rdPartyAppUpdates"`
	CheckInIntervalSeconds *int64  `json:"check_in_interval_seconds,omitempty"`
	CertLifetimeSeconds    *int64  `json:"cert_lifetime_seconds,omitempty"`
}

// DefaultDeviceGroups is the result of (re)creating a product's default groups.
type DefaultDeviceGroups struct {
	Created  []DeviceGroup `json:"created"`
	Existing []DeviceGroup `json:"existing" doc:"default groups that already existed and were left alone"`
}

// Device is a claimed device.
type Device struct {
	ID            string    `json:"id" doc:"lowercase hex SHA-256 of the EK public key (DER SubjectPublicKeyInfo)"`
	TenantID      string    `json:"tenant_id"`
	ProductID     string    `json:"product_id,omitempty"`
	DeviceGroupID string    `json:"device_group_id,omitempty"`
	RootOfTrust   string    `json:"root_of_trust" doc:"tpm, or software (development only: no hardware protection)"`
	AgentVersion  string    `json:"agent_version,omitempty" doc:"untrusted: as reported in the enrollment record"`
	EKCertificate bool      `json:"ek_certificate" doc:"whether the enrollment record carried an EK certificate"`
	ClaimedAt     time.Time `json:"claimed_at"`
	ClaimedBy     string    `json:"claimed_by"`
	UpdatedAt     time.Time `json:"updated_at"`
	Disabled      bool      `json:"disabled"`
	AKActivated   bool      `json:"ak_activated" doc:"credential activation proved the AK and EK share one TPM"`
	// SecurityCounter is the highest anti-rollback counter the device reported: attestation
	// refuses it while it runs an OS release with a lower security version.
	SecurityCounter uint64 `json:"security_counter" doc:"the highest anti-rollback counter the device has reported: attestation refuses an OS release with a lower security version"`
	// LastAttestation is the device's latest attestation, absent if it never attested.
	LastAttestation *AttestationSummary `json:"last_attestation,omitempty"`
	// Status is what the device reported at its latest check-in, absent if it never checked in.
	Status *DeviceStatus `json:"status,omitempty"`
}

// AttestationSummary is the outcome of a device's latest attestation.
type AttestationSummary struct {
	Time               time.Time `json:"time"`
	Result             string    `json:"result" enum:"pass,fail"`
	Reason             string    `json:"reason,omitempty"`
	Message            string    `json:"message,omitempty"`
	CertificateExpires time.Time `json:"certificate_expires,omitzero" doc:"of the latest certificate issued to the device"`
}

// DeviceClaim claims one device from its enrollment record, optionally straight into a group.
type DeviceClaim struct {
	Enrollment    json.RawMessage `json:"enrollment" doc:"an enrollment record (see EnrollmentRecord)"`
	DeviceGroupID string          `json:"device_group_id,omitempty"`
}

// DeviceBulkClaim claims up to 1000 devices in one request.
type DeviceBulkClaim struct {
	Enrollments   []json.RawMessage `json:"enrollments"`
	DeviceGroupID string            `json:"device_group_id,omitempty"`
}

// Claim results.
const (
	ClaimClaimed        = "claimed"
	ClaimAlreadyClaimed = "already_claimed"
	ClaimFailed         = "failed"
)

// ClaimResult is the outcome for one record of a bulk claim. Records are independent: one
// failure does not undo the others.
type ClaimResult struct {
	Index    int     `json:"index"`
	DeviceID string  `json:"device_id,omitempty"`
	Result   string  `json:"result" enum:"claimed,already_claimed,failed"`
	Device   *Device `json:"device,omitempty"`
	Error    *Error  `json:"error,omitempty"`
}

// DeviceBulkClaimResult reports every record of a bulk claim.
type DeviceBulkClaimResult struct {
	Results []ClaimResult `json:"results"`
	Claimed int           `json:"claimed"`
	Already int           `json:"already_claimed"`
	Failed  int           `json:"failed"`
}

// DeviceUpdate moves a device to another device group of its tenant.
type DeviceUpdate struct {
	DeviceGroupID *string `json:"device_group_id,omitempty"`
}

// DeviceCount is the number of devices that match a filter.
type DeviceCount struct {
	Count int `json:"count"`
}

// AuditEntry records one write attempt: who, what, when and the result.
type AuditEntry struct {
	Seq          int64           `json:"seq"`
	TenantID     string          `json:"tenant_id,omitempty"`
	Time         time.Time       `json:"time"`
	ActorID      string          `json:"actor_id"`
	Actor        string          `json:"actor"`
	Action       string          `json:"action"`
	ResourceType string          `json:"resource_type"`
	ResourceID   string          `json:"resource_id,omitempty"`
	Result       string          `json:"result" enum:"success,failure"`
	ErrorCode    string          `json:"error_code,omitempty"`
	Message      string          `json:"message,omitempty"`
	Details      json.RawMessage `json:"details,omitempty"`
}

// Health is the body of /healthz and /readyz.
type Health struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks,omitempty"`
}
