package webhook_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/client"
	"github.com/rampart-iot/rampart/imagepkg/imagepkgtest"
	"github.com/rampart-iot/rampart/internal/server/servertest"
	"github.com/rampart-iot/rampart/internal/store"
	"github.com/rampart-iot/rampart/internal/webhook"
)

// TestReplicasDeliverOnce runs two real services on one PostgreSQL database, each with its own
// delivery worker, and makes rollout events through both: every delivery reaches the receiver
// exactly once, signed with the secret shown at creation.
func TestReplicasDeliverOnce(t *testing.T) {
	srv1 := servertest.Start(t, servertest.Postgres())
	srv2 := servertest.Start(t, servertest.SameDatabase(srv1))
	ctx := t.Context()
	var mu sync.Mutex
	seen := map[string]int{}
	var bad []string
	var secret string
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		mu.Lock()
		defer mu.Unlock()
		if err := webhook.Verify(secret, r.Header.Get(webhook.HeaderTimestamp), r.Header.Get(webhook.HeaderSignature), body, time.Now(), 5*time.Minute); err != nil {
			bad = append(bad, err.Error())
		}
		seen[r.Header.Get(webhook.HeaderID)]++
	}))
	t.Cleanup(recv.Close)

	c1, c2 := srv1.Client(t, srv1.AdminToken), srv2.Client(t, srv1.AdminToken)
	tenant := srv1.TenantID
	hook, err := c1.CreateWebhook(ctx, tenant, v1.WebhookCreate{URL: recv.URL + "/hook", Events: []string{webhook.EventRolloutStateChanged}})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	secret = hook.Secret
	mu.Unlock()
	prod, err := c1.CreateProduct(ctx, tenant, v1.ProductCreate{Name: "Lamp", NoDefaultDeviceGroups: true})
	if err != nil {
		t.Fatal(err)
	}
	grp, err := c1.CreateDeviceGroup(ctx, tenant, prod.ID, v1.DeviceGroupCreate{Name: "Field"})
	if err != nil {
		t.Fatal(err)
	}
	var imgs []string
	for _, v := range []string{"1.0.0", "1.1.0"} {
		img, err := c1.AddImage(ctx, tenant, bytes.NewReader(imagepkgtest.Application(t, imagepkgtest.App{Name: "lamp", Version: v}).Bytes), -1, nil)
		if err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, img.ID)
	}
	if _, err := c1.CreateDeployment(ctx, tenant, grp.ID, v1.DeploymentCreate{ImageIDs: imgs[:1]}); err != nil {
		t.Fatal(err)
	}
	// Each deployment with a rollout starts one and supersedes (aborts) the one before: made
	// through both replicas alternately.
	policy := &v1.RolloutPolicy{Batches: []v1.RolloutBatch{{Count: 1}}, SoakSeconds: 3600}
	for i := range 8 {
		c := []*client.Client{c1, c2}[i%2]
		if _, err := c.CreateDeployment(ctx, tenant, grp.ID, v1.DeploymentCreate{ImageIDs: imgs[i%2 : i%2+1], Rollout: policy}); err != nil {
			t.Fatal(err)
		}
	}
	// Wait until the outbox holds no pending delivery; then none can be sent again.
	var ds []store.WebhookDelivery
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		page, err := srv1.Store.ListWebhookDeliveries(ctx, tenant, hook.ID, store.ListOptions{Limit: store.MaxLimit})
		if err != nil {
			t.Fatal(err)
		}
		ds = page.Items
		pending := 0
		for _, d := range ds {
			if d.State != store.DeliveryDelivered {
				pending++
			}
		}
		if pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d deliveries still not delivered after a minute", pending, len(ds))
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(bad) > 0 {
		t.Fatalf("signatures that did not verify: %v", bad)
	}
	if len(ds) < 15 || len(seen) != len(ds) {
		t.Fatalf("%d deliveries in the store, %d distinct received", len(ds), len(seen))
	}
	for _, d := range ds {
		if seen[d.ID] != 1 || d.Attempts != 1 {
			t.Errorf("delivery %s received %d times, %d attempts", d.ID, seen[d.ID], d.Attempts)
		}
		var e webhook.Envelope
		if err := json.Unmarshal(d.Payload, &e); err != nil || e.Type != webhook.EventRolloutStateChanged {
			t.Errorf("payload %s (%v)", d.Payload, err)
		}
	}
}
