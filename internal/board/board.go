// Package board is the interface between the agent and a device's peripherals: Board is what
// the applibs server drives on an application's behalf (GPIO, UART, I2C, ADC, PWM, power), Panel
// is what the outside sees and drives (the state, button presses), and Handler serves a Panel
// over HTTP for the agent's local API. Boards are built-ins kept in a name-keyed registry:
// "emulated" (internal/board/emulated) and "linux" (internal/board/linux).
//
// Trust: a Board trusts its caller to have checked the application's grants (internal/applibs
// does, against the manifest) but checks every argument itself: a peripheral the board lacks,
// a length or a value out of range is an error, never a panic. The Handler trusts whoever can
// reach it (the local API's socket is the agent user's only) and bounds what it reads.
package board

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/rampart-iot/rampart/internal/registry"
)

// Errors a Board returns; wrap-compatible with errors.Is.
var (
	// ErrNoPeripheral: the board has no such peripheral (GPIO number, ISU, controller,
	// channel, button).
	ErrNoPeripheral = errors.New("no such peripheral on this board")
	// ErrDirection: a write to a GPIO that is an input on this board.
	ErrDirection = errors.New("the GPIO is an input on this board")
	// ErrNoDevice: nothing answered at that I2C address (a NACK).
	ErrNoDevice = errors.New("no device answered at that address")
	// ErrInvalid: an argument out of range.
	ErrInvalid = errors.New("invalid argument")
)

// Direction is a GPIO's direction on the board.
type Direction string

// The directions.
const (
	Input  Direction = "input"
	Output Direction = "output"
)

// ADCSample is one ADC reading.
type ADCSample struct {
	// Value is the raw sample, from 0 to 2^Bits-1.
	Value uint32 `json:"value"`
	// Bits is the sample width.
	Bits int `json:"bits"`
	// ReferenceMillivolts is the voltage that Value 2^Bits-1 stands for.
	ReferenceMillivolts int `json:"referenceMillivolts"`
}

// PWMState is one PWM channel's settings, as Azure Sphere's PwmState.
type PWMState struct {
	PeriodNs uint32 `json:"periodNs"`
	DutyNs   uint32 `json:"dutyNs"`
	// Polarity is "normal" (high for DutyNs) or "inversed".
	Polarity string `json:"polarity"`
	Enabled  bool   `json:"enabled"`
}

// Bounds every board enforces.
const (
	// MaxPWMPeriodNs bounds PWMState.PeriodNs (1 s).
	MaxPWMPeriodNs = 1_000_000_000
	// MaxPowerDownSeconds bounds a power-down's residency (one day).
	MaxPowerDownSeconds = 86400
)

// Validate checks s against the bounds every board shares.
func (s PWMState) Validate() error {
	if s.PeriodNs == 0 || s.PeriodNs > MaxPWMPeriodNs {
		return fmt.Errorf("%w: PWM period %d ns: want 1 to %d", ErrInvalid, s.PeriodNs, MaxPWMPeriodNs)
	}
	if s.DutyNs > s.PeriodNs {
		return fmt.Errorf("%w: PWM duty cycle %d ns is longer than the period %d ns", ErrInvalid, s.DutyNs, s.PeriodNs)
	}
	if s.Polarity != "normal" && s.Polarity != "inversed" {
		return fmt.Errorf("%w: PWM polarity %q: want \"normal\" or \"inversed\"", ErrInvalid, s.Polarity)
	}
	return nil
}

// Power actions, named as the PowerControls capability names them.
const (
	PowerForcePowerDown  = "ForcePowerDown"
	PowerForceReboot     = "ForceReboot"
	PowerSetPowerProfile = "SetPowerProfile"
)

// Power profiles for PowerSetPowerProfile.
var PowerProfiles = []string{"PowerSaver", "Balanced", "HighPerformance"}

