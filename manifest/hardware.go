package manifest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"sort"
	"strings"
)

// Hardware definition files: Azure Sphere's JSON files that name a board's peripherals, so that a
// manifest can say "$SAMPLE_LED" rather than GPIO 8. A file may import others; a peripheral
// either maps to another peripheral by name (Mapping) or gives its values (AppManifestValue, the
// value a manifest uses, and MainCoreHeaderValue, the value in the generated C header).

// HardwareDefinitionType is the Metadata.Type every hardware definition file carries.
const HardwareDefinitionType = "Azure Sphere Hardware Definition"

// Bounds on hardware definitions.
const (
	// MaxHardwareDefinitionSize bounds one hardware definition file, in bytes.
	MaxHardwareDefinitionSize = 1 << 20
	// MaxHardwareDefinitionFiles bounds the files a set may load, imports included.
	MaxHardwareDefinitionFiles = 64
	// MaxHardwarePeripherals bounds the peripherals of one file.
	MaxHardwarePeripherals = 4096
	// MaxImports bounds the imports of one file.
	MaxImports = 16
	// MaxImportDepth bounds how deep imports nest.
	MaxImportDepth = 8
	// MaxMappingDepth bounds a chain of Mappings from a name to its values.
	MaxMappingDepth = 16
	// MaxHeaderLines bounds Description.MainCoreHeaderFileTopContent.
	MaxHeaderLines = 256
	// maxTextLength bounds one comment, header line or header value, in bytes.
	maxTextLength = 4096
)

// Peripheral types in hardware definitions: the peripheral capabilities, and "int" for values
// that are not peripherals (channels, chip selects) and have no meaning in a manifest.
var hardwareTypes = []string{"Gpio", "Pwm", "Adc", "I2cMaster", "SpiMaster", "Uart", "int"}

// HardwareDefinition is one parsed, valid hardware definition file.
type HardwareDefinition struct {
	Metadata    HardwareMetadata     `json:"Metadata"`
	Description HardwareDescription  `json:"Description"`
	Imports     []HardwareImport     `json:"Imports,omitempty"`
	Peripherals []HardwarePeripheral `json:"Peripherals"`
}

// HardwareMetadata identifies the document: Type is HardwareDefinitionType, Version is 1.
type HardwareMetadata struct {
	Type    string `json:"Type"`
	Version int    `json:"Version"`
}

// HardwareDescription describes the hardware, and the top of the C header generated from it.
type HardwareDescription struct {
	Name                         string   `json:"Name,omitempty"`
	MainCoreHeaderFileTopContent []string `json:"MainCoreHeaderFileTopContent,omitempty"`
}

// HardwareImport names another hardware definition file, by its path relative to the
// directories searched.
type HardwareImport struct {
	Path string `json:"Path"`
}

// HardwarePeripheral is one named peripheral. Either Mapping names another peripheral of the
// same Type, or MainCoreHeaderValue and AppManifestValue (at least one) give its values.
type HardwarePeripheral struct {
	Name                string      `json:"Name"`
	Type                string      `json:"Type"`
	Mapping             string      `json:"Mapping,omitempty"`
	MainCoreHeaderValue string      `json:"MainCoreHeaderValue,omitempty"`
	AppManifestValue    *Peripheral `json:"AppManifestValue,omitempty"`
	Comment             string      `json:"Comment,omitempty"`
}

type wireHardwareDefinition struct {
	Metadata    *wireHardwareMetadata    `json:"Metadata"`
	Description *wireHardwareDescription `json:"Description"`
	Imports     *[]json.RawMessage       `json:"Imports"`
	Peripherals *[]json.RawMessage       `json:"Peripherals"`
}

type wireHardwareMetadata struct {
	Type    *string `json:"Type"`
	Version *int    `json:"Version"`
}

type wireHardwareDescription struct {
	Name                         *string            `json:"Name"`
	MainCoreHeaderFileTopContent *[]json.RawMessage `json:"MainCoreHeaderFileTopContent"`
}

type wireHardwareImport struct {
	Path *string `json:"Path"`
}

type wireHardwarePeripheral struct {
	Name                *string         `json:"Name"`
	Type                *string         `json:"Type"`
	Mapping             *string         `json:"Mapping"`
	MainCoreHeaderValue *string         `json:"MainCoreHeaderValue"`
	AppManifestValue    json.RawMessage `json:"AppManifestValue"`
	Comment             *string         `json:"Comment"`
}

