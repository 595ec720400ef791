// Package emulated is the "emulated" board: LEDs on GPIOs 8 to 10, buttons on GPIOs 12 and 13,
// a UART loopback on ISU0, a TMP102-like temperature sensor at I2C address 0x48 on ISU2 that
// reads 20 to 25 °C varying slowly, a 256-byte 25AA02-like SPI EEPROM on ISU1 chip select A,
// an 8-channel 12-bit ADC whose channel 0 is a light sensor,
// and a 4-channel PWM controller; power requests are recorded, not carried out. The names are
// those of hardware/emulated/emulated.json. It is the default board for development mode and
// for tests.
//
// Trust: it trusts its caller (internal/applibs) to have checked the application's grants and
// checks every argument itself; its clock and randomness are injected (board.Options), so its
// readings are deterministic in tests. It holds all its state in memory.
package emulated

import (
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/rampart-iot/rampart/hardware"
	"github.com/rampart-iot/rampart/internal/board"
)

// Name is the board's registry name.
const Name = "emulated"

func init() {
	board.Register(Name, func(opts board.Options) (board.Device, error) {
		if opts.Dir != "" {
			return nil, fmt.Errorf("board %s takes no description directory (%s): its peripherals are built in; use linux:%s for a described board", Name, opts.Dir, opts.Dir)
		}
		return New(opts), nil
	})
}

// The board's peripherals.
const (
	UARTISU = "ISU0"
	// I2CISU and SensorAddress locate the temperature sensor.
	I2CISU        = "ISU2"
	SensorAddress = 0x48
	// SPIISU and EEPROMChipSelect locate the SPI EEPROM.
	SPIISU           = "ISU1"
	EEPROMChipSelect = 0
	EEPROMSize       = 256
	EEPROMPage       = 16
	ADCController    = "ADC-CONTROLLER-0"
	ADCChannels      = 8
	ADCBits          = 12
	ADCRefMV         = 2500
	// LightChannel is the ADC channel of the light sensor.
	LightChannel  = 0
	PWMController = "PWM-CONTROLLER-0"
	PWMChannels   = 4
	// UARTBuffer bounds the loopback's receive buffer; bytes written past it are dropped, as
	// a UART's FIFO overruns.
	UARTBuffer = 4096
)

// Temperature model: MeanCelsius ± SwingCelsius over SensorPeriod, plus up to ±NoiseCelsius.
const (
	MeanCelsius  = 22.5
	SwingCelsius = 2.3
	NoiseCelsius = 0.1
	SensorPeriod = 10 * time.Minute
)

var leds = []struct {
	name string
	gpio int
}{{"LED_RED", 8}, {"LED_GREEN", 9}, {"LED_BLUE", 10}}

var buttons = []struct {
	name string
	gpio int
}{{"BUTTON_A", 12}, {"BUTTON_B", 13}}

type button struct {
	held    bool
	pending bool
	presses int
}

// Board is the emulated board. It is safe for concurrent use.
type Board struct {
	now  func() time.Time
	rand func() float64

	mu      sync.Mutex
	out     map[int]bool // LED GPIO -> high
	buttons map[int]*button
	rx      []byte
	tx, rxN int64
	pwm     [PWMChannels]*board.PWMState
	reg     byte // the sensor's pointer register
	eeprom  [EEPROMSize]byte
	wel     bool // the EEPROM's write-enable latch
	power   board.Power
}

var _ board.Device = (*Board)(nil)

// New returns an emulated board with every LED off, no button pressed, and the "Balanced"
// power profile.
func New(opts board.Options) *Board {
	b := &Board{now: opts.Now, rand: opts.Rand, out: map[int]bool{}, buttons: map[int]*button{}}
	for i := range b.eeprom {
		b.eeprom[i] = 0xFF // erased
	}
	if b.now == nil {
		b.now = time.Now
	}
	if b.rand == nil {
		b.rand = rand.Float64
	}
	for _, l := range leds {
		b.out[l.gpio] = false
	}
	for _, bt := range buttons {
		b.buttons[bt.gpio] = &button{}
	}
	b.power.Profile = "Balanced"
	return b
}

// Name implements board.Board.
func (b *Board) Name() string { return Name }

// Hardware implements board.Board.
func (b *Board) Hardware() fs.FS { return hardware.Emulated() }

// GPIO implements board.Board.
func (b *Board) GPIO(n int) (board.Direction, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.direction(n)
}

func (b *Board) direction(n int) (board.Direction, error) {
	if _, ok := b.out[n]; ok {
		return board.Output, nil
	}
	if _, ok := b.buttons[n]; ok {
		return board.Input, nil
	}
	return "", fmt.Errorf("GPIO %d: %w", n, board.ErrNoPeripheral)
}

