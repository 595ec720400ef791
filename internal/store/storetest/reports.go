package storetest

import (
	"fmt"
	"strconv"
	"testing"

	"github.com/rampart-iot/rampart/internal/store"
)

// eventIDOf returns the ID of a device's event n.
func eventIDOf(n int) string { return fmt.Sprintf("e0e0e0e0-0000-7000-8000-%012d", n) }

// newReport returns event n of device dev of a tenant, an AppCrash of component c with signal
// sig at minute n.
func newReport(tenantID string, dev, n, c, sig int) store.ErrorReport {
	return store.ErrorReport{TenantID: tenantID, DeviceID: deviceIDOf(dev), ID: eventIDOf(n),
		DeviceGroupID: "group-1", ProductID: "prod-1", DeploymentID: uuid7(1), Type: "AppCrash",
		ComponentID: componentOf(c), ImageID: imageIDOf(c), Signal: sig, ExitCode: store.NoExitCode,
		Message: "segfault", Time: at(n), ReceivedAt: at(1000 + n)}
}

func reportSeq(x store.ErrorReport) string { return strconv.FormatInt(x.Seq, 10) }
func reportID(x store.ErrorReport) string  { return x.DeviceID[:4] + "/" + x.ID }

// storedReports returns want as stored, with the Seq each of got has.
func storedReports(got, want []store.ErrorReport) []store.ErrorReport {
	out := make([]store.ErrorReport, len(want))
	for i, r := range want {
		r = norm(r)
		if i < len(got) {
			r.Seq = got[i].Seq
		}
		out[i] = r
	}
	return out
}

func testErrorReports(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	w.product(w.a.ID, "prod-1", "Thermostat")
	w.group(w.a.ID, "prod-1", "group-1", "Field")
	w.claim(w.a.ID, "group-1", 1)
	w.claim(w.a.ID, "group-1", 2)
	w.claim(w.b.ID, "", 3)

	r1 := newReport(w.a.ID, 1, 1, 1, 11)
	r2 := newReport(w.a.ID, 1, 2, 1, 11)
	r3 := newReport(w.a.ID, 2, 1, 1, 11) // another device may use the same event ID
	r3.Type, r3.Signal, r3.ExitCode, r3.Phase, r3.Reason = "UpdateFailed", 0, 3, "verify", "digest-mismatch"
	n, err := s.AddErrorReports(ctx, []store.ErrorReport{r1, r2, r3})
	must(t, err)
	eq(t, n, 3)

	p, err := s.ListErrorReports(ctx, w.a.ID, store.ErrorReportFilter{}, store.ListOptions{})
	must(t, err)
	// Newest (greatest Seq) first.
	eq(t, keys(p.Items, reportID), []string{reportID(r3), reportID(r2), reportID(r1)})
	eq(t, p.Items, storedReports(p.Items, []store.ErrorReport{r3, r2, r1}))
	if !(p.Items[0].Seq > p.Items[1].Seq && p.Items[1].Seq > p.Items[2].Seq) {
		t.Fatalf("sequence numbers do not grow: %v", keys(p.Items, reportSeq))
	}

	// A retried upload stores nothing twice and keeps the first; new events in it are stored.
	again := r1
	again.Message = "other"
	r4 := newReport(w.a.ID, 1, 4, 2, 6)
	n, err = s.AddErrorReports(ctx, []store.ErrorReport{again, r2, r4})
	must(t, err)
	eq(t, n, 1)
	p, err = s.ListErrorReports(ctx, w.a.ID, store.ErrorReportFilter{DeviceID: deviceIDOf(1)}, store.ListOptions{})
	must(t, err)
	eq(t, keys(p.Items, reportID), []string{reportID(r4), reportID(r2), reportID(r1)})
	eq(t, p.Items[2].Message, "segfault")

	// Another tenant's device, or none: nothing of the batch is stored.
	_, err = s.AddErrorReports(ctx, []store.ErrorReport{newReport(w.a.ID, 1, 9, 1, 11), newReport(w.a.ID, 3, 10, 1, 11)})
	isErr(t, err, store.ErrNotFound)
	_, err = s.AddErrorReports(ctx, []store.ErrorReport{newReport(w.a.ID, 99, 11, 1, 11)})
	isErr(t, err, store.ErrNotFound)
	p, err = s.ListErrorReports(ctx, w.a.ID, store.ErrorReportFilter{}, store.ListOptions{})
	must(t, err)
	eq(t, len(p.Items), 4)
	// Tenant b sees nothing of a's.
	p, err = s.ListErrorReports(ctx, w.b.ID, store.ErrorReportFilter{}, store.ListOptions{})
	must(t, err)
	eq(t, len(p.Items), 0)
	bs, err := s.ListErrorBuckets(ctx, w.b.ID, store.ErrorReportFilter{}, false, 10)
	must(t, err)
	eq(t, len(bs), 0)

	// Drops: the greatest total is kept.
	must(t, s.PutErrorReportDrops(ctx, w.a.ID, deviceIDOf(1), 5, at(1)))
	must(t, s.PutErrorReportDrops(ctx, w.a.ID, deviceIDOf(1), 3, at(2)))
	must(t, s.PutErrorReportDrops(ctx, w.a.ID, deviceIDOf(2), 7, at(2)))
	isErr(t, s.PutErrorReportDrops(ctx, w.a.ID, deviceIDOf(3), 7, at(2)), store.ErrNotFound)
	for _, c := range []struct {
		f    store.ErrorReportFilter
		want int64
	}{
		{store.ErrorReportFilter{}, 12},
		{store.ErrorReportFilter{DeviceID: deviceIDOf(1)}, 5},
		{store.ErrorReportFilter{DeviceGroupID: "group-1"}, 12},
		{store.ErrorReportFilter{ProductID: "prod-1"}, 12},
		{store.ErrorReportFilter{ProductID: "prod-x"}, 0},
	} {
		got, err := s.CountDroppedErrorReports(ctx, w.a.ID, c.f)
		must(t, err)
		if got != c.want {
			t.Errorf("dropped for %+v: %d, want %d", c.f, got, c.want)
		}
	}
	got, err := s.CountDroppedErrorReports(ctx, w.b.ID, store.ErrorReportFilter{})
	must(t, err)
	eq(t, got, int64(0))
}

