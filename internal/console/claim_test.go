package console_test

import (
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/rampart-iot/rampart/enrollment"
	"github.com/rampart-iot/rampart/enrollment/enrollmenttest"
	"github.com/rampart-iot/rampart/internal/server/servertest"
)

// TestClaimForm: a Contributor claims a device by pasting its enrollment record, into a group,
// audited as in the API; a broken record is refused in place with what was typed kept; a Reader
// has no form and a forged claim is refused.
func TestClaimForm(t *testing.T) {
	srv := servertest.Start(t)
	f := newFixture(t, srv)
	b := newBrowser(t, srv)
	token := b.login(srv.AdminToken)
	base := "/console/t/" + f.tenant
	if p := b.get(base + "/devices"); !strings.Contains(p.body, `id="claim"`) {
		t.Fatalf("the devices page has no claim form:\n%s", p.body)
	}
	rec := enrollmenttest.Record(t)
	parsed, err := enrollment.Parse(rec)
	if err != nil {
		t.Fatal(err)
	}
	r := b.post(base+"/devices/claim", url.Values{"csrf": {token}, "enrollment": {string(rec)}, "group": {f.group.ID}})
	mustStatus(t, "claim", r, http.StatusSeeOther)
	if r.location != base+"/devices/"+parsed.DeviceID {
		t.Fatalf("after the claim: redirect to %q", r.location)
	}
	d, err := f.admin.GetDevice(t.Context(), f.tenant, parsed.DeviceID)
	if err != nil || d.DeviceGroupID != f.group.ID {
		t.Fatalf("the claimed device: %+v %v", d, err)
	}
	if es := f.audit(t, "device.claim"); len(es) < 2 || es[0].ResourceID != parsed.DeviceID {
		t.Fatalf("audit of the console's claim: %+v", es)
	}

	typed := `{"device_id": "nope"`
	r = b.post(base+"/devices/claim", url.Values{"csrf": {token}, "enrollment": {typed}})
	if r.status != http.StatusUnprocessableEntity || !strings.Contains(r.body, `id="claim-error"`) || !strings.Contains(r.body, html.EscapeString(typed)) {
		t.Fatalf("a broken record: %d\n%s", r.status, r.body)
	}
	r = b.post(base+"/devices/claim", url.Values{"csrf": {token}, "enrollment": {`{"device_id":"nope"}`}})
	if r.status != http.StatusUnprocessableEntity || !strings.Contains(r.body, `id="claim-error"`) {
		t.Fatalf("an invalid record: %d\n%s", r.status, r.body)
	}

	rb := newBrowser(t, srv)
	rtoken := rb.login(f.reader(t, "rita"))
	if p := rb.get(base + "/devices"); strings.Contains(p.body, `id="claim"`) {
		t.Error("a Reader sees the claim form")
	}
	mustStatus(t, "forged claim", rb.post(base+"/devices/claim", url.Values{"csrf": {rtoken}, "enrollment": {string(enrollmenttest.Record(t))}}), http.StatusForbidden)
}
