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
