package applibs

import "time"

// The wire format: every call is POST /v1/CALL with a JSON request body (unknown fields are
// errors) and a JSON response; an error is a non-2xx status with an ErrorBody. The types are
// shared by this client and the agent's server (internal/applibs).

// Calls, the paths after /v1/.
const (
	CallLog        = "log"
	CallGPIOOpen   = "gpio/open"
	CallGPIOGet    = "gpio/get"
	CallGPIOSet    = "gpio/set"
	CallUARTWrite  = "uart/write"
	CallUARTRead   = "uart/read"
	CallI2C        = "i2c/transfer"
	CallSPI        = "spi/transfer"
	CallADC        = "adc/poll"
	CallPWM        = "pwm/apply"
	CallStorage    = "storage"
	CallDeviceAuth = "deviceauth"
	CallPower      = "power"
	// Messages between applications that list each other in AllowedApplicationConnections.
	CallAppSend = "appconn/send"
	CallAppRecv = "appconn/recv"
	// System events and update deferral (Azure Sphere's sysevent).
	CallSysEventWait   = "sysevent/wait"
	CallSysEventDefer  = "sysevent/defer"
	CallSysEventResume = "sysevent/resume"
)

// Bounds the server enforces.
const (
	// MaxRequest bounds a request body.
	MaxRequest = 64 << 10
	// MaxLogMessage bounds one log message.
	MaxLogMessage = 4096
	// MaxUART bounds one UART write or read.
	MaxUART = 4096
	// MaxI2C bounds the bytes written or read by one I2C transfer.
	MaxI2C = 256
	// MaxSPI bounds the bytes written or read by one SPI transfer.
	MaxSPI = 4096
	// MaxName bounds a peripheral's name.
	MaxName = 128
	// MaxAppMessage bounds one message between applications (Azure Sphere's inter-core
	// messages are at most 1 KiB).
	MaxAppMessage = 1024
	// MaxAppRecvWaitMs bounds how long one appconn/recv call waits for a message.
	MaxAppRecvWaitMs = 5000
	// MaxSysEventWaitMs bounds how long one sysevent/wait call waits for an event.
	MaxSysEventWaitMs = 5000
	// MaxDeferralMinutes bounds one deferral request (the agent also caps it per update:
	// System updates 1440 minutes, App updates 10020, from when the device learned of them).
	MaxDeferralMinutes = 10020
)

// Error codes.
const (
	CodePermission   = "permission"    // the manifest does not grant the capability
	CodeInvalid      = "invalid"       // a malformed or out-of-range request
	CodeNotFound     = "not-found"     // no such call, or no such peripheral on the board
	CodeNotAvailable = "not-available" // not available yet (device authentication before attestation)
	CodeDevice       = "device"        // the peripheral failed (an I2C NACK)
	CodeBusy         = "busy"          // the receiving application's mailbox is full: try again
	CodeInternal     = "internal"
)

// ErrorBody is every error response.
type ErrorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
	// Capability names the capability the call needs, for CodePermission.
	Capability string `json:"capability,omitempty"`
}

// LogRequest is CallLog.
type LogRequest struct {
	Message string `json:"message"`
}

// GPIORequest is CallGPIOOpen, CallGPIOGet and CallGPIOSet. GPIO is the number, or Name a
// hardware-definition name ("$LED_RED"); not both.
type GPIORequest struct {
	GPIO int    `json:"gpio,omitempty"`
	Name string `json:"name,omitempty"`
	// Direction is "input" or "output" (CallGPIOOpen).
	Direction string `json:"direction,omitempty"`
	// Value is the value to set (CallGPIOSet; CallGPIOOpen as output: the initial value).
	Value bool `json:"value,omitempty"`
}

// GPIOResponse is the answer to the GPIO calls: the value read (or set).
type GPIOResponse struct {
	GPIO  int  `json:"gpio"`
	Value bool `json:"value"`
}

// UARTRequest is CallUARTWrite (Data) and CallUARTRead (Max). UART is an ISU ("ISU0") or a
// hardware-definition name.
type UARTRequest struct {
	UART string `json:"uart"`
	Data []byte `json:"data,omitempty"`
	Max  int    `json:"max,omitempty"`
}

// UARTResponse is the answer to the UART calls.
type UARTResponse struct {
	Written int    `json:"written,omitempty"`
	Data    []byte `json:"data,omitempty"`
}

// I2CRequest is CallI2C: write Write to Address, then read ReadLen bytes.
type I2CRequest struct {
	I2C     string `json:"i2c"`
	Address uint16 `json:"address"`
	Write   []byte `json:"write,omitempty"`
	ReadLen int    `json:"readLen,omitempty"`
}

// I2CResponse is the answer to CallI2C.
type I2CResponse struct {
	Data []byte `json:"data,omitempty"`
}

