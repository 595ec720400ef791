package cli

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/checkinclient"
	"github.com/rampart-iot/rampart/internal/store"
	"github.com/rampart-iot/rampart/internal/webhook"
)

// hookReceiver is a webhook receiver on loopback http (the dev service allows it) that checks
// every delivery's signature with the secret the CLI printed.
type hookReceiver struct {
	mu     sync.Mutex
	secret string
	got    []webhook.Envelope
	bad    []string
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := webhook.Verify(h.secret, r.Header.Get(webhook.HeaderTimestamp), r.Header.Get(webhook.HeaderSignature), body, time.Now(), 5*time.Minute); err != nil {
		h.bad = append(h.bad, err.Error())
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var e webhook.Envelope
	_ = json.Unmarshal(body, &e)
	h.got = append(h.got, e)
}

// wait waits until the receiver holds n deliveries, and returns them.
func (h *hookReceiver) wait(t *testing.T, n int) []webhook.Envelope {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		h.mu.Lock()
		got, bad := append([]webhook.Envelope(nil), h.got...), h.bad
		h.mu.Unlock()
		if len(bad) > 0 {
			t.Fatalf("deliveries failed verification: %v", bad)
		}
		if len(got) >= n {
			return got
		}
	}
	t.Fatalf("the receiver got fewer than %d deliveries within a minute", n)
	return nil
}

