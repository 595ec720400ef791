package httpapi_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"strconv"
	"testing"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/attestclient"
	"github.com/rampart-iot/rampart/internal/checkinclient"
	"github.com/rampart-iot/rampart/internal/eventqueue"
	"github.com/rampart-iot/rampart/internal/server/servertest"
)

// TestReportUploadsAreLimitedPerDevice: a device past its upload burst gets 429 with
// Retry-After and keeps its events queued, while another device's uploads go on.
func TestReportUploadsAreLimitedPerDevice(t *testing.T) {
	ctx := t.Context()
	srv := servertest.Start(t, servertest.ReportLimits(0.01, 2))
	admin := srv.Client(t, srv.AdminToken)
	flooder := srv.AttestedDevice(t, admin, srv.TenantID, "")
	quiet := srv.AttestedDevice(t, admin, srv.TenantID, "")
	client := func(d *servertest.Device) *checkinclient.Client {
		return &checkinclient.Client{Server: srv.URL, RootCAs: d.RootCAs, CertDir: d.Dir}
	}
	n := 0
	batch := func() v1.ReportBatch {
		n++
		q, err := eventqueue.Open(eventqueue.Config{Dir: filepath.Join(t.TempDir(), "q")})
		if err != nil {
			t.Fatal(err)
		}
		defer q.Close()
		if _, err := q.Add(v1.ReportEvent{Type: v1.EventWatchdogReset, Message: "n" + strconv.Itoa(n)}); err != nil {
			t.Fatal(err)
		}
		events, _ := q.Peek(1)
		return v1.ReportBatch{Events: events}
	}
	fc := client(flooder)
	for i := range 2 {
		if _, err := fc.UploadReports(ctx, batch()); err != nil {
			t.Fatalf("upload %d within the burst: %v", i, err)
		}
	}
	// Past the burst: 429, which the device's queue treats as passing, not as a refusal.
	q, err := eventqueue.Open(eventqueue.Config{Dir: filepath.Join(t.TempDir(), "events")})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if _, err := q.Add(v1.ReportEvent{Type: v1.EventAgentRestart}); err != nil {
		t.Fatal(err)
	}
	_, err = q.Flush(ctx, func(ctx context.Context, b v1.ReportBatch) error { _, err := fc.UploadReports(ctx, b); return err })
	var ce *checkinclient.Error
	if !errors.As(err, &ce) || ce.Status != http.StatusTooManyRequests || ce.Code != v1.CodeRateLimited || ce.Permanent() {
		t.Fatalf("past the burst: %v, want a temporary 429 rate_limited", err)
	}
	if left, _ := q.Peek(10); len(left) != 1 {
		t.Fatalf("the limited upload's events left the queue: %d queued", len(left))
	}
	// The answer says when to come back.
	cert, err := attestclient.LoadCertificate(flooder.Dir)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: flooder.RootCAs, Certificates: []tls.Certificate{cert}}}}
	body, _ := json.Marshal(batch())
	resp, err := hc.Post(srv.URL+"/v1/device/reports", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("raw upload past the burst: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// Another device is not affected.
	qc := client(quiet)
	for i := range 2 {
		if _, err := qc.UploadReports(ctx, batch()); err != nil {
			t.Fatalf("the other device's upload %d: %v", i, err)
		}
	}
}