func testListErrorReports(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	w.product(w.a.ID, "prod-1", "Thermostat")
	w.group(w.a.ID, "prod-1", "group-1", "Field")
	w.claim(w.a.ID, "group-1", 1)
	w.claim(w.a.ID, "", 2)
	var all []store.ErrorReport
	for i := range 25 {
		r := newReport(w.a.ID, 1+i%2, i, i%3, 11)
		if i%2 == 1 {
			r.DeviceGroupID, r.ProductID, r.DeploymentID = "", "", ""
		}
		if i%5 == 0 {
			r.Type, r.Signal, r.ExitCode = "AppExit", 0, 1
		}
		all = append(all, r)
	}
	_, err := s.AddErrorReports(ctx, all)
	must(t, err)

	list := func(f store.ErrorReportFilter) func(store.ListOptions) (store.Page[store.ErrorReport], error) {
		return func(o store.ListOptions) (store.Page[store.ErrorReport], error) {
			return s.ListErrorReports(ctx, w.a.ID, f, o)
		}
	}
	want := func(keep func(i int, r store.ErrorReport) bool) []string {
		var out []string
		for i := len(all) - 1; i >= 0; i-- {
			if keep(i, all[i]) {
				out = append(out, reportID(all[i]))
			}
		}
		return out
	}
	for _, c := range []struct {
		name string
		f    store.ErrorReportFilter
		keep func(i int, r store.ErrorReport) bool
	}{
		{"all", store.ErrorReportFilter{}, func(int, store.ErrorReport) bool { return true }},
		{"device", store.ErrorReportFilter{DeviceID: deviceIDOf(2)}, func(i int, _ store.ErrorReport) bool { return i%2 == 1 }},
		{"group", store.ErrorReportFilter{DeviceGroupID: "group-1"}, func(i int, _ store.ErrorReport) bool { return i%2 == 0 }},
		{"product", store.ErrorReportFilter{ProductID: "prod-1"}, func(i int, _ store.ErrorReport) bool { return i%2 == 0 }},
		{"type", store.ErrorReportFilter{Type: "AppExit"}, func(i int, _ store.ErrorReport) bool { return i%5 == 0 }},
		{"since-until", store.ErrorReportFilter{Since: at(5), Until: at(9)}, func(i int, _ store.ErrorReport) bool { return i >= 5 && i < 9 }},
		{"none", store.ErrorReportFilter{DeviceGroupID: "group-x"}, func(int, store.ErrorReport) bool { return false }},
	} {
		t.Run(c.name, func(t *testing.T) {
			exp := want(c.keep)
			if exp == nil {
				exp = []string{}
			}
			eq(t, pageAll(t, 4, list(c.f), reportID), exp)
		})
	}
	_, err = s.ListErrorReports(ctx, w.a.ID, store.ErrorReportFilter{}, store.ListOptions{After: "x"})
	if err == nil {
		t.Error("a cursor that is not a sequence number was accepted")
	}
}

