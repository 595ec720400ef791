package errorreport_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/errorreport"
	"github.com/rampart-iot/rampart/internal/store"
	"github.com/rampart-iot/rampart/internal/store/storetest"
)

// TestIngestTellsNewBuckets: the new-bucket hook hears of each bucket an upload opens, once,
// in the ingest's transaction: not of buckets the tenant had, not of a retried upload, and an
// error it returns stores nothing.
func TestIngestTellsNewBuckets(t *testing.T) {
	ctx := t.Context()
	s := storetest.OpenSQLite(t)
	dev := store.Device{ID: strings.Repeat("ab", 32), TenantID: "tenant-a", RootOfTrust: "software", AgentVersion: "1",
		EKPublic: []byte("ek"), AKPublic: []byte("ak"), Enrollment: []byte("{}"), ClaimedBy: "user", ClaimedAt: t0, UpdatedAt: t0}
	if err := s.CreateTenant(ctx, store.Tenant{ID: "tenant-a", Name: "Contoso", CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.ClaimDevice(ctx, dev); err != nil {
		t.Fatal(err)
	}
	var heard []string
	onNew := func(ctx context.Context, tx store.Tx, r store.ErrorReport) error {
		heard = append(heard, fmt.Sprintf("%s/%d/%d", r.Type, r.Signal, r.ExitCode))
		return nil
	}
	crash := func(id string, sig int) v1.ReportEvent {
		e := ev(id, v1.EventAppCrash)
		e.Signal = sig
		return e
	}
	b := v1.ReportBatch{Events: []v1.ReportEvent{
		crash("01950000-0000-7000-8000-000000000001", 11),
		crash("01950000-0000-7000-8000-000000000002", 11),
		crash("01950000-0000-7000-8000-000000000003", 6),
	}}
	if _, err := errorreport.Ingest(ctx, s, dev, b, t0, onNew); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(heard, " "); got != "AppCrash/11/-1 AppCrash/6/-1" {
		t.Fatalf("heard %q", got)
	}
	heard = nil
	// The same upload again, and a new event in a known bucket: nothing new.
	b.Events = append(b.Events, crash("01950000-0000-7000-8000-000000000004", 11))
	if _, err := errorreport.Ingest(ctx, s, dev, b, t0, onNew); err != nil || len(heard) != 0 {
		t.Fatalf("a retried upload: heard %v, %v", heard, err)
	}
	// A hook that fails fails the upload: the event is not stored, so it is new next time.
	fail := func(context.Context, store.Tx, store.ErrorReport) error { return errors.New("outbox full") }
	oom := v1.ReportBatch{Events: []v1.ReportEvent{ev("01950000-0000-7000-8000-000000000005", v1.EventAppOOM)}}
	if _, err := errorreport.Ingest(ctx, s, dev, oom, t0, fail); err == nil {
		t.Fatal("a failing hook did not fail the upload")
	}
	if _, err := errorreport.Ingest(ctx, s, dev, oom, t0, onNew); err != nil || len(heard) != 1 {
		t.Fatalf("after the failed upload: heard %v, %v", heard, err)
	}
}
