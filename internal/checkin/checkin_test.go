package checkin

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/problem"
	"github.com/rampart-iot/rampart/internal/strictjson"
)

const (
	comp  = "819255ff-8640-41fd-aea7-f85d34c491d5"
	image = "0e6b2a4f-2f0c-4f77-9a43-7d0b7d0e1a11"
)

func good() v1.CheckIn {
	return v1.CheckIn{AgentVersion: "1.0.0", Images: []v1.InstalledImage{{ComponentID: comp, ImageID: image,
		Kind: "application", Version: "1.2.3", State: "running"}},
		OS: &v1.OSSlots{Active: "a", Booted: "b", Trial: "b", CommittedVersion: "1.0.0",
			Slots: []v1.OSSlot{{Name: "a", Version: "1.0.0", Digest: strings.Repeat("0f", 32)}, {Name: "b", Version: "2.0.0"}}},
		Update:   &v1.UpdateStatus{State: "Verifying", ComponentID: comp, ImageID: image, Version: "2.0.0", FromVersion: "1.0.0"},
		Deferred: []v1.DeferredUpdate{{UpdateType: "System", FirstSeen: seen, Until: seen.Add(time.Hour)}}}
}

var seen = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func fields(err error) []string {
	var pe *problem.Error
	if !errors.As(err, &pe) {
		return nil
	}
	var out []string
	for _, d := range pe.Details {
		out = append(out, d.Field)
	}
	return out
}

func TestValidate(t *testing.T) {
	if err := Validate(good()); err != nil {
		t.Fatalf("a good report: %v", err)
	}
	for _, c := range []struct {
		name   string
		change func(*v1.CheckIn)
		want   []string
	}{
		{"agent version", func(c *v1.CheckIn) { c.AgentVersion = "" }, []string{"agent_version"}},
		{"uptime", func(c *v1.CheckIn) { c.UptimeSeconds = -1 }, []string{"uptime_seconds"}},
		{"board", func(c *v1.CheckIn) {
			c.Board = &v1.BoardState{Board: "emulated", LEDs: []v1.BoardLED{{Name: "\x01"}}, Buttons: []v1.BoardButton{{Name: "A", Presses: -1}}}
		}, []string{"board.leds[0].name", "board.buttons[0].presses"}},
		{"board size", func(c *v1.CheckIn) { c.Board = &v1.BoardState{Board: "e", LEDs: make([]v1.BoardLED, 33)} }, []string{"board"}},
		{"no images", func(c *v1.CheckIn) { c.Images = nil }, []string{"images"}},
		{"twice", func(c *v1.CheckIn) { c.Images = append(c.Images, c.Images[0]) }, []string{"images[1].component_id"}},
		{"kind", func(c *v1.CheckIn) { c.Images[0].Kind = "app" }, []string{"images[0].kind"}},
		{"version", func(c *v1.CheckIn) { c.Images[0].Version = "v1" }, []string{"images[0].version"}},
		{"restarts", func(c *v1.CheckIn) { c.Images[0].Restarts = -1 }, []string{"images[0].restarts"}},
		{"utf8", func(c *v1.CheckIn) { c.Images[0].LastError = "\xff" }, []string{"images[0].last_error"}},
		{"slots", func(c *v1.CheckIn) { c.OS.Booted, c.OS.Trial = "x", "y" }, []string{"os.booted", "os.trial"}},
		{"three slots", func(c *v1.CheckIn) { c.OS.Slots = append(c.OS.Slots, c.OS.Slots[0]) }, []string{"os.slots"}},
		{"security counter", func(c *v1.CheckIn) { c.OS.SecurityCounter = 1<<20 + 1 }, []string{"os.security_counter"}},
		{"digest", func(c *v1.CheckIn) { c.OS.Slots[0].Digest = strings.Repeat("0F", 32) }, []string{"os.slots[0].digest"}},
		{"update", func(c *v1.CheckIn) { c.Update.State, c.Update.ImageID = "", "nope" }, []string{"update.state", "update.image_id"}},
		{"deferred type", func(c *v1.CheckIn) { c.Deferred[0].UpdateType = "Firmware" }, []string{"deferred[0].update_type"}},
		{"deferred twice", func(c *v1.CheckIn) { c.Deferred = append(c.Deferred, c.Deferred[0]) }, []string{"deferred[1].update_type"}},
		{"deferred too long", func(c *v1.CheckIn) { c.Deferred[0].Until = seen.Add(168 * time.Hour) }, []string{"deferred[0].until"}},
		{"deferred backwards", func(c *v1.CheckIn) { c.Deferred[0].Until = seen.Add(-time.Hour) }, []string{"deferred[0].until"}},
		{"deferred times", func(c *v1.CheckIn) { c.Deferred[0].FirstSeen = time.Time{} }, []string{"deferred[0]"}},
		{"everything at once", func(c *v1.CheckIn) { c.AgentVersion, c.Images[0].State = "", "odd" }, []string{"agent_version", "images[0].state"}},
	} {
		in := good()
		c.change(&in)
		got := fields(Validate(in))
		if strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("%s: fields %v, want %v", c.name, got, c.want)
		}
	}
}

// FuzzCheckIn feeds arbitrary bodies through the same path the API takes: strict decoding,
// then validation. It must never panic, and what it accepts must survive a round trip.
func FuzzCheckIn(f *testing.F) {
	b, _ := json.Marshal(good())
	f.Add(b)
	f.Add([]byte(`{"agent_version":"1","images":[]}`))
	f.Add([]byte(`{"agent_version":"1","images":[{"component_id":"x"}],"os":{"slots":[{}]}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		if len(body) > v1.MaxCheckInBody {
			return
		}
		var in v1.CheckIn
		if strictjson.Decode(body, &in) != nil {
			return
		}
		if Validate(in) != nil {
			return
		}
		again, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		var back v1.CheckIn
		if err := strictjson.Decode(again, &back); err != nil {
			t.Fatalf("an accepted report does not decode again: %v", err)
		}
		if err := Validate(back); err != nil {
			t.Fatalf("an accepted report is refused after a round trip: %v", err)
		}
	})
}
