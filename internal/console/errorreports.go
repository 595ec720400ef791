package console

import (
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/console/chart"
	"github.com/rampart-iot/rampart/internal/errorreport"
	"github.com/rampart-iot/rampart/internal/ids"
	"github.com/rampart-iot/rampart/internal/problem"
	"github.com/rampart-iot/rampart/internal/store"
)

// Bounds of the error-report pages: the buckets listed, and the crash buckets on the fleet
// overview. The charts' counts are one aggregation of at most store.MaxBinCounts rows; the page
// says when it was cut short.
const (
	reportBuckets = 50
	recentCrashes = 5
)

// window is a time range the error-report pages chart, in equal bins.
type window struct {
	Name   string
	Label  string
	Bins   int
	Bin    time.Duration
	Format string // of a bin's start
}

var windows = []window{
	{Name: "24h", Label: "last 24 hours", Bins: 24, Bin: time.Hour, Format: "01-02 15:00"},
	{Name: "7d", Label: "last 7 days", Bins: 28, Bin: 6 * time.Hour, Format: "01-02 15:00"},
	{Name: "30d", Label: "last 30 days", Bins: 30, Bin: 24 * time.Hour, Format: "01-02"},
}

func findWindow(name string) (window, error) {
	if name == "" {
		return windows[1], nil
	}
	for _, w := range windows {
		if w.Name == name {
			return w, nil
		}
	}
	return window{}, problem.Invalid(v1.ErrorDetail{Field: "range", Message: fmt.Sprintf("must be 24h, 7d or 30d, not %q", name)})
}

// bins returns the start of each bin, the last holding now.
func (w window) bins(now time.Time) []time.Time {
	last := now.UTC().Truncate(w.Bin)
	out := make([]time.Time, w.Bins)
	for i := range out {
		out[i] = last.Add(-time.Duration(w.Bins-1-i) * w.Bin)
	}
	return out
}

// bucketKey names a bucket.
type bucketKey struct {
	Type, ComponentID, ImageID string
	Signal, ExitCode           int
}

func keyOf(b store.ErrorBucket) bucketKey {
	return bucketKey{b.Type, b.ComponentID, b.ImageID, b.Signal, b.ExitCode}
}

// query is the bucket's page's query string.
func (k bucketKey) query(win string) string {
	q := url.Values{"type": {k.Type}, "component": {k.ComponentID}, "image": {k.ImageID},
		"signal": {strconv.Itoa(k.Signal)}, "exit": {strconv.Itoa(k.ExitCode)}, "range": {win}}
	return q.Encode()
}

type binCount struct {
	Label string
	Start time.Time
	Count int64
}

type bucketRow struct {
	Bucket store.ErrorBucket
	URL    string
	Chart  template.HTML
	Series []binCount
}

type reportsView struct {
	Types     []string
	Type      string
	Group     string
	Groups    []store.DeviceGroup
	Windows   []window
	Window    window
	Rows      []bucketRow
	Truncated bool
	Dropped   int64
	BinsCut   bool
	Bucket    *bucketRow // the bucket page only
	BackURL   string
}

var eventTypes = []string{v1.EventAppCrash, v1.EventAppExit, v1.EventAppOOM, v1.EventSandboxDenied, v1.EventUpdateFailed,
	v1.EventRollbackPerformed, v1.EventAttestationFailed, v1.EventAgentRestart, v1.EventWatchdogReset}

// reportFilter reads the pages' filters: event type, device group and time window.
func (c *call) reportFilter() (store.ErrorReportFilter, window, error) {
	var f store.ErrorReportFilter
	typ, err := c.query("type")
	if err != nil {
		return f, window{}, err
	}
	group, err := c.query("group")
	if err != nil {
		return f, window{}, err
	}
	win, err := c.query("range")
	if err != nil {
		return f, window{}, err
	}
	var d []v1.ErrorDetail
	if typ != "" && !errorreport.KnownType(typ) {
		d = append(d, v1.ErrorDetail{Field: "type", Message: fmt.Sprintf("must be %s, not %q", errorreport.Types, typ)})
	}
	if group != "" && !ids.Valid(group) {
		d = append(d, v1.ErrorDetail{Field: "group", Message: "is not a device group ID"})
	}
	w, err := findWindow(win)
	if err != nil {
		return f, w, err
	}
	if len(d) > 0 {
		return f, w, problem.Invalid(d...)
	}
	f.Type, f.DeviceGroupID = typ, group
	return f, w, nil
}

// series counts each of keys' events in each bin of w, in one aggregation (only, if set,
// limits it to that bucket). cut reports that the aggregation was cut short.
func (h *Handler) series(c *call, f store.ErrorReportFilter, w window, keys map[bucketKey]int, only *store.ErrorBucket) (counts [][]binCount, cut bool, err error) {
	starts := w.bins(h.now())
	counts = make([][]binCount, len(keys))
	for i := range counts {
		counts[i] = make([]binCount, len(starts))
		for j, start := range starts {
			counts[i][j] = binCount{Label: start.Format(w.Format), Start: start}
		}
	}
	rows, cut, err := h.m.ErrorReportSeries(c.r.Context(), c.p, c.tenant.ID, f, only, starts[0], w.Bin, len(starts))
	if err != nil {
		return nil, false, err
	}
	for _, r := range rows {
		k := bucketKey{r.Type, r.ComponentID, r.ImageID, r.Signal, r.ExitCode}
		if i, ok := keys[k]; ok && r.Bin >= 0 && r.Bin < len(starts) {
			counts[i][r.Bin].Count = r.Count
		}
	}
	return counts, cut, nil
}

