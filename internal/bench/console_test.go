package bench

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/client"
	"github.com/rampart-iot/rampart/internal/server/servertest"
	"github.com/rampart-iot/rampart/internal/store"
)

// The console's fleet: devices and error-report events seeded straight into the store
// (RAMPART_BENCH_CONSOLE_EVENTS overrides the events, for quick iterations).
const (
	consoleDevices  = 10_000
	consoleEvents   = 1_000_000
	consoleSamples  = 30               // requests per page at most; p50 and p99 (the worst of 30) are reported
	consoleBudget   = 20 * time.Second // per page: a slow page gets fewer samples (at least 3)
	consoleEventDay = 24 * time.Hour
)

// printConsoleLatency seeds a SQLite service with consoleDevices devices and consoleEvents
// error-report events over the last 30 days and prints p50 and p99 page times of the console's
// pages, one request at a time, through a logged-in session over HTTPS.
func printConsoleLatency(t *testing.T) {
	events := consoleEvents
	if s := os.Getenv("RAMPART_BENCH_CONSOLE_EVENTS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("RAMPART_BENCH_CONSOLE_EVENTS: %v", err)
		}
		events = n
	}
	srv := servertest.Start(t)
	ctx := context.Background()
	c, err := client.New(client.Config{Addr: srv.URL, Token: srv.AdminToken, CACertPEM: srv.CACertPEM})
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.CreateProduct(ctx, srv.TenantID, v1.ProductCreate{Name: "Console bench"})
	if err != nil {
		t.Fatal(err)
	}
	groups, err := c.AllProductDeviceGroups(ctx, srv.TenantID, p.ID, client.DeviceGroupListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	group := groups[0].ID
	seedStart := time.Now()
	now := time.Now().UTC().Truncate(time.Microsecond)
	devID := func(i int) string { return fmt.Sprintf("%064x", i+1) }
	for from := 0; from < consoleDevices; from += 1000 {
		err := srv.Store.Update(ctx, func(tx store.Tx) error {
			for i := from; i < min(from+1000, consoleDevices); i++ {
				d := store.Device{ID: devID(i), TenantID: srv.TenantID, DeviceGroupID: group, RootOfTrust: "software",
					EKPublic: []byte("ek"), AKPublic: []byte("ak"), Enrollment: []byte("{}"), ClaimedBy: "bench", ClaimedAt: now, UpdatedAt: now}
				if _, _, err := tx.ClaimDevice(ctx, d); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	types := []string{v1.EventAppCrash, v1.EventAppCrash, v1.EventAppCrash, v1.EventAppCrash, v1.EventAppCrash, v1.EventAppCrash, v1.EventAppCrash,
		v1.EventAppExit, v1.EventAppExit, v1.EventAppOOM}
	const batch = 5000
	minutes := int(30 * consoleEventDay / time.Minute)
	for from := 0; from < events; from += batch {
		rs := make([]store.ErrorReport, 0, batch)
		for i := from; i < min(from+batch, events); i++ {
			typ := types[i%len(types)]
			sig, exit := 0, store.NoExitCode
			switch typ {
			case v1.EventAppCrash:
				sig = []int{11, 6, 9}[i%3]
			case v1.EventAppExit:
				exit = 1 + i%3
			}
			comp := fmt.Sprintf("c0c0c0c0-0000-4000-8000-%012d", i%20)
			rs = append(rs, store.ErrorReport{TenantID: srv.TenantID, DeviceID: devID(i % consoleDevices), ID: fmt.Sprintf("e0e0e0e0-0000-7000-8000-%012d", i),
				DeviceGroupID: group, ProductID: p.ID, Type: typ, ComponentID: comp, ImageID: comp, Signal: sig, ExitCode: exit,
				Message: "bench", Time: now.Add(-time.Duration((i*7919)%minutes) * time.Minute), ReceivedAt: now})
		}
		if _, err := srv.Store.AddErrorReports(ctx, rs); err != nil {
			t.Fatal(err)
		}
	}
	seeded := time.Since(seedStart)

	b := consoleBrowser(t, srv)
	base := "/console/t/" + srv.TenantID
	bucket := regexp.MustCompile(`href="(/console/t/[^"]+/error-reports/bucket\?[^"]+)"`).FindStringSubmatch(b.get(t, base+"/error-reports"))
	if bucket == nil {
		t.Fatal("no error-report bucket on the page")
	}
	pages := []struct{ name, path string }{
		{"fleet overview", base + "/"},
		{"devices, first page", base + "/devices"},
		{"devices, filtered by state", base + "/devices?state=never-attested"},
		{"deployments", base + "/deployments"},
		{"error reports, 7 days (28 bins)", base + "/error-reports"},
		{"error reports, 24 hours (24 bins)", base + "/error-reports?range=24h"},
		{"error bucket, 30 days (30 bins)", regexp.MustCompile(`range=[^&]+`).ReplaceAllString(htmlUnescape(bucket[1]), "range=30d")},
		{"audit log", base + "/audit"},
	}
	fmt.Printf("\nconsole page times, SQLite, %d devices, %d events (seeded in %s), up to %d requests a page, one at a time:\n",
		consoleDevices, events, seeded.Round(time.Second), consoleSamples)
	for _, pg := range pages {
		var ds []time.Duration
		began := time.Now()
		for len(ds) < consoleSamples && (len(ds) < 3 || time.Since(began) < consoleBudget) {
			start := time.Now()
			b.get(t, pg.path)
			ds = append(ds, time.Since(start))
		}
		slices.Sort(ds)
		fmt.Printf("  %-46s p50 %8.1f ms   p99 %8.1f ms   (%d requests)\n", pg.name, ms(ds[len(ds)/2]), ms(ds[len(ds)*99/100]), len(ds))
	}
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

func htmlUnescape(s string) string {
	return regexp.MustCompile(`&amp;`).ReplaceAllString(s, "&")
}

type consoleClient struct {
	base string
	c    *http.Client
}

// consoleBrowser logs in to the console with the admin token.
func consoleBrowser(t *testing.T, srv *servertest.Server) *consoleClient {
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(srv.CACertPEM)
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	b := &consoleClient{base: srv.URL, c: &http.Client{Jar: jar, Timeout: 5 * time.Minute,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}}
	page := b.get(t, "/console/login")
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no CSRF token on the login page")
	}
	resp, err := b.c.PostForm(srv.URL+"/console/login", url.Values{"csrf": {m[1]}, "token": {srv.AdminToken}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("console login: %d", resp.StatusCode)
	}
	return b
}

func (b *consoleClient) get(t *testing.T, path string) string {
	resp, err := b.c.Get(b.base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d\n%s", path, resp.StatusCode, body)
	}
	return string(body)
}