// ParseHardwareDefinition parses and validates one hardware definition file on its own; that
// its imports exist and its Mappings resolve is checked by LoadHardwareDefinitions. On error it
// returns an *Error that lists every problem.
func ParseHardwareDefinition(data []byte) (*HardwareDefinition, error) {
	if len(data) > MaxHardwareDefinitionSize {
		return nil, &Error{Problems: []Problem{{Message: fmt.Sprintf("hardware definition is %d bytes; the limit is %d", len(data), MaxHardwareDefinitionSize)}}}
	}
	var w wireHardwareDefinition
	var c checker
	c.decode("", data, &w)
	d := &HardwareDefinition{}
	if c.required("Metadata", w.Metadata != nil) {
		if c.required("Metadata.Type", w.Metadata.Type != nil) {
			d.Metadata.Type = *w.Metadata.Type
			if d.Metadata.Type != HardwareDefinitionType {
				c.add("Metadata.Type", "must be %q, not %q", HardwareDefinitionType, truncate(d.Metadata.Type))
			}
		}
		if c.required("Metadata.Version", w.Metadata.Version != nil) {
			d.Metadata.Version = *w.Metadata.Version
			if d.Metadata.Version != 1 {
				c.add("Metadata.Version", "must be 1, not %d", d.Metadata.Version)
			}
		}
	}
	if w.Description != nil {
		if w.Description.Name != nil {
			d.Description.Name = *w.Description.Name
			c.text("Description.Name", d.Description.Name, MaxNameLength)
		}
		if l := w.Description.MainCoreHeaderFileTopContent; l != nil {
			const p = "Description.MainCoreHeaderFileTopContent"
			if len(*l) > MaxHeaderLines {
				c.add(p, "has %d lines; the limit is %d", len(*l), MaxHeaderLines)
			} else {
				for i, raw := range *l {
					if s, ok := c.str(index(p, i), raw); ok {
						c.line(index(p, i), s)
						d.Description.MainCoreHeaderFileTopContent = append(d.Description.MainCoreHeaderFileTopContent, s)
					}
				}
			}
		}
	}
	if w.Imports != nil {
		if len(*w.Imports) > MaxImports {
			c.add("Imports", "has %d imports; the limit is %d", len(*w.Imports), MaxImports)
		} else {
			seen := map[string]int{}
			for i, raw := range *w.Imports {
				p := index("Imports", i)
				var wi wireHardwareImport
				if !c.decode(p, raw, &wi) || !c.required(p+".Path", wi.Path != nil) {
					continue
				}
				if err := checkImportPath(*wi.Path); err != nil {
					c.add(p+".Path", "%v", err)
					continue
				}
				if j, dup := seen[*wi.Path]; dup {
					c.add(p+".Path", "repeats %s", index("Imports", j))
					continue
				}
				seen[*wi.Path] = i
				d.Imports = append(d.Imports, HardwareImport{Path: *wi.Path})
			}
		}
	}
	if c.required("Peripherals", w.Peripherals != nil) {
		if len(*w.Peripherals) > MaxHardwarePeripherals {
			c.add("Peripherals", "has %d peripherals; the limit is %d", len(*w.Peripherals), MaxHardwarePeripherals)
		} else {
			names := map[string]int{}
			for i, raw := range *w.Peripherals {
				p := index("Peripherals", i)
				hp, ok := c.hardwarePeripheral(p, raw)
				if !ok {
					continue
				}
				if j, dup := names[hp.Name]; dup {
					c.add(p+".Name", "repeats the name of %s: %s", index("Peripherals", j), hp.Name)
					continue
				}
				names[hp.Name] = i
				d.Peripherals = append(d.Peripherals, hp)
			}
		}
	}
	if err := c.err(); err != nil {
		return nil, err
	}
	return d, nil
}

