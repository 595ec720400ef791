package bench

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/checkinclient"
	"github.com/rampart-iot/rampart/internal/server/servertest"
	"github.com/rampart-iot/rampart/internal/store"
)

// reportBatch is the size of one upload in the ingest figure (a queue holds up to 1000).
const reportBatch = 50

// newEventID is a random UUID (version 4 bits set), unique per event.
func newEventID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// reportFigures: error-report events ingested per second through the device endpoint (mutual
// TLS, strict decoding, validation, one durable commit per upload, buckets checked for
// webhooks and crashed hours marked), beside the store's raw insert of the same batches in
// one durable commit each.
func reportFigures(t *testing.T) []figure {
	srv := servertest.Start(t, servertest.AllowSoftwareRootOfTrust(true))
	ctx := context.Background()
	admin := srv.Client(t, srv.AdminToken)
	p, err := admin.CreateProduct(ctx, srv.TenantID, v1.ProductCreate{Name: "Reports"})
	if err != nil {
		t.Fatal(err)
	}
	g, err := admin.CreateDeviceGroup(ctx, srv.TenantID, p.ID, v1.DeviceGroupCreate{Name: "Field"})
	if err != nil {
		t.Fatal(err)
	}
	var clients []*checkinclient.Client
	var ids []string
	for range workers {
		d := srv.AttestedDevice(t, admin, srv.TenantID, g.ID)
		clients = append(clients, &checkinclient.Client{Server: srv.URL, RootCAs: d.RootCAs, CertDir: d.Dir})
		ids = append(ids, d.ID)
	}
	const comp = "0a0a0a0a-1111-4222-8333-444444444444"
	batch := func() []v1.ReportEvent {
		evs := make([]v1.ReportEvent, reportBatch)
		now := time.Now().UTC()
		for i := range evs {
			evs[i] = v1.ReportEvent{ID: newEventID(), Type: v1.EventAppCrash, Time: now, ComponentID: comp, Signal: 11}
		}
		return evs
	}
	return []figure{{
		name:        fmt.Sprintf("error-report events ingested (uploads of %d)", reportBatch),
		ceilingName: "store AddErrorReports, same batches",
		measure: func() float64 {
			return reportBatch * rate(t, func(w, _ int) error {
				_, err := clients[w].UploadReports(ctx, v1.ReportBatch{Events: batch()})
				return err
			})
		},
		ceiling: func() float64 {
			return reportBatch * rate(t, func(w, _ int) error {
				rs := make([]store.ErrorReport, reportBatch)
				now := time.Now().UTC()
				for i := range rs {
					rs[i] = store.ErrorReport{TenantID: srv.TenantID, DeviceID: ids[w], ID: newEventID(), DeviceGroupID: g.ID, ProductID: p.ID,
						Type: v1.EventAppCrash, ComponentID: comp, Signal: 11, ExitCode: store.NoExitCode, Time: now, ReceivedAt: now}
				}
				return srv.Store.Update(ctx, func(tx store.Tx) error {
					_, err := tx.AddErrorReports(ctx, rs)
					return err
				})
			})
		},
	}}
}
