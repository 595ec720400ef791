package v1

import "time"

// Rollout states.
const (
	RolloutRunning   = "running"
	RolloutPaused    = "paused"
	RolloutCompleted = "completed"
	RolloutAborted   = "aborted"
)

// Rollout policy bounds.
const (
	MaxRolloutBatches = 100
)

// RolloutPolicy releases a deployment to its group's devices in batches, each only after the
// one before it is healthy, and aborts it when the new release fails to install or crashes
// more than the previous one (docs/ROLLOUTS.md). Devices not yet released keep the group's
// previous deployment.
type RolloutPolicy struct {
	// Batches are the sizes of the successive batches, each a count of devices or a percent of
	// the group's devices when the rollout starts (rounded up, at least 1). Devices left over
	// after the listed batches form one last batch.
	Batches []RolloutBatch `json:"batches" doc:"successive batch sizes; devices left over form a last batch"`
	// MaxDevicesPerMinute caps how fast devices of a batch are released (0: no cap), as AWS IoT
	// Jobs' maximumPerMinute.
	MaxDevicesPerMinute int `json:"max_devices_per_minute,omitempty" doc:"release at most this many devices a minute (0: no cap)"`
	// SuccessThresholdPercent of a batch's devices must report the deployment's images
	// installed and not failed before the next batch is released (default 100).
	SuccessThresholdPercent float64 `json:"success_threshold_percent,omitempty" doc:"percent of a batch that must report the images installed to advance (default 100)"`
	// SoakSeconds is how long each batch runs, after its last device is released, before the
	// next one is released, and how long the rollout runs before the crash-rate criterion can
	// abort it.
	SoakSeconds int64 `json:"soak_seconds,omitempty" doc:"minimum time each batch runs before the next, and before the crash rate is judged"`
	// Abort criteria; none if nil.
	Abort *RolloutAbort `json:"abort,omitempty"`
	// CanaryDeviceIDs are devices of the group to release first: they lead the device order,
	// so the first batch takes them (size the first batch to match). The rest follow in
	// device ID order.
	CanaryDeviceIDs []string `json:"canary_device_ids,omitempty" doc:"devices of the group that lead the first batch"`
}

// MaxCanaryDevices bounds a rollout's canary devices.
const MaxCanaryDevices = 1000

// RolloutBatch is one batch's size: exactly one of Count and Percent.
type RolloutBatch struct {
	Count   int     `json:"count,omitempty" doc:"devices in the batch"`
	Percent float64 `json:"percent,omitempty" doc:"percent of the group's devices in the batch (rounded up)"`
}

// RolloutAbort says when a rollout stops by itself and returns the group to its previous
// deployment. A zero threshold turns its criterion off.
type RolloutAbort struct {
	// InstallFailurePercent aborts when at least this percent of the released devices that
	// finished (installed or failed) failed: an UpdateFailed or RollbackPerformed error report
	// since release, or a check-in that reports one of the deployment's images failed. Judged
	// once MinInstalls devices finished, as AWS IoT Jobs' thresholdPercentage and
	// minNumberOfExecutedThings.
	InstallFailurePercent float64 `json:"install_failure_percent,omitempty" doc:"abort when this percent of finished installs failed (0: off)"`
	MinInstalls           int     `json:"min_installs,omitempty" doc:"finished installs before the failure percent is judged (default 1)"`
	// CrashRateRatio aborts when the released devices' AppCrash reports per device-hour exceed
	// this multiple of the rate of the devices on the previous deployment over the same
	// rollout, once the released devices ran MinDeviceHours in all and the rollout is
	// SoakSeconds old. With no crash at all on the previous deployment, MinCrashes crashes on
	// the new one abort it.
	CrashRateRatio float64 `json:"crash_rate_ratio,omitempty" doc:"abort when the new release's crashes per device-hour exceed this multiple of the previous release's (0: off)"`
	MinDeviceHours float64 `json:"min_device_hours,omitempty" doc:"device-hours on the new release before its crash rate is judged"`
	MinCrashes     int     `json:"min_crashes,omitempty" doc:"crashes on the new release before its crash rate is judged (default 1)"`
}

// Rollout is where a deployment's rollout stands.
type Rollout struct {
	DeploymentID         string        `json:"deployment_id"`
	DeviceGroupID        string        `json:"device_group_id"`
	PreviousDeploymentID string        `json:"previous_deployment_id" doc:"what devices not yet released run, and what an abort returns the group to"`
	State                string        `json:"state" enum:"running,paused,completed,aborted"`
	Reason               string        `json:"reason,omitempty" doc:"why it completed, aborted or paused"`
	Policy               RolloutPolicy `json:"policy"`
	Batch                int           `json:"batch" doc:"the current batch, from 1"`
	Batches              []BatchStatus `json:"batches"`
	// Health of the released devices.
	Succeeded       int     `json:"succeeded" doc:"released devices that report the images installed"`
	Failed          int     `json:"failed" doc:"released devices whose install failed"`
	NewCrashes      int     `json:"new_crashes" doc:"AppCrash reports of released devices since their release"`
	NewDeviceHours  float64 `json:"new_device_hours"`
	PrevCrashes     int     `json:"previous_crashes" doc:"AppCrash reports of devices while they ran the previous deployment during the rollout"`
	PrevDeviceHours float64 `json:"previous_device_hours"`
	// RevertDeploymentID is the deployment an abort made (equal to the previous one).
	RevertDeploymentID string    `json:"revert_deployment_id,omitempty"`
	CreatedAt          time.Time `json:"created_at"`
	BatchStartedAt     time.Time `json:"batch_started_at"`
	UpdatedAt          time.Time `json:"updated_at"`
}

// BatchStatus is one batch's progress.
type BatchStatus struct {
	Devices  int `json:"devices"`
	Released int `json:"released"`
}
