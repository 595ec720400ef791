package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/internal/store"
)

func testAudit(t *testing.T, s store.Store) {
	ctx := t.Context()
	entries := []store.AuditEntry{
		{TenantID: "tenant-a", Time: at(1), ActorID: "user-alice", ActorName: "alice", Action: "product.create",
			ResourceType: "product", ResourceID: "prod-1", Result: store.AuditSuccess, Message: "created", Details: `{"name":"Thermostat"}`},
		{TenantID: "tenant-a", Time: at(2), ActorID: "user-bob", ActorName: "bob", Action: "product.delete",
			ResourceType: "product", ResourceID: "prod-1", Result: store.AuditFailure, ErrorCode: "NotEmpty", Message: "product holds devices"},
		{TenantID: "tenant-b", Time: at(3), ActorID: "user-alice", ActorName: "alice", Action: "device.claim",
			ResourceType: "device", ResourceID: deviceIDOf(1), Result: store.AuditSuccess},
		{TenantID: "", Time: at(4), ActorID: "user-root", ActorName: "root", Action: "tenant.create",
			ResourceType: "tenant", ResourceID: "tenant-a", Result: store.AuditSuccess},
		{TenantID: "tenant-a", Time: at(5), ActorID: "user-alice", ActorName: "alice", Action: "group.create",
			ResourceType: "group", ResourceID: "group-1", Result: store.AuditSuccess, Details: `{}`},
	}
	var last int64
	for i := range entries {
		entries[i].Seq = 12345 // ignored
		seq, err := s.AppendAudit(ctx, entries[i])
		must(t, err)
		if seq <= last {
			t.Fatalf("AppendAudit returned seq %d after %d", seq, last)
		}
		entries[i].Seq, last = seq, seq
	}
	e := func(i ...int) []store.AuditEntry {
		out := []store.AuditEntry{}
		for _, i := range i {
			out = append(out, norm(entries[i]))
		}
		return out
	}

	for _, tc := range []struct {
		name   string
		filter store.AuditFilter
		want   []store.AuditEntry
	}{
		{"tenant", store.AuditFilter{TenantID: "tenant-a"}, e(4, 1, 0)},
		{"other tenant", store.AuditFilter{TenantID: "tenant-b"}, e(2)},
		{"service level", store.AuditFilter{}, e(3)},
		{"no such tenant", store.AuditFilter{TenantID: "tenant-x"}, e()},
		{"actor", store.AuditFilter{TenantID: "tenant-a", ActorName: "bob"}, e(1)},
		{"action", store.AuditFilter{TenantID: "tenant-a", Action: "group.create"}, e(4)},
		{"resource type", store.AuditFilter{TenantID: "tenant-a", ResourceType: "product"}, e(1, 0)},
		{"resource id", store.AuditFilter{TenantID: "tenant-a", ResourceID: "prod-1"}, e(1, 0)},
		{"resource id of other tenant", store.AuditFilter{TenantID: "tenant-a", ResourceID: deviceIDOf(1)}, e()},
		{"result", store.AuditFilter{TenantID: "tenant-a", Result: store.AuditFailure}, e(1)},
		{"since is inclusive", store.AuditFilter{TenantID: "tenant-a", Since: at(2)}, e(4, 1)},
		{"until is exclusive", store.AuditFilter{TenantID: "tenant-a", Until: at(5)}, e(1, 0)},
		{"since and until", store.AuditFilter{TenantID: "tenant-a", Since: at(2), Until: at(5)}, e(1)},
		{"empty range", store.AuditFilter{TenantID: "tenant-a", Since: at(2), Until: at(2)}, e()},
		{"since in UTC", store.AuditFilter{TenantID: "tenant-a", Since: at(2).UTC()}, e(4, 1)},
		{"every field", store.AuditFilter{TenantID: "tenant-a", ActorName: "alice", Action: "product.create",
			ResourceType: "product", ResourceID: "prod-1", Result: store.AuditSuccess, Since: at(1), Until: at(2)}, e(0)},
		{"every field but one", store.AuditFilter{TenantID: "tenant-a", ActorName: "alice", Action: "product.create",
			ResourceType: "product", ResourceID: "prod-1", Result: store.AuditFailure, Since: at(1), Until: at(2)}, e()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := s.ListAudit(ctx, tc.filter, store.ListOptions{})
			must(t, err)
			eq(t, p.Items, tc.want)
			eq(t, p.Next, "")
			eq(t, pageAll(t, 1, func(opt store.ListOptions) (store.Page[store.AuditEntry], error) {
				return s.ListAudit(ctx, tc.filter, opt)
			}, auditSeq), keys(tc.want, auditSeq))
		})
	}

	_, err := s.ListAudit(ctx, store.AuditFilter{TenantID: "tenant-a"}, store.ListOptions{After: "not a number"})
	if err == nil {
		t.Error("ListAudit accepted a cursor that is not a sequence number")
	}
}

