// Package linux is the "linux" board: real peripherals of a Linux machine, as a board
// description directory maps them (docs/APPLIBS.md, "The Linux board"). GPIOs are lines of
// the GPIO character device (go-gpiocdev), requested once at open and kept; UARTs are ttys in
// raw mode read and written without waiting; I2C masters are i2c-dev adapters driven with
// I2C_RDWR (a write then a read in one transaction); SPI masters are spidev devices, one per
// chip select, driven with SPI_IOC_MESSAGE (half duplex, with the description's mode and
// clock); ADCs are IIO devices read through sysfs; PWMs are sysfs PWM chips. Power requests
// are recorded and logged, not carried out. The panel reports the outputs as driven, reads
// the inputs on demand, and cannot press a physical button.
//
// Trust: it trusts the description directory (root's configuration) and its caller
// (internal/applibs) to have checked the application's grants; it checks every argument
// itself, and bounds every transfer and every sysfs read.
package linux

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/rampart-iot/rampart/internal/board"
)

// Name is the board's registry name.
const Name = "linux"

func init() {
	board.Register(Name, func(opts board.Options) (board.Device, error) { return Open(opts) })
}

// Board is a Linux machine's peripherals. It is safe for concurrent use.
type Board struct {
	cfg   *Config
	hw    fs.FS
	now   func() time.Time
	log   *slog.Logger
	gpios map[int]*gpioLine
	uarts map[string]*uart
	i2cs  map[string]*i2cBus
	spis  map[string][]*spiDevice
	adcs  map[string]*adc
	pwms  map[string]*pwm

	mu    sync.Mutex
	power board.Power
}

var _ board.Device = (*Board)(nil)

// Open loads the description directory opts.Dir (default DefaultDir) and opens every
// peripheral it maps; a peripheral that cannot be opened fails the whole board, with an error
// naming its entry.
func Open(opts board.Options) (*Board, error) {
	dir := opts.Dir
	if dir == "" {
		dir = DefaultDir
	}
	cfg, err := Load(dir)
	if err != nil {
		return nil, fmt.Errorf("linux board: %w", err)
	}
	b := &Board{cfg: cfg, hw: os.DirFS(filepath.Join(dir, DefinitionsDir)), now: opts.Now, log: opts.Logger,
		gpios: map[int]*gpioLine{}, uarts: map[string]*uart{}, i2cs: map[string]*i2cBus{},
		spis: map[string][]*spiDevice{}, adcs: map[string]*adc{}, pwms: map[string]*pwm{}}
	if b.now == nil {
		b.now = time.Now
	}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	b.power.Profile = "Balanced"
	if err := b.open(); err != nil {
		b.Close()
		return nil, fmt.Errorf("linux board %s: %w", dir, err)
	}
	return b, nil
}

func (b *Board) open() error {
	d := b.cfg.Description
	for i, g := range d.Gpio {
		l, err := requestGPIO(g)
		if err != nil {
			return fmt.Errorf(DescriptionFile+" Gpio[%d] (GPIO %d): %w", i, g.Gpio, err)
		}
		b.gpios[g.Gpio] = l
	}
	for i, u := range d.Uart {
		t, err := openUART(u.Device, u.Baud)
		if err != nil {
			return fmt.Errorf(DescriptionFile+" Uart[%d] (%s): %w", i, u.Isu, err)
		}
		b.uarts[u.Isu] = t
	}
	for i, c := range d.I2cMaster {
		bus, err := openI2C(c.Device)
		if err != nil {
			return fmt.Errorf(DescriptionFile+" I2cMaster[%d] (%s): %w", i, c.Isu, err)
		}
		b.i2cs[c.Isu] = bus
	}
	for i, s := range d.SpiMaster {
		for j, dev := range s.ChipSelects {
			sd, err := openSPI(dev, s.Mode, s.SpeedHz)
			if err != nil {
				return fmt.Errorf(DescriptionFile+" SpiMaster[%d] (%s chip select %d): %w", i, s.Isu, j, err)
			}
			b.spis[s.Isu] = append(b.spis[s.Isu], sd)
		}
	}
	for i, a := range d.Adc {
		x, err := openADC(a)
		if err != nil {
			return fmt.Errorf(DescriptionFile+" Adc[%d] (%s): %w", i, a.Controller, err)
		}
		b.adcs[a.Controller] = x
	}
	for i, w := range d.Pwm {
		x, err := openPWM(w)
		if err != nil {
			return fmt.Errorf(DescriptionFile+" Pwm[%d] (%s): %w", i, w.Controller, err)
		}
		b.pwms[w.Controller] = x
	}
	return nil
}

