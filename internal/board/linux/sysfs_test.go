package linux

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/internal/board"
)

func errorContains(err error, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			return false
		}
	}
	return true
}

// files writes name -> content under dir.
func files(t *testing.T, dir string, kv map[string]string) {
	t.Helper()
	for name, content := range kv {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func attr(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

const adcPWMDefs = `{"Name":"ADC","Type":"Adc","AppManifestValue":"ADC-CONTROLLER-0"},{"Name":"ADC2","Type":"Adc","AppManifestValue":"ADC-CONTROLLER-1"},{"Name":"PWM","Type":"Pwm","AppManifestValue":"PWM-CONTROLLER-0"}`

// sysfsBoard lays out an IIO device, a second one without a scale, and a PWM chip, as sysfs
// does, and opens a board on them.
func sysfsBoard(t *testing.T) (*Board, string, string) {
	t.Helper()
	sys := t.TempDir()
	iio, iio2, chip := filepath.Join(sys, "iio:device0"), filepath.Join(sys, "iio:device1"), filepath.Join(sys, "pwmchip0")
	files(t, iio, map[string]string{
		"in_voltage0_raw": "1234\n", "in_voltage_scale": "0.805664062\n",
		"in_voltage1_raw": "4095\n", "in_voltage1_scale": "0.5\n",
		"in_voltage2_raw": "4096\n", "in_voltage3_raw": "-1\n",
	})
	files(t, iio2, map[string]string{"in_voltage0_raw": "200\n"})
	files(t, chip, map[string]string{"npwm": "2\n", "export": "", "unexport": "",
		"pwm0/period": "0\n", "pwm0/duty_cycle": "0\n", "pwm0/polarity": "normal\n", "pwm0/enable": "0\n"})
	doc := minimal + `,"Adc":[{"Controller":"ADC-CONTROLLER-0","Device":"` + iio + `","Channels":8,"Bits":12},` +
		`{"Controller":"ADC-CONTROLLER-1","Device":"` + iio2 + `","Channels":1,"Bits":10,"ReferenceMillivolts":1800}],` +
		`"Pwm":[{"Controller":"PWM-CONTROLLER-0","Chip":"` + chip + `","Channels":2}]}`
	b, err := Open(board.Options{Dir: writeBoard(t, doc, definitions(adcPWMDefs))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b, iio, chip
}

func TestADC(t *testing.T) {
	b, iio, _ := sysfsBoard(t)
	for _, tc := range []struct {
		controller string
		ch         int
		want       board.ADCSample
	}{
		{"ADC-CONTROLLER-0", 0, board.ADCSample{Value: 1234, Bits: 12, ReferenceMillivolts: 3299}}, // in_voltage_scale
		{"ADC-CONTROLLER-0", 1, board.ADCSample{Value: 4095, Bits: 12, ReferenceMillivolts: 2048}}, // in_voltage1_scale wins
		{"ADC-CONTROLLER-1", 0, board.ADCSample{Value: 200, Bits: 10, ReferenceMillivolts: 1800}},  // no scale: the description's
	} {
		got, err := b.ADCRead(tc.controller, tc.ch)
		if err != nil || got != tc.want {
			t.Errorf("%s channel %d: %+v, %v; want %+v", tc.controller, tc.ch, got, err, tc.want)
		}
	}
	for ch, want := range map[int]string{2: `read "4096": want 0 to 4095`, 3: `read "-1"`, 4: "in_voltage4_raw"} {
		if _, err := b.ADCRead("ADC-CONTROLLER-0", ch); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("channel %d: %v, want %q", ch, err, want)
		}
	}
	for _, c := range []struct {
		controller string
		ch         int
	}{{"ADC-CONTROLLER-0", 8}, {"ADC-CONTROLLER-0", -1}, {"ADC-CONTROLLER-2", 0}} {
		if _, err := b.ADCRead(c.controller, c.ch); !errors.Is(err, board.ErrNoPeripheral) {
			t.Errorf("%s channel %d: %v", c.controller, c.ch, err)
		}
	}
	files(t, iio, map[string]string{"in_voltage_scale": "lots\n"})
	if _, err := b.ADCRead("ADC-CONTROLLER-0", 0); err == nil || !strings.Contains(err.Error(), `scale "lots"`) {
		t.Errorf("a bad scale: %v", err)
	}
	files(t, iio, map[string]string{"in_voltage0_raw": strings.Repeat("1", 100)})
	if _, err := b.ADCRead("ADC-CONTROLLER-0", 0); err == nil || !strings.Contains(err.Error(), "more than 64 bytes") {
		t.Errorf("an oversized attribute: %v", err)
	}
}

func TestPWM(t *testing.T) {
	b, _, chip := sysfsBoard(t)
	pwm0 := func(name string) string { return attr(t, filepath.Join(chip, "pwm0", name)) }
	if err := b.PWMApply("PWM-CONTROLLER-0", 0, board.PWMState{PeriodNs: 1_000_000, DutyNs: 250_000, Polarity: "normal", Enabled: true}); err != nil {
		t.Fatal(err)
	}
	if pwm0("period") != "1000000" || pwm0("duty_cycle") != "250000" || pwm0("enable") != "1" || pwm0("polarity") != "normal\n" {
		t.Fatalf("pwm0: period %q duty %q enable %q polarity %q", pwm0("period"), pwm0("duty_cycle"), pwm0("enable"), pwm0("polarity"))
	}
	// A shorter period than the duty cycle now, and the other polarity.
	if err := b.PWMApply("PWM-CONTROLLER-0", 0, board.PWMState{PeriodNs: 1000, DutyNs: 100, Polarity: "inversed", Enabled: false}); err != nil {
		t.Fatal(err)
	}
	if pwm0("period") != "1000" || pwm0("duty_cycle") != "100" || pwm0("enable") != "0" || pwm0("polarity") != "inversed" {
		t.Fatalf("pwm0: period %q duty %q enable %q polarity %q", pwm0("period"), pwm0("duty_cycle"), pwm0("enable"), pwm0("polarity"))
	}

	// Channel 1 is not exported: the board writes export and waits for the directory, which
	// the kernel (here, the test) makes.
	p := b.pwms["PWM-CONTROLLER-0"]
	p.exportWait = 100 * time.Millisecond
	if err := b.PWMApply("PWM-CONTROLLER-0", 1, board.PWMState{PeriodNs: 10, DutyNs: 5, Polarity: "normal", Enabled: true}); err == nil || !strings.Contains(err.Error(), "did not appear") {
		t.Fatalf("an export the kernel did not answer: %v", err)
	}
	if got := attr(t, filepath.Join(chip, "export")); got != "1" {
		t.Fatalf("export holds %q", got)
	}
	p.exportWait = 5 * time.Second
	if err := os.WriteFile(filepath.Join(chip, "export"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	files(t, chip, map[string]string{"pwm1.tmp/period": "0", "pwm1.tmp/duty_cycle": "0", "pwm1.tmp/polarity": "normal", "pwm1.tmp/enable": "0"})
	done := make(chan error, 1)
	go func() { // the kernel: make the channel's directory once "1" is written to export
		for {
			if b, err := os.ReadFile(filepath.Join(chip, "export")); err == nil && string(b) == "1" {
				done <- os.Rename(filepath.Join(chip, "pwm1.tmp"), filepath.Join(chip, "pwm1"))
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	if err := b.PWMApply("PWM-CONTROLLER-0", 1, board.PWMState{PeriodNs: 10, DutyNs: 5, Polarity: "normal", Enabled: true}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := attr(t, filepath.Join(chip, "pwm1", "enable")); got != "1" {
		t.Fatalf("pwm1 enable %q", got)
	}

	for _, c := range []struct {
		controller string
		ch         int
	}{{"PWM-CONTROLLER-0", 2}, {"PWM-CONTROLLER-1", 0}} {
		if err := b.PWMApply(c.controller, c.ch, board.PWMState{PeriodNs: 10, DutyNs: 5, Polarity: "normal"}); !errors.Is(err, board.ErrNoPeripheral) {
			t.Errorf("%s channel %d: %v", c.controller, c.ch, err)
		}
	}
	if err := b.PWMApply("PWM-CONTROLLER-0", 0, board.PWMState{PeriodNs: 10, DutyNs: 20, Polarity: "normal"}); !errors.Is(err, board.ErrInvalid) {
		t.Errorf("duty longer than the period: %v", err)
	}
	st := b.State()
	want := []board.PWMChannel{
		{Controller: "PWM-CONTROLLER-0", Channel: 0, Set: true, State: board.PWMState{PeriodNs: 1000, DutyNs: 100, Polarity: "inversed"}},
		{Controller: "PWM-CONTROLLER-0", Channel: 1, Set: true, State: board.PWMState{PeriodNs: 10, DutyNs: 5, Polarity: "normal", Enabled: true}},
	}
	if len(st.PWMs) != 2 || st.PWMs[0] != want[0] || st.PWMs[1] != want[1] {
		t.Fatalf("state %+v", st.PWMs)
	}
}

func TestPWMChipTooSmall(t *testing.T) {
	chip := t.TempDir()
	files(t, chip, map[string]string{"npwm": "1\n"})
	doc := minimal + `,"Pwm":[{"Controller":"PWM-CONTROLLER-0","Chip":"` + chip + `","Channels":2}]}`
	_, err := Open(board.Options{Dir: writeBoard(t, doc, definitions(`{"Name":"PWM","Type":"Pwm","AppManifestValue":"PWM-CONTROLLER-0"}`))})
	if err == nil || !errorContains(err, "Pwm[0] (PWM-CONTROLLER-0)", `has "1" channels; the description says 2`) {
		t.Fatalf("%v", err)
	}
}
