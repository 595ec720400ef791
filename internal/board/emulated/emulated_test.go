package emulated

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/internal/board"
	"github.com/rampart-iot/rampart/manifest"
)

func fixed(at time.Time, r float64) board.Options {
	return board.Options{Now: func() time.Time { return at }, Rand: func() float64 { return r }}
}

func readCelsius(t *testing.T, b *Board) float64 {
	t.Helper()
	r := make([]byte, 2)
	if err := b.I2CTransfer(I2CISU, SensorAddress, []byte{0}, r); err != nil {
		t.Fatal(err)
	}
	return float64(int16(uint16(r[0])<<8|uint16(r[1]))>>4) / 16
}

func TestTemperatureIsPlausibleAndSlow(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := start
	rnd := 0.0
	b := New(board.Options{Now: func() time.Time { return now }, Rand: func() float64 { return rnd }})
	prev := readCelsius(t, b)
	for i := range 600 {
		now = start.Add(time.Duration(i) * time.Second)
		rnd = float64(i%7) / 7
		c := readCelsius(t, b)
		if c < 20 || c > 25 {
			t.Fatalf("at %v: %.4f °C, want 20 to 25", now, c)
		}
		if d := c - prev; d > 0.5 || d < -0.5 {
			t.Fatalf("at %v: jumped %.4f °C in a second", now, d)
		}
		prev = c
	}
	// Deterministic: the same clock and randomness give the same reading.
	a, bb := New(fixed(start, 0.3)), New(fixed(start, 0.3))
	if readCelsius(t, a) != readCelsius(t, bb) {
		t.Fatal("readings differ for the same clock and randomness")
	}
}

func TestI2C(t *testing.T) {
	b := New(fixed(time.Unix(0, 0), 0.5))
	r := make([]byte, 4)
	if err := b.I2CTransfer(I2CISU, SensorAddress, []byte{1}, r); err != nil {
		t.Fatal(err)
	}
	if r[0] != 0x60 || r[1] != 0xA0 || r[2] != 0xFF {
		t.Fatalf("config register %x", r)
	}
	for _, c := range []struct {
		isu  string
		addr uint16
		want error
	}{{"ISU1", SensorAddress, board.ErrNoPeripheral}, {I2CISU, 0x49, board.ErrNoDevice}, {I2CISU, 0x80, board.ErrInvalid}} {
		if err := b.I2CTransfer(c.isu, c.addr, nil, r); !errors.Is(err, c.want) {
			t.Errorf("%s %#x: %v, want %v", c.isu, c.addr, err, c.want)
		}
	}
}

func TestGPIOAndButtons(t *testing.T) {
	b := New(fixed(time.Unix(0, 0), 0))
	if err := b.WriteGPIO(8, true); err != nil {
		t.Fatal(err)
	}
	if st := b.State(); !st.LEDs[0].On || st.LEDs[0].Name != "LED_RED" || st.LEDs[1].On {
		t.Fatalf("LEDs %+v", st.LEDs)
	}
	if err := b.WriteGPIO(12, true); !errors.Is(err, board.ErrDirection) {
		t.Fatalf("writing a button: %v", err)
	}
	if _, err := b.ReadGPIO(7); !errors.Is(err, board.ErrNoPeripheral) {
		t.Fatalf("reading GPIO 7: %v", err)
	}
	if v, _ := b.ReadGPIO(12); v {
		t.Fatal("button A reads pressed before any press")
	}
	if err := b.Press("BUTTON_A"); err != nil {
		t.Fatal(err)
	}
	if v, _ := b.ReadGPIO(12); !v {
		t.Fatal("the read after a press does not see it")
	}
	if v, _ := b.ReadGPIO(12); v {
		t.Fatal("a press is seen twice")
	}
	if err := b.Press("BUTTON_Z"); !errors.Is(err, board.ErrNoPeripheral) {
		t.Fatalf("pressing an unknown button: %v", err)
	}
	_ = b.Hold("BUTTON_B", true)
	for range 2 {
		if v, _ := b.ReadGPIO(13); !v {
			t.Fatal("a held button reads released")
		}
	}
	if st := b.State(); st.Buttons[0].Presses != 1 || !st.Buttons[1].Pressed {
		t.Fatalf("buttons %+v", st.Buttons)
	}
}

func TestUARTLoopbackIsBounded(t *testing.T) {
	b := New(fixed(time.Unix(0, 0), 0))
	if _, err := b.UARTWrite("ISU1", []byte("x")); !errors.Is(err, board.ErrNoPeripheral) {
		t.Fatal(err)
	}
	big := make([]byte, UARTBuffer+100)
	if n, err := b.UARTWrite(UARTISU, big); err != nil || n != len(big) {
		t.Fatal(n, err)
	}
	if st := b.State(); st.UARTs[0].Buffered != UARTBuffer {
		t.Fatalf("buffered %d", st.UARTs[0].Buffered)
	}
	p := make([]byte, 10000)
	if n, _ := b.UARTRead(UARTISU, p); n != UARTBuffer {
		t.Fatalf("read %d", n)
	}
	_, _ = b.UARTWrite(UARTISU, []byte("hello"))
	if n, _ := b.UARTRead(UARTISU, p[:3]); string(p[:n]) != "hel" {
		t.Fatalf("read %q", p[:n])
	}
	if n, _ := b.UARTRead(UARTISU, p); string(p[:n]) != "lo" {
		t.Fatalf("read %q", p[:n])
	}
}

