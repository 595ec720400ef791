package console_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/checkinclient"
	"github.com/rampart-iot/rampart/internal/server/servertest"
)

// TestLiveBoard: an emulated device's board, as its check-in reports it, is on its page; a
// Contributor's press reaches the device at its next check-in; a Reader sees no press control
// and a forged press is refused.
func TestLiveBoard(t *testing.T) {
	srv := servertest.Start(t)
	f := newFixture(t, srv)
	ctx := t.Context()
	d := srv.AttestedDevice(t, f.admin, f.tenant, f.group.ID)
	dc := &checkinclient.Client{Server: srv.URL, RootCAs: d.RootCAs, CertDir: d.Dir}
	report := v1.CheckIn{AgentVersion: "1.0.0", Images: []v1.InstalledImage{}, Board: &v1.BoardState{Board: "emulated",
		LEDs:    []v1.BoardLED{{Name: "LED_RED", GPIO: 8, On: true}, {Name: "LED_GREEN", GPIO: 9}},
		Buttons: []v1.BoardButton{{Name: "BUTTON_A", GPIO: 12, Presses: 3}}}}
	if _, err := dc.CheckIn(ctx, report); err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t, srv)
	token := b.login(srv.AdminToken)
	page := "/console/t/" + f.tenant + "/devices/" + d.ID
	p := b.get(page)
	mustStatus(t, "device page", p, 200)
	for _, want := range []string{`<h2 id="board-h">Board: emulated</h2>`, `<span class="led on" aria-hidden="true"></span> LED_RED (GPIO 8): <strong>on</strong>`,
		`LED_GREEN (GPIO 9): <strong>off</strong>`, `<td>BUTTON_A</td><td>12</td><td>3</td>`, `id="press-BUTTON_A"`} {
		if !strings.Contains(p.body, want) {
			t.Errorf("the device page lacks %s", want)
		}
	}
	r := b.post(page+"/board/press", url.Values{"csrf": {token}, "button": {"BUTTON_A"}})
	mustStatus(t, "press", r, http.StatusSeeOther)
	res, err := dc.CheckIn(ctx, report)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.BoardPresses) != 1 || res.BoardPresses[0] != "BUTTON_A" {
		t.Fatalf("the device's next check-in got presses %v", res.BoardPresses)
	}
	// A button the board does not have is refused in place.
	if r := b.post(page+"/board/press", url.Values{"csrf": {token}, "button": {"BUTTON_Q"}}); r.status < 400 || !strings.Contains(r.body, "no button") {
		t.Fatalf("pressing a missing button: %d\n%s", r.status, r.body)
	}
	// A Reader sees the board but no press control, and a forged press is refused.
	rb := newBrowser(t, srv)
	rtoken := rb.login(f.reader(t, "rita"))
	rp := rb.get(page)
	if !strings.Contains(rp.body, `id="board-h"`) || strings.Contains(rp.body, `id="press-BUTTON_A"`) {
		t.Errorf("the Reader's device page:\n%s", rp.body)
	}
	mustStatus(t, "forged press", rb.post(page+"/board/press", url.Values{"csrf": {rtoken}, "button": {"BUTTON_A"}}), http.StatusForbidden)
	if res, err := dc.CheckIn(ctx, report); err != nil || len(res.BoardPresses) != 0 {
		t.Fatalf("after the forged press: %v %v", res.BoardPresses, err)
	}
}
