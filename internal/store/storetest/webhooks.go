package storetest

import (
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/internal/store"
	"github.com/rampart-iot/rampart/internal/store/sqlstore"
)

func newWebhook(tenantID string, n int) store.Webhook {
	return store.Webhook{ID: uuid7(900 + n), TenantID: tenantID, URL: fmt.Sprintf("https://hooks.example.com/%d", n),
		Events: []string{"error_report.bucket_created", "rollout.state_changed"}, Secret: fmt.Sprintf("whsec_%d", n),
		CreatedBy: "user-alice", CreatedAt: at(80 + n)}
}

func newDelivery(w store.Webhook, n int, due time.Time) store.WebhookDelivery {
	return store.WebhookDelivery{ID: uuid7(1000 + n), TenantID: w.TenantID, WebhookID: w.ID, EventID: uuid7(2000 + n),
		EventType: "rollout.state_changed", Payload: []byte(fmt.Sprintf(`{"n":%d}`, n)), State: store.DeliveryPending,
		NextAttemptAt: due, CreatedAt: at(90), UpdatedAt: at(90)}
}

func testWebhooks(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	h1, h2, hb := newWebhook(w.a.ID, 1), newWebhook(w.a.ID, 2), newWebhook(w.b.ID, 3)
	h2.Events = []string{"rollout.state_changed"}
	isErr(t, s.CreateWebhook(ctx, newWebhook("tenant-x", 4)), store.ErrNotFound)
	must(t, s.CreateWebhook(ctx, h2))
	must(t, s.CreateWebhook(ctx, h1))
	must(t, s.CreateWebhook(ctx, hb))
	isErr(t, s.CreateWebhook(ctx, h1), store.ErrConflict)

	got, err := s.GetWebhook(ctx, w.a.ID, h1.ID)
	must(t, err)
	eq(t, got, norm(h1))
	_, err = s.GetWebhook(ctx, w.b.ID, h1.ID)
	isErr(t, err, store.ErrNotFound)
	page, err := s.ListWebhooks(ctx, w.a.ID, store.ListOptions{Limit: 1})
	must(t, err)
	eq(t, page.Items, []store.Webhook{norm(h1)})
	page, err = s.ListWebhooks(ctx, w.a.ID, store.ListOptions{After: page.Next})
	must(t, err)
	eq(t, page.Items, []store.Webhook{norm(h2)})
	eq(t, page.Next, "")

	// Deliveries: the webhook must be the tenant's; one event reaches one webhook once.
	d1 := newDelivery(h1, 1, at(100))
	bad := d1
	bad.TenantID = w.b.ID
	isErr(t, s.CreateWebhookDelivery(ctx, bad), store.ErrNotFound)
	must(t, s.CreateWebhookDelivery(ctx, d1))
	isErr(t, s.CreateWebhookDelivery(ctx, d1), store.ErrConflict)
	again := newDelivery(h1, 2, at(100))
	again.EventID = d1.EventID
	isErr(t, s.CreateWebhookDelivery(ctx, again), store.ErrConflict)
	other := newDelivery(h2, 3, at(100))
	other.EventID = d1.EventID // the same event to another webhook is fine
	must(t, s.CreateWebhookDelivery(ctx, other))
	later := newDelivery(h1, 4, at(200))
	must(t, s.CreateWebhookDelivery(ctx, later))
	gd, err := s.GetWebhookDelivery(ctx, w.a.ID, d1.ID)
	must(t, err)
	eq(t, gd, norm(d1))
	_, err = s.GetWebhookDelivery(ctx, w.b.ID, d1.ID)
	isErr(t, err, store.ErrNotFound)

	// Newest first, paged; another tenant sees none.
	dp, err := s.ListWebhookDeliveries(ctx, w.a.ID, h1.ID, store.ListOptions{Limit: 1})
	must(t, err)
	eq(t, len(dp.Items), 1)
	eq(t, dp.Items[0].ID, later.ID)
	dp, err = s.ListWebhookDeliveries(ctx, w.a.ID, h1.ID, store.ListOptions{After: dp.Next})
	must(t, err)
	eq(t, len(dp.Items), 1)
	eq(t, dp.Items[0].ID, d1.ID)
	eq(t, dp.Next, "")
	dp, err = s.ListWebhookDeliveries(ctx, w.b.ID, h1.ID, store.ListOptions{})
	must(t, err)
	eq(t, len(dp.Items), 0)

	// Claims take only what is due, oldest due first, and each once while its lease runs.
	cl, err := s.ClaimWebhookDeliveries(ctx, "worker-1", at(150), at(151), 10)
	must(t, err)
	eq(t, ids(cl), []string{d1.ID, other.ID})
	eq(t, cl[0].LeaseOwner, "worker-1")
	eq(t, cl[0].LeaseUntil, stored(at(151)))
	cl2, err := s.ClaimWebhookDeliveries(ctx, "worker-2", at(150), at(152), 10)
	must(t, err)
	eq(t, len(cl2), 0)
	// Worker 1 finishes one; its lease on the other expires and worker 2 takes it over.
	done := cl[0]
	done.State, done.Attempts, done.LastStatus, done.UpdatedAt = store.DeliveryDelivered, 1, 204, at(150)
	must(t, s.FinishWebhookAttempt(ctx, done))
	cl2, err = s.ClaimWebhookDeliveries(ctx, "worker-2", at(151), at(160), 10)
	must(t, err)
	eq(t, ids(cl2), []string{other.ID})
	lost := cl[1]
	lost.State, lost.Attempts, lost.UpdatedAt = store.DeliveryDelivered, 1, at(151)
	isErr(t, s.FinishWebhookAttempt(ctx, lost), store.ErrConflict)
	unknown := lost
	unknown.ID = uuid7(1999)
	isErr(t, s.FinishWebhookAttempt(ctx, unknown), store.ErrNotFound)
	retry := cl2[0]
	retry.Attempts, retry.LastStatus, retry.LastError, retry.NextAttemptAt, retry.UpdatedAt = 1, 500, "HTTP 500", at(170), at(151)
	must(t, s.FinishWebhookAttempt(ctx, retry))
	gd, err = s.GetWebhookDelivery(ctx, w.a.ID, other.ID)
	must(t, err)
	retry.LeaseOwner, retry.LeaseUntil = "", time.Time{}
	eq(t, gd, norm(retry))
	// Not due yet at 160; due at 170; a delivered one is never claimed again.
	cl, err = s.ClaimWebhookDeliveries(ctx, "worker-1", at(160), at(161), 10)
	must(t, err)
	eq(t, len(cl), 0)
	cl, err = s.ClaimWebhookDeliveries(ctx, "worker-1", at(300), at(301), 1)
	must(t, err)
	eq(t, ids(cl), []string{other.ID})

	// A failed delivery may be retried: pending again, due then, attempts from zero, its
	// failure still counted (so failing again does not count twice); nothing else may.
	failed := cl[0]
	failed.State, failed.Attempts, failed.LastStatus, failed.LastError, failed.UpdatedAt = store.DeliveryFailed, 8, 503, "HTTP 503", at(300)
	failed.FailureCounted = true
	must(t, s.FinishWebhookAttempt(ctx, failed))
	gd, err = s.GetWebhookDelivery(ctx, w.a.ID, failed.ID)
	must(t, err)
	eq(t, gd.FailureCounted, true)
	isErr(t, s.RetryWebhookDelivery(ctx, w.b.ID, h2.ID, failed.ID, at(310)), store.ErrNotFound)
	isErr(t, s.RetryWebhookDelivery(ctx, w.a.ID, h1.ID, failed.ID, at(310)), store.ErrNotFound)
	isErr(t, s.RetryWebhookDelivery(ctx, w.a.ID, h1.ID, later.ID, at(310)), store.ErrConflict)
	must(t, s.RetryWebhookDelivery(ctx, w.a.ID, h2.ID, failed.ID, at(310)))
	gd, err = s.GetWebhookDelivery(ctx, w.a.ID, failed.ID)
	must(t, err)
	failed.State, failed.Attempts, failed.NextAttemptAt, failed.UpdatedAt = store.DeliveryPending, 0, at(310), at(310)
	failed.LeaseOwner, failed.LeaseUntil = "", time.Time{}
	eq(t, gd, norm(failed))
	cl, err = s.ClaimWebhookDeliveries(ctx, "worker-1", at(310), at(311), 10)
	must(t, err)
	eq(t, ids(cl), []string{later.ID, failed.ID})

	// Old finished deliveries go; pending ones stay whatever their age.
	n, err := s.DeleteWebhookDeliveriesBefore(ctx, at(400), 100)
	must(t, err)
	eq(t, n, 1)
	_, err = s.GetWebhookDelivery(ctx, w.a.ID, d1.ID)
	isErr(t, err, store.ErrNotFound)

	// Deleting a webhook deletes its deliveries; another tenant cannot delete it.
	isErr(t, s.DeleteWebhook(ctx, w.b.ID, h1.ID), store.ErrNotFound)
	must(t, s.DeleteWebhook(ctx, w.a.ID, h1.ID))
	_, err = s.GetWebhook(ctx, w.a.ID, h1.ID)
	isErr(t, err, store.ErrNotFound)
	_, err = s.GetWebhookDelivery(ctx, w.a.ID, later.ID)
	isErr(t, err, store.ErrNotFound)
	isErr(t, s.DeleteWebhook(ctx, w.a.ID, h1.ID), store.ErrNotFound)

	// A delivery made in a transaction that fails is not kept.
	fail := newDelivery(h2, 5, at(100))
	err = s.Update(ctx, func(tx store.Tx) error {
		if err := tx.CreateWebhookDelivery(ctx, fail); err != nil {
			return err
		}
		return fmt.Errorf("delivery %q made on purpose in a failing transaction: %w", fail.ID, store.ErrConflict)
	})
	isErr(t, err, store.ErrConflict)
	_, err = s.GetWebhookDelivery(ctx, w.a.ID, fail.ID)
	isErr(t, err, store.ErrNotFound)
}

