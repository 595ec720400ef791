package linux

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// example is the Raspberry Pi 4 description shipped under hardware/.
var example = filepath.Join("..", "..", "..", "hardware", "raspberrypi4")

func TestParseExample(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(example, DescriptionFile))
	if err != nil {
		t.Fatal(err)
	}
	d, err := ParseDescription(data)
	if err != nil {
		t.Fatal(err)
	}
	want := &Description{
		Metadata: Metadata{Type: DescriptionType, Version: 1},
		Name:     "Raspberry Pi 4 Model B",
		Gpio: []GPIO{
			{Gpio: 17, Chip: "/dev/gpiochip0", Line: 17, Direction: "output"},
			{Gpio: 27, Chip: "/dev/gpiochip0", Line: 27, Direction: "input", ActiveLow: true, Bias: "pull-up"},
		},
		Uart:      []UART{{Isu: "ISU0", Device: "/dev/ttyAMA0", Baud: 115200}},
		I2cMaster: []I2C{{Isu: "ISU1", Device: "/dev/i2c-1"}},
		SpiMaster: []SPI{{Isu: "ISU2", ChipSelects: []string{"/dev/spidev0.0", "/dev/spidev0.1"}, Mode: 0, SpeedHz: 1000000}},
		Pwm:       []PWM{{Controller: "PWM-CONTROLLER-0", Chip: "/sys/class/pwm/pwmchip0", Channels: 2}},
	}
	if !reflect.DeepEqual(d, want) {
		t.Fatalf("parsed\n%+v\nwant\n%+v", d, want)
	}
}

// TestLoadExample: the example's definitions load, every name they give is mapped, and the
// names map back to the values the description backs.
func TestLoadExample(t *testing.T) {
	dir, err := filepath.Abs(example)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"$LED_RED": "17", "$BUTTON_A": "27", "$UART0": "ISU0", "$I2C1": "ISU1", "$SPI0": "ISU2", "$PWM_CONTROLLER": "PWM-CONTROLLER-0",
	} {
		r, err := cfg.Definitions.Resolve(name)
		if err != nil || r.Value == nil || r.Value.String() != want {
			t.Errorf("%s = %v (%v), want %s", name, r, err, want)
		}
	}
	want := map[string][]string{
		"Gpio 17": {"LED_RED"}, "Gpio 27": {"BUTTON_A"}, "Uart ISU0": {"UART0"}, "I2cMaster ISU1": {"I2C1"},
		"SpiMaster ISU2": {"SPI0"}, "Pwm PWM-CONTROLLER-0": {"PWM_CONTROLLER"},
	}
	if !reflect.DeepEqual(cfg.Names, want) {
		t.Fatalf("names %v, want %v", cfg.Names, want)
	}
}

const minimal = `{"Metadata":{"Type":"Rampart Linux Board","Version":1},"Name":"t"`

