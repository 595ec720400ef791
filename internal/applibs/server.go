package applibs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	sdk "github.com/rampart-iot/rampart/applibs"
	"github.com/rampart-iot/rampart/internal/board"
	"github.com/rampart-iot/rampart/internal/deferral"
	"github.com/rampart-iot/rampart/internal/sandbox"
	"github.com/rampart-iot/rampart/manifest"
)

// errInvalid marks a malformed or out-of-range request.
var errInvalid = errors.New("invalid request")

// ErrNoPendingUpdate: a deferral or resume with no update of that type pending.
var ErrNoPendingUpdate = deferral.ErrNoPendingUpdate

// errNoCall is an unknown call.
var errNoCall = errors.New("no such call")

// server is one application's API.
type server struct {
	h     *Host
	app   App
	caps  manifest.Capabilities
	logMu chan struct{}
}

func newServer(h *Host, app App) (*server, error) {
	m := app.Manifest
	if m.HasReferences() {
		r, err := m.Resolve(h.hw)
		if err != nil {
			return nil, fmt.Errorf("applibs: resolving the manifest of %s on board %s: %w", app.ComponentID, h.cfg.Board.Name(), err)
		}
		m = r
	}
	if app.Log == nil {
		app.Log = io.Discard
	}
	return &server{h: h, app: app, caps: m.Capabilities, logMu: make(chan struct{}, 1)}, nil
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	call, ok := strings.CutPrefix(r.URL.Path, "/v1/")
	if r.Method != http.MethodPost || !ok {
		writeError(w, call, fmt.Errorf("%w: want POST /v1/CALL", errNoCall))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, sdk.MaxRequest))
	if err != nil {
		writeError(w, call, fmt.Errorf("%w: body larger than %d bytes", errInvalid, sdk.MaxRequest))
		return
	}
	out, err := s.do(r.Context(), call, body)
	if err != nil {
		if code, _, _ := classify(err); code == sdk.CodeInternal {
			s.h.cfg.Logger.Warn("applibs call failed", "component", s.app.ComponentID, "call", call, "err", err)
		}
		writeError(w, call, err)
		return
	}
	if out == nil {
		out = struct{}{}
	}
	writeJSON(w, http.StatusOK, out)
}

// do decodes, authorizes and carries out one call.
func (s *server) do(ctx context.Context, call string, body []byte) (any, error) {
	req, err := decode(call, body)
	if err != nil {
		return nil, err
	}
	if err := s.authorize(req); err != nil {
		return nil, err
	}
	return s.act(ctx, req)
}