func TestADCPWMPower(t *testing.T) {
	b := New(fixed(time.Unix(0, 0), 0.5))
	s, err := b.ADCRead(ADCController, LightChannel)
	if err != nil || s.Bits != 12 || s.Value == 0 || s.Value > 4095 {
		t.Fatalf("%+v %v", s, err)
	}
	if _, err := b.ADCRead(ADCController, 8); !errors.Is(err, board.ErrNoPeripheral) {
		t.Fatal(err)
	}
	good := board.PWMState{PeriodNs: 1000, DutyNs: 500, Polarity: "normal", Enabled: true}
	if err := b.PWMApply(PWMController, 3, good); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []board.PWMState{{PeriodNs: 0, Polarity: "normal"}, {PeriodNs: 10, DutyNs: 11, Polarity: "normal"}, {PeriodNs: 10, Polarity: "up"}, {PeriodNs: board.MaxPWMPeriodNs + 1, Polarity: "normal"}} {
		if err := b.PWMApply(PWMController, 0, bad); !errors.Is(err, board.ErrInvalid) {
			t.Errorf("%+v: %v", bad, err)
		}
	}
	if st := b.State(); !st.PWMs[3].Set || st.PWMs[3].State != good || st.PWMs[0].Set {
		t.Fatalf("pwms %+v", st.PWMs)
	}
	for _, req := range []board.PowerRequest{{Action: "ForcePowerDown", Seconds: 0}, {Action: "SetPowerProfile", Profile: "Turbo"}, {Action: "Explode"}} {
		if err := b.Power(req); !errors.Is(err, board.ErrInvalid) {
			t.Errorf("%+v: %v", req, err)
		}
	}
	if err := b.Power(board.PowerRequest{Action: "ForceReboot", By: "app"}); err != nil {
		t.Fatal(err)
	}
	if err := b.Power(board.PowerRequest{Action: "SetPowerProfile", Profile: "PowerSaver"}); err != nil {
		t.Fatal(err)
	}
	if p := b.State().Power; p.Reboots != 1 || p.Profile != "PowerSaver" || p.Last.Action != "SetPowerProfile" {
		t.Fatalf("power %+v", p)
	}
}

func TestRegistryAndHardware(t *testing.T) {
	d, err := board.Open(Name, board.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h, err := manifest.LoadHardwareDefinitions(d.Hardware())
	if err != nil {
		t.Fatal(err)
	}
	// Every GPIO, ISU and controller the definition names is one the board has.
	for _, name := range []string{"LED_RED", "LED_GREEN", "LED_BLUE", "BUTTON_A", "BUTTON_B"} {
		r, err := h.Resolve(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.GPIO(r.Value.Number); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, want := range map[string]string{"UART_LOOPBACK": UARTISU, "TEMP_SENSOR_I2C": I2CISU, "ADC_CONTROLLER": ADCController, "PWM_CONTROLLER": PWMController} {
		if r, err := h.Resolve(name); err != nil || r.Value.Name != want {
			t.Errorf("%s: %v %v", name, r, err)
		}
	}
}

func TestHandler(t *testing.T) {
	b := New(fixed(time.Unix(0, 0), 0))
	srv := httptest.NewServer(board.Handler(b))
	defer srv.Close()
	c := &board.Client{HTTP: srv.Client(), Base: srv.URL}
	ctx := context.Background()
	if err := c.Press(ctx, "BUTTON_B"); err != nil {
		t.Fatal(err)
	}
	if err := c.Press(ctx, "NOPE"); err == nil || !strings.Contains(err.Error(), "no such peripheral") {
		t.Fatalf("pressing an unknown button: %v", err)
	}
	st, err := c.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Board != Name || st.Buttons[1].Presses != 1 || !st.Buttons[1].Pending {
		t.Fatalf("state %+v", st.Buttons)
	}
	resp, err := srv.Client().Post(srv.URL+"/v1/board", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST /v1/board: %d", resp.StatusCode)
	}
}

// TestOpenRefusesADirectory: the emulated board's peripherals are built in, so a description
// directory (emulated:DIR) is refused rather than ignored.
func TestOpenRefusesADirectory(t *testing.T) {
	if _, err := board.Open("emulated", board.Options{}); err != nil {
		t.Fatal(err)
	}
	_, err := board.Open("emulated:/etc/rampart/board", board.Options{})
	if err == nil || !strings.Contains(err.Error(), "takes no description directory (/etc/rampart/board)") {
		t.Fatalf("emulated:DIR = %v", err)
	}
}
