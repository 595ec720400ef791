package v1

import "time"

// Check-in limits: a report larger than these is refused whole.
const (
	MaxCheckInImages = 64
	MaxCheckInText   = 1024 // bytes of a free-text field such as an error
	MaxCheckInBody   = 64 << 10
)

// CheckIn is what a device reports when it checks in over mutual TLS. Untrusted: the device
// says it, and the service shows it as reported.
type CheckIn struct {
	AgentVersion  string           `json:"agent_version" doc:"the running agent's version"`
	Images        []InstalledImage `json:"images" doc:"the images installed on the device, at most 64"`
	OS            *OSSlots         `json:"os,omitempty" doc:"the OS slots, on a device with A/B boot control"`
	Update        *UpdateStatus    `json:"update,omitempty" doc:"the latest OS or app update and how it ended"`
	UptimeSeconds int64            `json:"uptime_seconds,omitempty" doc:"how long the agent has run: the device-hours of crash-free hours"`
	Deferred      []DeferredUpdate `json:"deferred,omitempty" doc:"updates the device has learned of and not installed yet because an application deferred them (at most 2: App and System)"`
	Board         *BoardState      `json:"board,omitempty" doc:"the emulated board's LEDs and buttons, for the console's live board"`
}

// DeferredUpdate is an update an application on the device holds back (SoftwareUpdateDeferral),
// within the cap counted from FirstSeen: 24 hours for System, 167 hours for App.
type DeferredUpdate struct {
	UpdateType string    `json:"update_type" enum:"App,System"`
	FirstSeen  time.Time `json:"first_seen" doc:"when the device learned of the update"`
	Until      time.Time `json:"until" doc:"when the device installs it at the latest"`
}

// Installed image states.
const (
	ImageInstalled = "installed"
	ImageRunning   = "running"
	ImageStopped   = "stopped"
	ImageCrashed   = "crashed"
	ImageFailed    = "failed"
)

// InstalledImage is one image on a device, as the device reports it.
type InstalledImage struct {
	ComponentID string `json:"component_id"`
	ImageID     string `json:"image_id"`
	Kind        string `json:"kind" enum:"application,os,board-config"`
	Version     string `json:"version"`
	State       string `json:"state" enum:"installed,running,stopped,crashed,failed"`
	Restarts    int    `json:"restarts,omitempty"`
	LastError   string `json:"last_error,omitempty"`
}

// OSSlots is a device's A/B boot state, as the device reports it.
type OSSlots struct {
	Active           string   `json:"active" enum:"a,b" doc:"the committed slot"`
	Booted           string   `json:"booted" enum:"a,b" doc:"the slot the current boot runs"`
	Trial            string   `json:"trial,omitempty" enum:"a,b" doc:"the slot armed for trial boots, if any"`
	CommittedVersion string   `json:"committed_version" doc:"the OS version of the active slot"`
	Slots            []OSSlot `json:"slots"`
	SecurityCounter  uint64   `json:"security_counter,omitempty" doc:"the anti-rollback counter: the device installs no OS bundle whose security version is lower"`
}

// OSSlot is one installed OS slot.
type OSSlot struct {
	Name    string `json:"name" enum:"a,b"`
	Version string `json:"version"`
	Digest  string `json:"digest" doc:"lowercase hex measurement of the slot's contents"`
}

// UpdateStatus is where a device's latest update stands.
type UpdateStatus struct {
	State       string    `json:"state" doc:"the update state machine's state, e.g. Downloading, Verifying, Committed, RolledBack, Failed"`
	ComponentID string    `json:"component_id,omitempty"`
	ImageID     string    `json:"image_id,omitempty"`
	Version     string    `json:"version,omitempty"`
	FromVersion string    `json:"from_version,omitempty"`
	Phase       string    `json:"phase,omitempty" doc:"the step that failed or rolled back"`
	Reason      string    `json:"reason,omitempty"`
	At          time.Time `json:"at,omitzero" doc:"when the update settled"`
}

// CheckInResult tells a device what to do next.
type CheckInResult struct {
	DeviceGroupID   string `json:"device_group_id,omitempty"`
	DeploymentID    string `json:"deployment_id,omitempty" doc:"the group's current deployment, empty if none"`
	IntervalSeconds int64  `json:"interval_seconds" doc:"check in again after this long at the latest (the group's check-in interval)"`
	// DirectorPath and ImagesPath are where the device fetches the signed update metadata of
	// its group's director repository and its tenant's image repository (TUF file names under
	// them: N.root.json, timestamp.json, N.snapshot.json, N.targets.json).
	DirectorPath string    `json:"director_path,omitempty"`
	ImagesPath   string    `json:"images_path,omitempty"`
	ServerTime   time.Time `json:"server_time" doc:"untrusted time hint; trusted time comes from attestation"`
	// ImageSigningKeys are the tenant's image-signing public keys (DER SubjectPublicKeyInfo),
	// which countersign every image package the device installs.
	ImageSigningKeys [][]byte `json:"image_signing_keys"`
	// BoardPresses are button presses asked for from the console, for an emulated board.
	BoardPresses []string `json:"board_presses,omitempty"`
}

// Bounds on a reported board.
const (
	MaxBoardItems = 32
	MaxBoardName  = 64
)

// BoardState is an emulated board's state as its device reports it: untrusted, for display.
type BoardState struct {
	Board   string        `json:"board"`
	LEDs    []BoardLED    `json:"leds"`
	Buttons []BoardButton `json:"buttons"`
}

// BoardLED is one LED.
type BoardLED struct {
	Name string `json:"name"`
	GPIO int    `json:"gpio"`
	On   bool   `json:"on"`
}

// BoardButton is one button and how often it was pressed.
type BoardButton struct {
	Name    string `json:"name"`
	GPIO    int    `json:"gpio"`
	Presses int    `json:"presses"`
}

// BoardPress asks an emulated device to press one of its board's buttons.
type BoardPress struct {
	Button string `json:"button"`
}

// DeviceStatus is what a device last reported at check-in, as shown to its tenant.
type DeviceStatus struct {
	CheckedInAt time.Time `json:"checked_in_at"`
	Report      CheckIn   `json:"report" doc:"untrusted: as the device reported it"`
}

// DeviceEvent is a server-sent event on a device's push channel.
type DeviceEvent struct {
	Type         string `json:"type" enum:"deployment,check-in" doc:"deployment: the group's deployment changed; check-in: check in now"`
	DeploymentID string `json:"deployment_id,omitempty"`
}
