// Package manifest owns the two JSON documents an application developer writes for a Rampart
// (and Azure Sphere) application: the application manifest, app_manifest.json, which names the
// entry point and every capability the application asks for, and the hardware definition files
// that give board peripherals names ("$SAMPLE_LED") the manifest may use.
//
// Both are parsed strictly: an unknown key, a value of the wrong type, a malformed or
// out-of-bounds value is an error that names its JSON path, and every problem in a document is
// reported at once. The field names, value shapes and capability keys are Azure Sphere's, so an
// existing app_manifest.json parses unchanged; the bounds (MaxHosts, MaxServerPorts, ...) are
// Rampart's, chosen so that a manifest stays small enough to enforce.
//
// Trust: this package trusts nothing in the documents it parses; every input is bounded before it
// is decoded. It decides only whether a manifest is well formed. Whether a device grants what a
// manifest asks for is decided elsewhere, and EnforcedCapabilities says which capabilities the
// platform enforces today.
package manifest

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/rampart-iot/rampart/internal/strictjson"
)

// Bounds on a manifest. They are Rampart's; Azure Sphere documents no exact limits.
const (
	// MaxManifestSize bounds the size of app_manifest.json in bytes.
	MaxManifestSize = 64 << 10
	// MaxNameLength bounds Name, in bytes.
	MaxNameLength = 128
	// MaxPathLength bounds EntryPoint, in bytes.
	MaxPathLength = 256
	// MaxCmdArgs bounds the number of CmdArgs.
	MaxCmdArgs = 64
	// MaxCmdArgLength bounds one command-line argument, in bytes.
	MaxCmdArgLength = 1024
	// MaxCmdArgsTotal bounds all command-line arguments together, in bytes.
	MaxCmdArgsTotal = 8192
	// MaxMallocVersion is the highest MallocVersion (2 is Azure Sphere's allocator with heap
	// statistics).
	MaxMallocVersion = 2
)

// SchemaVersion is the only manifest schema version there is.
const SchemaVersion = 1

// Application types.
const (
	ApplicationTypeDefault         = "Default"         // a high-level application (the default)
	ApplicationTypeRealTimeCapable = "RealTimeCapable" // a real-time capable application (RTApp)
)

// Manifest is a parsed, valid app_manifest.json. Its fields mirror the document's keys one to
// one. A Manifest built in Go rather than parsed should be checked with Validate.
type Manifest struct {
	SchemaVersion int `json:"SchemaVersion"`
	// Name is the application's name, for people.
	Name string `json:"Name"`
	// ComponentId is the application's component ID: a UUID, in lower case.
	ComponentId string `json:"ComponentId"`
	// EntryPoint is the absolute path, within the image package, of the program to run.
	EntryPoint string `json:"EntryPoint"`
	// CmdArgs are the program's arguments.
	CmdArgs []string `json:"CmdArgs"`
	// Capabilities are what the application may use; nothing else is granted.
	Capabilities Capabilities `json:"Capabilities"`
	// ApplicationType is ApplicationTypeDefault or ApplicationTypeRealTimeCapable.
	ApplicationType string `json:"ApplicationType"`
	// MallocVersion selects the allocator; 0 means absent.
	MallocVersion int `json:"MallocVersion,omitempty"`
}

// MarshalJSON writes m as app_manifest.json: CmdArgs is always an array, and capabilities that
// are absent (false, empty) are left out.
func (m Manifest) MarshalJSON() ([]byte, error) {
	type plain Manifest
	p := plain(m)
	if p.CmdArgs == nil {
		p.CmdArgs = []string{}
	}
	return json.Marshal(p)
}

// Problem is one thing wrong with a document, at a JSON path such as
// "Capabilities.Gpio[2]"; Error lists every problem found in one document.
type (
	Problem = strictjson.Problem
	Error   = strictjson.Error
)

// Parse parses and validates an app_manifest.json document. On error it returns an *Error that
// lists every problem, each at its JSON path.
func Parse(data []byte) (*Manifest, error) {
	if len(data) > MaxManifestSize {
		return nil, &Error{Problems: []Problem{{Message: fmt.Sprintf("manifest is %d bytes; the limit is %d", len(data), MaxManifestSize)}}}
	}
	var w wireManifest
	var c checker
	c.decode("", data, &w)
	m := c.manifest(&w)
	if err := c.err(); err != nil {
		return nil, err
	}
	return m, nil
}