// ReadGPIO implements board.Board. A button reads high while held, and on the first read
// after a Press.
func (b *Board) ReadGPIO(n int) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if v, ok := b.out[n]; ok {
		return v, nil
	}
	bt, ok := b.buttons[n]
	if !ok {
		return false, fmt.Errorf("GPIO %d: %w", n, board.ErrNoPeripheral)
	}
	v := bt.held || bt.pending
	bt.pending = false
	return v, nil
}

// WriteGPIO implements board.Board.
func (b *Board) WriteGPIO(n int, high bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	d, err := b.direction(n)
	if err != nil {
		return err
	}
	if d != board.Output {
		return fmt.Errorf("GPIO %d: %w", n, board.ErrDirection)
	}
	b.out[n] = high
	return nil
}

// UARTWrite implements board.Board: what is written is received by the same UART, up to
// UARTBuffer bytes waiting; the rest is dropped but counted as written.
func (b *Board) UARTWrite(isu string, p []byte) (int, error) {
	if isu != UARTISU {
		return 0, fmt.Errorf("UART %q: %w", isu, board.ErrNoPeripheral)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	room := UARTBuffer - len(b.rx)
	b.rx = append(b.rx, p[:min(room, len(p))]...)
	b.tx += int64(len(p))
	return len(p), nil
}

// UARTRead implements board.Board.
func (b *Board) UARTRead(isu string, p []byte) (int, error) {
	if isu != UARTISU {
		return 0, fmt.Errorf("UART %q: %w", isu, board.ErrNoPeripheral)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	n := copy(p, b.rx)
	b.rx = append(b.rx[:0], b.rx[n:]...)
	b.rxN += int64(n)
	return n, nil
}

// I2CTransfer implements board.Board. The sensor has TMP102's registers: a write sets the
// pointer register (its first byte); register 0 is the temperature (12 bits, left-aligned,
// 0.0625 °C per bit), 1 the configuration (0x60A0); reads past a register's two bytes read
// 0xFF.
func (b *Board) I2CTransfer(isu string, addr uint16, w, r []byte) error {
	if isu != I2CISU {
		return fmt.Errorf("I2C %q: %w", isu, board.ErrNoPeripheral)
	}
	if addr > 0x7F {
		return fmt.Errorf("%w: I2C address %#x: want a 7-bit address", board.ErrInvalid, addr)
	}
	if addr != SensorAddress {
		return fmt.Errorf("I2C %s address %#x: %w", isu, addr, board.ErrNoDevice)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(w) > 0 {
		b.reg = w[0]
	}
	if len(r) == 0 {
		return nil
	}
	var val [2]byte
	switch b.reg {
	case 0:
		raw := uint16(int16(math.Round(b.celsius()*16))) << 4
		val = [2]byte{byte(raw >> 8), byte(raw)}
	case 1:
		val = [2]byte{0x60, 0xA0}
	default:
		val = [2]byte{0xFF, 0xFF}
	}
	for i := range r {
		r[i] = 0xFF
		if i < 2 {
			r[i] = val[i]
		}
	}
	return nil
}

// The EEPROM's instructions (Microchip 25AA02).
const (
	eepromRead  = 0x03
	eepromWrite = 0x02
	eepromWRDI  = 0x04
	eepromWREN  = 0x06
	eepromRDSR  = 0x05
)

// SPITransfer implements board.Board. The EEPROM on chip select EEPROMChipSelect speaks the
// 25AA02's instructions: WREN (0x06) and WRDI (0x04) set and clear the write-enable latch, RDSR
// (0x05) reads the status (bit 1: the latch), READ (0x03, address) reads on from the address,
// wrapping at the end, and WRITE (0x02, address, data) writes within the address's 16-byte page,
// wrapping in it, only with the latch set, which it then clears. Other instructions read 0xFF.
func (b *Board) SPITransfer(isu string, cs int, w, r []byte) error {
	if isu != SPIISU {
		return fmt.Errorf("SPI %q: %w", isu, board.ErrNoPeripheral)
	}
	if cs < 0 || cs > 1 {
		return fmt.Errorf("%w: SPI chip select %d: want 0 (A) or 1 (B)", board.ErrInvalid, cs)
	}
	if cs != EEPROMChipSelect {
		return fmt.Errorf("SPI %s chip select %d: %w", isu, cs, board.ErrNoDevice)
	}
	for i := range r {
		r[i] = 0xFF
	}
	if len(w) == 0 {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch w[0] {
	case eepromWREN:
		b.wel = true
	case eepromWRDI:
		b.wel = false
	case eepromRDSR:
		if len(r) > 0 {
			r[0] = 0
			if b.wel {
				r[0] = 0x02
			}
		}
	case eepromRead:
		if len(w) < 2 {
			return fmt.Errorf("%w: SPI EEPROM READ needs an address byte", board.ErrInvalid)
		}
		for i := range r {
			r[i] = b.eeprom[(int(w[1])+i)%EEPROMSize]
		}
	case eepromWrite:
		if len(w) < 2 {
			return fmt.Errorf("%w: SPI EEPROM WRITE needs an address byte", board.ErrInvalid)
		}
		if !b.wel {
			return nil // as the chip: ignored without WREN
		}
		page := int(w[1]) &^ (EEPROMPage - 1)
		for i, v := range w[2:] {
			b.eeprom[page+(int(w[1])+i)%EEPROMPage] = v
		}
		b.wel = false
	}
	return nil
}

// celsius is the sensor's temperature now; b.mu is held.
func (b *Board) celsius() float64 {
	phase := 2 * math.Pi * float64(b.now().UnixNano()%int64(SensorPeriod)) / float64(SensorPeriod)
	return MeanCelsius + SwingCelsius*math.Sin(phase) + NoiseCelsius*(2*b.rand()-1)
}

// ADCRead implements board.Board. Channel 0 is a light sensor (a slow wave around mid-scale
// with noise); the others read 0.
func (b *Board) ADCRead(controller string, channel int) (board.ADCSample, error) {
	if controller != ADCController {
		return board.ADCSample{}, fmt.Errorf("ADC %q: %w", controller, board.ErrNoPeripheral)
	}
	if channel < 0 || channel >= ADCChannels {
		return board.ADCSample{}, fmt.Errorf("ADC %s channel %d: %w", controller, channel, board.ErrNoPeripheral)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.adc(channel), nil
}

func (b *Board) adc(channel int) board.ADCSample {
	s := board.ADCSample{Bits: ADCBits, ReferenceMillivolts: ADCRefMV}
	if channel == LightChannel {
		phase := 2 * math.Pi * float64(b.now().UnixNano()%int64(SensorPeriod)) / float64(SensorPeriod)
		v := 2048 + 1200*math.Cos(phase) + 40*(2*b.rand()-1)
		s.Value = uint32(min(max(v, 0), 1<<ADCBits-1))
	}
	return s
}

// PWMApply implements board.Board.
func (b *Board) PWMApply(controller string, channel int, s board.PWMState) error {
	if controller != PWMController {
		return fmt.Errorf("PWM %q: %w", controller, board.ErrNoPeripheral)
	}
	if channel < 0 || channel >= PWMChannels {
		return fmt.Errorf("PWM %s channel %d: %w", controller, channel, board.ErrNoPeripheral)
	}
	if err := s.Validate(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pwm[channel] = &s
	return nil
}

// Power implements board.Board: the request is recorded in the state, not carried out.
func (b *Board) Power(req board.PowerRequest) error {
	if err := board.CheckPower(req); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.power.Record(req, b.now())
	return nil
}

// Press implements board.Panel.
func (b *Board) Press(name string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, bt := range buttons {
		if bt.name == name {
			s := b.buttons[bt.gpio]
			s.pending = true
			s.presses++
			return nil
		}
	}
	return fmt.Errorf("button %q: %w", name, board.ErrNoPeripheral)
}

// Hold holds a button down (true) or releases it (false): its GPIO reads high while held.
func (b *Board) Hold(name string, held bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, bt := range buttons {
		if bt.name == name {
			s := b.buttons[bt.gpio]
			if held && !s.held {
				s.presses++
			}
			s.held = held
			return nil
		}
	}
	return fmt.Errorf("button %q: %w", name, board.ErrNoPeripheral)
}

// State implements board.Panel.
func (b *Board) State() board.State {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := board.State{Board: Name, At: b.now(), Power: b.power}
	if st.Power.Last != nil {
		l := *st.Power.Last
		st.Power.Last = &l
	}
	for _, l := range leds {
		st.LEDs = append(st.LEDs, board.LED{Name: l.name, GPIO: l.gpio, On: b.out[l.gpio]})
	}
	for _, bt := range buttons {
		s := b.buttons[bt.gpio]
		st.Buttons = append(st.Buttons, board.Button{Name: bt.name, GPIO: bt.gpio, Pressed: s.held, Pending: s.pending, Presses: s.presses})
	}
	st.UARTs = []board.UART{{ISU: UARTISU, Loopback: true, Buffered: len(b.rx), TxBytes: b.tx, RxBytes: b.rxN}}
	st.Sensors = []board.Sensor{{Name: "TEMP_SENSOR", ISU: I2CISU, Address: SensorAddress, Celsius: math.Round(b.celsius()*16) / 16}}
	for ch := range ADCChannels {
		c := board.ADCChannel{Controller: ADCController, Channel: ch, Sample: b.adc(ch)}
		if ch == LightChannel {
			c.Name = "LIGHT_SENSOR"
		}
		st.ADCs = append(st.ADCs, c)
	}
	for ch := range PWMChannels {
		c := board.PWMChannel{Controller: PWMController, Channel: ch}
		if p := b.pwm[ch]; p != nil {
			c.Set, c.State = true, *p
		}
		st.PWMs = append(st.PWMs, c)
	}
	return st
}
