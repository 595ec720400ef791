package v1

import (
	"encoding/json"
	"time"
)

// Image is an uploaded image package, countersigned by its tenant.
type Image struct {
	ID            string          `json:"id" doc:"the package's image ID"`
	TenantID      string          `json:"tenant_id"`
	ComponentID   string          `json:"component_id"`
	Kind          string          `json:"kind" enum:"application,os,board-config"`
	Name          string          `json:"name"`
	Version       string          `json:"version"`
	PayloadSHA256 string          `json:"payload_sha256"`
	PayloadSize   int64           `json:"payload_size"`
	PackageSHA256 string          `json:"package_sha256" doc:"of the countersigned package devices download"`
	PackageSize   int64           `json:"package_size"`
	Development   bool            `json:"development" doc:"uploaded signed only with the development key"`
	Metadata      json.RawMessage `json:"metadata" doc:"the package metadata as signed"`
	UploadedBy    string          `json:"uploaded_by"`
	CreatedAt     time.Time       `json:"created_at"`
}

// Deployment is the set of images a device group runs.
type Deployment struct {
	ID            string    `json:"id"`
	TenantID      string    `json:"tenant_id"`
	DeviceGroupID string    `json:"device_group_id"`
	ImageIDs      []string  `json:"image_ids"`
	Current       bool      `json:"current" doc:"whether this is the group's current deployment"`
	CreatedBy     string    `json:"created_by"`
	CreatedAt     time.Time `json:"created_at"`
	// Health is the deployment cohort's crash-free hours (GET of one deployment only).
	Health *DeploymentHealth `json:"health,omitempty"`
}

// DeploymentHealth is a deployment cohort's crash-free hours: of the hours in which devices
// running the deployment were up, the share without an application crash (AppCrash or AppOOM).
// An hour is counted when a device checked in during it or its uptime at a check-in covers it.
type DeploymentHealth struct {
	Devices               int64    `json:"devices" doc:"devices that ran it"`
	DeviceHours           int64    `json:"device_hours"`
	CrashedHours          int64    `json:"crashed_hours" doc:"device-hours with at least one application crash"`
	CrashFreeHoursPercent *float64 `json:"crash_free_hours_percent,omitempty" doc:"absent until a device-hour is recorded"`
}

// DeploymentCreate makes a new deployment the group's current one; the previous one is kept in
// its history.
type DeploymentCreate struct {
	ImageIDs []string `json:"image_ids"`
	// Rollout, if set, releases the deployment to the group in health-gated batches
	// (docs/ROLLOUTS.md); without it every device of the group gets it at once.
	Rollout *RolloutPolicy `json:"rollout,omitempty" doc:"release in health-gated batches; the group must have a current deployment"`
}

// UpdateRootKey is a tenant's update-metadata root key (ECDSA P-256, PKCS #8 PEM), as exported
// to be kept offline and imported to bring it back.
type UpdateRootKey struct {
	KeyPEM string `json:"key_pem" doc:"the private key: keep it offline and safe"`
}

// UpdateRootRotate asks for a new update-metadata root key (docs/UPDATE-METADATA.md, root
// rotation).
type UpdateRootRotate struct {
	// KeyPEM is the current root key when it is offline (as exported); the service signs
	// with it once and does not keep it.
	KeyPEM string `json:"key_pem,omitempty" doc:"the current root key, needed when it is offline; not kept"`
	// Offline returns the new root key and keeps only its public half.
	Offline bool `json:"offline,omitempty" doc:"take the new root key offline at once: it is returned, not kept"`
	// OnlineKeys also replaces every repository's online key (targets, snapshot, timestamp).
	OnlineKeys bool `json:"online_keys,omitempty" doc:"also replace every repository's online key"`
}

// UpdateRootRotation is what a root rotation did.
type UpdateRootRotation struct {
	OldKeyID     string              `json:"old_key_id" doc:"the rotated-out root key, now revoked"`
	NewKeyID     string              `json:"new_key_id"`
	KeyPEM       string              `json:"key_pem,omitempty" doc:"the new root key, when taken offline: keep it offline and safe"`
	Repositories []RotatedRepository `json:"repositories" doc:"the repositories now at a new root version"`
}

// UpdateRootStatus is the state of a tenant's update-metadata root: its key, and when each
// repository's root expires.
type UpdateRootStatus struct {
	KeyID              string           `json:"key_id,omitempty" doc:"the current root key; empty before the tenant's first repository"`
	Online             bool             `json:"online" doc:"whether the service holds the root key; only then does it renew roots itself"`
	RenewBeforeSeconds int64            `json:"renew_before_seconds" doc:"how long before its expiry a root is renewed (key online) or reported as due (key offline)"`
	Repositories       []RepositoryRoot `json:"repositories" doc:"soonest expiry first"`
}

// RepositoryRoot is one repository's newest root.
type RepositoryRoot struct {
	Repository  string    `json:"repository" doc:"images, director/GROUP_ID or director/GROUP_ID/held"`
	RootVersion int64     `json:"root_version"`
	ExpiresAt   time.Time `json:"expires_at"`
	Due         bool      `json:"due" doc:"inside the renewal window: with the key offline, run 'rampart keys rotate-root --root-key FILE' before it expires"`
}

// RotatedRepository is one repository a root rotation re-signed.
type RotatedRepository struct {
	Repository  string `json:"repository" doc:"images, director/GROUP_ID or director/GROUP_ID/held"`
	RootVersion int64  `json:"root_version"`
}
