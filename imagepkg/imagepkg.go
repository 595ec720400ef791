// Package imagepkg owns the image package: the signed file that carries an application, an OS
// bundle or a board configuration from the developer's machine, through the service, to a
// device. Its format, version 1, is:
//
//	offset 0   magic    "RAMPKG01" (8 bytes)
//	offset 8   length   N, uint32 big-endian, 1 <= N <= MaxEnvelopeSize
//	offset 12  envelope N bytes: a DSSE envelope (JSON) whose payloadType is PayloadType and
//	                    whose payload is the metadata (JSON, see Metadata)
//	offset 12+N payload the rest of the file: Metadata.Payload.Size bytes, a tar (see Pack)
//
// The signatures in the envelope are DSSE signatures (github.com/secure-systems-lab/dsse) made
// with ECDSA P-256 over SHA-256 of DSSE's pre-authentication encoding of the metadata; each
// names its key by KeyID. The metadata covers the payload by its SHA-256 and size, so the
// signatures cover the whole package, and the payload can be checked as it streams. A package
// may carry several signatures: the packer's, then the tenant's production signature that the
// service adds on upload. docs/IMAGE-PACKAGES.md describes the format in full.
//
// Trust: Open bounds and parses the header, envelope and metadata of a hostile file without
// reading the payload, and trusts none of it: Package.Metadata is untrusted until Verify has
// checked the signatures against keys the caller trusts (never against key IDs the package
// names), and the payload is untrusted until VerifyPayload or Extract has checked its digest.
// The development key (DevelopmentKey) is public by design; a package signed only with it is
// trusted only by devices in development mode.
package imagepkg

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/rampart-iot/rampart/internal/strictjson"
	"github.com/rampart-iot/rampart/manifest"
)

// The format's constants.
const (
	// Magic opens every image package; its last two bytes are the format version.
	Magic = "RAMPKG01"
	// HeaderSize is the size of the magic and the envelope length.
	HeaderSize = len(Magic) + 4
	// PayloadType is the DSSE payload type of the metadata.
	PayloadType = "application/vnd.rampart.image+json"
	// MetadataVersion is the metadata's "version".
	MetadataVersion = 1
	// PayloadFormatTar is the only payload format: a tar written by Pack.
	PayloadFormatTar = "tar"
)

// Bounds on a package.
const (
	// MaxEnvelopeSize bounds the envelope, in bytes.
	MaxEnvelopeSize = 1 << 20
	// MaxPayloadSize bounds the payload, in bytes.
	MaxPayloadSize = 4 << 30
	// MaxSignatures bounds the signatures in an envelope.
	MaxSignatures = 8
	// MaxSignatureSize bounds one signature, in bytes (an ASN.1 ECDSA P-256 signature is at
	// most 72).
	MaxSignatureSize = 72
	// MaxNameLength bounds the metadata's name, in bytes.
	MaxNameLength = 128
	// MaxMeasurements bounds the golden measurements of an OS bundle.
	MaxMeasurements = 16
	// MaxSecurityVersion bounds an OS bundle's security version.
	MaxSecurityVersion = 1 << 20
)

// OSComponentID is the component ID of the OS bundle unless pack-os is told otherwise: every
// release of the OS shares it, so that a newer one replaces an older one.
const OSComponentID = "41f2fb40-29a6-4ff1-8312-0f687aab22da"

// MeasurementOSBundle is the golden measurement of an OS bundle: the digest the device's
// security monitor computes of the installed bundle's tree.
const MeasurementOSBundle = "os-bundle"

// Kind is what a package carries.
type Kind string

// The kinds of package.
const (
	KindApplication Kind = "application"  // an application; its metadata holds its manifest
	KindOS          Kind = "os"           // an OS bundle; its metadata holds its golden measurements
	KindBoardConfig Kind = "board-config" // a board configuration
)

// Region names the part of a package an error is about.
type Region string

// The regions of a package.
const (
	RegionMagic       Region = "magic"
	RegionLength      Region = "length"
	RegionEnvelope    Region = "envelope"
	RegionPayloadType Region = "payloadType"
	RegionMetadata    Region = "metadata"
	RegionSignature   Region = "signature"
	RegionPayload     Region = "payload"
)

// Error is a package that is malformed or fails verification, with the region at fault.
type Error struct {
	Region Region
	Err    error
}