// Close releases every line and device; the board is unusable afterwards.
func (b *Board) Close() error {
	var errs []error
	for _, g := range b.gpios {
		errs = append(errs, g.close())
	}
	for _, u := range b.uarts {
		errs = append(errs, u.close())
	}
	for _, c := range b.i2cs {
		errs = append(errs, c.close())
	}
	for _, ss := range b.spis {
		for _, s := range ss {
			errs = append(errs, s.close())
		}
	}
	return errors.Join(errs...)
}

// Name implements board.Board.
func (b *Board) Name() string { return Name }

// Description returns the board's description.
func (b *Board) Description() *Description { return b.cfg.Description }

// Hardware implements board.Board: the description directory's hardware definitions.
func (b *Board) Hardware() fs.FS { return b.hw }

// GPIO implements board.Board.
func (b *Board) GPIO(n int) (board.Direction, error) {
	g, ok := b.gpios[n]
	if !ok {
		return "", fmt.Errorf("GPIO %d: %w", n, board.ErrNoPeripheral)
	}
	return board.Direction(g.cfg.Direction), nil
}

// ReadGPIO implements board.Board: the line's value now (an output's as driven).
func (b *Board) ReadGPIO(n int) (bool, error) {
	g, ok := b.gpios[n]
	if !ok {
		return false, fmt.Errorf("GPIO %d: %w", n, board.ErrNoPeripheral)
	}
	return g.read()
}

// WriteGPIO implements board.Board.
func (b *Board) WriteGPIO(n int, high bool) error {
	g, ok := b.gpios[n]
	if !ok {
		return fmt.Errorf("GPIO %d: %w", n, board.ErrNoPeripheral)
	}
	if g.cfg.Direction != string(board.Output) {
		return fmt.Errorf("GPIO %d: %w", n, board.ErrDirection)
	}
	return g.write(high)
}

// UARTWrite implements board.Board: it writes what the tty takes without waiting.
func (b *Board) UARTWrite(isu string, p []byte) (int, error) {
	u, ok := b.uarts[isu]
	if !ok {
		return 0, fmt.Errorf("UART %q: %w", isu, board.ErrNoPeripheral)
	}
	return u.write(p)
}

// UARTRead implements board.Board.
func (b *Board) UARTRead(isu string, p []byte) (int, error) {
	u, ok := b.uarts[isu]
	if !ok {
		return 0, fmt.Errorf("UART %q: %w", isu, board.ErrNoPeripheral)
	}
	return u.read(p)
}

// I2CTransfer implements board.Board. A NACK (ENXIO or EREMOTEIO from the adapter) is
// board.ErrNoDevice.
func (b *Board) I2CTransfer(isu string, addr uint16, w, r []byte) error {
	c, ok := b.i2cs[isu]
	if !ok {
		return fmt.Errorf("I2C %q: %w", isu, board.ErrNoPeripheral)
	}
	return c.transfer(addr, w, r)
}

// SPITransfer implements board.Board.
func (b *Board) SPITransfer(isu string, cs int, w, r []byte) error {
	ss, ok := b.spis[isu]
	if !ok {
		return fmt.Errorf("SPI %q: %w", isu, board.ErrNoPeripheral)
	}
	if cs < 0 || cs >= MaxChipSelects {
		return fmt.Errorf("%w: SPI chip select %d: want 0 (A) or 1 (B)", board.ErrInvalid, cs)
	}
	if cs >= len(ss) {
		return fmt.Errorf("SPI %s chip select %d: %w", isu, cs, board.ErrNoPeripheral)
	}
	return ss[cs].transfer(w, r)
}

