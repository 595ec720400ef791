package manage_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/authz"
	"github.com/rampart-iot/rampart/internal/manage"
	"github.com/rampart-iot/rampart/internal/store"
	"github.com/rampart-iot/rampart/internal/store/storetest"
	"github.com/rampart-iot/rampart/internal/webhook"
)

// testClock is a clock that moves only when told.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// webhookManager is a Manager on a new SQLite store with a tenant whose Administrator is p.
func webhookManager(t *testing.T) (*manage.Manager, store.Store, *authz.Principal, *testClock) {
	t.Helper()
	ctx := t.Context()
	clk := &testClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	st := storetest.OpenSQLite(t)
	if err := st.CreateTenant(ctx, store.Tenant{ID: "tenant-a", Name: "Contoso", CreatedAt: clk.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateUser(ctx, store.User{ID: "user-0197", Name: "alice.smith", CreatedAt: clk.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := st.PutRole(ctx, store.RoleAssignment{TenantID: "tenant-a", UserID: "user-0197", UserName: "alice.smith",
		Role: store.RoleAdministrator, CreatedAt: clk.Now(), UpdatedAt: clk.Now()}); err != nil {
		t.Fatal(err)
	}
	sealer, err := webhook.NewSealer(bytes.Repeat([]byte{9}, 32), bytes.NewReader(bytes.Repeat([]byte{1}, 1<<12)))
	if err != nil {
		t.Fatal(err)
	}
	m := manage.New(manage.Config{Store: st, WebhookSecrets: sealer, Now: clk.Now, Rand: bytes.NewReader(bytes.Repeat([]byte{3}, 1<<16))})
	return m, st, &authz.Principal{UserID: "user-0197", UserName: "alice.smith"}, clk
}

// TestPingNamesTheUserByID: the ping that leaves the service names the requester by user ID,
// never by user name.
func TestPingNamesTheUserByID(t *testing.T) {
	m, st, p, _ := webhookManager(t)
	ctx := t.Context()
	h, err := m.CreateWebhook(ctx, p, "tenant-a", v1.WebhookCreate{URL: "https://hooks.example.com/x", Events: webhook.Events})
	if err != nil {
		t.Fatal(err)
	}
	d, err := m.PingWebhook(ctx, p, "tenant-a", h.ID)
	if err != nil {
		t.Fatal(err)
	}
	sd, err := st.GetWebhookDelivery(ctx, "tenant-a", d.ID)
	if err != nil {
		t.Fatal(err)
	}
	var env webhook.Envelope
	var data webhook.Ping
	if err := json.Unmarshal(sd.Payload, &env); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(env.Data, &data); err != nil || data.RequestedBy != "user-0197" || data.WebhookID != h.ID {
		t.Errorf("ping data %s: %+v, %v", env.Data, data, err)
	}
	if strings.Contains(string(sd.Payload), "alice") {
		t.Errorf("the ping carries the user name: %s", sd.Payload)
	}
}

// TestExpiredSecretErasedOnReadAndRotation: a rotation's old secret past its grace period is
// erased by a rotation of another webhook and by the next read (a list) past its end, without
// any worker's cleanup; a read within the grace period keeps it.
func TestExpiredSecretErasedOnReadAndRotation(t *testing.T) {
	m, st, p, clk := webhookManager(t)
	ctx := t.Context()
	create := func(url string) v1.Webhook {
		t.Helper()
		h, err := m.CreateWebhook(ctx, p, "tenant-a", v1.WebhookCreate{URL: url, Events: webhook.Events})
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	a, b := create("https://a.example.com/x"), create("https://b.example.com/x")
	hour := int64(3600)
	previous := func(id string) string {
		t.Helper()
		h, err := st.GetWebhook(ctx, "tenant-a", id)
		if err != nil {
			t.Fatal(err)
		}
		return h.PreviousSecret
	}
	rotate := func(id string, grace int64) {
		t.Helper()
		if _, err := m.RotateWebhookSecret(ctx, p, "tenant-a", id, v1.WebhookRotateSecret{GraceSeconds: &grace}); err != nil {
			t.Fatal(err)
		}
	}
	// b's old secret expires; rotating another webhook (c) erases it.
	rotate(b.ID, hour)
	clk.Add(time.Hour)
	if previous(b.ID) == "" {
		t.Fatal("b's previous secret is gone before the rotation")
	}
	c := create("https://c.example.com/x")
	rotate(c.ID, 0)
	if previous(b.ID) != "" {
		t.Error("a rotation left another webhook's expired previous secret stored")
	}
	// a's is kept by a read within the grace period and erased by one past it.
	rotate(a.ID, hour)
	clk.Add(59 * time.Minute)
	if _, err := m.GetWebhook(ctx, p, "tenant-a", a.ID); err != nil {
		t.Fatal(err)
	}
	if previous(a.ID) == "" {
		t.Fatal("the previous secret was erased within its grace period")
	}
	clk.Add(time.Minute)
	if _, err := m.ListWebhooks(ctx, p, "tenant-a", store.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	if previous(a.ID) != "" {
		t.Error("a read past the grace period left the previous secret stored")
	}
}
