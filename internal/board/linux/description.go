package linux

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/rampart-iot/rampart/internal/strictjson"
	"github.com/rampart-iot/rampart/manifest"
	"golang.org/x/sys/unix"
)

// A board description directory holds DescriptionFile, which says what backs each manifest
// value on this machine, and DefinitionsDir, the board's hardware definition files (Azure
// Sphere's format), which give the names applications use ("$LED_RED").
const (
	// DefaultDir is the description directory when none is given.
	DefaultDir = "/etc/rampart/board"
	// DescriptionFile is the mapping's file name in the description directory.
	DescriptionFile = "board.json"
	// DefinitionsDir is the directory of hardware definitions in the description directory.
	DefinitionsDir = "hardware"
	// DescriptionType is the Metadata.Type of a description.
	DescriptionType = "Rampart Linux Board"
)

// Bounds on a description.
const (
	// MaxDescriptionSize bounds board.json, in bytes.
	MaxDescriptionSize = 256 << 10
	// MaxEntries bounds the entries of each list (Gpio, Uart, ...).
	MaxEntries = 1024
	// MaxLine bounds a GPIO line offset on its chip.
	MaxLine = 65535
	// MaxChipSelects is how many chip selects an SPI ISU has (0 is A, 1 is B).
	MaxChipSelects = 2
	// MaxSPISpeedHz bounds an SPI clock.
	MaxSPISpeedHz = 200_000_000
	// MaxChannels bounds the channels of an ADC or PWM controller.
	MaxChannels = 64
	// MaxADCBits bounds an ADC's sample width.
	MaxADCBits = 32
	// MaxReferenceMillivolts bounds an ADC's reference voltage.
	MaxReferenceMillivolts = 100_000
	// maxName bounds a board's name and a controller's name.
	maxName = 128
	// maxPath bounds a device path.
	maxPath = 4096
)

// Description is a parsed, valid board.json: for each manifest value, what backs it on this
// Linux machine.
type Description struct {
	Metadata Metadata `json:"Metadata"`
	// Name names the board ("Raspberry Pi 4 Model B").
	Name      string `json:"Name"`
	Gpio      []GPIO `json:"Gpio,omitempty"`
	Uart      []UART `json:"Uart,omitempty"`
	I2cMaster []I2C  `json:"I2cMaster,omitempty"`
	SpiMaster []SPI  `json:"SpiMaster,omitempty"`
	Adc       []ADC  `json:"Adc,omitempty"`
	Pwm       []PWM  `json:"Pwm,omitempty"`
}

// Metadata identifies the document: Type is DescriptionType, Version is 1.
type Metadata struct {
	Type    string `json:"Type"`
	Version int    `json:"Version"`
}

// GPIO backs a manifest's GPIO number with a line of a GPIO character device.
type GPIO struct {
	// Gpio is the number manifests and hardware definitions use (0 to manifest.MaxGPIO).
	Gpio int `json:"Gpio"`
	// Chip is the GPIO character device, in /dev ("/dev/gpiochip0").
	Chip string `json:"Chip"`
	// Line is the line's offset on the chip.
	Line int `json:"Line"`
	// Direction is "input" or "output".
	Direction string `json:"Direction"`
	// ActiveLow makes an application's high the pin's low (an LED wired from the supply to
	// the pin, a button to ground with a pull-up).
	ActiveLow bool `json:"ActiveLow,omitempty"`
	// Bias is "" (as the chip has it), "pull-up", "pull-down" or "disabled".
	Bias string `json:"Bias,omitempty"`
	// Initial is an output's value when the board opens (default low).
	Initial bool `json:"Initial,omitempty"`
}

// UART backs a UART ISU with a tty.
type UART struct {
	Isu string `json:"Isu"`
	// Device is the tty ("/dev/ttyAMA0").
	Device string `json:"Device"`
	// Baud is its speed, one of the standard rates (9600, 115200, ...).
	Baud int `json:"Baud"`
}

// I2C backs an I2C master ISU with an i2c-dev adapter.
type I2C struct {
	Isu string `json:"Isu"`
	// Device is the adapter ("/dev/i2c-1").
	Device string `json:"Device"`
}

// SPI backs an SPI master ISU with spidev devices, one per chip select.
type SPI struct {
	Isu string `json:"Isu"`
	// ChipSelects are the spidev devices of chip selects A, B ("/dev/spidev0.0").
	ChipSelects []string `json:"ChipSelects"`
	// Mode is the SPI mode, 0 to 3 (clock polarity and phase).
	Mode int `json:"Mode"`
	// SpeedHz is the clock.
	SpeedHz int `json:"SpeedHz"`
}