func testHasErrorBucket(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	p := w.product(w.a.ID, "prod-1", "Thermostat")
	g := w.group(w.a.ID, p.ID, "group-1", "Field")
	w.claim(w.a.ID, g.ID, 1)
	r := newReport(w.a.ID, 1, 1, 1, 11)
	key := store.ErrorBucket{Type: r.Type, ComponentID: r.ComponentID, ImageID: r.ImageID, Signal: r.Signal, ExitCode: r.ExitCode}
	has := func(tenantID string, b store.ErrorBucket) bool {
		ok, err := s.HasErrorBucket(ctx, tenantID, b)
		must(t, err)
		return ok
	}
	eq(t, has(w.a.ID, key), false)
	_, err := s.AddErrorReports(ctx, []store.ErrorReport{r})
	must(t, err)
	eq(t, has(w.a.ID, key), true)
	eq(t, has(w.b.ID, key), false)
	for _, change := range []func(b *store.ErrorBucket){
		func(b *store.ErrorBucket) { b.Type = "AppExit" },
		func(b *store.ErrorBucket) { b.ComponentID = componentOf(2) },
		func(b *store.ErrorBucket) { b.ImageID = imageIDOf(2) },
		func(b *store.ErrorBucket) { b.Signal = 6 },
		func(b *store.ErrorBucket) { b.ExitCode = 134 },
	} {
		other := key
		change(&other)
		eq(t, has(w.a.ID, other), false)
	}
}