func (e *Error) Error() string { return string(e.Region) + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

func errorf(r Region, format string, args ...any) *Error {
	return &Error{Region: r, Err: fmt.Errorf(format, args...)}
}

// Sentinel errors, wrapped in an *Error.
var (
	// ErrNotPackage is a file that does not start with Magic.
	ErrNotPackage = errors.New("not an image package")
	// ErrUntrusted is a package without enough valid signatures by trusted keys.
	ErrUntrusted = errors.New("not signed by enough trusted keys")
	// ErrPayloadDigest is a payload whose SHA-256 is not the one its metadata gives.
	ErrPayloadDigest = errors.New("payload does not match the digest in the metadata")
)

// Metadata is what the signatures cover. Read from a package, it is untrusted until Verify
// succeeds.
type Metadata struct {
	// Version is MetadataVersion.
	Version int `json:"version"`
	// ImageID identifies this image: a UUID, new for every package built.
	ImageID string `json:"image_id"`
	// ComponentID identifies the component an image is a version of: a UUID, the application's
	// ComponentId for applications.
	ComponentID string `json:"component_id"`
	Kind        Kind   `json:"kind"`
	// Name is for people.
	Name string `json:"name"`
	// ImageVersion is a semantic version (ParseVersion).
	ImageVersion string    `json:"image_version"`
	CreatedAt    time.Time `json:"created_at"`
	// Payload describes the payload.
	Payload Payload `json:"payload"`
	// Manifest is the application manifest, hardware-definition names resolved; applications
	// only.
	Manifest *manifest.Manifest `json:"manifest,omitempty"`
	// Measurements are the golden measurements (lower-case hex SHA-256) a device running this
	// OS bundle reports; OS bundles only, and MeasurementOSBundle is required.
	Measurements map[string]string `json:"measurements,omitempty"`
	// SecurityVersion is an OS bundle's security version, 0 to MaxSecurityVersion, as MCUboot's
	// security counter or Android's rollback index: a device that committed an OS bundle
	// advances its root of trust's anti-rollback counter to it, and never installs one with a
	// lower security version again. A release raises it when the releases before it must never
	// run again (a fixed vulnerability), not with every version. 0 (absent) for other kinds.
	SecurityVersion uint64 `json:"security_version,omitempty"`
	// Development is true when the package is signed with the development key alone.
	Development bool `json:"development"`
}

// Payload describes a package's payload.
type Payload struct {
	SHA256 string `json:"sha256"` // lower-case hex
	Size   int64  `json:"size"`
	Format string `json:"format"` // PayloadFormatTar
}

type wireMetadata struct {
	Version      *int               `json:"version"`
	ImageID      *string            `json:"image_id"`
	ComponentID  *string            `json:"component_id"`
	Kind         *string            `json:"kind"`
	Name         *string            `json:"name"`
	ImageVersion *string            `json:"image_version"`
	CreatedAt    *time.Time         `json:"created_at"`
	Payload      *wirePayload       `json:"payload"`
	Manifest     json.RawMessage    `json:"manifest"`
	Measurements *map[string]string `json:"measurements"`
	Security     *uint64            `json:"security_version"`
	Development  *bool              `json:"development"`
}

type wirePayload struct {
	SHA256 *string `json:"sha256"`
	Size   *int64  `json:"size"`
	Format *string `json:"format"`
}

// measurementName is compiled on first use: its bounded repetition makes a large program,
// which a process that never reads a package (the device agent at idle) should not carry.
var measurementName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`) })

// parseMetadata parses and validates the metadata. On error it returns a *manifest.Error that
// lists every problem, each at its JSON path.
func parseMetadata(data []byte) (*Metadata, error) {
	var w wireMetadata
	var probs, decoded []manifest.Problem
	if err := strictjson.Decode(data, &w); err != nil {
		se, ok := err.(*strictjson.Error)
		if !ok {
			return nil, err
		}
		decoded = se.Problems
	}
	bad := func(path string) bool {
		for _, d := range decoded {
			if d.Path == "" || d.Path == path || strings.HasPrefix(path, d.Path+".") {
				return true
			}
		}
		return false
	}
	add := func(path, format string, args ...any) {
		if !bad(path) {
			probs = append(probs, manifest.Problem{Path: path, Message: fmt.Sprintf(format, args...)})
		}
	}
	required := func(path string, present bool) bool {
		if !present {
			add(path, "is required")
		}
		return present
	}
	m := &Metadata{}
	if required("version", w.Version != nil) {
		m.Version = *w.Version
		if m.Version != MetadataVersion {
			add("version", "must be %d, not %d", MetadataVersion, m.Version)
		}
	}
	uuid := func(path string, p *string) string {
		if !required(path, p != nil) {
			return ""
		}
		if *p != strings.ToLower(*p) {
			add(path, "must be in lower case")
		}
		u, err := manifest.ParseUUID(*p)
		if err != nil {
			add(path, "%v", err)
		}
		return u
	}
	m.ImageID = uuid("image_id", w.ImageID)
	m.ComponentID = uuid("component_id", w.ComponentID)
	kindOK := false
	if required("kind", w.Kind != nil) {
		m.Kind = Kind(*w.Kind)
		switch m.Kind {
		case KindApplication, KindOS, KindBoardConfig:
			kindOK = true
		default:
			add("kind", "must be %q, %q or %q, not %q", KindApplication, KindOS, KindBoardConfig, *w.Kind)
		}
	}
	if required("name", w.Name != nil) {
		m.Name = *w.Name
		switch {
		case strings.TrimSpace(m.Name) == "":
			add("name", "must not be empty")
		case len(m.Name) > MaxNameLength:
			add("name", "is %d bytes; the limit is %d", len(m.Name), MaxNameLength)
		case strings.IndexFunc(m.Name, unicode.IsControl) >= 0:
			add("name", "must not contain control characters")
		}
	}
	if required("image_version", w.ImageVersion != nil) {
		m.ImageVersion = *w.ImageVersion
		if _, err := ParseVersion(m.ImageVersion); err != nil {
			add("image_version", "%v", err)
		}
	}
	if required("created_at", w.CreatedAt != nil) {
		m.CreatedAt = *w.CreatedAt
		if m.CreatedAt.IsZero() {
			add("created_at", "must not be the zero time")
		}
	}
	if required("payload", w.Payload != nil) {
		p := w.Payload
		if required("payload.sha256", p.SHA256 != nil) {
			m.Payload.SHA256 = *p.SHA256
			if !isDigest(m.Payload.SHA256) {
				add("payload.sha256", "must be 64 lower-case hex digits")
			}
		}
		if required("payload.size", p.Size != nil) {
			m.Payload.Size = *p.Size
			if m.Payload.Size < 0 || m.Payload.Size > MaxPayloadSize {
				add("payload.size", "must be 0 to %d, not %d", int64(MaxPayloadSize), m.Payload.Size)
			}
		}
		if required("payload.format", p.Format != nil) {
			m.Payload.Format = *p.Format
			if m.Payload.Format != PayloadFormatTar {
				add("payload.format", "must be %q, not %q", PayloadFormatTar, m.Payload.Format)
			}
		}
	}
	hasManifest := len(w.Manifest) > 0 && string(w.Manifest) != "null"
	switch {
	case kindOK && m.Kind == KindApplication && !hasManifest:
		add("manifest", "is required for an application")
	case kindOK && m.Kind != KindApplication && hasManifest:
		add("manifest", "is only for applications")
	case hasManifest:
		am, err := manifest.Parse(w.Manifest)
		if err != nil {
			var me *manifest.Error
			if !errors.As(err, &me) {
				return nil, err
			}
			for _, p := range me.Problems {
				path := "manifest"
				if p.Path != "" {
					path += "." + p.Path
				}
				add(path, "%s", p.Message)
			}
			break
		}
		m.Manifest = am
		if am.HasReferences() {
			add("manifest.Capabilities", "has hardware-definition names; a packaged manifest holds only resolved values")
		}
		if m.ComponentID != "" && am.ComponentId != m.ComponentID {
			add("manifest.ComponentId", "is %s but the package's component_id is %s", am.ComponentId, m.ComponentID)
		}
	}
	if w.Measurements != nil {
		m.Measurements = *w.Measurements
	}
	switch {
	case !kindOK:
	case m.Kind == KindOS && len(m.Measurements) == 0:
		add("measurements", "is required for an OS bundle, with %q", MeasurementOSBundle)
	case m.Kind != KindOS && w.Measurements != nil:
		add("measurements", "is only for OS bundles")
	case m.Kind == KindOS:
		if len(m.Measurements) > MaxMeasurements {
			add("measurements", "has %d entries; the limit is %d", len(m.Measurements), MaxMeasurements)
			break
		}
		if _, ok := m.Measurements[MeasurementOSBundle]; !ok {
			add("measurements", "must include %q", MeasurementOSBundle)
		}
		names := make([]string, 0, len(m.Measurements))
		for k := range m.Measurements {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			if !measurementName().MatchString(k) {
				add("measurements", "name %q must be 1 to 64 of a-z, 0-9, '.', '_' and '-'", truncate(k))
			} else if !isDigest(m.Measurements[k]) {
				add("measurements."+k, "must be 64 lower-case hex digits")
			}
		}
	}
	if w.Security != nil {
		switch m.SecurityVersion = *w.Security; {
		case kindOK && m.Kind != KindOS:
			add("security_version", "is only for OS bundles")
		case m.SecurityVersion > MaxSecurityVersion:
			add("security_version", "must be 0 to %d, not %d", MaxSecurityVersion, m.SecurityVersion)
		}
	}
	if required("development", w.Development != nil) {
		m.Development = *w.Development
	}
	if len(decoded)+len(probs) > 0 {
		return nil, &manifest.Error{Problems: append(decoded, probs...)}
	}
	return m, nil
}

// Validate checks m as Open would check the metadata of a package.
func (m *Metadata) Validate() error {
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	_, err = parseMetadata(data)
	return err
}

func isDigest(s string) bool {
	if len(s) != 64 || s != strings.ToLower(s) {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

func truncate(s string) string {
	if len(s) <= 80 {
		return s
	}
	return s[:80] + "..."
}

// NewUUID returns a random (version 4) UUID read from random, for a new image ID.
func NewUUID(random io.Reader) (string, error) {
	var b [16]byte
	if _, err := io.ReadFull(random, b[:]); err != nil {
		return "", err
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], nil
}