// hardwarePeripheral validates one entry of Peripherals.
func (c *checker) hardwarePeripheral(p string, raw json.RawMessage) (HardwarePeripheral, bool) {
	var w wireHardwarePeripheral
	var hp HardwarePeripheral
	if !c.decode(p, raw, &w) {
		return hp, false
	}
	n := len(c.probs)
	if c.required(p+".Name", w.Name != nil) {
		hp.Name = *w.Name
		if err := checkPeripheralName(hp.Name); err != nil {
			c.add(p+".Name", "%v", err)
		}
	}
	if c.required(p+".Type", w.Type != nil) {
		hp.Type = *w.Type
		if !slices.Contains(hardwareTypes, hp.Type) {
			c.add(p+".Type", "must be one of %s, not %q", strings.Join(hardwareTypes, ", "), truncate(hp.Type))
		}
	}
	if w.Comment != nil {
		hp.Comment = *w.Comment
		c.line(p+".Comment", hp.Comment)
	}
	hasValues := w.MainCoreHeaderValue != nil || len(w.AppManifestValue) > 0
	switch {
	case w.Mapping != nil && hasValues:
		c.add(p, "has both a Mapping and values (MainCoreHeaderValue, AppManifestValue); give one or the other")
	case w.Mapping != nil:
		hp.Mapping = *w.Mapping
		if err := checkPeripheralName(hp.Mapping); err != nil {
			c.add(p+".Mapping", "%v", err)
		} else if hp.Mapping == hp.Name {
			c.add(p+".Mapping", "maps %s to itself", hp.Name)
		}
	case !hasValues:
		c.add(p, "needs a Mapping or values (MainCoreHeaderValue, AppManifestValue)")
	}
	if w.MainCoreHeaderValue != nil {
		hp.MainCoreHeaderValue = *w.MainCoreHeaderValue
		if hp.MainCoreHeaderValue == "" {
			c.add(p+".MainCoreHeaderValue", "must not be empty")
		}
		c.line(p+".MainCoreHeaderValue", hp.MainCoreHeaderValue)
	}
	if len(w.AppManifestValue) > 0 {
		t := hp.Type
		if t == "int" {
			t = "Gpio" // an int's value, if it has one, is a number
		}
		v, err := parsePeripheral(t, w.AppManifestValue)
		switch {
		case err != nil:
			c.add(p+".AppManifestValue", "%v", err)
		case v.IsReference():
			c.add(p+".AppManifestValue", "must be a value, not the name %s; use Mapping to refer to another peripheral", v.Name)
		default:
			hp.AppManifestValue = &v
		}
	}
	return hp, len(c.probs) == n
}

// line checks one line of text in a hardware definition.
func (c *checker) line(p, s string) {
	if len(s) > maxTextLength {
		c.add(p, "is %d bytes; the limit is %d", len(s), maxTextLength)
	} else if strings.ContainsAny(s, "\x00\r\n") {
		c.add(p, "must be one line")
	}
}