// SPIRequest is CallSPI: select chip ChipSelect (0 for A, 1 for B) on the SPI master SPI,
// write Write, then read ReadLen bytes, then deselect (SPIMaster_WriteThenRead).
type SPIRequest struct {
	SPI        string `json:"spi"`
	ChipSelect int    `json:"chipSelect"`
	Write      []byte `json:"write,omitempty"`
	ReadLen    int    `json:"readLen,omitempty"`
}

// SPIResponse is the answer to CallSPI.
type SPIResponse struct {
	Data []byte `json:"data,omitempty"`
}

// ADCRequest is CallADC.
type ADCRequest struct {
	ADC     string `json:"adc"`
	Channel int    `json:"channel"`
}

// ADCSample is the answer to CallADC.
type ADCSample struct {
	Value               uint32 `json:"value"`
	Bits                int    `json:"bits"`
	ReferenceMillivolts int    `json:"referenceMillivolts"`
}

// PWMRequest is CallPWM.
type PWMRequest struct {
	PWM     string   `json:"pwm"`
	Channel int      `json:"channel"`
	State   PWMState `json:"state"`
}

// PWMState is a PWM channel's settings.
type PWMState struct {
	PeriodNs uint32 `json:"periodNs"`
	DutyNs   uint32 `json:"dutyNs"`
	// Polarity is "normal" or "inversed"; "" means "normal".
	Polarity string `json:"polarity,omitempty"`
	Enabled  bool   `json:"enabled"`
}

// EmptyRequest is the body of CallStorage and CallDeviceAuth: {}.
type EmptyRequest struct{}

// StorageInfo is the answer to CallStorage.
type StorageInfo struct {
	// Path is where the storage is mounted in the sandbox.
	Path string `json:"path"`
	// QuotaKB is MutableStorage.SizeKB.
	QuotaKB int `json:"quotaKB"`
	// UsedKB is how much of it is used, -1 when the agent cannot tell.
	UsedKB int64 `json:"usedKB"`
}

// Certificate is the answer to CallDeviceAuth: the application's own certificate and key,
// issued by the tenant's CA at attestation, in PEM.
type Certificate struct {
	Certificate string `json:"certificate"`
	PrivateKey  string `json:"privateKey"`
	Chain       string `json:"chain,omitempty"`
}

// PowerRequest is CallPower. Action is "ForceReboot", "ForcePowerDown" (Seconds: the maximum
// residency) or "SetPowerProfile" (Profile: "PowerSaver", "Balanced" or "HighPerformance").
type PowerRequest struct {
	Action  string `json:"action"`
	Seconds int    `json:"seconds,omitempty"`
	Profile string `json:"profile,omitempty"`
}

// Update types and event statuses of the UpdateReadyForInstall system event.
const (
	UpdateTypeApp    = "App"
	UpdateTypeSystem = "System"

	SysEventPending  = "Pending"  // an update is ready and may be deferred
	SysEventDeferred = "Deferred" // deferred; Until says until when
	SysEventFinal    = "Final"    // it installs now
	SysEventComplete = "Complete" // it was installed
)

// SysEventWaitRequest is CallSysEventWait (SystemEventNotifications): the events after After,
// waiting up to TimeoutMs (at most MaxSysEventWaitMs) for one.
type SysEventWaitRequest struct {
	After     uint64 `json:"after"`
	TimeoutMs int    `json:"timeoutMs"`
}

// SysEvent is one system event.
type SysEvent struct {
	Seq                uint64    `json:"seq"`
	Event              string    `json:"event"` // "UpdateReadyForInstall"
	UpdateType         string    `json:"updateType"`
	Status             string    `json:"status"`
	MaxDeferralMinutes int       `json:"maxDeferralMinutes"`
	Until              time.Time `json:"until,omitzero"`
}

// SysEventWaitResponse is the answer to CallSysEventWait; no events when the wait ran out.
type SysEventWaitResponse struct {
	Events []SysEvent `json:"events"`
}

// DeferRequest is CallSysEventDefer (SoftwareUpdateDeferral): defer the pending update of
// UpdateType by Minutes.
type DeferRequest struct {
	UpdateType string `json:"updateType"`
	Minutes    int    `json:"minutes"`
}

// ResumeRequest is CallSysEventResume (SoftwareUpdateDeferral): withdraw this application's
// deferral of the pending update of UpdateType.
type ResumeRequest struct {
	UpdateType string `json:"updateType"`
}

// AppSendRequest is CallAppSend: send Data to the running application To (a component ID).
// Both applications' manifests must list each other in AllowedApplicationConnections.
type AppSendRequest struct {
	To   string `json:"to"`
	Data []byte `json:"data"`
}

// AppRecvRequest is CallAppRecv: the messages waiting for this application, waiting up to
// TimeoutMs (at most MaxAppRecvWaitMs) for one.
type AppRecvRequest struct {
	TimeoutMs int `json:"timeoutMs"`
}

// AppMessage is one message from another application.
type AppMessage struct {
	From string `json:"from"`
	Data []byte `json:"data"`
}

// AppRecvResponse is the answer to CallAppRecv, oldest first; none when the wait ran out.
type AppRecvResponse struct {
	Messages []AppMessage `json:"messages"`
}