// ADC backs an ADC controller with an IIO device.
type ADC struct {
	Controller string `json:"Controller"`
	// Device is the IIO device's directory ("/sys/bus/iio/devices/iio:device0"), with
	// in_voltageN_raw and in_voltage_scale (or in_voltageN_scale).
	Device string `json:"Device"`
	// Channels is how many channels, 0 to Channels-1.
	Channels int `json:"Channels"`
	// Bits is the sample width.
	Bits int `json:"Bits"`
	// ReferenceMillivolts is what a full-scale sample stands for when the device has no
	// scale file; with one, the scale decides.
	ReferenceMillivolts int `json:"ReferenceMillivolts,omitempty"`
}

// PWM backs a PWM controller with a sysfs PWM chip.
type PWM struct {
	Controller string `json:"Controller"`
	// Chip is the chip's directory ("/sys/class/pwm/pwmchip0").
	Chip string `json:"Chip"`
	// Channels is how many channels, 0 to Channels-1.
	Channels int `json:"Channels"`
}

// DescriptionError lists every problem found in a description, each naming its field.
type DescriptionError struct {
	Problems []string
}

func (e *DescriptionError) Error() string {
	return DescriptionFile + ": " + strings.Join(e.Problems, "; ")
}

type problems []string

func (p *problems) add(field, format string, args ...any) {
	*p = append(*p, field+": "+fmt.Sprintf(format, args...))
}

type wireDescription struct {
	Metadata  json.RawMessage   `json:"Metadata"`
	Name      json.RawMessage   `json:"Name"`
	Gpio      []json.RawMessage `json:"Gpio"`
	Uart      []json.RawMessage `json:"Uart"`
	I2cMaster []json.RawMessage `json:"I2cMaster"`
	SpiMaster []json.RawMessage `json:"SpiMaster"`
	Adc       []json.RawMessage `json:"Adc"`
	Pwm       []json.RawMessage `json:"Pwm"`
}

// ParseDescription parses and validates board.json. Unknown fields, missing ones, wrong types
// and bad values are all reported, each naming its field, in one *DescriptionError.
func ParseDescription(data []byte) (*Description, error) {
	if len(data) > MaxDescriptionSize {
		return nil, &DescriptionError{Problems: []string{fmt.Sprintf("%d bytes; the limit is %d", len(data), MaxDescriptionSize)}}
	}
	var p problems
	var w wireDescription
	if err := strictjson.Decode(data, &w); err != nil {
		return nil, &DescriptionError{Problems: strictProblems("", err)}
	}
	d := &Description{}
	decodeEntry(&p, "Metadata", w.Metadata, &d.Metadata, "Type", "Version")
	if d.Metadata.Type != "" && d.Metadata.Type != DescriptionType {
		p.add("Metadata.Type", "must be %q, not %q", DescriptionType, clip(d.Metadata.Type))
	}
	if w.Metadata != nil && d.Metadata.Version != 0 && d.Metadata.Version != 1 {
		p.add("Metadata.Version", "must be 1, not %d", d.Metadata.Version)
	}
	if w.Name == nil {
		p.add("Name", "missing")
	} else if err := json.Unmarshal(w.Name, &d.Name); err != nil {
		p.add("Name", "must be a string")
	} else if d.Name == "" || len(d.Name) > maxName || !printable(d.Name) {
		p.add("Name", "must be 1 to %d printable characters", maxName)
	}
	d.Gpio = decodeList[GPIO](&p, "Gpio", w.Gpio, "Gpio", "Chip", "Line", "Direction")
	d.Uart = decodeList[UART](&p, "Uart", w.Uart, "Isu", "Device", "Baud")
	d.I2cMaster = decodeList[I2C](&p, "I2cMaster", w.I2cMaster, "Isu", "Device")
	d.SpiMaster = decodeList[SPI](&p, "SpiMaster", w.SpiMaster, "Isu", "ChipSelects", "Mode", "SpeedHz")
	d.Adc = decodeList[ADC](&p, "Adc", w.Adc, "Controller", "Device", "Channels", "Bits")
	d.Pwm = decodeList[PWM](&p, "Pwm", w.Pwm, "Controller", "Chip", "Channels")
	if len(p) == 0 {
		d.validate(&p)
	}
	if len(p) > 0 {
		return nil, &DescriptionError{Problems: p}
	}
	return d, nil
}