func barsOf(id, title, desc string, s []binCount, width, height int) template.HTML {
	pts := make([]chart.Point, len(s))
	for i, b := range s {
		pts[i] = chart.Point{Label: b.Label, Value: float64(b.Count)}
	}
	// The chart escapes every text it is given and returns one <svg> element.
	return template.HTML(chart.Bars{ID: id, Title: title, Desc: desc, YLabel: "events", Points: pts, Width: width, Height: height}.SVG())
}

func bucketName(b store.ErrorBucket) string {
	s := b.Type
	if b.ComponentID != "" {
		s += " in component " + b.ComponentID
	}
	if b.Signal != 0 {
		s += fmt.Sprintf(", signal %d", b.Signal)
	}
	if b.ExitCode != store.NoExitCode {
		s += fmt.Sprintf(", exit code %d", b.ExitCode)
	}
	return s
}

// errorReports lists the error-report buckets of a time window, busiest first, each with a
// chart of its events over the window.
func (h *Handler) errorReports(c *call) error {
	f, w, err := c.reportFilter()
	if err != nil {
		return err
	}
	ctx := c.r.Context()
	groups, err := h.m.ListDeviceGroups(ctx, c.p, c.tenant.ID, store.DeviceGroupFilter{}, store.ListOptions{Limit: maxFilterGroups})
	if err != nil {
		return err
	}
	starts := w.bins(h.now())
	f.Since = starts[0]
	v := reportsView{Types: eventTypes, Type: f.Type, Group: f.DeviceGroupID, Groups: groups.Items, Windows: windows, Window: w}
	bs, truncated, dropped, err := h.m.ErrorBuckets(ctx, c.p, c.tenant.ID, f, false, reportBuckets)
	if err != nil {
		return err
	}
	v.Truncated, v.Dropped = truncated, dropped
	keys := map[bucketKey]int{}
	for i, b := range bs {
		keys[keyOf(b)] = i
	}
	sf := f
	sf.Since = time.Time{}
	counts, cut, err := h.series(c, sf, w, keys, nil)
	if err != nil {
		return err
	}
	v.BinsCut = cut
	for i, b := range bs {
		name := bucketName(b)
		v.Rows = append(v.Rows, bucketRow{Bucket: b, URL: c.tenantPath("error-reports/bucket") + "?" + keyOf(b).query(w.Name),
			Chart: barsOf(fmt.Sprintf("b%d", i), name+": events, "+w.Label, fmt.Sprintf("%d events in all, from %d devices", b.Count, b.Devices), counts[i], 320, 90)})
	}
	vw := h.view(c, "Error reports", "error-reports")
	vw.Data = v
	h.render(c.w, c.r, http.StatusOK, "errorreports", vw)
	return nil
}

// errorBucket shows one bucket: its figures, a chart of its events over the window and the
// same counts as a table.
func (h *Handler) errorBucket(c *call) error {
	f, w, err := c.reportFilter()
	if err != nil {
		return err
	}
	var k bucketKey
	k.Type = f.Type
	var d []v1.ErrorDetail
	if k.Type == "" {
		d = append(d, v1.ErrorDetail{Field: "type", Message: "is required"})
	}
	for _, p := range []struct {
		name string
		dst  *string
	}{{"component", &k.ComponentID}, {"image", &k.ImageID}} {
		if *p.dst, err = c.query(p.name); err != nil {
			return err
		}
	}
	for _, p := range []struct {
		name string
		dst  *int
	}{{"signal", &k.Signal}, {"exit", &k.ExitCode}} {
		s, err := c.query(p.name)
		if err != nil {
			return err
		}
		if *p.dst, err = strconv.Atoi(s); err != nil {
			d = append(d, v1.ErrorDetail{Field: p.name, Message: fmt.Sprintf("must be a whole number, not %q", s)})
		}
	}
	if len(d) > 0 {
		return problem.Invalid(d...)
	}
	starts := w.bins(h.now())
	af := f
	af.Since = starts[0]
	bs, _, _, err := h.m.ErrorBuckets(c.r.Context(), c.p, c.tenant.ID, af, false, store.MaxBucketLimit)
	if err != nil {
		return err
	}
	row := bucketRow{Bucket: store.ErrorBucket{Type: k.Type, ComponentID: k.ComponentID, ImageID: k.ImageID, Signal: k.Signal, ExitCode: k.ExitCode}}
	for _, b := range bs {
		if keyOf(b) == k {
			row.Bucket = b
		}
	}
	only := row.Bucket
	counts, cut, err := h.series(c, f, w, map[bucketKey]int{k: 0}, &only)
	if err != nil {
		return err
	}
	name := bucketName(row.Bucket)
	row.Series = counts[0]
	row.Chart = barsOf("bucket", name+": events, "+w.Label,
		fmt.Sprintf("%d events from %d devices in the %s, in bins of %s; the table below lists the same counts", row.Bucket.Count, row.Bucket.Devices, w.Label, w.Bin), counts[0], 720, 240)
	v := reportsView{Types: eventTypes, Type: f.Type, Windows: windows, Window: w, Bucket: &row, BinsCut: cut,
		BackURL: c.tenantPath("error-reports") + "?" + url.Values{"range": {w.Name}}.Encode()}
	vw := h.view(c, "Error bucket: "+name, "error-reports")
	vw.Data = v
	h.render(c.w, c.r, http.StatusOK, "errorbucket", vw)
	return nil
}