// PowerRequest is a power-management request from an application.
type PowerRequest struct {
	// Action is one of PowerForcePowerDown, PowerForceReboot, PowerSetPowerProfile.
	Action string `json:"action"`
	// By is the component ID of the application that asked.
	By string `json:"by"`
	// Seconds is the power-down's maximum residency (PowerForcePowerDown).
	Seconds int `json:"seconds,omitempty"`
	// Profile is the profile set (PowerSetPowerProfile).
	Profile string `json:"profile,omitempty"`
}

// Board is a device's peripherals as the applibs server drives them. Controllers and ISUs are
// named as in manifests ("ISU0", "ADC-CONTROLLER-0", "PWM-CONTROLLER-0"), GPIOs by number. A
// Board is safe for concurrent use.
type Board interface {
	// Name is the board's registry name.
	Name() string
	// Hardware is the directory of its hardware definition files, which resolve manifests'
	// "$NAME" references.
	Hardware() fs.FS
	// GPIO returns the direction of GPIO n.
	GPIO(n int) (Direction, error)
	// ReadGPIO reads GPIO n (inputs and outputs); true is high.
	ReadGPIO(n int) (bool, error)
	// WriteGPIO drives output GPIO n.
	WriteGPIO(n int, high bool) error
	// UARTWrite transmits p on the UART of ISU isu and returns how many bytes it took.
	UARTWrite(isu string, p []byte) (int, error)
	// UARTRead reads what the UART received, up to len(p) bytes, without waiting.
	UARTRead(isu string, p []byte) (int, error)
	// I2CTransfer writes w to the 7-bit address addr on the I2C bus of ISU isu, then (if
	// len(r) > 0) reads len(r) bytes into r, as I2CMaster_WriteThenRead.
	I2CTransfer(isu string, addr uint16, w, r []byte) error
	// SPITransfer selects chip cs on the SPI bus of ISU isu, writes w, then (if len(r) > 0)
	// reads len(r) bytes into r, and deselects it, as SPIMaster_WriteThenRead.
	SPITransfer(isu string, cs int, w, r []byte) error
	// ADCRead samples a channel of an ADC controller.
	ADCRead(controller string, channel int) (ADCSample, error)
	// PWMApply sets a channel of a PWM controller.
	PWMApply(controller string, channel int, s PWMState) error
	// Power carries out (on an emulated board: records) a power-management request.
	Power(req PowerRequest) error
}

// Panel is a board as the outside sees it: its state to read, and its inputs to drive.
type Panel interface {
	// State returns a snapshot of the board.
	State() State
	// Press presses and releases a button: the next read of its GPIO (by any application)
	// sees it pressed, so a polling application never misses it.
	Press(button string) error
}

// State is a snapshot of a board, for `rampart-agent board -o json` and the web console.
type State struct {
	Board   string       `json:"board"`
	At      time.Time    `json:"at"`
	LEDs    []LED        `json:"leds"`
	Buttons []Button     `json:"buttons"`
	UARTs   []UART       `json:"uarts"`
	Sensors []Sensor     `json:"sensors"`
	ADCs    []ADCChannel `json:"adcs"`
	PWMs    []PWMChannel `json:"pwms"`
	Power   Power        `json:"power"`
}

// LED is an output GPIO with a light on it.
type LED struct {
	Name string `json:"name"`
	GPIO int    `json:"gpio"`
	On   bool   `json:"on"`
}

// Button is an input GPIO with a push button on it.
type Button struct {
	Name    string `json:"name"`
	GPIO    int    `json:"gpio"`
	Pressed bool   `json:"pressed"`
	// Pending is true when a press has not been read yet.
	Pending bool `json:"pending,omitempty"`
	// Presses counts the presses since the board started.
	Presses int `json:"presses"`
}

// UART is a UART and what went through it.
type UART struct {
	ISU      string `json:"isu"`
	Loopback bool   `json:"loopback"`
	// Buffered is how many received bytes wait to be read.
	Buffered int   `json:"buffered"`
	TxBytes  int64 `json:"txBytes"`
	RxBytes  int64 `json:"rxBytes"`
}