func strictProblems(prefix string, err error) []string {
	var se *strictjson.Error
	if !errors.As(err, &se) {
		return []string{joinField(prefix, "") + err.Error()}
	}
	out := make([]string, 0, len(se.Problems))
	for _, q := range se.Problems {
		field := q.Path
		if prefix != "" {
			field = strings.TrimSuffix(prefix+"."+q.Path, ".")
		}
		if field == "" {
			out = append(out, q.Message)
			continue
		}
		out = append(out, field+": "+q.Message)
	}
	return out
}

func joinField(prefix, s string) string {
	if prefix == "" {
		return s
	}
	return prefix + ": " + s
}

// decodeEntry decodes one object strictly into v and reports the required keys it lacks.
func decodeEntry(p *problems, field string, raw json.RawMessage, v any, required ...string) bool {
	if raw == nil {
		p.add(field, "missing")
		return false
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(raw, &keys); err != nil {
		p.add(field, "must be an object")
		return false
	}
	ok := true
	for _, k := range required {
		if _, has := keys[k]; !has {
			p.add(field+"."+k, "missing")
			ok = false
		}
	}
	if err := strictjson.Decode(raw, v); err != nil {
		*p = append(*p, strictProblems(field, err)...)
		ok = false
	}
	return ok
}

func decodeList[T any](p *problems, field string, raws []json.RawMessage, required ...string) []T {
	if len(raws) > MaxEntries {
		p.add(field, "%d entries; the limit is %d", len(raws), MaxEntries)
		return nil
	}
	var out []T
	for i, raw := range raws {
		var v T
		if decodeEntry(p, field+"["+strconv.Itoa(i)+"]", raw, &v, required...) {
			out = append(out, v)
		}
	}
	return out
}

// validate checks values and uniqueness; the entries decoded cleanly.
func (d *Description) validate(p *problems) {
	paths := map[string]string{} // device path -> the field that uses it
	usePath := func(field, dev string) {
		if err := checkPath(dev); err != nil {
			p.add(field, "%v", err)
			return
		}
		if prev, ok := paths[dev]; ok {
			p.add(field, "%s is already used by %s", dev, prev)
			return
		}
		paths[dev] = field
	}
	gpios := map[int]string{}
	lines := map[string]string{}
	for i, g := range d.Gpio {
		f := "Gpio[" + strconv.Itoa(i) + "]"
		if g.Gpio < 0 || g.Gpio > manifest.MaxGPIO {
			p.add(f+".Gpio", "must be a GPIO number from 0 to %d, not %d", manifest.MaxGPIO, g.Gpio)
		} else if prev, ok := gpios[g.Gpio]; ok {
			p.add(f+".Gpio", "GPIO %d is already mapped by %s", g.Gpio, prev)
		} else {
			gpios[g.Gpio] = f
		}
		if err := checkPath(g.Chip); err != nil {
			p.add(f+".Chip", "%v", err)
		} else if !strings.HasPrefix(g.Chip, "/dev/") {
			p.add(f+".Chip", "must be a GPIO character device in /dev, such as /dev/gpiochip0, not %q", clip(g.Chip))
		}
		if g.Line < 0 || g.Line > MaxLine {
			p.add(f+".Line", "must be a line offset from 0 to %d, not %d", MaxLine, g.Line)
		} else {
			key := g.Chip + "\x00" + strconv.Itoa(g.Line)
			if prev, ok := lines[key]; ok {
				p.add(f+".Line", "line %d of %s is already mapped by %s", g.Line, g.Chip, prev)
			} else {
				lines[key] = f
			}
		}
		switch g.Direction {
		case "input":
			if g.Initial {
				p.add(f+".Initial", "is for outputs; this GPIO is an input")
			}
		case "output":
		default:
			p.add(f+".Direction", "must be \"input\" or \"output\", not %q", clip(g.Direction))
		}
		switch g.Bias {
		case "", "pull-up", "pull-down", "disabled":
		default:
			p.add(f+".Bias", "must be \"pull-up\", \"pull-down\" or \"disabled\", not %q", clip(g.Bias))
		}
	}
	isus := map[string]string{}
	useISU := func(field, isu string) {
		if err := checkController(isu); err != nil {
			p.add(field, "%v", err)
			return
		}
		if prev, ok := isus[isu]; ok {
			p.add(field, "%s is already mapped by %s", isu, prev)
			return
		}
		isus[isu] = field
	}
	for i, u := range d.Uart {
		f := "Uart[" + strconv.Itoa(i) + "]"
		useISU(f+".Isu", u.Isu)
		usePath(f+".Device", u.Device)
		if _, ok := baudRates[u.Baud]; !ok {
			p.add(f+".Baud", "%d is not a standard rate (%s)", u.Baud, rateList())
		}
	}
	for i, c := range d.I2cMaster {
		f := "I2cMaster[" + strconv.Itoa(i) + "]"
		useISU(f+".Isu", c.Isu)
		usePath(f+".Device", c.Device)
	}
	for i, s := range d.SpiMaster {
		f := "SpiMaster[" + strconv.Itoa(i) + "]"
		useISU(f+".Isu", s.Isu)
		if len(s.ChipSelects) == 0 || len(s.ChipSelects) > MaxChipSelects {
			p.add(f+".ChipSelects", "must list 1 to %d spidev devices (chip select A, then B), not %d", MaxChipSelects, len(s.ChipSelects))
		}
		for j, dev := range s.ChipSelects {
			usePath(f+".ChipSelects["+strconv.Itoa(j)+"]", dev)
		}
		if s.Mode < 0 || s.Mode > 3 {
			p.add(f+".Mode", "must be an SPI mode from 0 to 3, not %d", s.Mode)
		}
		if s.SpeedHz < 1 || s.SpeedHz > MaxSPISpeedHz {
			p.add(f+".SpeedHz", "must be from 1 to %d, not %d", MaxSPISpeedHz, s.SpeedHz)
		}
	}
	controllers := map[string]string{}
	useController := func(field, name string) {
		if err := checkController(name); err != nil {
			p.add(field, "%v", err)
			return
		}
		if prev, ok := controllers[name]; ok {
			p.add(field, "%s is already mapped by %s", name, prev)
			return
		}
		controllers[name] = field
	}
	for i, a := range d.Adc {
		f := "Adc[" + strconv.Itoa(i) + "]"
		useController(f+".Controller", a.Controller)
		usePath(f+".Device", a.Device)
		if a.Channels < 1 || a.Channels > MaxChannels {
			p.add(f+".Channels", "must be from 1 to %d, not %d", MaxChannels, a.Channels)
		}
		if a.Bits < 1 || a.Bits > MaxADCBits {
			p.add(f+".Bits", "must be from 1 to %d, not %d", MaxADCBits, a.Bits)
		}
		if a.ReferenceMillivolts < 0 || a.ReferenceMillivolts > MaxReferenceMillivolts {
			p.add(f+".ReferenceMillivolts", "must be from 1 to %d, not %d", MaxReferenceMillivolts, a.ReferenceMillivolts)
		}
	}
	for i, w := range d.Pwm {
		f := "Pwm[" + strconv.Itoa(i) + "]"
		useController(f+".Controller", w.Controller)
		usePath(f+".Chip", w.Chip)
		if w.Channels < 1 || w.Channels > MaxChannels {
			p.add(f+".Channels", "must be from 1 to %d, not %d", MaxChannels, w.Channels)
		}
	}
}

// checkPath accepts a clean absolute path.
func checkPath(s string) error {
	switch {
	case s == "":
		return errors.New("must be an absolute path, not empty")
	case len(s) > maxPath:
		return fmt.Errorf("is %d bytes; the limit is %d", len(s), maxPath)
	case !filepath.IsAbs(s):
		return fmt.Errorf("must be an absolute path, not %q", clip(s))
	case filepath.Clean(s) != s:
		return fmt.Errorf("must be a clean path (%q, not %q)", filepath.Clean(s), clip(s))
	case strings.ContainsRune(s, 0):
		return errors.New("must not contain NUL")
	}
	return nil
}

// checkController accepts a manifest's controller name: upper-case letters and digits in
// groups joined by hyphens, starting with a letter ("ISU0", "ADC-CONTROLLER-0").
func checkController(s string) error {
	bad := fmt.Errorf("must be a controller name such as \"ISU0\" or \"ADC-CONTROLLER-0\", not %q", clip(s))
	if s == "" || len(s) > manifest.MaxControllerNameLength || s[0] < 'A' || s[0] > 'Z' || strings.HasSuffix(s, "-") || strings.Contains(s, "--") {
		return bad
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return bad
		}
	}
	return nil
}

