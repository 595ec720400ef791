// Package bench measures the security service's throughput against ceilings taken in the same
// run on the same machine, and prints each figure beside its ceiling. It asserts nothing about
// time: `make bench` runs it (RAMPART_BENCH=1) and docs/PERFORMANCE.md records what it printed.
package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/client"
	"github.com/rampart-iot/rampart/enrollment/enrollmenttest"
	"github.com/rampart-iot/rampart/internal/server/servertest"
	"github.com/rampart-iot/rampart/internal/store"
)

const (
	window  = 2 * time.Second // one measurement
	rounds  = 3               // interleaved rounds; the median is reported
	workers = 8               // concurrent callers
)

// rate runs op from workers goroutines for window and returns operations per second.
func rate(t *testing.T, op func(worker, i int) error) float64 {
	var n atomic.Int64
	var failed atomic.Value
	deadline := time.Now().Add(window)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline); i++ {
				if err := op(w, i); err != nil {
					failed.Store(err)
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		t.Fatalf("benchmark operation failed: %v", err)
	}
	return float64(n.Load()) / time.Since(start).Seconds()
}

// count runs op n times from each of workers goroutines and returns operations per second.
func count(t *testing.T, workers, n int, op func(worker, i int) error) float64 {
	var failed atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				if err := op(w, i); err != nil {
					failed.Store(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		t.Fatalf("benchmark operation failed: %v", err)
	}
	return float64(workers*n) / time.Since(start).Seconds()
}

type figure struct {
	name, ceilingName string
	measure, ceiling  func() float64
}

func median(xs []float64) float64 {
	slices.Sort(xs)
	return xs[len(xs)/2]
}

// TestBenchReport is `make bench`.
func TestBenchReport(t *testing.T) {
	if os.Getenv("RAMPART_BENCH") == "" {
		t.Skip("benchmarks run with `make bench` (RAMPART_BENCH=1); they take about a minute")
	}
	fmt.Printf("rampart bench: %d workers, %s windows, median of %d interleaved rounds, GOMAXPROCS=%d, %s\n\n",
		workers, window, rounds, runtime.GOMAXPROCS(0), time.Now().UTC().Format(time.RFC3339))
	fmt.Printf("%-48s %12s   %-36s %12s %7s\n", "figure", "value", "ceiling (same run)", "ceiling", "ratio")
	// RAMPART_BENCH_ONLY=api, =attest, =update, =reports, =console or =apps runs one group, for quick iterations.
	only := os.Getenv("RAMPART_BENCH_ONLY")
	var figs []figure
	if only == "" || only == "api" {
		for _, backend := range []string{"sqlite", "postgres"} {
			figs = append(figs, apiFigures(t, backend)...)
		}
	}
	if only == "" || only == "attest" {
		figs = append(figs, attestationFigures(t)...)
	}
	if only == "" || only == "update" {
		figs = append(figs, updateFigures(t)...)
	}
	if only == "" || only == "reports" {
		figs = append(figs, reportFigures(t)...)
	}
	{
		for _, f := range figs {
			var vals, ceils []float64
			for range rounds {
				vals = append(vals, f.measure())
				ceils = append(ceils, f.ceiling())
			}
			v, c := median(vals), median(ceils)
			fmt.Printf("%-48s %10.0f/s   %-36s %10.0f/s %6.0f%%\n", f.name, v, f.ceilingName, c, 100*v/c)
		}
	}
	fmt.Println()
	if only == "" || only == "update" {
		printPushLatency(t)
	}
	if only == "" || only == "console" {
		printConsoleLatency(t)
	}
	if only == "" || only == "apps" {
		printAppFigures(t)
	}
	for _, spec := range []string{"tpm-sim", "swtpm"} {
		if only != "" && only != "attest" {
			break
		}
		if spec == "swtpm" {
			s, err := swtpmSpec(t)
			if err != nil {
				fmt.Printf("%-48s %s\n", "attestation latency, swtpm", "not measured: "+err.Error())
				continue
			}
			spec = s
		}
		d, err := attestationLatency(t, spec)
		if err != nil {
			fmt.Printf("%-48s %s\n", "attestation latency, "+spec, "not measured: "+err.Error())
			continue
		}
		fmt.Printf("%-48s %10.1f ms (median of 5, one device)\n", "attestation latency, "+shortSpec(spec), float64(d)/1e6)
	}
}

func shortSpec(s string) string {
	if len(s) > 5 && s[:5] == "swtpm" {
		return "swtpm"
	}
	return s
}

// apiFigures sets up a service on backend with a tenant of 1000 devices and returns the API
// figures with their store ceilings.
func apiFigures(t *testing.T, backend string) []figure {
	srv := servertest.Start(t, servertest.Backend(backend))
	ctx := context.Background()
	c, err := client.New(client.Config{Addr: srv.URL, Token: srv.AdminToken, CACertPEM: srv.CACertPEM})
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.CreateProduct(ctx, srv.TenantID, v1.ProductCreate{Name: "Bench"})
	if err != nil {
		t.Fatal(err)
	}
	groups, err := c.AllProductDeviceGroups(ctx, srv.TenantID, p.ID, client.DeviceGroupListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	group := groups[0].ID
	seed := make([]json.RawMessage, 1000)
	for i := range seed {
		seed[i] = enrollmenttest.Record(t)
	}
	if _, err := c.BulkClaimDevices(ctx, srv.TenantID, v1.DeviceBulkClaim{Enrollments: seed, DeviceGroupID: group}); err != nil {
		t.Fatal(err)
	}

	// Records for claims: generated before any timing starts, one pool per measurement.
	pool := func(n int) [][]byte {
		out := make([][]byte, n)
		for i := range out {
			out[i] = enrollmenttest.Record(t)
		}
		return out
	}
	const perRound = 20000
	listFilter := store.DeviceFilter{ProductID: p.ID}
	listOpt := store.ListOptions{Limit: 100}

	var storeClaims atomic.Int64
	return []figure{
		{
			name:        "API device list, 100 per page (" + backend + ")",
			ceilingName: "store ListDevices, same page",
			measure: func() float64 {
				return rate(t, func(_, _ int) error {
					l, err := c.ListDevices(ctx, srv.TenantID, client.DeviceListOptions{DeviceFilter: client.DeviceFilter{ProductID: p.ID}, ListOptions: client.ListOptions{MaxPageSize: 100}})
					if err == nil && len(l.Items) != 100 {
						err = fmt.Errorf("%d items", len(l.Items))
					}
					return err
				})
			},
			ceiling: func() float64 {
				return rate(t, func(_, _ int) error {
					_, err := srv.Store.ListDevices(ctx, srv.TenantID, listFilter, listOpt)
					return err
				})
			},
		},
		{
			name:        "API device claim (" + backend + ")",
			ceilingName: "store ClaimDevice",
			measure: func() float64 {
				recs := pool(perRound)
				var next atomic.Int64
				return rate(t, func(_, _ int) error {
					i := next.Add(1) - 1
					if i >= int64(len(recs)) {
						return fmt.Errorf("record pool of %d exhausted; raise perRound", len(recs))
					}
					_, _, err := c.ClaimDevice(ctx, srv.TenantID, v1.DeviceClaim{Enrollment: recs[i], DeviceGroupID: group})
					return err
				})
			},
			ceiling: func() float64 {
				now := time.Now().UTC().Truncate(time.Microsecond)
				return rate(t, func(_, _ int) error {
					i := storeClaims.Add(1)
					d := store.Device{ID: fmt.Sprintf("%064x", i), TenantID: srv.TenantID, DeviceGroupID: group, RootOfTrust: "software",
						EKPublic: []byte("ek"), AKPublic: []byte("ak"), Enrollment: []byte("{}"), ClaimedBy: "bench", ClaimedAt: now, UpdatedAt: now}
					_, _, err := srv.Store.ClaimDevice(ctx, d)
					return err
				})
			},
		},
	}
}
