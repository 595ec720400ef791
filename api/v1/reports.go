package v1

import "time"

// Error report event types: what a device reports when something goes wrong (or an update
// settles unplanned). Names as Azure Sphere's error reports spell them.
const (
	EventAppCrash          = "AppCrash"          // an app died of a signal (or its sandbox killed it): signal, exit status, component, image
	EventAppExit           = "AppExit"           // an app exited on its own: exit code, component, image
	EventAppOOM            = "AppOOM"            // an app was killed for exceeding its memory limit
	EventSandboxDenied     = "SandboxDenied"     // an app's sandbox refused something its manifest does not grant
	EventUpdateFailed      = "UpdateFailed"      // an OS or app update failed: phase and reason
	EventRollbackPerformed = "RollbackPerformed" // an OS or app update was rolled back
	EventAttestationFailed = "AttestationFailed" // the service refused the device's attestation: reason
	EventAgentRestart      = "AgentRestart"      // the agent started again after it stopped unexpectedly
	EventWatchdogReset     = "WatchdogReset"     // the device was reset by its watchdog
)

// ReasonDenialsLost is the reason of a SandboxDenied event that names no app: the device lost
// records of its apps' sandbox denials (the kernel's audit socket overflowed), so denials of
// any app may be missing from its reports.
const ReasonDenialsLost = "denials-lost"

// Error report limits. A batch over any of them is refused whole.
const (
	MaxReportEvents  = 256       // events in one upload
	MaxReportBody    = 256 << 10 // bytes of one upload
	MaxReportPhase   = 64        // bytes of an event's phase
	MaxReportReason  = 256       // bytes of an event's reason
	MaxReportMessage = 512       // bytes of an event's message
	MaxReportSignal  = 64        // the highest signal number
	MaxReportExit    = 255       // the highest exit code
)

// ReportEvent is one structured event a device reports. Untrusted: the device says it, and the
// service stores it as said (a time later than the service's clock is recorded as the time the
// service received it).
type ReportEvent struct {
	ID          string    `json:"id" doc:"a UUID the device chose; a device's event ID is stored once, so a retried upload does not duplicate it"`
	Type        string    `json:"type" enum:"AppCrash,AppExit,AppOOM,SandboxDenied,UpdateFailed,RollbackPerformed,AttestationFailed,AgentRestart,WatchdogReset"`
	Time        time.Time `json:"time" doc:"when it happened, by the device's clock"`
	ComponentID string    `json:"component_id,omitempty" doc:"the app or OS component (UUID); required for app events but SandboxDenied with reason denials-lost"`
	ImageID     string    `json:"image_id,omitempty" doc:"the image that was running or being installed (UUID)"`
	Signal      int       `json:"signal,omitempty" doc:"the signal that killed the app, 1 to 64"`
	ExitCode    *int      `json:"exit_code,omitempty" doc:"the exit status, 0 to 255"`
	Phase       string    `json:"phase,omitempty" doc:"the update step that failed, e.g. download, verify, install, trial-boot"`
	Reason      string    `json:"reason,omitempty" doc:"a short machine-readable reason, e.g. digest-mismatch, what a sandbox denied, an attestation refusal code"`
	Message     string    `json:"message,omitempty" doc:"free text, at most 512 bytes"`
}

// ReportBatch is one upload of a device's queued events.
type ReportBatch struct {
	Events []ReportEvent `json:"events" doc:"at most 256 events"`
	// Dropped is how many events the device's queue has dropped, in all, since it was made
	// (the oldest go when it is full). It only grows, so a retried upload does not count twice.
	Dropped int64 `json:"dropped" doc:"events the device's queue has dropped since it was made, in all"`
}

// ReportResult says what an upload stored.
type ReportResult struct {
	Accepted   int `json:"accepted" doc:"events stored now"`
	Duplicates int `json:"duplicates" doc:"events the service already had (a retried upload)"`
}

// Event classes and types as Azure Sphere's error-report download names them.
const (
	EventClassApplication = "Application"
	EventClassOS          = "OS"
	EventTypePlanned      = "Planned"
	EventTypeUnplanned    = "Unplanned"
)

// ErrorReport is one stored event with the device's place in the fleet when the service
// received it.
type ErrorReport struct {
	Seq           int64     `json:"seq" doc:"the service's sequence number; newer reports have greater numbers"`
	DeviceID      string    `json:"device_id"`
	DeviceGroupID string    `json:"device_group_id,omitempty" doc:"the device's group when the report arrived"`
	ProductID     string    `json:"product_id,omitempty" doc:"the group's product when the report arrived"`
	DeploymentID  string    `json:"deployment_id,omitempty" doc:"the group's current deployment when the report arrived"`
	ReceivedAt    time.Time `json:"received_at"`
	ID            string    `json:"id" doc:"the event's ID, as the device chose it"`
	Type          string    `json:"type"`
	Class         string    `json:"class" enum:"Application,OS"`
	Time          time.Time `json:"time" doc:"when it happened, by the device's clock (untrusted)"`
	ComponentID   string    `json:"component_id,omitempty"`
	ImageID       string    `json:"image_id,omitempty"`
	Signal        int       `json:"signal,omitempty"`
	ExitCode      *int      `json:"exit_code,omitempty"`
	Phase         string    `json:"phase,omitempty"`
	Reason        string    `json:"reason,omitempty"`
	Message       string    `json:"message,omitempty" doc:"untrusted free text"`
	Description   string    `json:"description"`
}

// ErrorBucket counts the events that share a type, component, image, signal and exit code.
type ErrorBucket struct {
	DeviceID    string    `json:"device_id,omitempty" doc:"set when the buckets are per device (the download)"`
	Type        string    `json:"type"`
	Class       string    `json:"class" enum:"Application,OS"`
	ComponentID string    `json:"component_id,omitempty"`
	ImageID     string    `json:"image_id,omitempty"`
	Signal      int       `json:"signal,omitempty"`
	ExitCode    *int      `json:"exit_code,omitempty"`
	Count       int64     `json:"count"`
	Devices     int64     `json:"devices" doc:"how many devices reported events of the bucket"`
	FirstSeen   time.Time `json:"first_seen"`
	LastSeen    time.Time `json:"last_seen"`
	Description string    `json:"description" doc:"as in Azure Sphere's error reports, e.g. AppCrash (signal=11; component_id=…; image_id=…)"`
}

// ErrorBuckets is the buckets of the events a query selects, most events first.
type ErrorBuckets struct {
	Items []ErrorBucket `json:"items"`
	// Truncated says there are more buckets than were returned.
	Truncated bool `json:"truncated,omitempty"`
	// Dropped is how many events the selected devices' queues dropped before upload, in all.
	Dropped int64 `json:"dropped" doc:"events the selected devices dropped before upload, in all (not filtered by time or type)"`
}

// ErrorReportRow is one row of the error-report download, with Azure Sphere's columns.
type ErrorReportRow struct {
	DeviceID    string    `json:"device_id"`
	EventType   string    `json:"event_type" enum:"Planned,Unplanned"`
	EventClass  string    `json:"event_class" enum:"Application,OS"`
	EventCount  int64     `json:"event_count"`
	Description string    `json:"description"`
	StartTime   time.Time `json:"start_time" doc:"the first event's time"`
	EndTime     time.Time `json:"end_time" doc:"the last event's time"`
}

// ErrorReportDownload is the JSON form of the error-report download.
type ErrorReportDownload struct {
	Rows      []ErrorReportRow `json:"rows"`
	Truncated bool             `json:"truncated,omitempty" doc:"there were more rows than the download holds"`
}