func printable(s string) bool {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == 0xfffd {
			return false
		}
	}
	return true
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// Config is a loaded board description directory.
type Config struct {
	// Dir is the description directory.
	Dir string
	// Description is its board.json.
	Description *Description
	// Definitions are its hardware definitions (Dir/hardware).
	Definitions *manifest.HardwareDefinitions
	// Names maps each kind and manifest value ("Gpio 17", "Uart ISU0") to the
	// hardware-definition names that resolve to it, sorted.
	Names map[string][]string
}

// key names a peripheral by its capability and manifest value, as Config.Names does.
func key(capability, value string) string { return capability + " " + value }

// Load reads a description directory: board.json (bounded by MaxDescriptionSize) and the
// hardware definitions, and checks that every peripheral the definitions name is mapped.
func Load(dir string) (*Config, error) {
	if !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("board description directory %q: want an absolute path", dir)
	}
	data, err := readBounded(filepath.Join(dir, DescriptionFile), MaxDescriptionSize)
	if err != nil {
		return nil, err
	}
	d, err := ParseDescription(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	hw := os.DirFS(filepath.Join(dir, DefinitionsDir))
	defs, err := manifest.LoadHardwareDefinitions(hw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, DefinitionsDir), err)
	}
	names, err := definitionNames(hw, defs)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, DefinitionsDir), err)
	}
	if err := d.Covers(names); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	return &Config{Dir: dir, Description: d, Definitions: defs, Names: names}, nil
}