func testAuditPaging(t *testing.T, s store.Store) {
	ctx := t.Context()
	var want []string
	must(t, s.Update(ctx, func(tx store.Tx) error {
		for i := range 25 {
			seq, err := tx.AppendAudit(ctx, store.AuditEntry{TenantID: "tenant-a", Time: at(i), ActorName: "alice",
				Action: "device.update", ResourceType: "device", ResourceID: fmt.Sprint(i % 3), Result: store.AuditSuccess})
			if err != nil {
				return err
			}
			want = append([]string{fmt.Sprint(seq)}, want...)
		}
		return nil
	}))
	for _, limit := range []int{1, 4, 5, 24, 25, 26} {
		eq(t, pageAll(t, limit, func(opt store.ListOptions) (store.Page[store.AuditEntry], error) {
			return s.ListAudit(ctx, store.AuditFilter{TenantID: "tenant-a"}, opt)
		}, auditSeq), want)
	}
	var want0 []string
	for i, seq := range want {
		if (24-i)%3 == 0 {
			want0 = append(want0, seq)
		}
	}
	eq(t, pageAll(t, 2, func(opt store.ListOptions) (store.Page[store.AuditEntry], error) {
		return s.ListAudit(ctx, store.AuditFilter{TenantID: "tenant-a", ResourceID: "0"}, opt)
	}, auditSeq), want0)
}

// testLimitClamping checks the default and maximum page sizes, on the audit log.
func testLimitClamping(t *testing.T, s store.Store) {
	ctx := t.Context()
	n := store.MaxLimit + 1
	must(t, s.Update(ctx, func(tx store.Tx) error {
		for i := range n {
			if _, err := tx.AppendAudit(ctx, store.AuditEntry{TenantID: "tenant-a", Time: at(0).Add(time.Duration(i) * time.Second),
				Action: "x", Result: store.AuditSuccess}); err != nil {
				return err
			}
		}
		return nil
	}))
	for _, tc := range []struct {
		limit, want int
	}{
		{0, store.DefaultLimit},
		{-1, store.DefaultLimit},
		{1, 1},
		{store.MaxLimit, store.MaxLimit},
		{store.MaxLimit + 1, store.MaxLimit},
		{1 << 30, store.MaxLimit},
	} {
		p, err := s.ListAudit(ctx, store.AuditFilter{TenantID: "tenant-a"}, store.ListOptions{Limit: tc.limit})
		must(t, err)
		if len(p.Items) != tc.want || p.Next == "" {
			t.Errorf("Limit %d: got %d items and Next %q, want %d items and a Next", tc.limit, len(p.Items), p.Next, tc.want)
		}
	}
	p, err := s.ListAudit(ctx, store.AuditFilter{TenantID: "tenant-a"}, store.ListOptions{Limit: 1 << 30})
	must(t, err)
	p, err = s.ListAudit(ctx, store.AuditFilter{TenantID: "tenant-a"}, store.ListOptions{Limit: 1 << 30, After: p.Next})
	must(t, err)
	if len(p.Items) != n-store.MaxLimit || p.Next != "" {
		t.Errorf("second page: %d items and Next %q, want %d items and no Next", len(p.Items), p.Next, n-store.MaxLimit)
	}
}

// testTimes checks that times round-trip to the microsecond, in UTC, across the range of
// dates a store may see, and that the zero time stays zero.
func testTimes(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	for i, tt := range []time.Time{
		time.Date(2025, 1, 2, 3, 4, 5, 999999999, time.FixedZone("X", -7*3600-30*60)),
		time.Date(1969, 12, 31, 23, 59, 59, 999999, time.UTC), // before the epoch
		time.Unix(0, 1000).In(time.FixedZone("Y", 3600)),      // just after it
		time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC),
		time.Date(1, 1, 1, 0, 0, 0, 1000, time.UTC), // just after the zero time
		{},
	} {
		tok := newToken(fmt.Sprintf("tok-%d", i), w.alice.ID, "")
		tok.CreatedAt, tok.ExpiresAt, tok.RevokedAt = tt, tt, tt
		must(t, s.CreateToken(ctx, tok))
		got, err := s.GetToken(ctx, tok.ID)
		must(t, err)
		for _, g := range []time.Time{got.CreatedAt, got.ExpiresAt, got.RevokedAt} {
			if !g.Equal(stored(tt)) || g.IsZero() != tt.IsZero() {
				t.Errorf("time %v came back as %v", tt, g)
			}
			if !g.IsZero() && g.Location() != time.UTC {
				t.Errorf("time %v came back in %v", tt, g.Location())
			}
		}
		eq(t, got, norm(tok))
	}
}
