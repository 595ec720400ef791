package manifest

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

func loadTestHardware(t *testing.T) *HardwareDefinitions {
	t.Helper()
	h, err := LoadHardwareDefinitions(os.DirFS("testdata/hardware"))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestLoadHardwareDefinitions(t *testing.T) {
	h := loadTestHardware(t)
	if got := h.Paths(); !slices.Equal(got, []string{"mt3620.json", "mt3620_rdb.json", "sample_appliance.json"}) {
		t.Errorf("Paths = %v", got)
	}
	r, err := h.Resolve("$SAMPLE_LED")
	if err != nil {
		t.Fatal(err)
	}
	want := &ResolvedPeripheral{Type: "Gpio", Value: &Peripheral{Number: 8}, File: "sample_appliance.json",
		Chain: []string{"SAMPLE_LED", "MT3620_RDB_LED1_RED", "MT3620_GPIO8"}}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("Resolve($SAMPLE_LED) = %+v, want %+v", r, want)
	}
	r, err = h.Resolve("SAMPLE_POTENTIOMETER_ADC_CHANNEL")
	if err != nil {
		t.Fatal(err)
	}
	if r.Type != "int" || r.Value != nil || len(r.Chain) != 2 {
		t.Errorf("Resolve(int) = %+v", r)
	}
	if r, err := h.Resolve("MT3620_ISU2_I2C"); err != nil || *r.Value != (Peripheral{Name: "ISU2"}) {
		t.Errorf("Resolve(MT3620_ISU2_I2C) = %+v, %v", r, err)
	}
	if _, err := h.Resolve("$NOPE"); err == nil || !strings.Contains(err.Error(), "$NOPE is not defined") {
		t.Errorf("Resolve($NOPE) = %v", err)
	}
}

func TestResolveManifest(t *testing.T) {
	h := loadTestHardware(t)
	m, err := ReadFile("testdata/every_capability.json")
	if err != nil {
		t.Fatal(err)
	}
	if !m.HasReferences() {
		t.Fatal("HasReferences = false")
	}
	r, err := m.Resolve(h)
	if err != nil {
		t.Fatal(err)
	}
	if r.HasReferences() {
		t.Error("resolved manifest still has references")
	}
	c := r.Capabilities
	if !reflect.DeepEqual(c.Gpio, []Peripheral{{Number: 0}, {Number: 4}, {Number: 8}}) ||
		!reflect.DeepEqual(c.I2cMaster, []Peripheral{{Name: "ISU2"}}) ||
		!reflect.DeepEqual(c.Adc, []Peripheral{{Name: "ADC-CONTROLLER-0"}}) {
		t.Errorf("resolved capabilities: %+v", c)
	}
	if m.Capabilities.Gpio[2].Name != "$SAMPLE_LED" {
		t.Error("Resolve changed the original manifest")
	}

	for _, tc := range []struct {
		name, caps, path, msg string
	}{
		{"undefined", `"Gpio":["$NOPE"]`, "Capabilities.Gpio[0]", "$NOPE is not defined"},
		{"wrong type", `"Uart":["$SAMPLE_LED"]`, "Capabilities.Uart[0]", "is a Gpio peripheral (SAMPLE_LED -> MT3620_RDB_LED1_RED -> MT3620_GPIO8), not a Uart"},
		{"int", `"Gpio":["$SAMPLE_POTENTIOMETER_ADC_CHANNEL"]`, "Capabilities.Gpio[0]", "is a int peripheral"},
		{"same pin twice", `"Gpio":[8,"$SAMPLE_LED"]`, "Capabilities.Gpio[1]", "repeats Capabilities.Gpio[0] (8)"},
		{"two names, one pin", `"Gpio":["$SAMPLE_LED","$MT3620_RDB_LED1_RED"]`, "Capabilities.Gpio[1]", "repeats"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Parse([]byte(caps(tc.caps)))
			if err != nil {
				t.Fatal(err)
			}
			_, err = m.Resolve(h)
			if err == nil || !strings.Contains(err.Error(), tc.path+": ") || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("Resolve = %v; want %s: ...%s", err, tc.path, tc.msg)
			}
		})
	}
	m, _ = Parse([]byte(caps(`"Gpio":["$SAMPLE_LED"]`)))
	if _, err := m.Resolve(nil); err == nil || !strings.Contains(err.Error(), "give the hardware definitions") {
		t.Errorf("Resolve(nil) = %v", err)
	}
}