func testErrorBuckets(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	w.product(w.a.ID, "prod-1", "Thermostat")
	w.group(w.a.ID, "prod-1", "group-1", "Field")
	w.claim(w.a.ID, "group-1", 1)
	w.claim(w.a.ID, "group-1", 2)
	reports := []store.ErrorReport{
		newReport(w.a.ID, 1, 1, 1, 11), // bucket A: component 1, SIGSEGV
		newReport(w.a.ID, 1, 5, 1, 11),
		newReport(w.a.ID, 2, 3, 1, 11),
		newReport(w.a.ID, 2, 4, 1, 6),  // bucket B: component 1, SIGABRT
		newReport(w.a.ID, 2, 9, 2, 11), // bucket C: component 2
	}
	exit := newReport(w.a.ID, 1, 7, 1, 0) // bucket D: exit code 0, later than B
	exit.Type, exit.ExitCode = "AppExit", 0
	reports = append(reports, exit)
	_, err := s.AddErrorReports(ctx, reports)
	must(t, err)

	bucket := func(dev string, c, sig, exitCode int, typ string, count, devices int64, first, last int) store.ErrorBucket {
		return store.ErrorBucket{DeviceID: dev, Type: typ, ComponentID: componentOf(c), ImageID: imageIDOf(c), Signal: sig,
			ExitCode: exitCode, Count: count, Devices: devices, FirstSeen: stored(at(first)), LastSeen: stored(at(last))}
	}
	got, err := s.ListErrorBuckets(ctx, w.a.ID, store.ErrorReportFilter{}, false, 100)
	must(t, err)
	// Most events first; ties by the latest last seen.
	eq(t, got, []store.ErrorBucket{
		bucket("", 1, 11, store.NoExitCode, "AppCrash", 3, 2, 1, 5),
		bucket("", 2, 11, store.NoExitCode, "AppCrash", 1, 1, 9, 9),
		bucket("", 1, 0, 0, "AppExit", 1, 1, 7, 7),
		bucket("", 1, 6, store.NoExitCode, "AppCrash", 1, 1, 4, 4),
	})
	// Limited.
	got, err = s.ListErrorBuckets(ctx, w.a.ID, store.ErrorReportFilter{}, false, 2)
	must(t, err)
	eq(t, len(got), 2)
	// Filtered by time.
	got, err = s.ListErrorBuckets(ctx, w.a.ID, store.ErrorReportFilter{Since: at(4), Until: at(8)}, false, 100)
	must(t, err)
	eq(t, got, []store.ErrorBucket{
		bucket("", 1, 0, 0, "AppExit", 1, 1, 7, 7),
		bucket("", 1, 11, store.NoExitCode, "AppCrash", 1, 1, 5, 5),
		bucket("", 1, 6, store.NoExitCode, "AppCrash", 1, 1, 4, 4),
	})
	// Per device.
	got, err = s.ListErrorBuckets(ctx, w.a.ID, store.ErrorReportFilter{Type: "AppCrash"}, true, 100)
	must(t, err)
	d1, d2 := deviceIDOf(1), deviceIDOf(2)
	want := []store.ErrorBucket{
		bucket(d1, 1, 11, store.NoExitCode, "AppCrash", 2, 1, 1, 5),
		bucket(d2, 2, 11, store.NoExitCode, "AppCrash", 1, 1, 9, 9),
		bucket(d2, 1, 6, store.NoExitCode, "AppCrash", 1, 1, 4, 4),
		bucket(d2, 1, 11, store.NoExitCode, "AppCrash", 1, 1, 3, 3),
	}
	eq(t, got, want)
}

