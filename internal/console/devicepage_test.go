package console_test

import (
	"strings"
	"testing"

	"github.com/rampart-iot/rampart/internal/server/servertest"
)

// TestDevicePageCertificatesAndEvents: a device's page lists the certificates its passing
// attestations issued and its latest error-report events.
func TestDevicePageCertificatesAndEvents(t *testing.T) {
	srv := servertest.Start(t)
	f := newFixture(t, srv)
	f.addCrashes(t)
	d := srv.AttestedDevice(t, f.admin, f.tenant, f.group.ID)
	b := newBrowser(t, srv)
	b.login(srv.AdminToken)
	p := b.get("/console/t/" + f.tenant + "/devices/" + d.ID)
	mustStatus(t, "attested device page", p, 200)
	if !strings.Contains(p.body, `<table id="certificates">`) || strings.Count(p.body[strings.Index(p.body, `id="certificates"`):], "<tr><td><code class=\"wrap\">") < 1 {
		t.Errorf("no certificate listed for an attested device:\n%s", p.body)
	}
	p = b.get("/console/t/" + f.tenant + "/devices/" + f.device.ID)
	mustStatus(t, "device page with events", p, 200)
	if !strings.Contains(p.body, `<table id="device-events">`) || !strings.Contains(p.body, "<td>AppCrash</td>") || !strings.Contains(p.body, "signal 11") {
		t.Errorf("the device's events are not listed:\n%s", p.body)
	}
}
