package applibs

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	sdk "github.com/rampart-iot/rampart/applibs"
	"github.com/rampart-iot/rampart/internal/attestclient"
	"github.com/rampart-iot/rampart/internal/board"
	"github.com/rampart-iot/rampart/internal/board/emulated"
	"github.com/rampart-iot/rampart/internal/deferral"
	"github.com/rampart-iot/rampart/manifest"
)

const cid = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func parse(t *testing.T, caps string) *manifest.Manifest {
	t.Helper()
	m, err := manifest.Parse([]byte(`{"SchemaVersion":1,"Name":"t","ComponentId":"` + cid + `","EntryPoint":"/bin/app","CmdArgs":[],"Capabilities":` + caps + `,"ApplicationType":"Default"}`))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// start serves an app with caps on a fresh emulated board and returns a client.
func start(t *testing.T, caps string, certs Certificates) (*sdk.Client, *emulated.Board, *syncBuf) {
	t.Helper()
	b := emulated.New(board.Options{Now: func() time.Time { return time.Unix(1000, 0) }, Rand: func() float64 { return 0.5 }})
	dir, err := os.MkdirTemp("", "applibs-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	h, err := NewHost(HostConfig{Dir: dir, Board: b, Certificates: certs})
	if err != nil {
		t.Fatal(err)
	}
	log := &syncBuf{}
	sock, stop, err := h.Open(App{ComponentID: cid, Manifest: parse(t, caps), Log: log, StorageUsed: func() (int64, error) { return 3, nil }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return sdk.DialPath(sock), b, log
}

func wantCode(t *testing.T, what string, err error, sentinel error, capability string) {
	t.Helper()
	var e *sdk.Error
	if !errors.Is(err, sentinel) || !errors.As(err, &e) {
		t.Fatalf("%s: %v, want %v", what, err, sentinel)
	}
	if e.Capability != capability {
		t.Fatalf("%s: capability %q, want %q", what, e.Capability, capability)
	}
	if capability != "" && !strings.Contains(err.Error(), capability) {
		t.Fatalf("%s: the message does not name %s: %v", what, capability, err)
	}
}

// TestNothingGranted: every call but log needs a capability, and names it.
func TestNothingGranted(t *testing.T) {
	c, b, log := start(t, `{}`, nil)
	if err := c.Log("hello\n"); err != nil {
		t.Fatal(err)
	}
	if log.String() != "hello\n" {
		t.Fatalf("log %q", log.String())
	}
	for _, tc := range []struct {
		name       string
		call       func() error
		capability string
	}{
		{"gpio set", func() error { return c.GPIO(8).Set(true) }, "Gpio"},
		{"gpio get", func() error { _, err := c.GPIO(12).Get(); return err }, "Gpio"},
		{"gpio by name", func() error { return c.GPIOByName("$LED_RED").OpenAsOutput(true) }, "Gpio"},
		{"uart write", func() error { _, err := c.UART("ISU0").Write([]byte("x")); return err }, "Uart"},
		{"uart read", func() error { _, err := c.UART("$UART_LOOPBACK").Read(1); return err }, "Uart"},
		{"i2c", func() error { _, err := c.I2C("ISU2").WriteThenRead(0x48, []byte{0}, 2); return err }, "I2cMaster"},
		{"spi", func() error { _, err := c.SPI("$EEPROM_SPI").WriteThenRead(0, []byte{0x05}, 1); return err }, "SpiMaster"},
		{"adc", func() error { _, err := c.ADC("ADC-CONTROLLER-0").Poll(0); return err }, "Adc"},
		{"pwm", func() error { return c.PWM("PWM-CONTROLLER-0").Apply(0, sdk.PWMState{PeriodNs: 10, DutyNs: 5}) }, "Pwm"},
		{"storage", func() error { _, err := c.Storage(); return err }, "MutableStorage"},
		{"deviceauth", func() error { _, err := c.DeviceAuth(); return err }, "DeviceAuthentication"},
		{"reboot", c.ForceReboot, "PowerControls"},
		{"profile", func() error { return c.SetPowerProfile("PowerSaver") }, "PowerControls"},
	} {
		wantCode(t, tc.name, tc.call(), sdk.ErrPermission, tc.capability)
	}
	st := b.State()
	if st.LEDs[0].On || st.Power.Reboots != 0 || st.PWMs[0].Set || st.UARTs[0].TxBytes != 0 {
		t.Fatalf("a refused call changed the board: %+v", st)
	}
}

// TestGranted: each granted call works, and a grant of one peripheral is not a grant of
// another of the same kind.
func TestGranted(t *testing.T) {
	c, b, _ := start(t, `{"Gpio":["$LED_RED","$BUTTON_A"],"Uart":["ISU0"],"I2cMaster":["$TEMP_SENSOR_I2C"],"Adc":["ADC-CONTROLLER-0"],"Pwm":["PWM-CONTROLLER-0"],"MutableStorage":{"SizeKB":64},"PowerControls":["ForceReboot","SetPowerProfile"]}`, nil)
	if err := c.GPIO(8).OpenAsOutput(false); err != nil {
		t.Fatal(err)
	}
	if err := c.GPIOByName("$LED_RED").Set(true); err != nil {
		t.Fatal(err)
	}
	if !b.State().LEDs[0].On {
		t.Fatal("LED_RED is off")
	}
	wantCode(t, "green LED", c.GPIO(9).Set(true), sdk.ErrPermission, "Gpio")
	wantCode(t, "button as output", c.GPIO(12).OpenAsOutput(true), sdk.ErrInvalid, "")
	if err := c.GPIO(12).OpenAsInput(); err != nil {
		t.Fatal(err)
	}
	_ = b.Press("BUTTON_A")
	if v, err := c.GPIO(12).Get(); err != nil || !v {
		t.Fatalf("button A after a press: %v %v", v, err)
	}
	if n, err := c.UART("ISU0").Write([]byte("ping")); err != nil || n != 4 {
		t.Fatal(n, err)
	}
	if d, err := c.UART("isu0").Read(100); err != nil || string(d) != "ping" {
		t.Fatalf("%q %v", d, err)
	}
	wantCode(t, "uart ISU1", func() error { _, err := c.UART("ISU1").Read(1); return err }(), sdk.ErrPermission, "Uart")
	d, err := c.I2C("ISU2").WriteThenRead(0x48, []byte{0}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if celsius := float64(int16(uint16(d[0])<<8|uint16(d[1]))>>4) / 16; celsius < 20 || celsius > 25 {
		t.Fatalf("%.2f °C", celsius)
	}
	wantCode(t, "i2c nack", func() error { _, err := c.I2C("ISU2").Read(0x10, 1); return err }(), sdk.ErrDevice, "")
	if s, err := c.ADC("$ADC_CONTROLLER").Poll(0); err != nil || s.Bits != 12 {
		t.Fatal(s, err)
	}
	wantCode(t, "adc channel 9", func() error { _, err := c.ADC("ADC-CONTROLLER-0").Poll(9); return err }(), sdk.ErrNotFound, "")
	if err := c.PWM("PWM-CONTROLLER-0").Apply(1, sdk.PWMState{PeriodNs: 1000, DutyNs: 250, Enabled: true}); err != nil {
		t.Fatal(err)
	}
	if p := b.State().PWMs[1]; !p.Set || p.State.DutyNs != 250 || p.State.Polarity != "normal" {
		t.Fatalf("pwm %+v", p)
	}
	if info, err := c.Storage(); err != nil || info.QuotaKB != 64 || info.UsedKB != 3 || info.Path != "/storage" {
		t.Fatal(info, err)
	}
	if err := c.ForceReboot(); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "power down", c.ForcePowerDown(10), sdk.ErrPermission, "PowerControls")
	if p := b.State().Power; p.Reboots != 1 || p.Last.By != cid {
		t.Fatalf("power %+v", p)
	}
}

func TestDeviceAuth(t *testing.T) {
	caps := `{"DeviceAuthentication":"6f8c1a2b-3d4e-4f50-8a6b-7c8d9e0f1a2b"}`
	c, _, _ := start(t, caps, nil)
	_, err := c.DeviceAuth()
	wantCode(t, "no certificates", err, sdk.ErrNotAvailable, "")

	dir := t.TempDir()
	c, _, _ = start(t, caps, CertDir(dir))
	_, err = c.DeviceAuth()
	wantCode(t, "not attested", err, sdk.ErrNotAvailable, "")
	certs := filepath.Join(dir, attestclient.CertsLink)
	if err := os.MkdirAll(certs, 0o700); err != nil {
		t.Fatal(err)
	}
	write := func(tenant string) string {
		t.Helper()
		crt := appCertPEM(t, "spiffe://"+tenant+"/device/"+strings.Repeat("ab", 32)+"/app/"+cid)
		for name, v := range map[string]string{"app-" + cid + ".crt": crt, "app-" + cid + ".key": "KEY", attestclient.ChainFile: "CHAIN"} {
			if err := os.WriteFile(filepath.Join(certs, name), []byte(v), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return crt
	}
	crt := write("6f8c1a2b-3d4e-4f50-8a6b-7c8d9e0f1a2b")
	got, err := c.DeviceAuth()
	if err != nil || got.Certificate != crt || got.PrivateKey != "KEY" || got.Chain != "CHAIN" {
		t.Fatal(got, err)
	}
	// A device of another tenant: the manifest's tenant is not the certificate's.
	write("0d9e8f7a-6b5c-4d3e-8f1a-2b3c4d5e6f70")
	_, err = c.DeviceAuth()
	wantCode(t, "another tenant", err, sdk.ErrPermission, "DeviceAuthentication")
	if err == nil || !strings.Contains(err.Error(), "0d9e8f7a-6b5c-4d3e-8f1a-2b3c4d5e6f70") || !strings.Contains(err.Error(), "6f8c1a2b-3d4e-4f50-8a6b-7c8d9e0f1a2b") {
		t.Fatalf("the error does not name both tenants: %v", err)
	}
}

// appCertPEM is a self-signed certificate naming uri, as an application certificate names its
// SPIFFE ID.
func appCertPEM(t *testing.T, uri string) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), URIs: []*url.URL{u}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// TestBounds: malformed and out-of-range requests are refused before anything happens.
func TestBounds(t *testing.T) {
	c, b, log := start(t, `{"Gpio":[8],"Uart":["ISU0"],"I2cMaster":["ISU2"],"Pwm":["PWM-CONTROLLER-0"],"PowerControls":["ForcePowerDown","SetPowerProfile"]}`, nil)
	for _, tc := range []struct {
		call string
		in   any
		want error
	}{
		{"nope", struct{}{}, sdk.ErrNotFound},
		{sdk.CallLog, sdk.LogRequest{Message: strings.Repeat("x", sdk.MaxLogMessage+1)}, sdk.ErrInvalid},
		{sdk.CallLog, map[string]any{"message": "x", "extra": 1}, sdk.ErrInvalid},
		{sdk.CallGPIOSet, map[string]any{"gpio": -1}, sdk.ErrInvalid},
		{sdk.CallGPIOSet, map[string]any{"gpio": 8, "name": "$LED_RED"}, sdk.ErrInvalid},
		{sdk.CallGPIOOpen, map[string]any{"gpio": 8, "direction": "sideways"}, sdk.ErrInvalid},
		{sdk.CallGPIOSet, map[string]any{"name": "$NO_SUCH"}, sdk.ErrNotFound},
		{sdk.CallGPIOSet, map[string]any{"name": "$TEMP_SENSOR_I2C"}, sdk.ErrInvalid},
		{sdk.CallUARTWrite, sdk.UARTRequest{UART: "ISU0", Data: make([]byte, sdk.MaxUART+1)}, sdk.ErrInvalid},
		{sdk.CallUARTRead, sdk.UARTRequest{UART: "ISU0", Max: sdk.MaxUART + 1}, sdk.ErrInvalid},
		{sdk.CallUARTRead, sdk.UARTRequest{UART: "ISU0"}, sdk.ErrInvalid},
		{sdk.CallUARTRead, sdk.UARTRequest{UART: strings.Repeat("I", sdk.MaxName+1), Max: 1}, sdk.ErrInvalid},
		{sdk.CallI2C, sdk.I2CRequest{I2C: "ISU2", Address: 0x80, ReadLen: 1}, sdk.ErrInvalid},
		{sdk.CallI2C, sdk.I2CRequest{I2C: "ISU2", Address: 0x48, ReadLen: sdk.MaxI2C + 1}, sdk.ErrInvalid},
		{sdk.CallI2C, sdk.I2CRequest{I2C: "ISU2", Address: 0x48}, sdk.ErrInvalid},
		{sdk.CallSPI, sdk.SPIRequest{SPI: "ISU1", ChipSelect: 2, ReadLen: 1}, sdk.ErrInvalid},
		{sdk.CallSPI, sdk.SPIRequest{SPI: "ISU1"}, sdk.ErrInvalid},
		{sdk.CallSPI, sdk.SPIRequest{SPI: "ISU1", ReadLen: sdk.MaxSPI + 1}, sdk.ErrInvalid},
		{sdk.CallSPI, map[string]any{"spi": "ISU1", "readLen": 1, "speed": 9}, sdk.ErrInvalid},
		{sdk.CallPWM, sdk.PWMRequest{PWM: "PWM-CONTROLLER-0", State: sdk.PWMState{PeriodNs: 10, DutyNs: 11}}, sdk.ErrInvalid},
		{sdk.CallPWM, sdk.PWMRequest{PWM: "PWM-CONTROLLER-0", Channel: 4, State: sdk.PWMState{PeriodNs: 10}}, sdk.ErrNotFound},
		{sdk.CallPower, sdk.PowerRequest{Action: "ForcePowerDown"}, sdk.ErrInvalid},
		{sdk.CallPower, sdk.PowerRequest{Action: "SetPowerProfile", Profile: "Turbo"}, sdk.ErrInvalid},
		{sdk.CallPower, sdk.PowerRequest{Action: "SelfDestruct"}, sdk.ErrInvalid},
	} {
		err := c.Call(t.Context(), tc.call, tc.in, nil)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s %+v: %v, want %v", tc.call, tc.in, err, tc.want)
		}
	}
	// A body past MaxRequest.
	err := c.Call(t.Context(), sdk.CallLog, sdk.LogRequest{Message: strings.Repeat("y", sdk.MaxRequest)}, nil)
	if !errors.Is(err, sdk.ErrInvalid) {
		t.Errorf("huge body: %v", err)
	}
	if st := b.State(); st.LEDs[0].On || st.PWMs[0].Set || st.Power.PowerDowns != 0 || log.String() != "" {
		t.Fatalf("a refused request changed something: %+v %q", st, log.String())
	}
}

// TestOtherUIDRefused: a connection from a uid other than the app's is closed.
func TestOtherUIDRefused(t *testing.T) {
	b := emulated.New(board.Options{})
	dir, _ := os.MkdirTemp("", "applibs-")
	defer os.RemoveAll(dir)
	h, err := NewHost(HostConfig{Dir: dir, Board: b})
	if err != nil {
		t.Fatal(err)
	}
	sock, stop, err := h.Open(App{ComponentID: cid, Manifest: parse(t, `{}`), UID: uint32(os.Getuid()) + 1})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if err := sdk.DialPath(sock).Log("x"); err == nil {
		t.Fatal("a connection from another uid was served")
	}
	stop()
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Fatalf("the socket outlives its server: %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []struct{ call, body string }{
		{sdk.CallLog, `{"message":"hi"}`},
		{sdk.CallGPIOOpen, `{"gpio":8,"direction":"output","value":true}`},
		{sdk.CallGPIOSet, `{"name":"$LED_RED","value":true}`},
		{sdk.CallUARTWrite, `{"uart":"ISU0","data":"aGk="}`},
		{sdk.CallUARTRead, `{"uart":"ISU0","max":10}`},
		{sdk.CallI2C, `{"i2c":"ISU2","address":72,"write":"AA==","readLen":2}`},
		{sdk.CallSPI, `{"spi":"ISU1","chipSelect":0,"write":"AxA=","readLen":4}`},
		{sdk.CallADC, `{"adc":"ADC-CONTROLLER-0","channel":0}`},
		{sdk.CallPWM, `{"pwm":"PWM-CONTROLLER-0","channel":0,"state":{"periodNs":10,"dutyNs":5,"enabled":true}}`},
		{sdk.CallStorage, `{}`},
		{sdk.CallPower, `{"action":"ForcePowerDown","seconds":5}`},
		{"x", `[]`},
	} {
		f.Add(s.call, []byte(s.body))
	}
	b := emulated.New(board.Options{Now: func() time.Time { return time.Unix(0, 0) }, Rand: func() float64 { return 0 }})
	h, err := NewHost(HostConfig{Dir: "/nonexistent", Board: b})
	if err != nil {
		f.Fatal(err)
	}
	m, err := manifest.Parse([]byte(`{"SchemaVersion":1,"Name":"t","ComponentId":"` + cid + `","EntryPoint":"/bin/app","CmdArgs":[],"Capabilities":{"Gpio":[8,12],"Uart":["ISU0"],"I2cMaster":["ISU2"],"SpiMaster":["ISU1"],"Adc":["ADC-CONTROLLER-0"],"Pwm":["PWM-CONTROLLER-0"],"MutableStorage":{"SizeKB":8},"PowerControls":["ForcePowerDown","SetPowerProfile","ForceReboot"]},"ApplicationType":"Default"}`))
	if err != nil {
		f.Fatal(err)
	}
	s, err := newServer(h, App{ComponentID: cid, Manifest: m})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, call string, body []byte) {
		req, err := decode(call, body)
		if err != nil {
			if code, _, _ := classify(err); code != sdk.CodeNotFound && code != sdk.CodeInvalid {
				t.Fatalf("decode error classified %s: %v", code, err)
			}
			return
		}
		// Whatever decodes is within bounds, and carrying it out never fails internally.
		_, err = s.do(context.Background(), call, body)
		if code, _, _ := classify(err); err != nil && code == sdk.CodeInternal {
			t.Fatalf("%s %q: internal error %v", call, body, err)
		}
		_ = req
	})
}

// System events and deferral: an application with SystemEventNotifications sees the update
// announced, with SoftwareUpdateDeferral it defers and resumes it; one without either is
// refused naming the capability, and bad requests are clear errors.
func TestSysEventsAndDeferral(t *testing.T) {
	coord := deferral.New(deferral.Config{Grace: 10 * time.Second})
	dir, err := os.MkdirTemp("", "applibs-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	b := emulated.New(board.Options{})
	h, err := NewHost(HostConfig{Dir: dir, Board: b, SysEvents: coord})
	if err != nil {
		t.Fatal(err)
	}
	sock, stop, err := h.Open(App{ComponentID: cid, Manifest: parse(t, `{"SystemEventNotifications":true,"SoftwareUpdateDeferral":true}`)})
	if err != nil {
		t.Fatal(err)
	}
	app := sdk.DialPath(sock)
	const other = "3f2504e0-4f89-41d3-9a0c-0305e82c3302"
	m := parse(t, `{}`)
	m.ComponentId = other
	sock2, stop2, err := h.Open(App{ComponentID: other, Manifest: m})
	if err != nil {
		t.Fatal(err)
	}
	defer stop2()
	plain := sdk.DialPath(sock2)

	// Nothing pending: nothing to wait for, nothing to defer.
	if ev, err := app.WaitSysEvents(t.Context(), 0, 0); err != nil || len(ev) != 0 {
		t.Fatalf("idle wait: %v %v", ev, err)
	}
	if _, err := app.DeferUpdate(sdk.UpdateTypeApp, 5); !errors.Is(err, sdk.ErrNotFound) {
		t.Fatalf("deferring nothing: %v", err)
	}
	// The loop announces an OS update; the app defers it by 30 minutes.
	type hold struct {
		until time.Time
		held  bool
	}
	res := make(chan hold, 1)
	first := time.Now()
	go func() {
		u, held := coord.Hold(context.Background(), deferral.System, "os-2", first)
		res <- hold{u, held}
	}()
	ev, err := app.WaitSysEvents(t.Context(), 0, 5*time.Second)
	if err != nil || len(ev) != 1 || ev[0].Status != sdk.SysEventPending || ev[0].UpdateType != sdk.UpdateTypeSystem ||
		ev[0].Event != "UpdateReadyForInstall" || ev[0].MaxDeferralMinutes < 1439 {
		t.Fatalf("announcement: %+v %v", ev, err)
	}
	d, err := app.DeferUpdate(sdk.UpdateTypeSystem, 30)
	if err != nil || d.Status != sdk.SysEventDeferred || d.Until.Sub(first) < 29*time.Minute {
		t.Fatalf("defer: %+v %v", d, err)
	}
	if r := <-res; !r.held || !r.until.Equal(d.Until) {
		t.Fatalf("the loop's hold: %+v, want held until %v", r, d.Until)
	}
	if ev, err := app.WaitSysEvents(t.Context(), ev[0].Seq, 0); err != nil || len(ev) != 1 || ev[0].Status != sdk.SysEventDeferred {
		t.Fatalf("deferred event: %+v %v", ev, err)
	}
	// Another app may neither listen nor defer.
	_, err = plain.WaitSysEvents(t.Context(), 0, 0)
	wantCode(t, "wait without SystemEventNotifications", err, sdk.ErrPermission, "SystemEventNotifications")
	_, err = plain.DeferUpdate(sdk.UpdateTypeSystem, 5)
	wantCode(t, "defer without SoftwareUpdateDeferral", err, sdk.ErrPermission, "SoftwareUpdateDeferral")
	// Bad requests.
	for _, c := range []struct {
		typ  string
		mins int
	}{{"Firmware", 5}, {"System", 0}, {"System", sdk.MaxDeferralMinutes + 1}} {
		if _, err := app.DeferUpdate(c.typ, c.mins); !errors.Is(err, sdk.ErrInvalid) {
			t.Errorf("DeferUpdate(%q, %d): %v, want invalid", c.typ, c.mins, err)
		}
	}
	if _, err := app.WaitSysEvents(t.Context(), 0, time.Hour); err != nil { // clamped by the SDK
		t.Fatal(err)
	}
	var out sdk.SysEventWaitResponse
	if err := app.Call(t.Context(), sdk.CallSysEventWait, sdk.SysEventWaitRequest{TimeoutMs: 60000}, &out); !errors.Is(err, sdk.ErrInvalid) {
		t.Fatalf("a 60 s wait: %v", err)
	}
	// Resume: the update goes ahead.
	if err := app.ResumeUpdate(sdk.UpdateTypeSystem); err != nil {
		t.Fatal(err)
	}
	if _, held := coord.Hold(t.Context(), deferral.System, "os-2", first); held {
		t.Fatal("held after the resume")
	}
	stop()
}

// TestSPIEEPROM: an app granted the SPI master writes the emulated EEPROM and reads it back,
// through a hardware-definition name; the write-enable latch guards writes, as on the chip.
func TestSPIEEPROM(t *testing.T) {
	c, _, _ := start(t, `{"SpiMaster":["$EEPROM_SPI"]}`, nil)
	spi := c.SPI("$EEPROM_SPI")
	xfer := func(w []byte, n int) []byte {
		t.Helper()
		d, err := spi.WriteThenRead(0, w, n)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if d := xfer([]byte{0x03, 0x10}, 5); !bytes.Equal(d, bytes.Repeat([]byte{0xFF}, 5)) {
		t.Fatalf("a fresh EEPROM reads %x, want erased", d)
	}
	xfer(append([]byte{0x02, 0x10}, "hello"...), 0) // no WREN: ignored
	if d := xfer([]byte{0x03, 0x10}, 5); d[0] != 0xFF {
		t.Fatalf("a write without WREN changed the EEPROM: %x", d)
	}
	xfer([]byte{0x06}, 0)
	if st := xfer([]byte{0x05}, 1); st[0] != 0x02 {
		t.Fatalf("status after WREN: %#x", st[0])
	}
	xfer(append([]byte{0x02, 0x10}, "hello"...), 0)
	if d := xfer([]byte{0x03, 0x10}, 5); string(d) != "hello" {
		t.Fatalf("read back %q", d)
	}
	if st := xfer([]byte{0x05}, 1); st[0] != 0 {
		t.Fatalf("the latch stays set after a write: %#x", st[0])
	}
	// A write wraps within its 16-byte page.
	xfer([]byte{0x06}, 0)
	xfer(append([]byte{0x02, 0x1E}, "abcd"...), 0)
	if d := xfer([]byte{0x03, 0x10}, 2); string(d) != "cd" {
		t.Fatalf("page wrap: %q", d)
	}
	// Chip select B has no device.
	_, err := spi.WriteThenRead(1, []byte{0x05}, 1)
	wantCode(t, "chip select B", err, sdk.ErrDevice, "")
}

// TestAppConnections: applications that list each other in AllowedApplicationConnections
// exchange messages through the agent; one that is not listed by the receiver, or does not
// list it, is refused naming the capability; bounds and a full mailbox are clear errors.
func TestAppConnections(t *testing.T) {
	const (
		a = "3f2504e0-4f89-41d3-9a0c-0305e82c3a01"
		b = "3f2504e0-4f89-41d3-9a0c-0305e82c3b02"
		c = "3f2504e0-4f89-41d3-9a0c-0305e82c3c03"
		d = "3f2504e0-4f89-41d3-9a0c-0305e82c3d04" // listed, never running
	)
	dir, err := os.MkdirTemp("", "applibs-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	h, err := NewHost(HostConfig{Dir: dir, Board: emulated.New(board.Options{})})
	if err != nil {
		t.Fatal(err)
	}
	open := func(id, caps string) (*sdk.Client, func()) {
		t.Helper()
		m, err := manifest.Parse([]byte(`{"SchemaVersion":1,"Name":"t","ComponentId":"` + id + `","EntryPoint":"/bin/app","CmdArgs":[],"Capabilities":` + caps + `,"ApplicationType":"Default"}`))
		if err != nil {
			t.Fatal(err)
		}
		sock, stop, err := h.Open(App{ComponentID: id, Manifest: m})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(stop)
		return sdk.DialPath(sock), stop
	}
	appA, _ := open(a, `{"AllowedApplicationConnections":["`+b+`","`+d+`"]}`)
	appB, stopB := open(b, `{"AllowedApplicationConnections":["`+a+`"]}`)
	appC, _ := open(c, `{"AllowedApplicationConnections":["`+a+`"]}`)
	plain, _ := open("3f2504e0-4f89-41d3-9a0c-0305e82c3e05", `{}`)

	got := make(chan []sdk.AppMessage, 1)
	go func() {
		m, err := appB.ReceiveFromApps(context.Background(), 5*time.Second)
		if err != nil {
			t.Error(err)
		}
		got <- m
	}()
	if err := appA.SendToApp(b, []byte("ping")); err != nil {
		t.Fatal(err)
	}
	if m := <-got; len(m) != 1 || m[0].From != a || string(m[0].Data) != "ping" {
		t.Fatalf("B received %+v", m)
	}
	// C lists A, but A does not list C: refused. A does not list C either.
	wantCode(t, "to an app that does not list the sender", appC.SendToApp(a, []byte("x")), sdk.ErrPermission, "AllowedApplicationConnections")
	wantCode(t, "to an app the sender does not list", appA.SendToApp(c, []byte("x")), sdk.ErrPermission, "AllowedApplicationConnections")
	wantCode(t, "without the capability", plain.SendToApp(a, []byte("x")), sdk.ErrPermission, "AllowedApplicationConnections")
	_, err = plain.ReceiveFromApps(t.Context(), 0)
	wantCode(t, "receive without the capability", err, sdk.ErrPermission, "AllowedApplicationConnections")
	if m, err := appA.ReceiveFromApps(t.Context(), 0); err != nil || len(m) != 0 {
		t.Fatalf("A's mailbox after the refused sends: %+v %v", m, err)
	}
	// Not running, too big, not a component ID.
	wantCode(t, "to an app that is not running", appA.SendToApp(d, []byte("x")), sdk.ErrNotAvailable, "")
	wantCode(t, "too big", appA.SendToApp(b, make([]byte, sdk.MaxAppMessage+1)), sdk.ErrInvalid, "")
	wantCode(t, "bad id", appA.SendToApp("not-a-uuid", nil), sdk.ErrInvalid, "")
	// A full mailbox: the sender is told to retry; the receiver gets them in order.
	for i := range MailboxSize {
		if err := appA.SendToApp(b, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	wantCode(t, "a full mailbox", appA.SendToApp(b, []byte("x")), sdk.ErrBusy, "")
	m, err := appB.ReceiveFromApps(t.Context(), 0)
	if err != nil || len(m) != MailboxSize || m[0].Data[0] != 0 || m[MailboxSize-1].Data[0] != MailboxSize-1 {
		t.Fatalf("drained %d messages, %v", len(m), err)
	}
	// A stopped app's mailbox goes.
	stopB()
	wantCode(t, "to a stopped app", appA.SendToApp(b, []byte("x")), sdk.ErrNotAvailable, "")
}
