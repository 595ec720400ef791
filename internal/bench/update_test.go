package bench

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/imagepkg/imagepkgtest"
	"github.com/rampart-iot/rampart/internal/checkinclient"
	"github.com/rampart-iot/rampart/internal/server/servertest"
)

// updateFigures returns check-ins per second beside the cheapest mutual-TLS device call (who am
// I), on the same kept-alive connections, with one device per worker.
func updateFigures(t *testing.T) []figure {
	ctx := context.Background()
	srv := servertest.Start(t, servertest.AllowSoftwareRootOfTrust(true))
	admin := srv.Client(t, srv.AdminToken)
	prod, err := admin.CreateProduct(ctx, srv.TenantID, v1.ProductCreate{Name: "Bench"})
	if err != nil {
		t.Fatal(err)
	}
	g, err := admin.CreateDeviceGroup(ctx, srv.TenantID, prod.ID, v1.DeviceGroupCreate{Name: "Bench"})
	if err != nil {
		t.Fatal(err)
	}
	var devs []*checkinclient.Client
	for range workers {
		d := srv.AttestedDevice(t, admin, srv.TenantID, g.ID)
		devs = append(devs, &checkinclient.Client{Server: srv.URL, RootCAs: d.RootCAs, CertDir: d.Dir})
	}
	report := v1.CheckIn{AgentVersion: "1.0.0", Images: []v1.InstalledImage{}, OS: &v1.OSSlots{Active: "a", Booted: "a",
		CommittedVersion: "1.0.0", Slots: []v1.OSSlot{{Name: "a", Version: "1.0.0"}}}}
	return []figure{{
		name: "check-ins (mutual TLS, report stored)", ceilingName: "GET /v1/device/self, same TLS",
		measure: func() float64 {
			return rate(t, func(w, _ int) error { _, err := devs[w].CheckIn(ctx, report); return err })
		},
		ceiling: func() float64 {
			return rate(t, func(w, _ int) error { _, err := devs[w].Get(ctx, "/v1/device/self", 1<<20); return err })
		},
	}}
}

// pushLatency is the time from calling `deployment create` to the device's push event (the
// service pushes once the deployment committed, before the caller has read the reply), over n
// deployments, for one connected device: the median and the worst.
func pushLatency(t *testing.T, n int) (median, worst time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := servertest.Start(t, servertest.AllowSoftwareRootOfTrust(true))
	admin := srv.Client(t, srv.AdminToken)
	prod, err := admin.CreateProduct(ctx, srv.TenantID, v1.ProductCreate{Name: "Bench"})
	if err != nil {
		t.Fatal(err)
	}
	g, err := admin.CreateDeviceGroup(ctx, srv.TenantID, prod.ID, v1.DeviceGroupCreate{Name: "Bench"})
	if err != nil {
		t.Fatal(err)
	}
	d := srv.AttestedDevice(t, admin, srv.TenantID, g.ID)
	dc := &checkinclient.Client{Server: srv.URL, RootCAs: d.RootCAs, CertDir: d.Dir}
	img, err := admin.AddImage(ctx, srv.TenantID, bytes.NewReader(imagepkgtest.Application(t, imagepkgtest.App{Name: "b", Version: "1.0.0"}).Bytes), -1, nil)
	if err != nil {
		t.Fatal(err)
	}
	events := make(chan time.Time, 16)
	go func() {
		_ = dc.Events(ctx, func(e v1.DeviceEvent) error {
			if e.Type == "deployment" {
				events <- time.Now()
			}
			return nil
		})
	}()
	time.Sleep(200 * time.Millisecond) // let the channel open (its first event is a check-in)
	var ds []time.Duration
	for range n {
		start := time.Now()
		_, err := admin.CreateDeployment(ctx, srv.TenantID, g.ID, v1.DeploymentCreate{ImageIDs: []string{img.ID}})
		if err != nil {
			t.Fatal(err)
		}
		select {
		case at := <-events:
			ds = append(ds, at.Sub(start))
		case <-time.After(10 * time.Second):
			t.Fatal("no push event within 10 s")
		}
	}
	slices.Sort(ds)
	return ds[len(ds)/2], ds[len(ds)-1]
}

func printPushLatency(t *testing.T) {
	med, worst := pushLatency(t, 20)
	fmt.Printf("%-48s %10.2f ms (median of 20; worst %.2f ms; from calling deployment create)\n",
		"deployment to device push event", float64(med)/1e6, float64(worst)/1e6)
}