// testConcurrentWebhookClaims: workers claiming at once never get the same delivery.
func testConcurrentWebhookClaims(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	h := newWebhook(w.a.ID, 1)
	must(t, s.CreateWebhook(ctx, h))
	const deliveries, workers = 40, 4
	for i := range deliveries {
		must(t, s.CreateWebhookDelivery(ctx, newDelivery(h, i, at(100))))
	}
	var mu sync.Mutex
	seen := map[string]string{}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for k := range workers {
		wg.Go(func() {
			owner := fmt.Sprintf("worker-%d", k)
			for {
				cl, err := s.ClaimWebhookDeliveries(ctx, owner, at(150), at(160), 3)
				if err != nil {
					errs <- err
					return
				}
				if len(cl) == 0 {
					return
				}
				mu.Lock()
				for _, d := range cl {
					if prev, ok := seen[d.ID]; ok {
						errs <- fmt.Errorf("delivery %s claimed by %s and %s", d.ID, prev, owner)
					}
					seen[d.ID] = owner
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	eq(t, len(seen), deliveries)
}

func ids(ds []store.WebhookDelivery) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.ID)
	}
	return out
}

// testWebhookSecretsAndHealth: rotation's two secrets, dropping the expired one, the health
// record, failing a disabled webhook's pending deliveries, and deliveries sent again.
func testWebhookSecretsAndHealth(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	h, hb := newWebhook(w.a.ID, 1), newWebhook(w.b.ID, 2)
	h.PreviousSecret, h.PreviousSecretUntil = "whsec_old", at(10) // created with every field
	h.FailingSince, h.FailedDeliveries, h.DisabledAt, h.DisabledReason = at(1), 2, at(3), "four"
	must(t, s.CreateWebhook(ctx, h))
	must(t, s.CreateWebhook(ctx, hb))
	got, err := s.GetWebhook(ctx, w.a.ID, h.ID)
	must(t, err)
	eq(t, got, norm(h))

	// A rotation keeps the old secret until a time; another tenant cannot rotate it.
	isErr(t, s.SetWebhookSecret(ctx, w.b.ID, h.ID, "whsec_x", "", time.Time{}), store.ErrNotFound)
	must(t, s.SetWebhookSecret(ctx, w.a.ID, h.ID, "whsec_new", h.Secret, at(200)))
	must(t, s.SetWebhookSecret(ctx, w.b.ID, hb.ID, "whsec_b2", hb.Secret, at(300)))
	got, err = s.GetWebhook(ctx, w.a.ID, h.ID)
	must(t, err)
	eq(t, [3]any{got.Secret, got.PreviousSecret, got.PreviousSecretUntil}, [3]any{"whsec_new", h.Secret, stored(at(200))})
	// Dropping expired secrets touches only those expired by then.
	n, err := s.DropWebhookSecretsBefore(ctx, at(199))
	must(t, err)
	eq(t, n, 0)
	n, err = s.DropWebhookSecretsBefore(ctx, at(200))
	must(t, err)
	eq(t, n, 1)
	got, err = s.GetWebhook(ctx, w.a.ID, h.ID)
	must(t, err)
	eq(t, [3]any{got.Secret, got.PreviousSecret, got.PreviousSecretUntil}, [3]any{"whsec_new", "", time.Time{}})
	gb, err := s.GetWebhook(ctx, w.b.ID, hb.ID)
	must(t, err)
	eq(t, gb.PreviousSecret, hb.Secret)

	// Health is written whole; another tenant cannot write it.
	health := store.WebhookHealth{FailingSince: at(50), FailedDeliveries: 7, DisabledAt: at(60), DisabledReason: "failing"}
	isErr(t, s.SetWebhookHealth(ctx, w.b.ID, h.ID, health), store.ErrNotFound)
	must(t, s.SetWebhookHealth(ctx, w.a.ID, h.ID, health))
	got, err = s.GetWebhook(ctx, w.a.ID, h.ID)
	must(t, err)
	eq(t, got.WebhookHealth, norm(health))
	page, err := s.ListWebhooks(ctx, w.a.ID, store.ListOptions{})
	must(t, err)
	eq(t, page.Items[0].WebhookHealth, norm(health))
	must(t, s.SetWebhookHealth(ctx, w.a.ID, h.ID, store.WebhookHealth{}))
	got, err = s.GetWebhook(ctx, w.a.ID, h.ID)
	must(t, err)
	eq(t, got.WebhookHealth, store.WebhookHealth{})

	// Failing pending deliveries: not the delivered, not one under a live lease, not another
	// webhook's; attempts kept.
	due, leased, done := newDelivery(h, 1, at(100)), newDelivery(h, 2, at(100)), newDelivery(h, 3, at(100))
	due.Attempts = 2
	done.State = store.DeliveryDelivered
	bd := newDelivery(hb, 4, at(100))
	for _, d := range []store.WebhookDelivery{due, leased, done, bd} {
		must(t, s.CreateWebhookDelivery(ctx, d))
	}
	cl, err := s.ClaimWebhookDeliveries(ctx, "worker-1", at(100), at(120), 1)
	must(t, err)
	eq(t, ids(cl), []string{due.ID}) // due is claimed, its lease runs to 120
	n, err = s.FailPendingWebhookDeliveries(ctx, w.a.ID, h.ID, "webhook disabled", at(110))
	must(t, err)
	eq(t, n, 1)
	gl, err := s.GetWebhookDelivery(ctx, w.a.ID, leased.ID)
	must(t, err)
	eq(t, [3]any{gl.State, gl.LastError, gl.UpdatedAt}, [3]any{store.DeliveryFailed, "webhook disabled", stored(at(110))})
	gd, err := s.GetWebhookDelivery(ctx, w.a.ID, due.ID)
	must(t, err)
	eq(t, gd.State, store.DeliveryPending)
	n, err = s.FailPendingWebhookDeliveries(ctx, w.a.ID, h.ID, "webhook disabled", at(120)) // the lease has expired
	must(t, err)
	eq(t, n, 1)
	gd, err = s.GetWebhookDelivery(ctx, w.a.ID, due.ID)
	must(t, err)
	eq(t, [4]any{gd.State, gd.Attempts, gd.LeaseOwner, gd.LeaseUntil}, [4]any{store.DeliveryFailed, 2, "", time.Time{}})
	gdone, err := s.GetWebhookDelivery(ctx, w.a.ID, done.ID)
	must(t, err)
	eq(t, gdone.State, store.DeliveryDelivered)
	gbd, err := s.GetWebhookDelivery(ctx, w.b.ID, bd.ID)
	must(t, err)
	eq(t, gbd.State, store.DeliveryPending)

	// A delivery sent again carries its event's ID, any number of times, but must name a
	// delivery of the same webhook and event.
	re := newDelivery(h, 5, at(130))
	re.EventID, re.RedeliveryOf = done.EventID, done.ID
	must(t, s.CreateWebhookDelivery(ctx, re))
	re2 := newDelivery(h, 6, at(131))
	re2.EventID, re2.RedeliveryOf = done.EventID, re.ID
	must(t, s.CreateWebhookDelivery(ctx, re2))
	gre, err := s.GetWebhookDelivery(ctx, w.a.ID, re2.ID)
	must(t, err)
	eq(t, gre, norm(re2))
	wrongEvent := newDelivery(h, 7, at(131))
	wrongEvent.RedeliveryOf = done.ID
	isErr(t, s.CreateWebhookDelivery(ctx, wrongEvent), store.ErrNotFound)
	otherHook := newDelivery(hb, 8, at(131))
	otherHook.EventID, otherHook.RedeliveryOf = bd.EventID, done.ID
	isErr(t, s.CreateWebhookDelivery(ctx, otherHook), store.ErrNotFound)
	first := newDelivery(h, 9, at(131)) // a first delivery of the event again is still refused
	first.EventID = done.EventID
	isErr(t, s.CreateWebhookDelivery(ctx, first), store.ErrConflict)
	// Deleting the webhook deletes the deliveries sent again too.
	must(t, s.DeleteWebhook(ctx, w.a.ID, h.ID))
	_, err = s.GetWebhookDelivery(ctx, w.a.ID, re2.ID)
	isErr(t, err, store.ErrNotFound)
}

// RunWebhookUpgrade checks migrations 0014 and 0015 on a database that version 13 left with a
// webhook and its deliveries: every record survives (SQLite rebuilds the deliveries' table),
// the new fields read as their zero values but FailureCounted, which is set on the deliveries
// that failed (those failed unsent because the webhook was disabled excepted), the database
// itself still refuses a second first delivery of an event to a webhook, and takes any number
// of deliveries that send the event again.
func RunWebhookUpgrade(t *testing.T, backend, driver, dsn string, d sqlstore.Dialect) {
	ctx := t.Context()
	upTo13, err := migrationsUpTo(d.Migrations, 13)
	must(t, err)
	d.Migrations = upTo13
	db, err := sql.Open(driver, dsn)
	must(t, err)
	old, err := sqlstore.New(ctx, d, db, db)
	must(t, err)
	eq(t, schemaVersion(t, db), 13)
	exec := func(db *sql.DB, query string, args ...any) error {
		_, err := db.ExecContext(ctx, query, args...)
		return err
	}
	h := newWebhook("tenant-a", 1)
	dl := newDelivery(h, 1, at(100))
	dl.Attempts, dl.LastStatus, dl.LastError, dl.LeaseOwner, dl.LeaseUntil = 2, 503, "HTTP 503", "worker-1", at(101)
	must(t, exec(db, `INSERT INTO tenants (id, name, name_key, created_at) VALUES ($1, $2, $3, $4)`, "tenant-a", "Contoso", "contoso", at(0).UnixMicro()))
	must(t, exec(db, `INSERT INTO webhooks (id, tenant_id, url, events, secret, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		h.ID, h.TenantID, h.URL, strings.Join(h.Events, ","), h.Secret, h.CreatedBy, h.CreatedAt.UnixMicro()))
	insert := `INSERT INTO webhook_deliveries (id, tenant_id, webhook_id, event_id, event_type, payload, state, attempts,
		next_attempt_at, lease_owner, lease_until, last_status, last_error, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`
	must(t, exec(db, insert, dl.ID, dl.TenantID, dl.WebhookID, dl.EventID, dl.EventType, dl.Payload, dl.State, dl.Attempts,
		dl.NextAttemptAt.UnixMicro(), dl.LeaseOwner, dl.LeaseUntil.UnixMicro(), dl.LastStatus, dl.LastError, dl.CreatedAt.UnixMicro(), dl.UpdatedAt.UnixMicro()))
	failed := newDelivery(h, 20, at(100))
	failed.State, failed.Attempts, failed.LastStatus, failed.LastError = store.DeliveryFailed, 8, 500, "HTTP 500"
	unsent := newDelivery(h, 21, at(100))
	unsent.State, unsent.LastError = store.DeliveryFailed, "not sent: the webhook is disabled"
	for _, f := range []store.WebhookDelivery{failed, unsent} {
		must(t, exec(db, insert, f.ID, f.TenantID, f.WebhookID, f.EventID, f.EventType, f.Payload, f.State, f.Attempts,
			f.NextAttemptAt.UnixMicro(), "", nil, f.LastStatus, f.LastError, f.CreatedAt.UnixMicro(), f.UpdatedAt.UnixMicro()))
	}
	must(t, old.Close())

	s, err := store.Open(ctx, backend, dsn)
	must(t, err)
	defer s.Close()
	got, err := s.GetWebhook(ctx, h.TenantID, h.ID)
	must(t, err)
	eq(t, got, norm(h))
	gd, err := s.GetWebhookDelivery(ctx, dl.TenantID, dl.ID)
	must(t, err)
	eq(t, gd, norm(dl))
	failed.FailureCounted = true
	for _, f := range []store.WebhookDelivery{failed, unsent} {
		gf, err := s.GetWebhookDelivery(ctx, f.TenantID, f.ID)
		must(t, err)
		eq(t, gf, norm(f))
	}

	raw, err := sql.Open(driver, dsn)
	must(t, err)
	defer raw.Close()
	eq(t, schemaVersion(t, raw), 15)
	// The database, not only the store's code, refuses a second first delivery of the event.
	if err := exec(raw, insert, uuid7(1100), dl.TenantID, dl.WebhookID, dl.EventID, dl.EventType, dl.Payload, store.DeliveryPending, 0,
		nil, "", nil, 0, "", nil, nil); err == nil {
		t.Error("the database took a second first delivery of an event to a webhook")
	}
	for i := range 2 {
		re := newDelivery(h, 2+i, at(110))
		re.EventID, re.RedeliveryOf = dl.EventID, dl.ID
		must(t, s.CreateWebhookDelivery(ctx, re))
	}
}
