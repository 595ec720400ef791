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

// UpdateRootRotate asks for new update-metadata root keys (docs/UPDATE-METADATA.md, "Rotating
// keys"): NewKeys keys, Threshold of which must sign a root from then on.
type UpdateRootRotate struct {
	// KeyPEM and KeyPEMs are current root keys that are offline (as exported); with the online
	// ones they must reach the current threshold. The service signs with them once and does
	// not keep them.
	KeyPEM  string   `json:"key_pem,omitempty" doc:"a current root key, needed when it is offline; not kept"`
	KeyPEMs []string `json:"key_pems,omitempty" doc:"more current root keys (at most 16), for a threshold above 1; not kept"`
	// NewKeys is how many new root keys to make (1 to 8, default 1); Threshold how many of them
	// must sign a root (1 to new_keys, default 1).
	NewKeys   int `json:"new_keys,omitempty" doc:"how many new root keys to make: 1 to 8, default 1"`
	Threshold int `json:"threshold,omitempty" doc:"how many of the new root keys must sign a root: 1 to new_keys, default 1"`
	// Offline returns the new root keys and keeps only their public halves.
	Offline bool `json:"offline,omitempty" doc:"take the new root keys offline at once: they are returned, not kept"`
	// OnlineKeys also replaces every repository's online key (targets, snapshot, timestamp).
	OnlineKeys bool `json:"online_keys,omitempty" doc:"also replace every repository's online key"`
}

// UpdateRootRotation is what a root rotation did.
type UpdateRootRotation struct {
	OldKeyID     string              `json:"old_key_id" doc:"the first rotated-out root key, now revoked"`
	NewKeyID     string              `json:"new_key_id" doc:"the first new root key"`
	OldKeyIDs    []string            `json:"old_key_ids" doc:"every rotated-out root key, now revoked"`
	NewKeyIDs    []string            `json:"new_key_ids" doc:"every new root key"`
	OldThreshold int                 `json:"old_threshold"`
	Threshold    int                 `json:"threshold" doc:"how many of the new root keys must sign a root"`
	KeyPEM       string              `json:"key_pem,omitempty" doc:"the new root key, when one was made and taken offline: keep it offline and safe"`
	KeyPEMs      []string            `json:"key_pems,omitempty" doc:"the new root keys in new_key_ids' order, when taken offline: give each to its holder, keep them offline and safe"`
	Repositories []RotatedRepository `json:"repositories" doc:"the repositories now at a new root version"`
}

// UpdateRootStatus is the state of a tenant's update-metadata root: its keys and threshold,
// and when each repository's root expires.
type UpdateRootStatus struct {
	KeyID              string              `json:"key_id,omitempty" doc:"the first current root key; empty before the tenant's first repository"`
	Keys               []UpdateRootKeyInfo `json:"keys" doc:"the current root keys, oldest first"`
	Threshold          int                 `json:"threshold" doc:"how many root keys must sign a root"`
	Online             bool                `json:"online" doc:"whether the service holds a threshold of the root keys; only then does it renew roots itself and make new repositories"`
	RenewBeforeSeconds int64               `json:"renew_before_seconds" doc:"how long before its expiry a root is renewed (keys online) or reported as due (keys offline)"`
	Repositories       []RepositoryRoot    `json:"repositories" doc:"soonest expiry first"`
}

// UpdateRootKeyInfo is one current root key.
type UpdateRootKeyInfo struct {
	KeyID    string `json:"key_id" doc:"lower-case hex SHA-256 of the public key's DER SubjectPublicKeyInfo: the ID export-root takes"`
	TUFKeyID string `json:"tuf_key_id" doc:"the key's ID in TUF metadata (root.json's keyids)"`
	Online   bool   `json:"online" doc:"whether the service holds its private half"`
}

// RepositoryRoot is one repository's newest root.
type RepositoryRoot struct {
	Repository  string    `json:"repository" doc:"images, director/GROUP_ID or director/GROUP_ID/held"`
	RootVersion int64     `json:"root_version"`
	ExpiresAt   time.Time `json:"expires_at"`
	Due         bool      `json:"due" doc:"inside the renewal window: with the keys offline, run 'rampart keys rotate-root --root-key FILE ...' with a threshold of them before it expires"`
}

// RotatedRepository is one repository a root rotation re-signed.
type RotatedRepository struct {
	Repository  string `json:"repository" doc:"images, director/GROUP_ID or director/GROUP_ID/held"`
	RootVersion int64  `json:"root_version"`
}

// UpdateRootPrepare asks for the roots of a rotation whose root keys never reach the service
// (docs/UPDATE-METADATA.md, "Detached signatures"): the new keys' holders made them and give
// only their public halves.
type UpdateRootPrepare struct {
	PublicKeysPEM []string `json:"public_keys_pem" doc:"the new root keys' public halves (PKIX 'PUBLIC KEY' PEM, ECDSA P-256), 1 to 8"`
	Threshold     int      `json:"threshold" doc:"how many of them must sign a root: 1 to their number"`
}

// UpdateRootPrepared is a prepared rotation: root N+1 of every repository of the tenant,
// unsigned, for the old and new root keys' holders to sign where their keys are.
type UpdateRootPrepared struct {
	TenantID string         `json:"tenant_id"`
	Roots    []PreparedRoot `json:"roots" doc:"one per repository"`
}

// PreparedRoot is one repository's next root.
type PreparedRoot struct {
	Repository string          `json:"repository" doc:"images, director/GROUP_ID or director/GROUP_ID/held"`
	Root       json.RawMessage `json:"root" doc:"TUF root metadata, unsigned"`
}

// UpdateRootComplete publishes a prepared rotation with its detached signatures.
type UpdateRootComplete struct {
	Roots      []PreparedRoot  `json:"roots" doc:"as prepare returned them"`
	Signatures []RootSignature `json:"signatures" doc:"each holder's signatures over the roots"`
}

// RootSignatures is what one root-key holder signed: a signature file of 'rampart keys
// root-sign'.
type RootSignatures struct {
	Signatures []RootSignature `json:"signatures"`
}

// RootSignature is a detached signature over one repository's prepared root.
type RootSignature struct {
	Repository string `json:"repository"`
	KeyID      string `json:"key_id" doc:"the signing key's TUF key ID"`
	Sig        string `json:"sig" doc:"hex of the ASN.1 DER ECDSA signature over SHA-256 of the canonical JSON of the root's signed part"`
}