// ADCRead implements board.Board.
func (b *Board) ADCRead(controller string, channel int) (board.ADCSample, error) {
	a, ok := b.adcs[controller]
	if !ok {
		return board.ADCSample{}, fmt.Errorf("ADC %q: %w", controller, board.ErrNoPeripheral)
	}
	if channel < 0 || channel >= a.cfg.Channels {
		return board.ADCSample{}, fmt.Errorf("ADC %s channel %d: %w", controller, channel, board.ErrNoPeripheral)
	}
	return a.read(channel)
}

// PWMApply implements board.Board.
func (b *Board) PWMApply(controller string, channel int, s board.PWMState) error {
	p, ok := b.pwms[controller]
	if !ok {
		return fmt.Errorf("PWM %q: %w", controller, board.ErrNoPeripheral)
	}
	if channel < 0 || channel >= p.cfg.Channels {
		return fmt.Errorf("PWM %s channel %d: %w", controller, channel, board.ErrNoPeripheral)
	}
	if err := s.Validate(); err != nil {
		return err
	}
	return p.apply(channel, s)
}

// Power implements board.Board: the request is checked, recorded in the state and logged,
// not carried out (the agent does not reboot or power down the machine for an application).
func (b *Board) Power(req board.PowerRequest) error {
	if err := board.CheckPower(req); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.power.Record(req, b.now())
	b.log.Warn("linux board: power request recorded, not carried out", "action", req.Action, "by", req.By, "seconds", req.Seconds, "profile", req.Profile)
	return nil
}

// gpioName is the first hardware-definition name of GPIO n, else "GPIOn".
func (b *Board) gpioName(n int) string {
	if ns := b.cfg.Names[key("Gpio", strconv.Itoa(n))]; len(ns) > 0 {
		return ns[0]
	}
	return "GPIO" + strconv.Itoa(n)
}

// Press implements board.Panel: a Linux board's buttons are physical, so it cannot.
func (b *Board) Press(name string) error {
	for n, g := range b.gpios {
		if g.cfg.Direction == string(board.Input) && (b.gpioName(n) == name || slices.Contains(b.cfg.Names[key("Gpio", strconv.Itoa(n))], name)) {
			return fmt.Errorf("button %s: %w: it is a physical button on the linux board", name, errors.ErrUnsupported)
		}
	}
	return fmt.Errorf("button %q: %w", name, board.ErrNoPeripheral)
}

// State implements board.Panel: outputs as last driven (LEDs), inputs read now (buttons; one
// that cannot be read shows released), UART counters and what waits in each tty, the PWM
// channels as applied, and the power requests recorded. Sensors and ADCs are not sampled.
func (b *Board) State() board.State {
	st := board.State{Board: Name, At: b.now(), LEDs: []board.LED{}, Buttons: []board.Button{}, UARTs: []board.UART{},
		Sensors: []board.Sensor{}, ADCs: []board.ADCChannel{}, PWMs: []board.PWMChannel{}}
	nums := make([]int, 0, len(b.gpios))
	for n := range b.gpios {
		nums = append(nums, n)
	}
	sort.Ints(nums)
	for _, n := range nums {
		g := b.gpios[n]
		if g.cfg.Direction == string(board.Output) {
			st.LEDs = append(st.LEDs, board.LED{Name: b.gpioName(n), GPIO: n, On: g.driven()})
			continue
		}
		v, _ := g.read()
		st.Buttons = append(st.Buttons, board.Button{Name: b.gpioName(n), GPIO: n, Pressed: v})
	}
	for _, u := range b.cfg.Description.Uart {
		t := b.uarts[u.Isu]
		tx, rx := t.counts()
		st.UARTs = append(st.UARTs, board.UART{ISU: u.Isu, Buffered: t.buffered(), TxBytes: tx, RxBytes: rx})
	}
	for _, w := range b.cfg.Description.Pwm {
		p := b.pwms[w.Controller]
		p.mu.Lock()
		for ch := range w.Channels {
			c := board.PWMChannel{Controller: w.Controller, Channel: ch}
			c.State, c.Set = p.applied[ch]
			st.PWMs = append(st.PWMs, c)
		}
		p.mu.Unlock()
	}
	b.mu.Lock()
	st.Power = b.power
	if st.Power.Last != nil {
		l := *st.Power.Last
		st.Power.Last = &l
	}
	b.mu.Unlock()
	return st
}