// TestE2EWebhooks drives the real CLI and service: a webhook registered with the CLI hears, signed,
// of a new error-report bucket (once, however often it recurs) and of a rollout's start, pause
// and abort; its deliveries are listed; bad input is refused naming the flag.
func TestE2EWebhooks(t *testing.T) {
	e := startE2E(t)
	r := e.admin
	recv := &hookReceiver{}
	srv := httptest.NewServer(recv)
	t.Cleanup(srv.Close)

	for _, c := range []struct {
		want string
		args []string
	}{
		{`--events: "rollout.started" is not an event type`, []string{"--url", srv.URL, "--events", "rollout.started"}},
		{"--url is required", []string{"--events", "rollout.state_changed"}},
	} {
		if res := r.run(t, append([]string{"webhook", "create"}, c.args...)...); res.code != 2 || !strings.Contains(res.err, c.want) {
			t.Errorf("webhook create %v: exit %d, %q; want a usage error saying %q", c.args, res.code, res.err, c.want)
		}
	}
	r.fails(t, "scheme must be https", "webhook", "create", "--url", "ftp://hooks.example.com/", "--events", "rollout.state_changed")
	r.fails(t, "only to a loopback host", "webhook", "create", "--url", "http://hooks.example.com/", "--events", "rollout.state_changed")
	var w v1.Webhook
	r.json(t, &w, "webhook", "create", "--url", srv.URL+"/hook", "--events", "rollout.state_changed,error_report.bucket_created")
	if !strings.HasPrefix(w.Secret, "whsec_") {
		t.Fatalf("create: %+v", w)
	}
	recv.mu.Lock()
	recv.secret = w.Secret
	recv.mu.Unlock()
	if out := r.ok(t, "webhook", "list"); !strings.Contains(out, w.ID) || strings.Contains(out, w.Secret) {
		t.Fatalf("list:\n%s", out)
	}
	if out := r.ok(t, "webhook", "show", w.ID); !strings.Contains(out, srv.URL) || strings.Contains(out, w.Secret) {
		t.Fatalf("show:\n%s", out)
	}

	// A rollout: started, paused, aborted.
	app, hw := appTree(t)
	pkgs := t.TempDir()
	var imgs []v1.Image
	for _, v := range []string{"1.0.0", "1.1.0"} {
		file := filepath.Join(pkgs, v+".rampkg")
		r.ok(t, "image-package", "pack-application", "--package-directory", app, "--hardware-definitions", hw, "--output-file", file, "--version", v)
		var img v1.Image
		r.json(t, &img, "image", "add", "--image-path", file)
		imgs = append(imgs, img)
	}
	var prod v1.Product
	r.json(t, &prod, "product", "create", "--name", "Lamp")
	r.ok(t, "deployment", "create", "--product", "Lamp", "--device-group", "Field Test", "--images", imgs[0].ID)
	policy := filepath.Join(t.TempDir(), "policy.json")
	writeFile(t, policy, `{"batches":[{"count":1}],"soak_seconds":3600}`)
	var dep v1.Deployment
	r.json(t, &dep, "deployment", "create", "--product", "Lamp", "--device-group", "Field Test", "--images", imgs[1].ID, "--rollout-policy", policy)
	r.ok(t, "deployment", "pause", dep.ID)
	r.ok(t, "deployment", "abort", dep.ID)
	got := recv.wait(t, 3)
	// Deliveries may arrive in any order; event IDs sort by creation.
	slices.SortFunc(got, func(a, b webhook.Envelope) int { return strings.Compare(a.ID, b.ID) })
	var changes []string
	for _, ev := range got {
		var d webhook.RolloutStateChanged
		if err := json.Unmarshal(ev.Data, &d); err != nil || ev.Type != webhook.EventRolloutStateChanged || d.DeploymentID != dep.ID {
			t.Fatalf("delivery %+v (%v)", ev, err)
		}
		changes = append(changes, d.Change+"/"+d.State)
	}
	if strings.Join(changes, " ") != "started/running paused/paused aborted/aborted" {
		t.Fatalf("rollout changes heard: %v", changes)
	}

	// A device's crash opens a bucket: one event, however many crashes follow.
	var groups []v1.DeviceGroup
	r.json(t, &groups, "device-group", "list", "--product", "Lamp")
	var field string
	for _, g := range groups {
		if g.Name == "Field Test" {
			field = g.ID
		}
	}
	admin := e.srv.Client(t, e.srv.AdminToken)
	d := e.srv.AttestedDevice(t, admin, e.srv.TenantID, field)
	dc := &checkinclient.Client{Server: e.srv.URL, RootCAs: d.RootCAs, CertDir: d.Dir}
	crash := func(id string) v1.ReportEvent {
		return v1.ReportEvent{ID: id, Type: v1.EventAppCrash, Time: time.Now().UTC(), ComponentID: imgs[0].ComponentID, ImageID: imgs[0].ID, Signal: 11}
	}
	for _, ids := range [][]string{{"01950000-0000-7000-8000-000000000001", "01950000-0000-7000-8000-000000000002"}, {"01950000-0000-7000-8000-000000000003"}} {
		var b v1.ReportBatch
		for _, id := range ids {
			b.Events = append(b.Events, crash(id))
		}
		if _, err := dc.UploadReports(t.Context(), b); err != nil {
			t.Fatal(err)
		}
	}
	got = recv.wait(t, 4)
	slices.SortFunc(got, func(a, b webhook.Envelope) int { return strings.Compare(a.ID, b.ID) })
	if len(got) != 4 || got[3].Type != webhook.EventBucketCreated {
		t.Fatalf("after the crashes: %+v", got)
	}
	var bc webhook.BucketCreated
	if err := json.Unmarshal(got[3].Data, &bc); err != nil || bc.Signal != 11 || bc.DeviceID != d.ID || bc.DeviceGroupID != field || bc.ComponentID != imgs[0].ComponentID {
		t.Fatalf("bucket_created data %+v (%v)", bc, err)
	}

	// The deliveries, newest first, all delivered.
	var ds []v1.WebhookDelivery
	r.json(t, &ds, "webhook", "deliveries", w.ID)
	if len(ds) != 4 || ds[0].EventType != webhook.EventBucketCreated {
		t.Fatalf("deliveries: %+v", ds)
	}
	for _, d := range ds {
		if d.State != "delivered" || d.Attempts != 1 || d.LastStatus != 200 {
			t.Errorf("delivery %+v", d)
		}
	}
	if out := r.ok(t, "webhook", "deliveries", w.ID); !strings.Contains(out, "delivered") {
		t.Errorf("deliveries table:\n%s", out)
	}
	// A delivery that failed for good (as after a long outage of the receiver) is sent again by
	// retry, with its delivery ID; one that did not fail is refused.
	now := time.Now().UTC()
	failed := store.WebhookDelivery{ID: "01975f3a-0000-7000-8000-00000000f001", TenantID: e.srv.TenantID, WebhookID: w.ID,
		EventID: "01975f3a-0000-7000-8000-00000000e001", EventType: webhook.EventRolloutStateChanged,
		Payload: []byte(`{"id":"01975f3a-0000-7000-8000-00000000e001","type":"rollout.state_changed"}`),
		State:   store.DeliveryFailed, Attempts: 8, NextAttemptAt: now, LastStatus: 503, CreatedAt: now, UpdatedAt: now}
	if err := e.srv.Store.CreateWebhookDelivery(t.Context(), failed); err != nil {
		t.Fatal(err)
	}
	if out := r.ok(t, "webhook", "retry", w.ID, failed.ID); !strings.Contains(out, "pending again") {
		t.Fatalf("retry:\n%s", out)
	}
	if got := recv.wait(t, 5); got[4].ID != failed.EventID {
		t.Fatalf("retried delivery: %+v", got[4])
	}
	r.fails(t, "has not failed", "webhook", "retry", w.ID, ds[0].ID)
	if res := r.run(t, "webhook", "deliveries", w.ID, "--max", "0"); res.code != 2 || !strings.Contains(res.err, "--max 0 is outside") {
		t.Errorf("--max 0: exit %d, %q", res.code, res.err)
	}
	r.ok(t, "webhook", "delete", w.ID)
	r.fails(t, "not found", "webhook", "show", w.ID)
}

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}