// checkImportPath checks an import path: a relative, clean, slash-separated path to a .json file.
func checkImportPath(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("must not be empty")
	case len(p) > MaxPathLength:
		return fmt.Errorf("is %d bytes; the limit is %d", len(p), MaxPathLength)
	case !fs.ValidPath(p) || p == "." || strings.Contains(p, `\`):
		return fmt.Errorf("must be a relative path within the hardware definition directories, without \"..\": %q", truncate(p))
	case !strings.HasSuffix(p, ".json"):
		return fmt.Errorf("must name a .json file: %q", truncate(p))
	}
	return nil
}

// HardwareDefinitions is a set of hardware definition files, loaded with their imports, whose
// names resolve to the values an application manifest uses.
type HardwareDefinitions struct {
	files map[string]*hardwareFile
	paths []string // every file, sorted
}

type hardwareFile struct {
	path string
	def  *HardwareDefinition
	// scope holds the peripherals a Mapping in this file may name: its own and its imports'.
	scope map[string]*hardwareEntry
}

type hardwareEntry struct {
	file string
	p    *HardwarePeripheral
}

// LoadHardwareDefinitions loads every *.json file at the top of each directory, and the files
// they import. An import path is looked up in the directories in order, as an include path is;
// a file found in an earlier directory hides one of the same path in a later one. Imports nest
// at most MaxImportDepth deep and may not form a cycle; a name is defined at most once in a
// file's scope (the file and its imports), and every Mapping resolves within its file's scope to
// a peripheral of the same Type.
func LoadHardwareDefinitions(dirs ...fs.FS) (*HardwareDefinitions, error) {
	h := &HardwareDefinitions{files: map[string]*hardwareFile{}}
	var roots []string
	seen := map[string]bool{}
	for _, dir := range dirs {
		entries, err := fs.ReadDir(dir, ".")
		if err != nil {
			return nil, fmt.Errorf("listing hardware definitions: %w", err)
		}
		for _, e := range entries {
			if e.Type().IsRegular() && strings.HasSuffix(e.Name(), ".json") && !seen[e.Name()] {
				seen[e.Name()] = true
				roots = append(roots, e.Name())
			}
		}
	}
	if len(roots) == 0 {
		return nil, errors.New("no hardware definition (*.json) files found")
	}
	sort.Strings(roots)
	l := &hardwareLoader{h: h, dirs: dirs}
	for _, r := range roots {
		if _, err := l.load(r, nil); err != nil {
			return nil, err
		}
	}
	var c checker
	for _, p := range h.paths {
		f := h.files[p]
		for i := range f.def.Peripherals {
			hp := &f.def.Peripherals[i]
			if hp.Mapping == "" {
				continue
			}
			if _, err := h.follow(f, hp); err != nil {
				c.add(p+":"+index("Peripherals", i)+".Mapping", "%v", err)
			}
		}
	}
	if err := c.err(); err != nil {
		return nil, err
	}
	return h, nil
}

type hardwareLoader struct {
	h    *HardwareDefinitions
	dirs []fs.FS
}

// load loads the file at p and, first, its imports; stack is the chain of files importing it.
func (l *hardwareLoader) load(p string, stack []string) (*hardwareFile, error) {
	if f, ok := l.h.files[p]; ok {
		return f, nil
	}
	if slices.Contains(stack, p) {
		return nil, fmt.Errorf("hardware definitions import each other in a cycle: %s -> %s", strings.Join(stack, " -> "), p)
	}
	if len(stack) > MaxImportDepth {
		return nil, fmt.Errorf("hardware definition imports nest deeper than %d: %s -> %s", MaxImportDepth, strings.Join(stack, " -> "), p)
	}
	if len(l.h.files) >= MaxHardwareDefinitionFiles {
		return nil, fmt.Errorf("more than %d hardware definition files", MaxHardwareDefinitionFiles)
	}
	data, err := l.read(p)
	if err != nil {
		if len(stack) > 0 {
			return nil, fmt.Errorf("%s imports %s: %w", stack[len(stack)-1], p, err)
		}
		return nil, err
	}
	def, err := ParseHardwareDefinition(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	f := &hardwareFile{path: p, def: def, scope: map[string]*hardwareEntry{}}
	add := func(name string, e *hardwareEntry) error {
		if prev, ok := f.scope[name]; ok && prev != e {
			return fmt.Errorf("%s: %s is defined in both %s and %s", p, name, prev.file, e.file)
		}
		f.scope[name] = e
		return nil
	}
	for i := range def.Peripherals {
		if err := add(def.Peripherals[i].Name, &hardwareEntry{file: p, p: &def.Peripherals[i]}); err != nil {
			return nil, err
		}
	}
	for _, imp := range def.Imports {
		g, err := l.load(imp.Path, append(slices.Clone(stack), p))
		if err != nil {
			return nil, err
		}
		names := make([]string, 0, len(g.scope))
		for name := range g.scope {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			if err := add(name, g.scope[name]); err != nil {
				return nil, err
			}
		}
	}
	l.h.files[p] = f
	l.h.paths = append(l.h.paths, p)
	sort.Strings(l.h.paths)
	return f, nil
}

// read reads p from the first directory that has it, bounded by MaxHardwareDefinitionSize.
func (l *hardwareLoader) read(p string) ([]byte, error) {
	for _, dir := range l.dirs {
		f, err := dir.Open(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return nil, err
		}
		if !st.Mode().IsRegular() {
			return nil, fmt.Errorf("%s is not a regular file", p)
		}
		data, err := io.ReadAll(io.LimitReader(f, MaxHardwareDefinitionSize+1))
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", p, err)
		}
		if len(data) > MaxHardwareDefinitionSize {
			return nil, fmt.Errorf("%s is larger than %d bytes", p, MaxHardwareDefinitionSize)
		}
		return data, nil
	}
	return nil, fmt.Errorf("%s: not found in the hardware definition directories", p)
}

// ResolvedPeripheral is what a hardware-definition name stands for.
type ResolvedPeripheral struct {
	// Type is the peripheral's type ("Gpio", "Uart", ..., "int").
	Type string
	// Value is the value a manifest uses; nil for peripherals without one (most "int"s).
	Value *Peripheral
	// Chain is the names followed, from the one resolved to the one that gave the values.
	Chain []string
	// File is the file that defines the name resolved.
	File string
}

// Resolve resolves a hardware-definition name (with or without its "$") through its Mappings.
// The name must be defined in exactly one of the files loaded.
func (h *HardwareDefinitions) Resolve(name string) (*ResolvedPeripheral, error) {
	name = strings.TrimPrefix(name, "$")
	var found []*hardwareFile
	var entry *HardwarePeripheral
	for _, p := range h.paths {
		f := h.files[p]
		for i := range f.def.Peripherals {
			if f.def.Peripherals[i].Name == name {
				found = append(found, f)
				entry = &f.def.Peripherals[i]
			}
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("$%s is not defined in the hardware definitions", name)
	case 1:
	default:
		files := make([]string, len(found))
		for i, f := range found {
			files[i] = f.path
		}
		return nil, fmt.Errorf("$%s is defined in more than one hardware definition (%s)", name, strings.Join(files, ", "))
	}
	r, err := h.follow(found[0], entry)
	if err != nil {
		return nil, fmt.Errorf("$%s: %w", name, err)
	}
	return r, nil
}

// follow follows hp's Mappings, each looked up in the scope of the file that holds the mapping.
func (h *HardwareDefinitions) follow(f *hardwareFile, hp *HardwarePeripheral) (*ResolvedPeripheral, error) {
	r := &ResolvedPeripheral{Type: hp.Type, File: f.path, Chain: []string{hp.Name}}
	for hp.Mapping != "" {
		if len(r.Chain) > MaxMappingDepth {
			return nil, fmt.Errorf("mappings nest deeper than %d: %s", MaxMappingDepth, strings.Join(r.Chain, " -> "))
		}
		next, ok := f.scope[hp.Mapping]
		if !ok {
			return nil, fmt.Errorf("%s maps to %s, which is not defined in %s or its imports", hp.Name, hp.Mapping, f.path)
		}
		if slices.Contains(r.Chain, next.p.Name) {
			return nil, fmt.Errorf("mappings form a cycle: %s -> %s", strings.Join(r.Chain, " -> "), next.p.Name)
		}
		if next.p.Type != hp.Type {
			return nil, fmt.Errorf("%s (%s) maps to %s, which is a %s", hp.Name, hp.Type, next.p.Name, next.p.Type)
		}
		r.Chain = append(r.Chain, next.p.Name)
		f, hp = h.files[next.file], next.p
		if f == nil {
			return nil, fmt.Errorf("%s is defined in %s, which is not loaded", hp.Name, next.file)
		}
	}
	r.Value = hp.AppManifestValue
	return r, nil
}

// HasReferences reports whether m names any hardware-definition peripheral ("$NAME").
func (m *Manifest) HasReferences() bool {
	for _, list := range m.peripheralLists() {
		for _, p := range *list.entries {
			if p.IsReference() {
				return true
			}
		}
	}
	return false
}

// Resolve returns a copy of m with every hardware-definition name replaced by the value it
// stands for, as Azure Sphere's packager does: the packaged manifest holds only raw values. A
// name must resolve to a peripheral of its capability's type. The result is validated again, so
// two names that stand for the same peripheral are an error.
func (m *Manifest) Resolve(h *HardwareDefinitions) (*Manifest, error) {
	out := m.Clone()
	var c checker
	for _, list := range out.peripheralLists() {
		for i, p := range *list.entries {
			if !p.IsReference() {
				continue
			}
			path := index(capPath+"."+list.name, i)
			if h == nil {
				c.add(path, "%s is a hardware-definition name; give the hardware definitions that define it", p.Name)
				continue
			}
			r, err := h.Resolve(p.Name)
			if err != nil {
				c.add(path, "%v", err)
				continue
			}
			if r.Type != list.name {
				c.add(path, "%s is a %s peripheral (%s), not a %s", p.Name, r.Type, strings.Join(r.Chain, " -> "), list.name)
				continue
			}
			if r.Value == nil {
				c.add(path, "%s (%s) has no app manifest value", p.Name, strings.Join(r.Chain, " -> "))
				continue
			}
			(*list.entries)[i] = *r.Value
		}
	}
	if err := c.err(); err != nil {
		return nil, err
	}
	// Re-validate: a resolved manifest must be valid on its own.
	data, err := json.Marshal(out)
	if err != nil {
		return nil, err
	}
	resolved, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("after resolving hardware-definition names: %w", err)
	}
	return resolved, nil
}

type peripheralList struct {
	name    string
	entries *[]Peripheral
}

func (m *Manifest) peripheralLists() []peripheralList {
	c := &m.Capabilities
	return []peripheralList{
		{"Gpio", &c.Gpio}, {"Uart", &c.Uart}, {"I2cMaster", &c.I2cMaster},
		{"SpiMaster", &c.SpiMaster}, {"Adc", &c.Adc}, {"Pwm", &c.Pwm},
	}
}

// Paths returns the hardware definition files loaded, sorted.
func (h *HardwareDefinitions) Paths() []string { return slices.Clone(h.paths) }
