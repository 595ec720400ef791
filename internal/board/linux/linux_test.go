package linux

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/internal/board"
)

// TestRegistry: board.Open("linux:DIR") opens a linux board on DIR.
func TestRegistry(t *testing.T) {
	_, tty := openPTY(t)
	dir := writeBoard(t, minimal+`,"Uart":[{"Isu":"ISU0","Device":"`+tty+`","Baud":9600}]}`, definitions(serialDefs))
	d, err := board.Open(Name+":"+dir, board.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.(*Board).Close()
	if d.Name() != Name || d.(*Board).Description().Name != "t" {
		t.Fatalf("opened %s %+v", d.Name(), d.(*Board).Description())
	}
	if _, err := board.Open(Name+":"+dir, board.Options{Dir: "/elsewhere"}); err == nil || !strings.Contains(err.Error(), "two description directories") {
		t.Fatalf("two directories: %v", err)
	}
	if _, err := board.Open(Name+":"+filepath.Join(dir, "missing"), board.Options{}); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a missing directory: %v", err)
	}
}

// TestPanelAndPower: power requests are recorded and logged, not carried out; a button
// cannot be pressed from outside.
func TestPanelAndPower(t *testing.T) {
	_, tty := openPTY(t)
	var logs bytes.Buffer
	at := time.Unix(1_700_000_000, 0).UTC()
	dir := writeBoard(t, minimal+`,"Uart":[{"Isu":"ISU0","Device":"`+tty+`","Baud":9600}]}`, definitions(serialDefs))
	b, err := Open(board.Options{Dir: dir, Now: func() time.Time { return at }, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Power(board.PowerRequest{Action: board.PowerForceReboot, By: "app-1"}); err != nil {
		t.Fatal(err)
	}
	if err := b.Power(board.PowerRequest{Action: board.PowerSetPowerProfile, By: "app-1", Profile: "PowerSaver"}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []board.PowerRequest{{Action: board.PowerForcePowerDown, Seconds: 0}, {Action: board.PowerSetPowerProfile, Profile: "Turbo"}, {Action: "Explode"}} {
		if err := b.Power(bad); !errors.Is(err, board.ErrInvalid) {
			t.Errorf("%+v: %v", bad, err)
		}
	}
	st := b.State()
	if st.Board != Name || !st.At.Equal(at) || st.Power.Reboots != 1 || st.Power.Profile != "PowerSaver" || st.Power.Last == nil || st.Power.Last.By != "app-1" || !st.Power.LastAt.Equal(at) {
		t.Fatalf("state %+v", st)
	}
	if !strings.Contains(logs.String(), "not carried out") || !strings.Contains(logs.String(), "action=ForceReboot") {
		t.Fatalf("log %q", logs.String())
	}
	if err := b.Press("BUTTON_A"); !errors.Is(err, board.ErrNoPeripheral) {
		t.Fatalf("pressing a button the board lacks: %v", err)
	}
	if _, err := b.GPIO(17); !errors.Is(err, board.ErrNoPeripheral) {
		t.Fatalf("GPIO the board lacks: %v", err)
	}
	if err := b.WriteGPIO(17, true); !errors.Is(err, board.ErrNoPeripheral) {
		t.Fatalf("GPIO the board lacks: %v", err)
	}
	if _, err := b.ReadGPIO(17); !errors.Is(err, board.ErrNoPeripheral) {
		t.Fatalf("GPIO the board lacks: %v", err)
	}
}