// ReadFile reads and parses the manifest at path, reading at most MaxManifestSize bytes.
func ReadFile(path string) (*Manifest, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxManifestSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	m, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// Validate checks a Manifest built in Go exactly as Parse checks a document: it is valid if and
// only if its JSON form parses.
func (m *Manifest) Validate() error {
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	_, err = Parse(data)
	return err
}

// wireManifest is the document as decoded, before validation: pointers tell absent from zero,
// and arrays stay raw so that each element's problems carry its index.
type wireManifest struct {
	SchemaVersion   *int               `json:"SchemaVersion"`
	Name            *string            `json:"Name"`
	ComponentId     *string            `json:"ComponentId"`
	EntryPoint      *string            `json:"EntryPoint"`
	CmdArgs         *[]json.RawMessage `json:"CmdArgs"`
	Capabilities    *wireCapabilities  `json:"Capabilities"`
	ApplicationType *string            `json:"ApplicationType"`
	MallocVersion   *int               `json:"MallocVersion"`
}

// manifest validates w into a Manifest, recording problems in c.
func (c *checker) manifest(w *wireManifest) *Manifest {
	m := &Manifest{ApplicationType: ApplicationTypeDefault}
	if c.required("SchemaVersion", w.SchemaVersion != nil) {
		m.SchemaVersion = *w.SchemaVersion
		if m.SchemaVersion != SchemaVersion {
			c.add("SchemaVersion", "must be %d, not %d", SchemaVersion, m.SchemaVersion)
		}
	}
	if c.required("Name", w.Name != nil) {
		m.Name = *w.Name
		c.text("Name", m.Name, MaxNameLength)
	}
	if c.required("ComponentId", w.ComponentId != nil) {
		m.ComponentId = c.uuid("ComponentId", *w.ComponentId)
	}
	if c.required("EntryPoint", w.EntryPoint != nil) {
		m.EntryPoint = *w.EntryPoint
		if err := checkEntryPoint(m.EntryPoint); err != nil {
			c.add("EntryPoint", "%v", err)
		}
	}
	if c.required("CmdArgs", w.CmdArgs != nil) {
		m.CmdArgs = c.cmdArgs(*w.CmdArgs)
	}
	if w.ApplicationType != nil {
		switch *w.ApplicationType {
		case ApplicationTypeDefault, ApplicationTypeRealTimeCapable:
			m.ApplicationType = *w.ApplicationType
		default:
			c.add("ApplicationType", "must be %q or %q, not %q", ApplicationTypeDefault, ApplicationTypeRealTimeCapable, *w.ApplicationType)
		}
	}
	if w.MallocVersion != nil {
		m.MallocVersion = *w.MallocVersion
		if m.MallocVersion < 1 || m.MallocVersion > MaxMallocVersion {
			c.add("MallocVersion", "must be 1 to %d, not %d", MaxMallocVersion, m.MallocVersion)
		}
	}
	if c.required("Capabilities", w.Capabilities != nil) {
		c.capabilities(m, w.Capabilities)
	}
	return m
}

func (c *checker) cmdArgs(raw []json.RawMessage) []string {
	if len(raw) > MaxCmdArgs {
		c.add("CmdArgs", "has %d arguments; the limit is %d", len(raw), MaxCmdArgs)
		return nil
	}
	out := make([]string, 0, len(raw))
	total := 0
	for i, r := range raw {
		path := index("CmdArgs", i)
		s, ok := c.str(path, r)
		if !ok {
			continue
		}
		total += len(s)
		switch {
		case len(s) > MaxCmdArgLength:
			c.add(path, "is %d bytes; the limit is %d", len(s), MaxCmdArgLength)
		case strings.ContainsRune(s, 0):
			c.add(path, "must not contain a NUL character")
		}
		out = append(out, s)
	}
	if total > MaxCmdArgsTotal {
		c.add("CmdArgs", "arguments total %d bytes; the limit is %d", total, MaxCmdArgsTotal)
	}
	return out
}

// checkEntryPoint checks that p is a clean absolute path inside the package.
func checkEntryPoint(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("must not be empty")
	case len(p) > MaxPathLength:
		return fmt.Errorf("is %d bytes; the limit is %d", len(p), MaxPathLength)
	case !strings.HasPrefix(p, "/"):
		return fmt.Errorf("must be an absolute path within the package, such as /bin/app, not %q", p)
	case p == "/" || strings.HasSuffix(p, "/"):
		return fmt.Errorf("must name a file, not a directory: %q", p)
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("must not contain control characters")
		}
	}
	for _, seg := range strings.Split(p[1:], "/") {
		switch seg {
		case "":
			return fmt.Errorf("must not contain empty path segments: %q", p)
		case ".", "..":
			return fmt.Errorf("must not contain %q segments: %q", seg, p)
		}
	}
	return nil
}
