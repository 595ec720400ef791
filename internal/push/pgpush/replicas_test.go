package pgpush_test

import (
	"bytes"
	"context"
	"database/sql"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/imagepkg/imagepkgtest"
	"github.com/rampart-iot/rampart/internal/checkinclient"
	"github.com/rampart-iot/rampart/internal/push/pgpush"
	"github.com/rampart-iot/rampart/internal/server/servertest"
)

// TestDeploymentOnOneReplicaWakesADeviceOnAnother runs two replicas of the service on one
// PostgreSQL database. A device holds its push channel on replica B; a deployment created
// through replica A reaches it. Then every listener's connection is killed: once they are
// back, the device is woken with a check-in (it may have missed something), and a later
// deployment through A reaches it again.
func TestDeploymentOnOneReplicaWakesADeviceOnAnother(t *testing.T) {
	a := servertest.Start(t, servertest.Postgres())
	b := servertest.Start(t, servertest.SameDatabase(a))
	ctx := t.Context()
	adminA := a.Client(t, a.AdminToken)
	adminB := b.Client(t, b.AdminToken)
	prod, err := adminA.CreateProduct(ctx, a.TenantID, v1.ProductCreate{Name: "Lamp", NoDefaultDeviceGroups: true})
	if err != nil {
		t.Fatal(err)
	}
	grp, err := adminA.CreateDeviceGroup(ctx, a.TenantID, prod.ID, v1.DeviceGroupCreate{Name: "Field"})
	if err != nil {
		t.Fatal(err)
	}
	dev := b.AttestedDevice(t, adminB, b.TenantID, grp.ID)
	dc := &checkinclient.Client{Server: b.URL, RootCAs: dev.RootCAs, CertDir: dev.Dir}
	events := make(chan v1.DeviceEvent, 8)
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	streamDone := make(chan error, 1)
	go func() { streamDone <- dc.Events(sctx, func(e v1.DeviceEvent) error { events <- e; return nil }) }()
	next := func(what string) v1.DeviceEvent {
		t.Helper()
		select {
		case e := <-events:
			return e
		case err := <-streamDone:
			t.Fatalf("%s: the push channel ended: %v", what, err)
		case <-time.After(20 * time.Second):
			t.Fatalf("%s: no push event within 20 s", what)
		}
		return v1.DeviceEvent{}
	}
	if e := next("subscribe"); e.Type != "check-in" {
		t.Fatalf("first event %+v", e)
	}
	deploy := func(version string) string {
		t.Helper()
		pkg := imagepkgtest.Application(t, imagepkgtest.App{Name: "lamp", Version: version})
		img, err := adminA.AddImage(ctx, a.TenantID, bytes.NewReader(pkg.Bytes), int64(len(pkg.Bytes)), nil)
		if err != nil {
			t.Fatal(err)
		}
		d, err := adminA.CreateDeployment(ctx, a.TenantID, grp.ID, v1.DeploymentCreate{ImageIDs: []string{img.ID}})
		if err != nil {
			t.Fatal(err)
		}
		return d.ID
	}
	id := deploy("1.0.0")
	if e := next("a deployment through replica A"); e.Type != "deployment" || e.DeploymentID != id {
		t.Fatalf("event %+v, want deployment %s", e, id)
	}

	// Drop every listener of this database's push channel.
	db, err := sql.Open("pgx", a.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var schema string
	if err := db.QueryRowContext(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
		t.Fatal(err)
	}
	var killed int
	if err := db.QueryRowContext(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE query LIKE 'LISTEN %' AND query LIKE '%' || $1 || '%'`, pgpush.Channel(schema)).Scan(&killed); err != nil {
		t.Fatal(err)
	}
	if killed != 2 {
		t.Fatalf("terminated %d listeners, want both replicas'", killed)
	}
	if e := next("after the listener reconnected"); e.Type != "check-in" {
		t.Fatalf("event %+v, want a check-in after the reconnect", e)
	}
	id = deploy("1.1.0")
	for {
		e := next("a deployment after the reconnect")
		if e.Type == "deployment" && e.DeploymentID == id {
			break
		}
		if e.Type != "check-in" {
			t.Fatalf("event %+v", e)
		}
	}
}