// hw builds a hardware definition document with the given imports and peripherals.
func hw(imports []string, peripherals ...string) *fstest.MapFile {
	var imps []string
	for _, i := range imports {
		imps = append(imps, `{"Path":"`+i+`"}`)
	}
	return &fstest.MapFile{Mode: 0o644, Data: []byte(`{"Metadata":{"Type":"Azure Sphere Hardware Definition","Version":1},` +
		`"Imports":[` + strings.Join(imps, ",") + `],"Peripherals":[` + strings.Join(peripherals, ",") + `]}`)}
}

const chip = `{"Name":"GPIO8","Type":"Gpio","MainCoreHeaderValue":"(8)","AppManifestValue":8}`

func TestLoadHardwareDefinitionsRejects(t *testing.T) {
	deep := fstest.MapFS{}
	for i := 0; i <= MaxImportDepth+1; i++ {
		deep[fmt.Sprintf("d%d.json", i)] = hw([]string{fmt.Sprintf("d%d.json", i+1)})
	}
	deep[fmt.Sprintf("d%d.json", MaxImportDepth+2)] = hw(nil, chip)
	for _, tc := range []struct {
		name string
		fsys fstest.MapFS
		msg  string
	}{
		{"no files", fstest.MapFS{"x.txt": {Data: []byte("x")}}, "no hardware definition"},
		{"import cycle", fstest.MapFS{"a.json": hw([]string{"b.json"}), "b.json": hw([]string{"a.json"})}, "cycle: a.json -> b.json -> a.json"},
		{"self import", fstest.MapFS{"a.json": hw([]string{"a.json"})}, "cycle"},
		{"imports too deep", deep, "nest deeper than"},
		{"missing import", fstest.MapFS{"a.json": hw([]string{"chip.json"})}, "a.json imports chip.json: chip.json: not found"},
		{"import escapes", fstest.MapFS{"a.json": hw([]string{"../chip.json"})}, `Imports[0].Path: must be a relative path`},
		{"import absolute", fstest.MapFS{"a.json": hw([]string{"/etc/chip.json"})}, `Imports[0].Path: must be a relative path`},
		{"import not json", fstest.MapFS{"a.json": hw([]string{"chip.h"})}, `must name a .json file`},
		{"import repeated", fstest.MapFS{"a.json": hw([]string{"c.json", "c.json"}), "c.json": hw(nil, chip)}, `Imports[1].Path: repeats Imports[0]`},
		{"mapping undefined", fstest.MapFS{"a.json": hw(nil, `{"Name":"LED","Type":"Gpio","Mapping":"GPIO9"}`)}, "a.json:Peripherals[0].Mapping: LED maps to GPIO9, which is not defined in a.json or its imports"},
		{"mapping not imported", fstest.MapFS{"a.json": hw(nil, `{"Name":"LED","Type":"Gpio","Mapping":"GPIO8"}`), "chip.json": hw(nil, chip)}, "not defined in a.json or its imports"},
		{"mapping type", fstest.MapFS{"a.json": hw([]string{"chip.json"}, `{"Name":"LED","Type":"Uart","Mapping":"GPIO8"}`), "chip.json": hw(nil, chip)}, "LED (Uart) maps to GPIO8, which is a Gpio"},
		{"mapping cycle", fstest.MapFS{"a.json": hw(nil, `{"Name":"A","Type":"Gpio","Mapping":"B"}`, `{"Name":"B","Type":"Gpio","Mapping":"A"}`)}, "mappings form a cycle: A -> B -> A"},
		{"mapping self", fstest.MapFS{"a.json": hw(nil, `{"Name":"A","Type":"Gpio","Mapping":"A"}`)}, "maps A to itself"},
		{"name twice in scope", fstest.MapFS{"a.json": hw([]string{"chip.json"}, chip), "chip.json": hw(nil, chip)}, "GPIO8 is defined in both a.json and chip.json"},
		{"name twice in file", fstest.MapFS{"a.json": hw(nil, chip, chip)}, "Peripherals[1].Name: repeats the name of Peripherals[0]: GPIO8"},
		{"mapping and value", fstest.MapFS{"a.json": hw(nil, `{"Name":"A","Type":"Gpio","Mapping":"B","AppManifestValue":3}`)}, "has both a Mapping and values"},
		{"neither", fstest.MapFS{"a.json": hw(nil, `{"Name":"A","Type":"Gpio"}`)}, "needs a Mapping or values"},
		{"unknown type", fstest.MapFS{"a.json": hw(nil, `{"Name":"A","Type":"Camera","AppManifestValue":3}`)}, `Peripherals[0].Type: must be one of`},
		{"unknown key", fstest.MapFS{"a.json": hw(nil, `{"Name":"A","Type":"Gpio","AppManifestValue":3,"Pin":4}`)}, `Peripherals[0].Pin: unknown field`},
		{"peripheral not object", fstest.MapFS{"a.json": hw(nil, `"GPIO8"`)}, `Peripherals[0]: must be an object`},
		{"no name", fstest.MapFS{"a.json": hw(nil, `{"Type":"Gpio","AppManifestValue":3}`)}, `Peripherals[0].Name: is required`},
		{"bad name", fstest.MapFS{"a.json": hw(nil, `{"Name":"MY-LED","Type":"Gpio","AppManifestValue":3}`)}, `Peripherals[0].Name: must be a C identifier`},
		{"reference as value", fstest.MapFS{"a.json": hw(nil, `{"Name":"A","Type":"Gpio","AppManifestValue":"$B"}`)}, `Peripherals[0].AppManifestValue: must be a value, not the name $B`},
		{"gpio value string", fstest.MapFS{"a.json": hw(nil, `{"Name":"A","Type":"Gpio","AppManifestValue":"ISU0"}`)}, `Peripherals[0].AppManifestValue: must be a GPIO number`},
		{"uart value number", fstest.MapFS{"a.json": hw(nil, `{"Name":"A","Type":"Uart","AppManifestValue":0}`)}, `Peripherals[0].AppManifestValue: must be a controller name`},
		{"empty header value", fstest.MapFS{"a.json": hw(nil, `{"Name":"A","Type":"int","MainCoreHeaderValue":""}`)}, `Peripherals[0].MainCoreHeaderValue: must not be empty`},
		{"multi-line comment", fstest.MapFS{"a.json": hw(nil, `{"Name":"A","Type":"int","MainCoreHeaderValue":"(1)","Comment":"a\n#include <x>"}`)}, `Peripherals[0].Comment: must be one line`},
		{"wrong metadata type", fstest.MapFS{"a.json": {Data: []byte(`{"Metadata":{"Type":"Board","Version":1},"Peripherals":[]}`)}}, `Metadata.Type: must be "Azure Sphere Hardware Definition"`},
		{"wrong version", fstest.MapFS{"a.json": {Data: []byte(`{"Metadata":{"Type":"Azure Sphere Hardware Definition","Version":2},"Peripherals":[]}`)}}, `Metadata.Version: must be 1, not 2`},
		{"no metadata", fstest.MapFS{"a.json": {Data: []byte(`{"Peripherals":[]}`)}}, `Metadata: is required`},
		{"no peripherals", fstest.MapFS{"a.json": {Data: []byte(`{"Metadata":{"Type":"Azure Sphere Hardware Definition","Version":1}}`)}}, `Peripherals: is required`},
		{"unknown top-level key", fstest.MapFS{"a.json": {Data: []byte(`{"Metadata":{"Type":"Azure Sphere Hardware Definition","Version":1},"Peripherals":[],"Pins":[]}`)}}, `Pins: unknown field`},
		{"malformed", fstest.MapFS{"a.json": {Data: []byte(`{"Metadata":`)}}, `a.json: malformed JSON`},
		{"too large", fstest.MapFS{"a.json": {Data: []byte(`{"Description":{"Name":"` + strings.Repeat("x", MaxHardwareDefinitionSize) + `"}}`)}}, `larger than`},
		{"too many headers", fstest.MapFS{"a.json": {Data: []byte(`{"Metadata":{"Type":"Azure Sphere Hardware Definition","Version":1},"Description":{"MainCoreHeaderFileTopContent":[` + strings.TrimSuffix(strings.Repeat(`"x",`, MaxHeaderLines+1), ",") + `]},"Peripherals":[]}`)}}, `MainCoreHeaderFileTopContent: has 257 lines`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := LoadHardwareDefinitions(tc.fsys)
			if err == nil {
				t.Fatalf("accepted: %v", h.Paths())
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error = %v\nwant it to contain %q", err, tc.msg)
			}
		})
	}
}

