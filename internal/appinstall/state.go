package appinstall

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/rampart-iot/rampart/imagepkg"
	"github.com/rampart-iot/rampart/internal/atomicfile"
	"github.com/rampart-iot/rampart/internal/strictjson"
	"github.com/rampart-iot/rampart/manifest"
)

// Bounds on the state file.
const (
	stateFormat = 1
	// MaxStateSize bounds the state file, in bytes: MaxComponents components with two
	// manifests each of at most manifest.MaxManifestSize, and room to spare.
	MaxStateSize = 16 << 20
	// MaxComponents bounds the installed components.
	MaxComponents = 64
	// MaxReasonLength bounds a recorded rollback reason, in bytes; longer ones are cut.
	MaxReasonLength = 1024
)

// state is the state file, in memory. A state is never changed once saved: operations save a
// changed copy (clone).
type state struct {
	Components map[string]*component
	// Purge lists components removed with their data, whose data directory may still exist.
	Purge []string
}

type component struct {
	Current  Image
	Previous *Image
	Status   Status
	Failed   *Image
	Reason   string
}

func (c *component) installed(id string) Installed {
	in := Installed{ComponentID: id, Name: c.Current.Manifest.Name, Current: c.Current.clone(),
		Status: c.Status, Reason: c.Reason}
	if c.Previous != nil {
		p := c.Previous.clone()
		in.Previous = &p
	}
	if c.Failed != nil {
		f := c.Failed.clone()
		in.Failed = &f
	}
	return in
}

func (im Image) clone() Image {
	if im.Manifest != nil {
		im.Manifest = im.Manifest.Clone()
	}
	return im
}

func (s *state) clone() *state {
	out := &state{Components: make(map[string]*component, len(s.Components)), Purge: slices.Clone(s.Purge)}
	for id, c := range s.Components {
		cc := *c
		out.Components[id] = &cc
	}
	return out
}

// ids returns the component IDs in order.
func (s *state) ids() []string { return slices.Sorted(maps.Keys(s.Components)) }

// list returns every component, ordered by ID.
func (s *state) list() []Installed {
	out := make([]Installed, 0, len(s.Components))
	for _, id := range s.ids() {
		out = append(out, s.Components[id].installed(id))
	}
	return out
}

// images returns the IDs of every image the state names as current or previous.
func (s *state) images() []string {
	var out []string
	for _, c := range s.Components {
		out = append(out, c.Current.ID)
		if c.Previous != nil {
			out = append(out, c.Previous.ID)
		}
	}
	return out
}

// owner returns the component that has image id as current or previous, and that image.
func (s *state) owner(id string) (string, *Image) {
	for cid, c := range s.Components {
		if c.Current.ID == id {
			return cid, &c.Current
		}
		if c.Previous != nil && c.Previous.ID == id {
			return cid, c.Previous
		}
	}
	return "", nil
}

// The state file as written.
type wireState struct {
	Format     *int                      `json:"format"`
	Components *map[string]wireComponent `json:"components"`
	Purge      []string                  `json:"purge,omitempty"`
}

type wireComponent struct {
	Current  *wireImage `json:"current"`
	Previous *wireImage `json:"previous,omitempty"`
	Status   Status     `json:"status"`
	Failed   *wireImage `json:"failed,omitempty"`
	Reason   string     `json:"reason,omitempty"`
}

type wireImage struct {
	ID          string          `json:"id"`
	Version     string          `json:"version"`
	SHA256      string          `json:"sha256"`
	Development bool            `json:"development,omitempty"`
	Origin      Origin          `json:"origin"`
	At          time.Time       `json:"at"`
	Manifest    json.RawMessage `json:"manifest,omitempty"`
}