func testDeleteErrorReports(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	w.product(w.a.ID, "prod-1", "Thermostat")
	w.group(w.a.ID, "prod-1", "group-1", "Field")
	w.claim(w.a.ID, "group-1", 1)
	w.claim(w.b.ID, "", 2)
	var rs []store.ErrorReport
	for i := range 6 {
		rs = append(rs, newReport(w.a.ID, 1, i, 1, 11)) // received at 1000+i
	}
	_, err := s.AddErrorReports(ctx, rs)
	must(t, err)
	rb := newReport(w.b.ID, 2, 0, 1, 11)
	rb.DeviceGroupID, rb.ProductID, rb.DeploymentID = "", "", ""
	_, err = s.AddErrorReports(ctx, []store.ErrorReport{rb})
	must(t, err)

	// Bounded: at most limit per call, oldest first, across tenants.
	n, err := s.DeleteErrorReportsBefore(ctx, at(1004), 3)
	must(t, err)
	eq(t, n, 3)
	n, err = s.DeleteErrorReportsBefore(ctx, at(1004), 100)
	must(t, err)
	eq(t, n, 2) // the first call took a's first, b's (also received at 1000) and a's second
	p, err := s.ListErrorReports(ctx, w.a.ID, store.ErrorReportFilter{}, store.ListOptions{})
	must(t, err)
	eq(t, keys(p.Items, reportID), []string{reportID(rs[5]), reportID(rs[4])})
	p, err = s.ListErrorReports(ctx, w.b.ID, store.ErrorReportFilter{}, store.ListOptions{})
	must(t, err)
	eq(t, len(p.Items), 0)
	n, err = s.DeleteErrorReportsBefore(ctx, at(1004), 100)
	must(t, err)
	eq(t, n, 0)
	// A deleted event ID may be stored again (the device never keeps one that long).
	n, err = s.AddErrorReports(ctx, []store.ErrorReport{rs[0]})
	must(t, err)
	eq(t, n, 1)
}

func testUpdateRollsBackReports(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	w.product(w.a.ID, "prod-1", "Thermostat")
	w.group(w.a.ID, "prod-1", "group-1", "Field")
	w.claim(w.a.ID, "group-1", 1)
	err := s.Update(ctx, func(tx store.Tx) error {
		if _, err := tx.AddErrorReports(ctx, []store.ErrorReport{newReport(w.a.ID, 1, 1, 1, 11)}); err != nil {
			return err
		}
		if err := tx.PutErrorReportDrops(ctx, w.a.ID, deviceIDOf(1), 4, at(1)); err != nil {
			return err
		}
		_, err := tx.AddErrorReports(ctx, []store.ErrorReport{newReport(w.a.ID, 9, 2, 1, 11)})
		return err
	})
	isErr(t, err, store.ErrNotFound)
	p, err := s.ListErrorReports(ctx, w.a.ID, store.ErrorReportFilter{}, store.ListOptions{})
	must(t, err)
	eq(t, len(p.Items), 0)
	n, err := s.CountDroppedErrorReports(ctx, w.a.ID, store.ErrorReportFilter{})
	must(t, err)
	eq(t, n, int64(0))
}