func TestHardwareDefinitionsSearchPath(t *testing.T) {
	first := fstest.MapFS{"board.json": hw([]string{"chip.json"}, `{"Name":"LED","Type":"Gpio","Mapping":"GPIO8"}`)}
	second := fstest.MapFS{
		"chip.json":  hw(nil, chip),
		"board.json": hw(nil, `{"Name":"OTHER","Type":"Gpio","AppManifestValue":1}`), // hidden by first
	}
	h, err := LoadHardwareDefinitions(first, second)
	if err != nil {
		t.Fatal(err)
	}
	r, err := h.Resolve("$LED")
	if err != nil || r.Value.Number != 8 {
		t.Fatalf("Resolve($LED) = %+v, %v", r, err)
	}
	if _, err := h.Resolve("OTHER"); err == nil {
		t.Error("a file hidden by an earlier directory was loaded")
	}
	// The same name in two unrelated files is ambiguous from a manifest.
	h, err = LoadHardwareDefinitions(fstest.MapFS{"a.json": hw(nil, chip), "b.json": hw(nil, chip)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Resolve("GPIO8"); err == nil || !strings.Contains(err.Error(), "more than one hardware definition (a.json, b.json)") {
		t.Errorf("Resolve(ambiguous) = %v", err)
	}
	// Diamond imports are fine: one definition reached two ways.
	h, err = LoadHardwareDefinitions(fstest.MapFS{
		"top.json":   hw([]string{"left.json", "right.json"}, `{"Name":"LED","Type":"Gpio","Mapping":"L"}`),
		"left.json":  hw([]string{"chip.json"}, `{"Name":"L","Type":"Gpio","Mapping":"GPIO8"}`),
		"right.json": hw([]string{"chip.json"}, `{"Name":"R","Type":"Gpio","Mapping":"GPIO8"}`),
		"chip.json":  hw(nil, chip),
	})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := h.Resolve("LED"); err != nil || r.Value.Number != 8 || len(r.Chain) != 3 {
		t.Errorf("Resolve(LED) = %+v, %v", r, err)
	}
}

// FuzzHardwareDefinition feeds an arbitrary file, beside the test definitions it may import, to
// the loader and resolves every name it defines: nothing may panic or loop.
func FuzzHardwareDefinition(f *testing.F) {
	files, _ := filepath.Glob("testdata/hardware/*.json")
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(hw([]string{"fuzz.json"}, `{"Name":"A","Type":"Gpio","Mapping":"A"}`).Data)
	f.Add(hw([]string{"sample_appliance.json"}, `{"Name":"X","Type":"Gpio","Mapping":"SAMPLE_LED"}`).Data)
	base := fstest.MapFS{}
	for _, file := range files {
		b, _ := os.ReadFile(file)
		base[filepath.Base(file)] = &fstest.MapFile{Data: b, Mode: 0o644}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, perr := ParseHardwareDefinition(data)
		if perr != nil {
			if _, ok := perr.(*Error); !ok {
				t.Fatalf("error is %T: %v", perr, perr)
			}
		}
		fsys := fstest.MapFS{"fuzz.json": {Data: data, Mode: 0o644}}
		for k, v := range base {
			fsys[k] = v
		}
		h, err := LoadHardwareDefinitions(fsys)
		if err != nil {
			return
		}
		if perr != nil {
			t.Fatalf("the loader accepted a file the parser rejects: %v", perr)
		}
		for _, p := range d.Peripherals {
			if r, err := h.Resolve(p.Name); err == nil && len(r.Chain) > MaxMappingDepth+1 {
				t.Fatalf("chain longer than the bound: %v", r.Chain)
			}
		}
	})
}
