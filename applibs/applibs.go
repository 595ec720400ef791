// Package applibs is the Go SDK for Rampart applications: a small client of the applibs API
// that the agent serves to each application on a Unix socket inside its sandbox (the path is
// in the RAMPART_APPLIBS environment variable). It covers logging, GPIO, UART, I2C, ADC, PWM,
// mutable storage, device authentication and power controls. A call that needs a capability
// the application's manifest does not grant fails with an *Error whose Capability names it and
// which matches ErrPermission (errors.Is), the equivalent of Azure Sphere's EACCES.
//
//	c, err := applibs.Dial()
//	...
//	err = c.GPIO(8).OpenAsOutput(false)
//	err = c.GPIO(8).Set(true)
//	t, err := c.I2C("ISU2").WriteThenRead(0x48, []byte{0}, 2)
//
// Trust: the client trusts the agent at the end of the socket; it bounds what it reads.
package applibs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

// EnvSocket is the environment variable holding the socket's path; DefaultSocket is used when
// it is unset.
const (
	EnvSocket     = "RAMPART_APPLIBS"
	DefaultSocket = "/run/rampart/applibs.sock"
)

// DefaultTimeout bounds each call.
const DefaultTimeout = 10 * time.Second

// maxResponse bounds what the client reads (a certificate chain is the largest answer).
const maxResponse = 1 << 20

// Errors an *Error matches with errors.Is, by its Code.
var (
	ErrPermission   = errors.New("permission denied")
	ErrInvalid      = errors.New("invalid request")
	ErrNotFound     = errors.New("not found")
	ErrNotAvailable = errors.New("not available")
	ErrDevice       = errors.New("device error")
	ErrBusy         = errors.New("busy")
)

// Error is a failed call.
type Error struct {
	// Call is the call that failed ("gpio/set").
	Call string
	// Code is one of the Code constants.
	Code string
	// Capability is the capability the call needs (CodePermission).
	Capability string
	// Message is the agent's explanation.
	Message string
}

func (e *Error) Error() string { return "applibs " + e.Call + ": " + e.Message }

// Is matches the sentinel errors by Code.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrPermission:
		return e.Code == CodePermission
	case ErrInvalid:
		return e.Code == CodeInvalid
	case ErrNotFound:
		return e.Code == CodeNotFound
	case ErrNotAvailable:
		return e.Code == CodeNotAvailable
	case ErrBusy:
		return e.Code == CodeBusy
	case ErrDevice:
		return e.Code == CodeDevice
	}
	return false
}

// Client talks to the agent. It is safe for concurrent use.
type Client struct {
	hc      *http.Client
	Timeout time.Duration
}

// Dial returns a client of the socket named by EnvSocket (or DefaultSocket). It checks that
// the socket exists; connections are made per call.
func Dial() (*Client, error) {
	p := os.Getenv(EnvSocket)
	if p == "" {
		p = DefaultSocket
	}
	if _, err := os.Stat(p); err != nil {
		return nil, fmt.Errorf("applibs: the agent's socket: %w", err)
	}
	return DialPath(p), nil
}

// DialPath returns a client of the socket at path.
func DialPath(path string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		MaxIdleConns: 2,
	}
	return &Client{hc: &http.Client{Transport: tr}, Timeout: DefaultTimeout}
}

// Call makes one call: in is the request, out (may be nil) receives the response.
func (c *Client) Call(ctx context.Context, call string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://applibs/v1/"+call, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("applibs %s: %w", call, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return fmt.Errorf("applibs %s: %w", call, err)
	}
	if resp.StatusCode/100 != 2 {
		var eb ErrorBody
		if json.Unmarshal(data, &eb) != nil || eb.Code == "" {
			return &Error{Call: call, Code: CodeInternal, Message: resp.Status}
		}
		return &Error{Call: call, Code: eb.Code, Capability: eb.Capability, Message: eb.Error}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("applibs %s: decoding the answer: %w", call, err)
	}
	return nil
}

func (c *Client) call(call string, in, out any) error {
	return c.Call(context.Background(), call, in, out)
}

// Log writes a message to the application's log on the device (Log_Debug).
func (c *Client) Log(msg string) error {
	return c.call(CallLog, LogRequest{Message: msg}, nil)
}

