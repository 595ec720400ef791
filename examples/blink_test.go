package examples_test

import (
	"strings"
	"testing"
)

// TestBlink: the blink app, granted $LED_RED and $BUTTON_A, drives the red LED to follow
// button A, held down and released on the board from outside: on, off, on, off. A momentary
// press (what `rampart-agent board press` does) is seen by one read: the LED goes on, then off.
func TestBlink(t *testing.T) {
	needRoot(t)
	cid := componentID(t, "blink")
	d := newDevice(t, nil, nil, pack(t, packageDir(t, "blink", "", nil, nil)))
	d.waitFor(t, cid, "blink is ready", func() bool { return d.logHas(cid, "blink: ready") })
	if d.led("LED_RED") {
		t.Fatal("the red LED is on before the button was pressed")
	}
	for i, down := range []bool{true, false, true, false} {
		must(t, d.board.Hold("BUTTON_A", down))
		d.waitFor(t, cid, "the red LED follows the button", func() bool { return d.led("LED_RED") == down })
		if d.led("LED_GREEN") || d.led("LED_BLUE") {
			t.Fatalf("step %d: another LED changed", i+1)
		}
	}
	if !d.logHas(cid, "blink: button A down; red LED on") || !d.logHas(cid, "blink: button A up; red LED off") {
		t.Errorf("the app's log does not show both changes:\n%s", d.sup.Log(cid))
	}
	before := strings.Count(string(d.sup.Log(cid)), "red LED off")
	must(t, d.board.Press("BUTTON_A"))
	d.waitFor(t, cid, "a momentary press turns the LED on and off again", func() bool {
		return strings.Count(string(d.sup.Log(cid)), "red LED off") == before+1 && !d.led("LED_RED")
	})
}
