package console_test

import (
	"crypto/rand"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/client"
	"github.com/rampart-iot/rampart/enrollment/enrollmenttest"
	"github.com/rampart-iot/rampart/internal/ids"
	"github.com/rampart-iot/rampart/internal/server/servertest"
)

// TestMoveDevices: a Contributor moves a device from its page and a selection from the
// devices list, each move audited as the API's device.move; the selection gets one result per
// device (a device that is not there does not stop the others); a missing group or selection
// is shown next to its field; a Reader has no controls and its forged moves are 403 and move
// nothing; a missing or wrong CSRF token is 403.
func TestMoveDevices(t *testing.T) {
	srv := servertest.Start(t)
	f := newFixture(t, srv)
	ctx := t.Context()
	base := "/console/t/" + f.tenant
	groups, err := f.admin.AllProductDeviceGroups(ctx, f.tenant, f.product.ID, client.DeviceGroupListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var prod v1.DeviceGroup
	for _, g := range groups {
		if g.Name == "Production" {
			prod = g
		}
	}
	var others []string
	for range 2 {
		d, _, err := f.admin.ClaimDevice(ctx, f.tenant, v1.DeviceClaim{Enrollment: enrollmenttest.Record(t), DeviceGroupID: f.group.ID})
		if err != nil {
			t.Fatal(err)
		}
		others = append(others, d.ID)
	}
	groupOf := func(id string) string {
		t.Helper()
		d, err := f.admin.GetDevice(ctx, f.tenant, id)
		if err != nil {
			t.Fatal(err)
		}
		return d.DeviceGroupID
	}

	cb := newBrowser(t, srv)
	ctok := cb.login(f.member(t, "carla", "Contributor"))
	dpath := base + "/devices/" + f.device.ID
	if p := cb.get(dpath); !strings.Contains(p.body, `id="move-device"`) {
		t.Fatalf("a Contributor's device page has no move form:\n%s", p.body)
	}
	r := cb.post(dpath+"/group", url.Values{"csrf": {ctok}, "group": {""}})
	mustStatus(t, "move to no chosen group", r, http.StatusUnprocessableEntity)
	if !strings.Contains(r.body, `id="move-group-err"`) || !strings.Contains(r.body, `aria-describedby="move-group-err"`) {
		t.Errorf("the missing group is not shown next to its field:\n%s", r.body)
	}
	gen := &ids.Generator{Now: time.Now, Rand: rand.Reader}
	missing := gen.MustNew()
	r = cb.post(dpath+"/group", url.Values{"csrf": {ctok}, "group": {missing}})
	mustStatus(t, "move to a group that is not there", r, http.StatusNotFound)
	if !strings.Contains(r.body, `id="move-group-err"`) {
		t.Errorf("the missing group is not shown next to its field:\n%s", r.body)
	}
	csrfCases(t, cb, dpath+"/group", url.Values{"group": {prod.ID}})
	if g := groupOf(f.device.ID); g != f.group.ID {
		t.Fatalf("refused moves moved the device to %q", g)
	}
	r = cb.post(dpath+"/group", url.Values{"csrf": {ctok}, "group": {prod.ID}})
	mustStatus(t, "move the device", r, http.StatusSeeOther)
	if g := groupOf(f.device.ID); g != prod.ID {
		t.Fatalf("after the move the device is in %q, want %q", g, prod.ID)
	}
	if es := f.audit(t, "device.move"); len(es) != 2 || es[0].Result != "success" || es[0].ResourceID != f.device.ID || es[0].Actor != "carla" {
		t.Fatalf("audit of the moves (one refused by manage, one made): %+v", es)
	}

	// The devices list: a selection, with a device that is not there among them.
	list := cb.get(base + "/devices")
	if !strings.Contains(list.body, `id="bulk-move"`) || !strings.Contains(list.body, `id="sel-`+others[0]+`"`) {
		t.Fatalf("a Contributor's devices list has no bulk move:\n%s", list.body)
	}
	r = cb.post(base+"/devices/move", url.Values{"csrf": {ctok}, "group": {prod.ID}})
	mustStatus(t, "move no devices", r, http.StatusUnprocessableEntity)
	if !strings.Contains(r.body, `id="bulk-selection-err"`) {
		t.Errorf("the empty selection is not shown next to it:\n%s", r.body)
	}
	r = cb.post(base+"/devices/move", url.Values{"csrf": {ctok}, "device": {others[0]}})
	mustStatus(t, "move to no chosen group", r, http.StatusUnprocessableEntity)
	if !strings.Contains(r.body, `id="bulk-group-err"`) || !strings.Contains(r.body, `id="sel-`+others[0]+`" form="bulk-move" checked`) {
		t.Errorf("the missing group is not shown next to it, or the selection was lost:\n%s", r.body)
	}
	csrfCases(t, cb, base+"/devices/move", url.Values{"group": {prod.ID}, "device": others})
	r = cb.post(base+"/devices/move", url.Values{"csrf": {ctok}, "group": {prod.ID}, "device": {others[0], missing, others[1]}})
	mustStatus(t, "bulk move", r, http.StatusOK)
	if !strings.Contains(r.body, `id="move-summary">2 moved, 1 not moved`) || strings.Count(r.body, "not moved</span>") != 1 {
		t.Fatalf("the bulk move's results:\n%s", r.body)
	}
	for _, id := range others {
		if g := groupOf(id); g != prod.ID {
			t.Errorf("device %s is in %q after the bulk move", id, g)
		}
	}
	if es := f.audit(t, "device.move"); len(es) != 5 || es[0].Result != "success" || es[1].Result != "failure" || es[2].Result != "success" {
		t.Fatalf("audit of the bulk move (one entry a device): %+v", es)
	}
	r = cb.post(base+"/devices/move", url.Values{"csrf": {ctok}, "group": {"none"}, "device": {others[1]}})
	mustStatus(t, "move to no group", r, http.StatusOK)
	if g := groupOf(others[1]); g != "" {
		t.Errorf("after a move to no group the device is in %q", g)
	}

	// A Reader: no controls; forged moves are refused, audited and move nothing.
	rb := newBrowser(t, srv)
	rtok := rb.login(f.reader(t, "rita"))
	if p := rb.get(dpath); strings.Contains(p.body, `id="move-device"`) {
		t.Error("a Reader sees the move form")
	}
	if p := rb.get(base + "/devices"); strings.Contains(p.body, `id="bulk-move"`) || strings.Contains(p.body, `name="device"`) {
		t.Error("a Reader sees the bulk move")
	}
	mustStatus(t, "a Reader's forged move", rb.post(dpath+"/group", url.Values{"csrf": {rtok}, "group": {f.group.ID}}), http.StatusForbidden)
	mustStatus(t, "a Reader's forged move to no chosen group", rb.post(dpath+"/group", url.Values{"csrf": {rtok}}), http.StatusForbidden)
	mustStatus(t, "a Reader's forged bulk move", rb.post(base+"/devices/move", url.Values{"csrf": {rtok}, "group": {f.group.ID}, "device": others}), http.StatusForbidden)
	mustStatus(t, "a Reader's forged empty bulk move", rb.post(base+"/devices/move", url.Values{"csrf": {rtok}}), http.StatusForbidden)
	if g := groupOf(f.device.ID); g != prod.ID {
		t.Fatalf("a Reader moved the device to %q", g)
	}
	if g := groupOf(others[0]); g != prod.ID {
		t.Fatalf("a Reader moved a device to %q", g)
	}
	if es := f.audit(t, "device.move"); es[0].Result != "failure" || es[0].Actor != "rita" {
		t.Fatalf("the Reader's forged bulk move is not audited as a failure: %+v", es[0])
	}
}