// Sensor is an I2C sensor.
type Sensor struct {
	Name    string  `json:"name"`
	ISU     string  `json:"isu"`
	Address uint16  `json:"address"`
	Celsius float64 `json:"celsius"`
}

// ADCChannel is one ADC channel's current sample.
type ADCChannel struct {
	Controller string    `json:"controller"`
	Channel    int       `json:"channel"`
	Name       string    `json:"name,omitempty"`
	Sample     ADCSample `json:"sample"`
}

// PWMChannel is one PWM channel's settings; Set is false until an application applies some.
type PWMChannel struct {
	Controller string   `json:"controller"`
	Channel    int      `json:"channel"`
	Set        bool     `json:"set"`
	State      PWMState `json:"state"`
}

// Power is what power management did: on the emulated board, requests are recorded, not
// carried out.
type Power struct {
	Profile    string        `json:"profile"`
	Reboots    int           `json:"reboots"`
	PowerDowns int           `json:"powerDowns"`
	Last       *PowerRequest `json:"last,omitempty"`
	LastAt     time.Time     `json:"lastAt,omitzero"`
}

// CheckPower says whether a power request is well formed: a known action, a power-down's
// residency within bounds, a known profile.
func CheckPower(req PowerRequest) error {
	switch req.Action {
	case PowerForceReboot:
	case PowerForcePowerDown:
		if req.Seconds < 1 || req.Seconds > MaxPowerDownSeconds {
			return fmt.Errorf("%w: power-down residency %d s: want 1 to %d", ErrInvalid, req.Seconds, MaxPowerDownSeconds)
		}
	case PowerSetPowerProfile:
		if !slices.Contains(PowerProfiles, req.Profile) {
			return fmt.Errorf("%w: power profile %q: want one of %v", ErrInvalid, req.Profile, PowerProfiles)
		}
	default:
		return fmt.Errorf("%w: power action %q", ErrInvalid, req.Action)
	}
	return nil
}

// Record counts a checked power request in p, made at at: boards record requests rather than
// carry them out.
func (p *Power) Record(req PowerRequest, at time.Time) {
	switch req.Action {
	case PowerForceReboot:
		p.Reboots++
	case PowerForcePowerDown:
		p.PowerDowns++
	case PowerSetPowerProfile:
		p.Profile = req.Profile
	}
	p.Last = &req
	p.LastAt = at
}

// Options are what a built-in board is made with.
type Options struct {
	// Now is the clock (default time.Now): it drives the emulated sensors.
	Now func() time.Time
	// Rand returns a number in [0, 1) (default math/rand/v2's Float64): the sensors' noise.
	Rand func() float64
	// Dir is the description directory of a board described by files (the linux board's);
	// Open sets it from a name of the form "linux:DIR".
	Dir string
	// Logger logs what a board does that an operator should know (the linux board's power
	// requests); nil discards.
	Logger *slog.Logger
}

// Opener makes a board; Open returns it as a Board and a Panel.
type Opener func(Options) (Device, error)

// Device is a board that is both driven by applications and seen from outside.
type Device interface {
	Board
	Panel
}

var builtins = registry.New[Opener]("board")

// Register adds a built-in board; call it from an init function.
func Register(name string, open Opener) { builtins.Register(name, open) }

// Names lists the built-in boards.
func Names() []string { return builtins.Names() }

// Open makes the built-in board called name. A name may carry the board's description
// directory after a colon ("linux:/etc/rampart/board"), which sets opts.Dir.
func Open(name string, opts Options) (Device, error) {
	if n, dir, ok := strings.Cut(name, ":"); ok {
		if opts.Dir != "" && opts.Dir != dir {
			return nil, fmt.Errorf("board %s: two description directories, %s and %s", n, opts.Dir, dir)
		}
		name, opts.Dir = n, dir
	}
	open, err := builtins.Lookup(name)
	if err != nil {
		return nil, err
	}
	return open(opts)
}