// Logf formats and logs a message.
func (c *Client) Logf(format string, args ...any) error {
	return c.Log(fmt.Sprintf(format, args...))
}

// GPIO is one GPIO, by number or hardware-definition name.
type GPIO struct {
	c   *Client
	req GPIORequest
}

// GPIO returns GPIO n.
func (c *Client) GPIO(n int) *GPIO { return &GPIO{c: c, req: GPIORequest{GPIO: n}} }

// GPIOByName returns the GPIO a hardware-definition name ("$LED_RED") stands for on the
// device's board.
func (c *Client) GPIOByName(name string) *GPIO { return &GPIO{c: c, req: GPIORequest{Name: name}} }

// OpenAsOutput checks that the GPIO is granted and is an output, and sets it to initial.
func (g *GPIO) OpenAsOutput(initial bool) error {
	r := g.req
	r.Direction, r.Value = "output", initial
	return g.c.call(CallGPIOOpen, r, nil)
}

// OpenAsInput checks that the GPIO is granted and can be read.
func (g *GPIO) OpenAsInput() error {
	r := g.req
	r.Direction = "input"
	return g.c.call(CallGPIOOpen, r, nil)
}

// Set drives an output GPIO high (true) or low.
func (g *GPIO) Set(high bool) error {
	r := g.req
	r.Value = high
	return g.c.call(CallGPIOSet, r, nil)
}

// Get reads the GPIO: true is high. A button on the emulated board reads high when pressed.
func (g *GPIO) Get() (bool, error) {
	var out GPIOResponse
	err := g.c.call(CallGPIOGet, g.req, &out)
	return out.Value, err
}

// UART is the UART of an ISU ("ISU0") or hardware-definition name.
type UART struct {
	c    *Client
	name string
}

// UART returns a UART.
func (c *Client) UART(name string) *UART { return &UART{c: c, name: name} }

// Write sends p (at most MaxUART bytes per call) and returns how many bytes were taken.
func (u *UART) Write(p []byte) (int, error) {
	var out UARTResponse
	err := u.c.call(CallUARTWrite, UARTRequest{UART: u.name, Data: p}, &out)
	return out.Written, err
}

// Read returns what the UART received, at most max bytes (at most MaxUART), without waiting.
func (u *UART) Read(max int) ([]byte, error) {
	var out UARTResponse
	err := u.c.call(CallUARTRead, UARTRequest{UART: u.name, Max: max}, &out)
	return out.Data, err
}

// I2C is the I2C master of an ISU ("ISU2") or hardware-definition name.
type I2C struct {
	c    *Client
	name string
}

// I2C returns an I2C master.
func (c *Client) I2C(name string) *I2C { return &I2C{c: c, name: name} }

// WriteThenRead writes w to the 7-bit address addr, then reads n bytes.
func (i *I2C) WriteThenRead(addr uint16, w []byte, n int) ([]byte, error) {
	var out I2CResponse
	err := i.c.call(CallI2C, I2CRequest{I2C: i.name, Address: addr, Write: w, ReadLen: n}, &out)
	return out.Data, err
}

// Write writes w to addr.
func (i *I2C) Write(addr uint16, w []byte) error {
	_, err := i.WriteThenRead(addr, w, 0)
	return err
}

// Read reads n bytes from addr.
func (i *I2C) Read(addr uint16, n int) ([]byte, error) { return i.WriteThenRead(addr, nil, n) }

// ADC is an ADC controller ("ADC-CONTROLLER-0") or hardware-definition name.
type ADC struct {
	c    *Client
	name string
}

// ADC returns an ADC controller.
func (c *Client) ADC(name string) *ADC { return &ADC{c: c, name: name} }

// Poll samples a channel.
func (a *ADC) Poll(channel int) (ADCSample, error) {
	var out ADCSample
	err := a.c.call(CallADC, ADCRequest{ADC: a.name, Channel: channel}, &out)
	return out, err
}

// PWM is a PWM controller ("PWM-CONTROLLER-0") or hardware-definition name.
type PWM struct {
	c    *Client
	name string
}

// SPI is an SPI master (SpiMaster), by ISU ("ISU1") or hardware-definition name.
type SPI struct {
	c    *Client
	name string
}

// SPI returns an SPI master.
func (c *Client) SPI(name string) *SPI { return &SPI{c: c, name: name} }