// decode parses a call's body strictly (one JSON object, no unknown fields) and checks its
// bounds; it returns a pointer to the call's request type.
func decode(call string, body []byte) (any, error) {
	var req any
	switch call {
	case sdk.CallLog:
		req = &sdk.LogRequest{}
	case sdk.CallGPIOOpen, sdk.CallGPIOGet, sdk.CallGPIOSet:
		req = &gpioCall{call: call}
	case sdk.CallUARTWrite, sdk.CallUARTRead:
		req = &uartCall{call: call}
	case sdk.CallI2C:
		req = &sdk.I2CRequest{}
	case sdk.CallSPI:
		req = &sdk.SPIRequest{}
	case sdk.CallADC:
		req = &sdk.ADCRequest{}
	case sdk.CallPWM:
		req = &sdk.PWMRequest{}
	case sdk.CallStorage:
		req = &storageCall{}
	case sdk.CallDeviceAuth:
		req = &deviceAuthCall{}
	case sdk.CallPower:
		req = &sdk.PowerRequest{}
	case sdk.CallAppSend:
		req = &sdk.AppSendRequest{}
	case sdk.CallAppRecv:
		req = &sdk.AppRecvRequest{}
	case sdk.CallSysEventWait:
		req = &sdk.SysEventWaitRequest{}
	case sdk.CallSysEventDefer:
		req = &sdk.DeferRequest{}
	case sdk.CallSysEventResume:
		req = &sdk.ResumeRequest{}
	default:
		return nil, fmt.Errorf("%w %q", errNoCall, call)
	}
	target := req
	switch r := req.(type) {
	case *gpioCall:
		target = &r.GPIORequest
	case *uartCall:
		target = &r.UARTRequest
	case *storageCall:
		target = &sdk.EmptyRequest{}
	case *deviceAuthCall:
		target = &sdk.EmptyRequest{}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(target); err != nil {
		return nil, fmt.Errorf("%w: %v", errInvalid, err)
	}
	if dec.More() || dec.InputOffset() != int64(len(bytes.TrimRight(body, " \t\r\n"))) {
		return nil, fmt.Errorf("%w: trailing data after the request", errInvalid)
	}
	if err := check(req); err != nil {
		return nil, fmt.Errorf("%w: %v", errInvalid, err)
	}
	return req, nil
}

type gpioCall struct {
	call string
	sdk.GPIORequest
}

type uartCall struct {
	call string
	sdk.UARTRequest
}

type storageCall struct{}

type deviceAuthCall struct{}

// check enforces each request's bounds.
func check(req any) error {
	name := func(what, n string) error {
		if n == "" || len(n) > sdk.MaxName {
			return fmt.Errorf("%s name %q: want 1 to %d bytes", what, n, sdk.MaxName)
		}
		return nil
	}
	switch r := req.(type) {
	case *sdk.LogRequest:
		if len(r.Message) > sdk.MaxLogMessage {
			return fmt.Errorf("log message of %d bytes: the limit is %d", len(r.Message), sdk.MaxLogMessage)
		}
		if !utf8.ValidString(r.Message) {
			return errors.New("log message is not UTF-8")
		}
	case *gpioCall:
		if r.Name != "" && r.GPIO != 0 {
			return errors.New("give a GPIO number or a name, not both")
		}
		if r.Name != "" {
			if err := name("GPIO", r.Name); err != nil {
				return err
			}
		} else if r.GPIO < 0 || r.GPIO > manifest.MaxGPIO {
			return fmt.Errorf("GPIO %d: want 0 to %d", r.GPIO, manifest.MaxGPIO)
		}
		switch {
		case r.call == sdk.CallGPIOOpen && r.Direction != "input" && r.Direction != "output":
			return fmt.Errorf("direction %q: want \"input\" or \"output\"", r.Direction)
		case r.call != sdk.CallGPIOOpen && r.Direction != "":
			return errors.New("direction is only for gpio/open")
		case r.call == sdk.CallGPIOGet && r.Value:
			return errors.New("value is not for gpio/get")
		}
	case *uartCall:
		if err := name("UART", r.UART); err != nil {
			return err
		}
		if r.call == sdk.CallUARTWrite && (len(r.Data) > sdk.MaxUART || r.Max != 0) {
			return fmt.Errorf("uart/write takes data of at most %d bytes and no max", sdk.MaxUART)
		}
		if r.call == sdk.CallUARTRead && (r.Max < 1 || r.Max > sdk.MaxUART || r.Data != nil) {
			return fmt.Errorf("uart/read takes a max from 1 to %d and no data", sdk.MaxUART)
		}
	case *sdk.SPIRequest:
		if err := name("SPI", r.SPI); err != nil {
			return err
		}
		if r.ChipSelect < 0 || r.ChipSelect > 1 {
			return fmt.Errorf("chipSelect %d: want 0 (A) or 1 (B)", r.ChipSelect)
		}
		if len(r.Write) > sdk.MaxSPI || r.ReadLen < 0 || r.ReadLen > sdk.MaxSPI {
			return fmt.Errorf("an SPI transfer writes and reads at most %d bytes each", sdk.MaxSPI)
		}
		if len(r.Write) == 0 && r.ReadLen == 0 {
			return errors.New("an SPI transfer writes or reads something")
		}
	case *sdk.AppSendRequest:
		if _, err := manifest.ParseUUID(r.To); err != nil {
			return fmt.Errorf("to %q: %v", r.To, err)
		}
		if len(r.Data) > sdk.MaxAppMessage {
			return fmt.Errorf("a message of %d bytes: the limit is %d", len(r.Data), sdk.MaxAppMessage)
		}
	case *sdk.AppRecvRequest:
		if r.TimeoutMs < 0 || r.TimeoutMs > sdk.MaxAppRecvWaitMs {
			return fmt.Errorf("timeoutMs %d: want 0 to %d", r.TimeoutMs, sdk.MaxAppRecvWaitMs)
		}
	case *sdk.SysEventWaitRequest:
		if r.TimeoutMs < 0 || r.TimeoutMs > sdk.MaxSysEventWaitMs {
			return fmt.Errorf("timeoutMs %d: want 0 to %d", r.TimeoutMs, sdk.MaxSysEventWaitMs)
		}
	case *sdk.DeferRequest:
		if err := updateType(r.UpdateType); err != nil {
			return err
		}
		if r.Minutes < 1 || r.Minutes > sdk.MaxDeferralMinutes {
			return fmt.Errorf("minutes %d: want 1 to %d", r.Minutes, sdk.MaxDeferralMinutes)
		}
	case *sdk.ResumeRequest:
		return updateType(r.UpdateType)
	case *sdk.I2CRequest:
		if err := name("I2C", r.I2C); err != nil {
			return err
		}
		if r.Address > 0x7F {
			return fmt.Errorf("I2C address %#x: want a 7-bit address", r.Address)
		}
		if len(r.Write) > sdk.MaxI2C || r.ReadLen < 0 || r.ReadLen > sdk.MaxI2C {
			return fmt.Errorf("I2C transfer: write and read at most %d bytes each", sdk.MaxI2C)
		}
		if len(r.Write) == 0 && r.ReadLen == 0 {
			return errors.New("I2C transfer: nothing to write or read")
		}
	case *sdk.ADCRequest:
		if err := name("ADC", r.ADC); err != nil {
			return err
		}
		if r.Channel < 0 || r.Channel > 255 {
			return fmt.Errorf("ADC channel %d: want 0 to 255", r.Channel)
		}
	case *sdk.PWMRequest:
		if err := name("PWM", r.PWM); err != nil {
			return err
		}
		if r.Channel < 0 || r.Channel > 255 {
			return fmt.Errorf("PWM channel %d: want 0 to 255", r.Channel)
		}
		if r.State.Polarity == "" {
			r.State.Polarity = "normal"
		}
		if err := pwmState(r.State).Validate(); err != nil {
			return err
		}
	case *sdk.PowerRequest:
		switch r.Action {
		case board.PowerForceReboot:
			if r.Seconds != 0 || r.Profile != "" {
				return errors.New("ForceReboot takes no seconds or profile")
			}
		case board.PowerForcePowerDown:
			if r.Seconds < 1 || r.Seconds > board.MaxPowerDownSeconds || r.Profile != "" {
				return fmt.Errorf("ForcePowerDown takes seconds from 1 to %d and no profile", board.MaxPowerDownSeconds)
			}
		case board.PowerSetPowerProfile:
			if !slices.Contains(board.PowerProfiles, r.Profile) || r.Seconds != 0 {
				return fmt.Errorf("SetPowerProfile takes a profile from %v and no seconds", board.PowerProfiles)
			}
		default:
			return fmt.Errorf("power action %q: want ForceReboot, ForcePowerDown or SetPowerProfile", r.Action)
		}
	}
	return nil
}

func pwmState(s sdk.PWMState) board.PWMState {
	return board.PWMState{PeriodNs: s.PeriodNs, DutyNs: s.DutyNs, Polarity: s.Polarity, Enabled: s.Enabled}
}

// resolve turns a hardware-definition name into the value it stands for, of the given type.
func (s *server) resolve(typ, name string) (manifest.Peripheral, error) {
	if !strings.HasPrefix(name, "$") {
		return manifest.Peripheral{Name: strings.ToUpper(name)}, nil
	}
	r, err := s.h.hw.Resolve(name)
	if err != nil {
		return manifest.Peripheral{}, fmt.Errorf("%w: %v", board.ErrNoPeripheral, err)
	}
	if r.Type != typ || r.Value == nil {
		return manifest.Peripheral{}, fmt.Errorf("%w: %s is a %s, not a %s", errInvalid, name, r.Type, typ)
	}
	v := *r.Value
	v.Name = strings.ToUpper(v.Name)
	return v, nil
}

func granted(list []manifest.Peripheral, p manifest.Peripheral) bool {
	for _, g := range list {
		if g.Name == "" && p.Name == "" && g.Number == p.Number || g.Name != "" && strings.EqualFold(g.Name, p.Name) {
			return true
		}
	}
	return false
}

// authorize checks req against the manifest, resolving names in place.
func (s *server) authorize(req any) error {
	c := &s.caps
	deny := func(capability, what string) error { return &PermissionError{Capability: capability, What: what} }
	periph := func(typ string, name *string, list []manifest.Peripheral) error {
		p, err := s.resolve(typ, *name)
		if err != nil {
			return err
		}
		*name = p.Name
		if !granted(list, p) {
			return deny(typ, strconv.Quote(p.Name))
		}
		return nil
	}
	switch r := req.(type) {
	case *sdk.LogRequest:
		return nil // every application may log
	case *gpioCall:
		if r.Name != "" {
			p, err := s.resolve("Gpio", r.Name)
			if err != nil {
				return err
			}
			r.GPIO, r.Name = p.Number, ""
		}
		if !granted(c.Gpio, manifest.Peripheral{Number: r.GPIO}) {
			return deny("Gpio", strconv.Itoa(r.GPIO))
		}
	case *uartCall:
		return periph("Uart", &r.UART, c.Uart)
	case *sdk.I2CRequest:
		return periph("I2cMaster", &r.I2C, c.I2cMaster)
	case *sdk.SPIRequest:
		return periph("SpiMaster", &r.SPI, c.SpiMaster)
	case *sdk.ADCRequest:
		return periph("Adc", &r.ADC, c.Adc)
	case *sdk.PWMRequest:
		return periph("Pwm", &r.PWM, c.Pwm)
	case *storageCall:
		if c.MutableStorage == nil {
			return deny("MutableStorage", "")
		}
	case *deviceAuthCall:
		if c.DeviceAuthentication == "" {
			return deny("DeviceAuthentication", "")
		}
	case *sdk.PowerRequest:
		if !slices.Contains(c.PowerControls, r.Action) {
			return deny("PowerControls", strconv.Quote(r.Action))
		}
	case *sdk.AppSendRequest:
		if !slices.ContainsFunc(c.AllowedApplicationConnections, func(id string) bool { return strings.EqualFold(id, r.To) }) {
			return deny("AllowedApplicationConnections", r.To)
		}
	case *sdk.AppRecvRequest:
		if len(c.AllowedApplicationConnections) == 0 {
			return deny("AllowedApplicationConnections", "")
		}
	case *sdk.SysEventWaitRequest:
		if !c.SystemEventNotifications {
			return deny("SystemEventNotifications", "")
		}
	case *sdk.DeferRequest, *sdk.ResumeRequest:
		if !c.SoftwareUpdateDeferral {
			return deny("SoftwareUpdateDeferral", "")
		}
	default:
		return fmt.Errorf("authorize: unexpected request %T", req)
	}
	return nil
}

// act carries out an authorized request.
func (s *server) act(ctx context.Context, req any) (any, error) {
	b := s.h.cfg.Board
	ev := s.h.cfg.SysEvents
	switch r := req.(type) {
	case *sdk.AppSendRequest:
		return nil, s.h.mail.send(s.app.ComponentID, r.To, r.Data)
	case *sdk.AppRecvRequest:
		msgs, err := s.h.mail.recv(ctx, s.app.ComponentID, time.Duration(r.TimeoutMs)*time.Millisecond)
		if msgs == nil {
			msgs = []sdk.AppMessage{}
		}
		return sdk.AppRecvResponse{Messages: msgs}, err
	case *sdk.SysEventWaitRequest:
		out := sdk.SysEventWaitResponse{Events: []sdk.SysEvent{}}
		if ev == nil {
			return out, nil
		}
		for _, e := range ev.Events(ctx, r.After, time.Duration(r.TimeoutMs)*time.Millisecond) {
			out.Events = append(out.Events, wireEvent(e))
		}
		return out, nil
	case *sdk.DeferRequest:
		if ev == nil {
			return nil, fmt.Errorf("%w: %s update", ErrNoPendingUpdate, r.UpdateType)
		}
		e, err := ev.Defer(s.app.ComponentID, deferral.Type(r.UpdateType), r.Minutes)
		if err != nil {
			return nil, err
		}
		return wireEvent(e), nil
	case *sdk.ResumeRequest:
		if ev == nil {
			return nil, fmt.Errorf("%w: %s update", ErrNoPendingUpdate, r.UpdateType)
		}
		return nil, ev.Resume(s.app.ComponentID, deferral.Type(r.UpdateType))
	case *sdk.LogRequest:
		msg := strings.TrimRight(r.Message, "\n")
		s.logMu <- struct{}{}
		_, err := io.WriteString(s.app.Log, msg+"\n")
		<-s.logMu
		return nil, err
	case *gpioCall:
		dir, err := b.GPIO(r.GPIO)
		if err != nil {
			return nil, err
		}
		switch r.call {
		case sdk.CallGPIOOpen:
			if r.Direction == "output" {
				if dir != board.Output {
					return nil, fmt.Errorf("GPIO %d: %w", r.GPIO, board.ErrDirection)
				}
				if err := b.WriteGPIO(r.GPIO, r.Value); err != nil {
					return nil, err
				}
				return sdk.GPIOResponse{GPIO: r.GPIO, Value: r.Value}, nil
			}
			return sdk.GPIOResponse{GPIO: r.GPIO}, nil
		case sdk.CallGPIOSet:
			if err := b.WriteGPIO(r.GPIO, r.Value); err != nil {
				return nil, err
			}
			return sdk.GPIOResponse{GPIO: r.GPIO, Value: r.Value}, nil
		default:
			v, err := b.ReadGPIO(r.GPIO)
			if err != nil {
				return nil, err
			}
			return sdk.GPIOResponse{GPIO: r.GPIO, Value: v}, nil
		}
	case *uartCall:
		if r.call == sdk.CallUARTWrite {
			n, err := b.UARTWrite(r.UART, r.Data)
			return sdk.UARTResponse{Written: n}, err
		}
		p := make([]byte, r.Max)
		n, err := b.UARTRead(r.UART, p)
		if err != nil {
			return nil, err
		}
		return sdk.UARTResponse{Data: p[:n]}, nil
	case *sdk.I2CRequest:
		rd := make([]byte, r.ReadLen)
		if err := b.I2CTransfer(r.I2C, r.Address, r.Write, rd); err != nil {
			return nil, err
		}
		return sdk.I2CResponse{Data: rd}, nil
	case *sdk.SPIRequest:
		rd := make([]byte, r.ReadLen)
		if err := b.SPITransfer(r.SPI, r.ChipSelect, r.Write, rd); err != nil {
			return nil, err
		}
		return sdk.SPIResponse{Data: rd}, nil
	case *sdk.ADCRequest:
		v, err := b.ADCRead(r.ADC, r.Channel)
		if err != nil {
			return nil, err
		}
		return sdk.ADCSample{Value: v.Value, Bits: v.Bits, ReferenceMillivolts: v.ReferenceMillivolts}, nil
	case *sdk.PWMRequest:
		return nil, b.PWMApply(r.PWM, r.Channel, pwmState(r.State))
	case *storageCall:
		info := sdk.StorageInfo{Path: sandbox.StoragePath, QuotaKB: s.caps.MutableStorage.SizeKB, UsedKB: -1}
		if s.app.StorageUsed != nil {
			if used, err := s.app.StorageUsed(); err == nil {
				info.UsedKB = used
			}
		}
		return info, nil
	case *deviceAuthCall:
		if s.h.cfg.Certificates == nil {
			return nil, fmt.Errorf("%w: this agent issues no application certificates", ErrNotAvailable)
		}
		c, err := s.h.cfg.Certificates.AppCertificate(s.app.ComponentID)
		if err != nil {
			return nil, err
		}
		if err := checkTenant(c, s.caps.DeviceAuthentication); err != nil {
			return nil, err
		}
		return c, nil
	case *sdk.PowerRequest:
		return nil, b.Power(board.PowerRequest{Action: r.Action, By: s.app.ComponentID, Seconds: r.Seconds, Profile: r.Profile})
	}
	return nil, fmt.Errorf("act: unexpected request %T", req)
}

// classify maps an error to its code, status and the capability it names: the one boundary
// between errors and the wire.
func classify(err error) (code string, status int, capability string) {
	var pe *PermissionError
	switch {
	case errors.As(err, &pe):
		return sdk.CodePermission, http.StatusForbidden, pe.Capability
	case errors.Is(err, errNoCall), errors.Is(err, board.ErrNoPeripheral):
		return sdk.CodeNotFound, http.StatusNotFound, ""
	case errors.Is(err, errInvalid), errors.Is(err, board.ErrInvalid), errors.Is(err, board.ErrDirection):
		return sdk.CodeInvalid, http.StatusBadRequest, ""
	case errors.Is(err, ErrNotAvailable):
		return sdk.CodeNotAvailable, http.StatusServiceUnavailable, ""
	case errors.Is(err, deferral.ErrNoPendingUpdate), errors.Is(err, ErrNoPendingUpdate):
		return sdk.CodeNotFound, http.StatusNotFound, ""
	case errors.Is(err, deferral.ErrInvalid):
		return sdk.CodeInvalid, http.StatusBadRequest, ""
	case errors.Is(err, ErrBusy):
		return sdk.CodeBusy, http.StatusTooManyRequests, ""
	case errors.Is(err, board.ErrNoDevice):
		return sdk.CodeDevice, http.StatusConflict, ""
	}
	return sdk.CodeInternal, http.StatusInternalServerError, ""
}

func writeError(w http.ResponseWriter, call string, err error) {
	code, status, capability := classify(err)
	msg := err.Error()
	if code == sdk.CodeInternal {
		msg = "internal error in the agent" // the cause is logged, not shown
	}
	writeJSON(w, status, sdk.ErrorBody{Error: msg, Code: code, Capability: capability})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func updateType(t string) error {
	if t != sdk.UpdateTypeApp && t != sdk.UpdateTypeSystem {
		return fmt.Errorf("updateType %q: want %q or %q", t, sdk.UpdateTypeApp, sdk.UpdateTypeSystem)
	}
	return nil
}

func wireEvent(e deferral.Event) sdk.SysEvent {
	return sdk.SysEvent{Seq: e.Seq, Event: e.Event, UpdateType: string(e.Type), Status: e.Status,
		MaxDeferralMinutes: e.MaxDeferralMinutes, Until: e.Until}
}