func TestParseRejects(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		want      []string // each must appear in the error
	}{
		{"not json", `{`, []string{"board.json: "}},
		{"unknown top-level field", minimal + `,"Gpios":[]}`, []string{"Gpios: unknown field"}},
		{"unknown entry field", minimal + `,"Gpio":[{"Gpio":1,"Chip":"/dev/gpiochip0","Line":1,"Direction":"input","Pull":"up"}]}`, []string{"Gpio[0].Pull: unknown field"}},
		{"missing metadata", `{"Name":"t"}`, []string{"Metadata: missing"}},
		{"wrong type", `{"Metadata":{"Type":"Rampart Linux Board","Version":2},"Name":"t"}`, []string{"Metadata.Version: must be 1, not 2"}},
		{"wrong document", `{"Metadata":{"Type":"Azure Sphere Hardware Definition","Version":1},"Name":"t"}`, []string{`Metadata.Type: must be "Rampart Linux Board"`}},
		{"no name", `{"Metadata":{"Type":"Rampart Linux Board","Version":1}}`, []string{"Name: missing"}},
		{"missing fields", minimal + `,"Gpio":[{"Gpio":1}]}`, []string{"Gpio[0].Chip: missing", "Gpio[0].Line: missing", "Gpio[0].Direction: missing"}},
		{"wrong field type", minimal + `,"Gpio":[{"Gpio":"17","Chip":"/dev/gpiochip0","Line":1,"Direction":"input"}]}`, []string{"Gpio[0].Gpio: wrong type"}},
		{"gpio out of range", minimal + `,"Gpio":[{"Gpio":1024,"Chip":"/dev/gpiochip0","Line":1,"Direction":"input"}]}`, []string{"Gpio[0].Gpio: must be a GPIO number from 0 to 1023, not 1024"}},
		{"negative gpio", minimal + `,"Gpio":[{"Gpio":-1,"Chip":"/dev/gpiochip0","Line":1,"Direction":"input"}]}`, []string{"Gpio[0].Gpio: must be a GPIO number"}},
		{"duplicate gpio", minimal + `,"Gpio":[{"Gpio":1,"Chip":"/dev/gpiochip0","Line":1,"Direction":"input"},{"Gpio":1,"Chip":"/dev/gpiochip0","Line":2,"Direction":"input"}]}`, []string{"Gpio[1].Gpio: GPIO 1 is already mapped by Gpio[0]"}},
		{"duplicate line", minimal + `,"Gpio":[{"Gpio":1,"Chip":"/dev/gpiochip0","Line":1,"Direction":"input"},{"Gpio":2,"Chip":"/dev/gpiochip0","Line":1,"Direction":"input"}]}`, []string{"Gpio[1].Line: line 1 of /dev/gpiochip0 is already mapped by Gpio[0]"}},
		{"relative chip", minimal + `,"Gpio":[{"Gpio":1,"Chip":"gpiochip0","Line":1,"Direction":"input"}]}`, []string{`Gpio[0].Chip: must be an absolute path, not "gpiochip0"`}},
		{"chip outside /dev", minimal + `,"Gpio":[{"Gpio":1,"Chip":"/sys/class/gpio/gpiochip0","Line":1,"Direction":"input"}]}`, []string{"Gpio[0].Chip: must be a GPIO character device in /dev"}},
		{"unclean path", minimal + `,"I2cMaster":[{"Isu":"ISU1","Device":"/dev/../dev/i2c-1"}]}`, []string{"I2cMaster[0].Device: must be a clean path"}},
		{"bad direction", minimal + `,"Gpio":[{"Gpio":1,"Chip":"/dev/gpiochip0","Line":1,"Direction":"in"}]}`, []string{`Gpio[0].Direction: must be "input" or "output", not "in"`}},
		{"initial on an input", minimal + `,"Gpio":[{"Gpio":1,"Chip":"/dev/gpiochip0","Line":1,"Direction":"input","Initial":true}]}`, []string{"Gpio[0].Initial: is for outputs"}},
		{"bad bias", minimal + `,"Gpio":[{"Gpio":1,"Chip":"/dev/gpiochip0","Line":1,"Direction":"input","Bias":"up"}]}`, []string{"Gpio[0].Bias: must be"}},
		{"bad baud", minimal + `,"Uart":[{"Isu":"ISU0","Device":"/dev/ttyS0","Baud":12345}]}`, []string{"Uart[0].Baud: 12345 is not a standard rate"}},
		{"bad isu", minimal + `,"Uart":[{"Isu":"isu0","Device":"/dev/ttyS0","Baud":9600}]}`, []string{`Uart[0].Isu: must be a controller name such as "ISU0"`}},
		{"isu twice", minimal + `,"Uart":[{"Isu":"ISU0","Device":"/dev/ttyS0","Baud":9600}],"I2cMaster":[{"Isu":"ISU0","Device":"/dev/i2c-1"}]}`, []string{"I2cMaster[0].Isu: ISU0 is already mapped by Uart[0].Isu"}},
		{"device twice", minimal + `,"Uart":[{"Isu":"ISU0","Device":"/dev/ttyS0","Baud":9600},{"Isu":"ISU1","Device":"/dev/ttyS0","Baud":9600}]}`, []string{"Uart[1].Device: /dev/ttyS0 is already used by Uart[0].Device"}},
		{"spi without chip selects", minimal + `,"SpiMaster":[{"Isu":"ISU2","ChipSelects":[],"Mode":0,"SpeedHz":1000}]}`, []string{"SpiMaster[0].ChipSelects: must list 1 to 2 spidev devices"}},
		{"spi three chip selects", minimal + `,"SpiMaster":[{"Isu":"ISU2","ChipSelects":["/dev/a","/dev/b","/dev/c"],"Mode":0,"SpeedHz":1000}]}`, []string{"SpiMaster[0].ChipSelects: must list 1 to 2"}},
		{"spi mode", minimal + `,"SpiMaster":[{"Isu":"ISU2","ChipSelects":["/dev/spidev0.0"],"Mode":4,"SpeedHz":1000}]}`, []string{"SpiMaster[0].Mode: must be an SPI mode from 0 to 3, not 4"}},
		{"spi speed", minimal + `,"SpiMaster":[{"Isu":"ISU2","ChipSelects":["/dev/spidev0.0"],"Mode":0,"SpeedHz":0}]}`, []string{"SpiMaster[0].SpeedHz: must be from 1"}},
		{"adc", minimal + `,"Adc":[{"Controller":"ADC-CONTROLLER-0","Device":"/sys/bus/iio/devices/iio:device0","Channels":0,"Bits":33}]}`, []string{"Adc[0].Channels: must be from 1 to 64, not 0", "Adc[0].Bits: must be from 1 to 32, not 33"}},
		{"pwm twice", minimal + `,"Pwm":[{"Controller":"PWM-CONTROLLER-0","Chip":"/sys/class/pwm/pwmchip0","Channels":2},{"Controller":"PWM-CONTROLLER-0","Chip":"/sys/class/pwm/pwmchip1","Channels":2}]}`, []string{"Pwm[1].Controller: PWM-CONTROLLER-0 is already mapped by Pwm[0].Controller"}},
		{"entry not an object", minimal + `,"Uart":[3]}`, []string{"Uart[0]: must be an object"}},
		{"too large", minimal + `,"Name":"` + strings.Repeat("x", MaxDescriptionSize) + `"}`, []string{"the limit is"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseDescription([]byte(tc.doc))
			var de *DescriptionError
			if !errors.As(err, &de) {
				t.Fatalf("got %v, want a *DescriptionError", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// TestParseReportsEveryProblem: problems in different entries are reported together.
func TestParseReportsEveryProblem(t *testing.T) {
	_, err := ParseDescription([]byte(minimal + `,"Gpio":[{"Gpio":2000,"Chip":"x","Line":1,"Direction":"input"}],"Uart":[{"Isu":"ISU0","Device":"/dev/ttyS0","Baud":1}]}`))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, w := range []string{"Gpio[0].Gpio", "Gpio[0].Chip", "Uart[0].Baud"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%v: does not name %s", err, w)
		}
	}
}

// writeBoard writes a description directory with board.json doc and one hardware definition
// file defs, and returns it.
func writeBoard(t *testing.T, doc, defs string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, DefinitionsDir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, DescriptionFile), []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, DefinitionsDir, "board.json"), []byte(defs), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// definitions returns a hardware definition file with peripherals, each a JSON object.
func definitions(peripherals ...string) string {
	return `{"Metadata":{"Type":"Azure Sphere Hardware Definition","Version":1},"Peripherals":[` + strings.Join(peripherals, ",") + `]}`
}

func TestLoadRejectsUnmappedNames(t *testing.T) {
	dir := writeBoard(t, minimal+`,"Gpio":[{"Gpio":5,"Chip":"/dev/gpiochip0","Line":5,"Direction":"output"}]}`,
		definitions(`{"Name":"LED","Type":"Gpio","AppManifestValue":5}`, `{"Name":"OTHER_LED","Type":"Gpio","Mapping":"LED"}`,
			`{"Name":"BUTTON","Type":"Gpio","AppManifestValue":6}`, `{"Name":"SERIAL","Type":"Uart","AppManifestValue":"ISU0"}`,
			`{"Name":"ADDRESS","Type":"int","MainCoreHeaderValue":"(0x48)"}`))
	_, err := Load(dir)
	if err == nil {
		t.Fatal("loaded a description that leaves GPIO 6 and ISU0 unmapped")
	}
	for _, w := range []string{"$BUTTON (Gpio 6)", "$SERIAL (Uart ISU0)"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%v: does not name %s", err, w)
		}
	}
	if strings.Contains(err.Error(), "LED") {
		t.Errorf("%v: names a mapped GPIO", err)
	}
	if _, err := Load("relative/dir"); err == nil || !strings.Contains(err.Error(), "absolute") {
		t.Fatalf("relative directory: %v", err)
	}
	if _, err := Load(t.TempDir()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("no board.json: %v", err)
	}
}

func FuzzParseDescription(f *testing.F) {
	if data, err := os.ReadFile(filepath.Join(example, DescriptionFile)); err == nil {
		f.Add(data)
	}
	f.Add([]byte(minimal + `}`))
	f.Add([]byte(minimal + `,"Adc":[{"Controller":"ADC-CONTROLLER-0","Device":"/sys/bus/iio/devices/iio:device0","Channels":8,"Bits":12,"ReferenceMillivolts":3300}]}`))
	f.Add([]byte(minimal + `,"Gpio":[{"Gpio":1,"Chip":"/dev/gpiochip0","Line":1,"Direction":"input","Bias":"pull-down"},{"Gpio":1}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := ParseDescription(data)
		if err != nil {
			if d != nil {
				t.Fatal("a description and an error")
			}
			if err.Error() == "" {
				t.Fatal("an empty error")
			}
			return
		}
		// What is accepted round-trips.
		again, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		d2, err := ParseDescription(again)
		if err != nil {
			t.Fatalf("re-parsing %s: %v", again, err)
		}
		if !reflect.DeepEqual(d, d2) {
			t.Fatalf("round trip changed the description:\n%+v\n%+v", d, d2)
		}
	})
}