// WriteThenRead selects chip cs (0 for A, 1 for B), writes w, reads n bytes, and deselects it.
func (s *SPI) WriteThenRead(cs int, w []byte, n int) ([]byte, error) {
	var out SPIResponse
	err := s.c.call(CallSPI, SPIRequest{SPI: s.name, ChipSelect: cs, Write: w, ReadLen: n}, &out)
	return out.Data, err
}

// PWM returns a PWM controller.
func (c *Client) PWM(name string) *PWM { return &PWM{c: c, name: name} }

// Apply sets a channel.
func (p *PWM) Apply(channel int, s PWMState) error {
	return p.c.call(CallPWM, PWMRequest{PWM: p.name, Channel: channel, State: s}, nil)
}

// Storage returns the application's mutable storage: where it is and how full.
func (c *Client) Storage() (StorageInfo, error) {
	var out StorageInfo
	err := c.call(CallStorage, EmptyRequest{}, &out)
	return out, err
}

// DeviceAuth returns the application's own certificate and key (DeviceAuthentication);
// ErrNotAvailable until the device has attested and been issued one.
func (c *Client) DeviceAuth() (Certificate, error) {
	var out Certificate
	err := c.call(CallDeviceAuth, EmptyRequest{}, &out)
	return out, err
}

// ForceReboot asks for a reboot (PowerControls: ForceReboot).
func (c *Client) ForceReboot() error {
	return c.call(CallPower, PowerRequest{Action: "ForceReboot"}, nil)
}

// ForcePowerDown asks for the lowest-power state for at most seconds (ForcePowerDown).
func (c *Client) ForcePowerDown(seconds int) error {
	return c.call(CallPower, PowerRequest{Action: "ForcePowerDown", Seconds: seconds}, nil)
}

// SetPowerProfile sets "PowerSaver", "Balanced" or "HighPerformance" (SetPowerProfile).
func (c *Client) SetPowerProfile(profile string) error {
	return c.call(CallPower, PowerRequest{Action: "SetPowerProfile", Profile: profile}, nil)
}

// WaitSysEvents returns the system events after seq (0 for all the agent keeps), waiting up
// to wait (at most 5 s) for one; none when the wait runs out. It needs SystemEventNotifications.
func (c *Client) WaitSysEvents(ctx context.Context, after uint64, wait time.Duration) ([]SysEvent, error) {
	ms := int(wait / time.Millisecond)
	ms = max(0, min(ms, MaxSysEventWaitMs))
	var out SysEventWaitResponse
	err := c.Call(ctx, CallSysEventWait, SysEventWaitRequest{After: after, TimeoutMs: ms}, &out)
	return out.Events, err
}

// DeferUpdate defers the pending update of updateType (UpdateTypeApp or UpdateTypeSystem) by
// minutes; the agent caps it (24 hours for System, 167 hours for App, from when the device
// learned of the update). It needs SoftwareUpdateDeferral.
func (c *Client) DeferUpdate(updateType string, minutes int) (SysEvent, error) {
	var out SysEvent
	err := c.call(CallSysEventDefer, DeferRequest{UpdateType: updateType, Minutes: minutes}, &out)
	return out, err
}

// ResumeUpdate withdraws this application's deferral: the update installs now unless another
// application defers it. It needs SoftwareUpdateDeferral.
func (c *Client) ResumeUpdate(updateType string) error {
	return c.call(CallSysEventResume, ResumeRequest{UpdateType: updateType}, nil)
}

// SendToApp sends data (at most MaxAppMessage bytes) to the running application componentID;
// both manifests must list each other in AllowedApplicationConnections. ErrBusy when its
// mailbox is full, ErrNotAvailable when it does not run.
func (c *Client) SendToApp(componentID string, data []byte) error {
	return c.call(CallAppSend, AppSendRequest{To: componentID, Data: data}, nil)
}

// ReceiveFromApps returns the messages other applications sent this one, oldest first,
// waiting up to wait (at most 5 s) for one.
func (c *Client) ReceiveFromApps(ctx context.Context, wait time.Duration) ([]AppMessage, error) {
	ms := max(0, min(int(wait/time.Millisecond), MaxAppRecvWaitMs))
	var out AppRecvResponse
	err := c.Call(ctx, CallAppRecv, AppRecvRequest{TimeoutMs: ms}, &out)
	return out.Messages, err
}
