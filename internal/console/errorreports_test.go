package console_test

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/server/servertest"
	"github.com/rampart-iot/rampart/internal/store"
)

// hostileComponent is a component ID no real image has, planted to check that the SVG chart
// escapes what it is given.
const hostileComponent = `comp<script>x</script>`

// addCrashes stores error reports of the fixture's device straight into the store: five
// crashes of the image's component (three half an hour ago, two five hours ago), one crash of
// a hostile component, and one AppExit.
func (f *fixture) addCrashes(t *testing.T) {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Microsecond)
	var rs []store.ErrorReport
	add := func(typ, comp string, sig, exit int, at time.Time) {
		rs = append(rs, store.ErrorReport{TenantID: f.tenant, DeviceID: f.device.ID, ID: fmt.Sprintf("e0e0e0e0-0000-7000-8000-%012d", len(rs)+1),
			DeviceGroupID: f.group.ID, ProductID: f.product.ID, DeploymentID: f.deploy.ID, Type: typ, ComponentID: comp, ImageID: f.image.ID,
			Signal: sig, ExitCode: exit, Message: "boom", Time: at, ReceivedAt: now})
	}
	for range 3 {
		add(v1.EventAppCrash, f.image.ComponentID, 11, store.NoExitCode, now.Add(-30*time.Minute))
	}
	for range 2 {
		add(v1.EventAppCrash, f.image.ComponentID, 11, store.NoExitCode, now.Add(-5*time.Hour))
	}
	add(v1.EventAppCrash, hostileComponent, 6, store.NoExitCode, now.Add(-time.Hour))
	add(v1.EventAppExit, f.image.ComponentID, 0, 3, now.Add(-2*time.Hour))
	if _, err := f.srv.Store.AddErrorReports(t.Context(), rs); err != nil {
		t.Fatal(err)
	}
}

var seriesCell = regexp.MustCompile(`<tr><td>[^<]+</td><td>(\d+)</td></tr>`)

func TestErrorReportPages(t *testing.T) {
	srv := servertest.Start(t)
	f := newFixture(t, srv)
	f.addCrashes(t)
	b := newBrowser(t, srv)
	b.login(f.reader(t, "rita")) // a Reader reads error reports
	base := "/console/t/" + f.tenant

	page := b.get(base + "/error-reports?range=24h")
	mustStatus(t, "error reports", page, 200)
	for _, want := range []string{`<table id="buckets">`, `<td>5</td>`, `<td>1</td>`, `role="img"`, `<title id="b0-title">AppCrash in component ` + f.image.ComponentID + `, signal 11: events, last 24 hours</title>`,
		`AppExit`, `exit code 3`, `aria-current="page">Error reports`} {
		if !strings.Contains(page.body, want) {
			t.Errorf("the error-report page lacks %s", want)
		}
	}
	if strings.Contains(page.body, "<script>") || !strings.Contains(page.body, "comp&lt;script&gt;x&lt;/script&gt;") {
		t.Errorf("the hostile component is not escaped in the chart")
	}
	if n := strings.Count(page.body, "<svg"); n != 3 {
		t.Errorf("%d charts, want one per bucket (3)", n)
	}

	// The bucket's page: the chart and the same counts as a table.
	link := regexp.MustCompile(`href="(/console/t/[^"]+/error-reports/bucket\?[^"]+)">AppCrash`).FindStringSubmatch(page.body)
	if link == nil {
		t.Fatalf("no link to a bucket:\n%s", page.body)
	}
	bp := b.get(strings.ReplaceAll(link[1], "&amp;", "&"))
	mustStatus(t, "bucket page", bp, 200)
	if !strings.Contains(bp.body, `<svg`) || !strings.Contains(bp.body, `<desc id="bucket-desc">`) || !strings.Contains(bp.body, `<table id="series">`) {
		t.Fatalf("bucket page lacks its chart or table:\n%s", bp.body)
	}
	cells := seriesCell.FindAllStringSubmatch(bp.body, -1)
	total, nonzero := 0, 0
	for _, c := range cells {
		var n int
		fmt.Sscan(c[1], &n)
		total += n
		if n > 0 {
			nonzero++
		}
	}
	if len(cells) != 24 || total != 5 || nonzero != 2 {
		t.Errorf("the table has %d bins, %d events in %d bins; want 24 bins, 5 events in 2", len(cells), total, nonzero)
	}

	// The overview shows the recent crashes from the same data.
	ov := b.get(base + "/")
	mustStatus(t, "overview", ov, 200)
	if !strings.Contains(ov.body, `<table id="recent-crashes">`) || !strings.Contains(ov.body, "<td>5</td>") {
		t.Errorf("the overview lacks the recent crashes:\n%s", ov.body)
	}

	// Bad filters are refused with a clear message.
	for q, want := range map[string]string{"type=Bogus": "must be AppCrash", "range=1y": "must be 24h, 7d or 30d", "group=x": "not a device group ID"} {
		r := b.get(base + "/error-reports?" + q)
		mustStatus(t, q, r, http.StatusUnprocessableEntity)
		if !strings.Contains(r.body, want) {
			t.Errorf("%s: no %q in\n%s", q, want, r.body)
		}
	}
	r := b.get(base + "/error-reports/bucket?" + url.Values{"type": {"AppCrash"}, "signal": {"x"}, "exit": {"-1"}}.Encode())
	mustStatus(t, "bucket with a bad signal", r, http.StatusUnprocessableEntity)
}
