package storetest

import (
	"testing"
	"time"

	"github.com/rampart-iot/rampart/internal/store"
)

// testDeviceHours: a cohort's device-hours come from the hours its devices were up; a crash
// marks its hour (recording it if the device had not), an hour is counted once however often
// it is recorded, a record is bounded, and retention deletes old hours.
func testDeviceHours(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	w.product(w.a.ID, "prod-1", "Thermostat")
	w.group(w.a.ID, "prod-1", "group-1", "Field")
	w.claim(w.a.ID, "group-1", 2)
	d1, d2 := deviceIDOf(1), deviceIDOf(2)
	h0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

	// d1 ran deployment A from 10:00 to 12:30 (3 hours), recorded twice over; d2 ran A at 11:xx.
	must(t, s.RecordDeviceHours(ctx, w.a.ID, d1, "dep-a", h0.Add(5*time.Minute), h0.Add(150*time.Minute)))
	must(t, s.RecordDeviceHours(ctx, w.a.ID, d1, "dep-a", h0.Add(70*time.Minute), h0.Add(140*time.Minute)))
	must(t, s.RecordDeviceHours(ctx, w.a.ID, d2, "dep-a", h0.Add(61*time.Minute), h0.Add(62*time.Minute)))
	// A crash of d1 at 11:20, twice: one crashed hour.
	must(t, s.MarkCrashedHour(ctx, w.a.ID, d1, h0.Add(80*time.Minute)))
	must(t, s.MarkCrashedHour(ctx, w.a.ID, d1, h0.Add(81*time.Minute)))
	c, err := s.CohortHours(ctx, w.a.ID, "dep-a")
	must(t, err)
	eq(t, c, store.CohortHours{Devices: 2, Hours: 4, CrashedHours: 1})

	// d1 moves to deployment B at 12:40: its 12:00 hour is B's now; a crash at 13:10, in an
	// hour not recorded yet, counts for B (the device's latest deployment).
	must(t, s.RecordDeviceHours(ctx, w.a.ID, d1, "dep-b", h0.Add(160*time.Minute), h0.Add(170*time.Minute)))
	must(t, s.MarkCrashedHour(ctx, w.a.ID, d1, h0.Add(190*time.Minute)))
	c, err = s.CohortHours(ctx, w.a.ID, "dep-a")
	must(t, err)
	eq(t, c, store.CohortHours{Devices: 2, Hours: 3, CrashedHours: 1})
	c, err = s.CohortHours(ctx, w.a.ID, "dep-b")
	must(t, err)
	eq(t, c, store.CohortHours{Devices: 1, Hours: 2, CrashedHours: 1})
	// Another tenant sees nothing of it.
	c, err = s.CohortHours(ctx, w.b.ID, "dep-a")
	must(t, err)
	eq(t, c, store.CohortHours{})

	// A record of three days writes only the latest MaxDeviceHoursPerRecord hours.
	must(t, s.RecordDeviceHours(ctx, w.a.ID, d2, "dep-c", h0.Add(-72*time.Hour), h0.Add(-time.Minute)))
	c, err = s.CohortHours(ctx, w.a.ID, "dep-c")
	must(t, err)
	eq(t, c, store.CohortHours{Devices: 1, Hours: store.MaxDeviceHoursPerRecord})
	if err := s.RecordDeviceHours(ctx, w.a.ID, d2, "dep-c", h0, h0.Add(-time.Hour)); err == nil {
		t.Fatal("a record that ends before it starts was accepted")
	}

	// Retention: everything before 11:00 goes.
	n, err := s.DeleteDeviceHoursBefore(ctx, h0.Add(time.Hour))
	must(t, err)
	if n != store.MaxDeviceHoursPerRecord+1 {
		t.Fatalf("retention deleted %d hours, want %d", n, store.MaxDeviceHoursPerRecord+1)
	}
	c, err = s.CohortHours(ctx, w.a.ID, "dep-a")
	must(t, err)
	eq(t, c, store.CohortHours{Devices: 2, Hours: 2, CrashedHours: 1})
}