func readBounded(name string, limit int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, limit)
	}
	return data, nil
}

// definitionNames resolves every peripheral the definition files name and groups the names by
// what they resolve to.
func definitionNames(hw fs.FS, defs *manifest.HardwareDefinitions) (map[string][]string, error) {
	out := map[string][]string{}
	for _, p := range defs.Paths() {
		data, err := fs.ReadFile(hw, path.Clean(p))
		if err != nil {
			continue // an import found elsewhere; LoadHardwareDefinitions read it
		}
		def, err := manifest.ParseHardwareDefinition(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		for _, hp := range def.Peripherals {
			if hp.Type == "int" {
				continue
			}
			r, err := defs.Resolve(hp.Name)
			if err != nil {
				return nil, err
			}
			if r.Value == nil {
				continue
			}
			k := key(r.Type, r.Value.String())
			if !slices.Contains(out[k], hp.Name) {
				out[k] = append(out[k], hp.Name)
				sort.Strings(out[k])
			}
		}
	}
	return out, nil
}

// Covers checks that every peripheral in names (Config.Names) is mapped by d.
func (d *Description) Covers(names map[string][]string) error {
	mapped := map[string]bool{}
	for _, g := range d.Gpio {
		mapped[key("Gpio", strconv.Itoa(g.Gpio))] = true
	}
	for _, u := range d.Uart {
		mapped[key("Uart", u.Isu)] = true
	}
	for _, c := range d.I2cMaster {
		mapped[key("I2cMaster", c.Isu)] = true
	}
	for _, s := range d.SpiMaster {
		mapped[key("SpiMaster", s.Isu)] = true
	}
	for _, a := range d.Adc {
		mapped[key("Adc", a.Controller)] = true
	}
	for _, w := range d.Pwm {
		mapped[key("Pwm", w.Controller)] = true
	}
	var missing []string
	for k, ns := range names {
		if !mapped[k] {
			missing = append(missing, fmt.Sprintf("$%s (%s)", ns[0], k))
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return fmt.Errorf("the hardware definitions name peripherals %s does not map: %s", DescriptionFile, strings.Join(missing, ", "))
	}
	return nil
}

// baudRates maps the standard rates to their termios speeds.
var baudRates = map[int]uint32{
	1200: unix.B1200, 2400: unix.B2400, 4800: unix.B4800, 9600: unix.B9600, 19200: unix.B19200,
	38400: unix.B38400, 57600: unix.B57600, 115200: unix.B115200, 230400: unix.B230400,
	460800: unix.B460800, 500000: unix.B500000, 576000: unix.B576000, 921600: unix.B921600,
	1000000: unix.B1000000, 1152000: unix.B1152000, 1500000: unix.B1500000, 2000000: unix.B2000000,
	2500000: unix.B2500000, 3000000: unix.B3000000, 3500000: unix.B3500000, 4000000: unix.B4000000,
}

func rateList() string {
	rates := make([]int, 0, len(baudRates))
	for r := range baudRates {
		rates = append(rates, r)
	}
	sort.Ints(rates)
	s := make([]string, len(rates))
	for i, r := range rates {
		s[i] = strconv.Itoa(r)
	}
	return strings.Join(s, ", ")
}