// readState reads the state file at path; a missing file is an empty state.
func readState(path string) (*state, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &state{Components: map[string]*component{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the application state: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxStateSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading the application state: %w", err)
	}
	st, err := parseState(data)
	if err != nil {
		return nil, fmt.Errorf("reading the application state %s: %w", path, err)
	}
	return st, nil
}

// parseState parses and checks a state file.
func parseState(data []byte) (*state, error) {
	if len(data) > MaxStateSize {
		return nil, fmt.Errorf("it is over %d bytes", MaxStateSize)
	}
	var w wireState
	if err := strictjson.Decode(data, &w); err != nil {
		return nil, err
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if w.Format == nil || *w.Format != stateFormat {
		return nil, fmt.Errorf("format: want %d", stateFormat)
	}
	if w.Components == nil {
		return nil, fmt.Errorf("components: missing")
	}
	if len(*w.Components) > MaxComponents {
		return nil, fmt.Errorf("components: more than %d", MaxComponents)
	}
	st := &state{Components: map[string]*component{}}
	seen := map[string]string{} // image ID -> where
	for _, id := range slices.Sorted(maps.Keys(*w.Components)) {
		wc := (*w.Components)[id]
		at := "components." + id
		if !isUUID(id) {
			bad("%s: the component ID is not a lower-case UUID", at)
			continue
		}
		c := &component{Status: wc.Status, Reason: wc.Reason}
		if wc.Current == nil {
			bad("%s.current: missing", at)
			continue
		}
		var err error
		if c.Current, err = wc.Current.image(id, true); err != nil {
			bad("%s.current: %w", at, err)
		}
		if wc.Previous != nil {
			p, err := wc.Previous.image(id, true)
			if err != nil {
				bad("%s.previous: %w", at, err)
			}
			c.Previous = &p
		}
		if wc.Failed != nil {
			f, err := wc.Failed.image(id, false)
			if err != nil {
				bad("%s.failed: %w", at, err)
			}
			c.Failed = &f
		}
		switch {
		case c.Status != StatusInstalled && c.Status != StatusRolledBack:
			bad("%s.status: %q is not %q or %q", at, c.Status, StatusInstalled, StatusRolledBack)
		case (c.Status == StatusRolledBack) != (c.Failed != nil):
			bad("%s: a rolled-back component has a failed image, and only it", at)
		case len(c.Reason) > MaxReasonLength:
			bad("%s.reason: over %d bytes", at, MaxReasonLength)
		}
		for _, im := range []*Image{&c.Current, c.Previous} {
			if im == nil || im.ID == "" {
				continue
			}
			if where, ok := seen[im.ID]; ok {
				bad("%s: image %s is also %s's", at, im.ID, where)
			}
			seen[im.ID] = id
		}
		st.Components[id] = c
	}
	for i, id := range w.Purge {
		if !isUUID(id) || st.Components[id] != nil || slices.Index(w.Purge, id) != i {
			bad("purge[%d]: %q is not a removed component's ID", i, id)
		}
	}
	if len(w.Purge) > MaxComponents {
		bad("purge: more than %d", MaxComponents)
	}
	st.Purge = w.Purge
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return st, nil
}

// image checks a recorded image of component cid; current and previous images carry their
// manifest.
func (w *wireImage) image(cid string, withManifest bool) (Image, error) {
	im := Image{ID: w.ID, Version: w.Version, SHA256: w.SHA256, Development: w.Development, Origin: w.Origin, At: w.At}
	var errs []error
	if !isUUID(w.ID) {
		errs = append(errs, fmt.Errorf("id: %q is not a lower-case UUID", w.ID))
	}
	if _, err := imagepkg.ParseVersion(w.Version); err != nil {
		errs = append(errs, fmt.Errorf("version: %w", err))
	}
	if !isDigest(w.SHA256) {
		errs = append(errs, fmt.Errorf("sha256: not 64 lower-case hex digits"))
	}
	if !slices.Contains(origins, w.Origin) {
		errs = append(errs, fmt.Errorf("origin: %q is not one of %v", w.Origin, origins))
	}
	switch {
	case withManifest && w.Manifest == nil:
		errs = append(errs, fmt.Errorf("manifest: missing"))
	case !withManifest && w.Manifest != nil:
		errs = append(errs, fmt.Errorf("manifest: not recorded for a failed image"))
	case withManifest:
		m, err := manifest.Parse(w.Manifest)
		if err != nil {
			errs = append(errs, fmt.Errorf("manifest: %w", err))
		} else if m.ComponentId != cid {
			errs = append(errs, fmt.Errorf("manifest: ComponentId is %s", m.ComponentId))
		}
		im.Manifest = m
	}
	return im, errors.Join(errs...)
}

func isUUID(s string) bool {
	u, err := manifest.ParseUUID(s)
	return err == nil && u == s
}

func isDigest(s string) bool {
	b, err := hex.DecodeString(s)
	return err == nil && len(b) == 32 && strings.ToLower(s) == s
}

func toWire(im *Image, withManifest bool) (*wireImage, error) {
	if im == nil {
		return nil, nil
	}
	w := &wireImage{ID: im.ID, Version: im.Version, SHA256: im.SHA256, Development: im.Development, Origin: im.Origin, At: im.At}
	if withManifest {
		m, err := json.Marshal(im.Manifest)
		if err != nil {
			return nil, err
		}
		w.Manifest = m
	}
	return w, nil
}

// marshalState encodes st as the state file.
func marshalState(st *state) ([]byte, error) {
	format := stateFormat
	comps := map[string]wireComponent{}
	for id, c := range st.Components {
		var wc wireComponent
		var err [3]error
		wc.Current, err[0] = toWire(&c.Current, true)
		wc.Previous, err[1] = toWire(c.Previous, true)
		wc.Failed, err[2] = toWire(c.Failed, false)
		if e := errors.Join(err[:]...); e != nil {
			return nil, e
		}
		wc.Status, wc.Reason = c.Status, c.Reason
		comps[id] = wc
	}
	return json.MarshalIndent(wireState{Format: &format, Components: &comps, Purge: st.Purge}, "", "  ")
}

// writeState replaces the state file at path with st.
func writeState(path string, st *state) error {
	data, err := marshalState(st)
	if err != nil {
		return fmt.Errorf("writing the application state: %w", err)
	}
	return atomicfile.WriteFile(path, append(data, '\n'), 0o600)
}
