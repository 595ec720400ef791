package linux

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rampart-iot/rampart/internal/board"
)

// maxAttribute bounds a sysfs attribute read.
const maxAttribute = 64

// readAttribute reads a sysfs attribute, trimmed.
func readAttribute(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxAttribute+1))
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", name, err)
	}
	if len(b) > maxAttribute {
		return "", fmt.Errorf("%s holds more than %d bytes", name, maxAttribute)
	}
	return strings.TrimSpace(string(b)), nil
}

// writeAttribute writes a sysfs attribute as one write, as sysfs wants.
func writeAttribute(name, value string) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, err = f.Write([]byte(value))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %q to %s: %w", value, name, err)
	}
	return nil
}

// adc is an IIO device's voltage channels.
type adc struct {
	cfg ADC
}

func openADC(cfg ADC) (*adc, error) {
	st, err := os.Stat(cfg.Device)
	if err != nil {
		return nil, fmt.Errorf("IIO device: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("IIO device %s is not a directory", cfg.Device)
	}
	return &adc{cfg: cfg}, nil
}

// read reads in_voltageN_raw; the reference is in_voltageN_scale (or in_voltage_scale, in mV
// per step) times the full-scale value, else the description's ReferenceMillivolts.
func (a *adc) read(ch int) (board.ADCSample, error) {
	s := board.ADCSample{Bits: a.cfg.Bits}
	raw, err := readAttribute(filepath.Join(a.cfg.Device, fmt.Sprintf("in_voltage%d_raw", ch)))
	if err != nil {
		return s, err
	}
	v, err := strconv.ParseUint(raw, 10, 64)
	full := uint64(1)<<a.cfg.Bits - 1
	if err != nil || v > full {
		return s, fmt.Errorf("ADC %s channel %d read %q: want 0 to %d", a.cfg.Controller, ch, clip(raw), full)
	}
	s.Value = uint32(v)
	scale, err := readAttribute(filepath.Join(a.cfg.Device, fmt.Sprintf("in_voltage%d_scale", ch)))
	if errors.Is(err, fs.ErrNotExist) {
		scale, err = readAttribute(filepath.Join(a.cfg.Device, "in_voltage_scale"))
	}
	switch {
	case err == nil:
		mv, perr := strconv.ParseFloat(scale, 64)
		ref := math.Round(mv * float64(full))
		if perr != nil || mv <= 0 || ref > MaxReferenceMillivolts {
			return s, fmt.Errorf("ADC %s: scale %q: want a positive number of millivolts per step", a.cfg.Controller, clip(scale))
		}
		s.ReferenceMillivolts = int(ref)
	case errors.Is(err, fs.ErrNotExist) && a.cfg.ReferenceMillivolts > 0:
		s.ReferenceMillivolts = a.cfg.ReferenceMillivolts
	case errors.Is(err, fs.ErrNotExist):
		return s, fmt.Errorf("ADC %s: %s has no in_voltage_scale and the description gives no ReferenceMillivolts", a.cfg.Controller, a.cfg.Device)
	default:
		return s, err
	}
	return s, nil
}

// pwmExportWait bounds how long an exported channel's directory takes to appear.
const pwmExportWait = time.Second

// pwm is a sysfs PWM chip.
type pwm struct {
	cfg        PWM
	exportWait time.Duration
	mu         sync.Mutex
	applied    map[int]board.PWMState
}

func openPWM(cfg PWM) (*pwm, error) {
	n, err := readAttribute(filepath.Join(cfg.Chip, "npwm"))
	if err != nil {
		return nil, fmt.Errorf("PWM chip: %w", err)
	}
	if npwm, err := strconv.Atoi(n); err != nil || npwm < cfg.Channels {
		return nil, fmt.Errorf("PWM chip %s has %q channels; the description says %d", cfg.Chip, clip(n), cfg.Channels)
	}
	return &pwm{cfg: cfg, exportWait: pwmExportWait, applied: map[int]board.PWMState{}}, nil
}

// apply exports the channel if need be and sets it: polarity only while disabled, period and
// duty cycle in the order that never has the duty cycle longer than the period.
func (p *pwm) apply(ch int, s board.PWMState) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	dir := filepath.Join(p.cfg.Chip, "pwm"+strconv.Itoa(ch))
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := writeAttribute(filepath.Join(p.cfg.Chip, "export"), strconv.Itoa(ch)); err != nil {
			return fmt.Errorf("PWM %s: exporting channel %d: %w", p.cfg.Controller, ch, err)
		}
		if err := waitFor(dir, p.exportWait); err != nil {
			return fmt.Errorf("PWM %s: exporting channel %d: %w", p.cfg.Controller, ch, err)
		}
	}
	attr := func(name string) string { return filepath.Join(dir, name) }
	polarity, err := readAttribute(attr("polarity"))
	if err != nil {
		return err
	}
	enabled, err := readAttribute(attr("enable"))
	if err != nil {
		return err
	}
	if polarity != s.Polarity {
		if enabled != "0" {
			if err := writeAttribute(attr("enable"), "0"); err != nil {
				return err
			}
			enabled = "0"
		}
		if err := writeAttribute(attr("polarity"), s.Polarity); err != nil {
			return err
		}
	}
	duty, err := readAttribute(attr("duty_cycle"))
	if err != nil {
		return err
	}
	curDuty, err := strconv.ParseUint(duty, 10, 64)
	if err != nil {
		return fmt.Errorf("%s: %q is not a number", attr("duty_cycle"), clip(duty))
	}
	period, dutyNs := strconv.FormatUint(uint64(s.PeriodNs), 10), strconv.FormatUint(uint64(s.DutyNs), 10)
	order := [][2]string{{"period", period}, {"duty_cycle", dutyNs}}
	if uint64(s.PeriodNs) < curDuty {
		order[0], order[1] = order[1], order[0]
	}
	for _, o := range order {
		if err := writeAttribute(attr(o[0]), o[1]); err != nil {
			return err
		}
	}
	want := "0"
	if s.Enabled {
		want = "1"
	}
	if want != enabled {
		if err := writeAttribute(attr("enable"), want); err != nil {
			return err
		}
	}
	p.applied[ch] = s
	return nil
}

// waitFor waits up to limit for dir to appear (an exported PWM channel's, made by the kernel
// and given its permissions by udev).
func waitFor(dir string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		if _, err := os.Stat(dir); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not appear within %v", dir, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
