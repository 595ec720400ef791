package storetest

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/rampart-iot/rampart/internal/store"
	"github.com/rampart-iot/rampart/internal/store/sqlstore"
)

// RunFrozenMigrations checks that the migrations in fsys are exactly those of sums, each
// with the given SHA-256: a migration, once released, is never edited, and a new one is added
// to sums when it is released.
func RunFrozenMigrations(t *testing.T, fsys fs.FS, sums map[string]string) {
	entries, err := fs.ReadDir(fsys, ".")
	must(t, err)
	seen := map[string]bool{}
	for _, e := range entries {
		b, err := fs.ReadFile(fsys, e.Name())
		must(t, err)
		sum := sha256.Sum256(b)
		want, ok := sums[e.Name()]
		switch {
		case !ok:
			t.Errorf("migration %s is not listed: add its SHA-256 %x", e.Name(), sum)
		case hex.EncodeToString(sum[:]) != want:
			t.Errorf("migration %s was edited (SHA-256 %x): add a new migration instead", e.Name(), sum)
		}
		seen[e.Name()] = true
	}
	for name := range sums {
		if !seen[name] {
			t.Errorf("migration %s is missing", name)
		}
	}
}

// RunUpgrade checks that a database that an older binary left at schema version 1 upgrades
// in place and keeps its records. It migrates dsn, an empty database, to version 1 with the
// backend's own migration runner and dialect d cut down to migration 0001, writes records
// there through driver as version 1 wrote them, then opens the backend on dsn, which applies
// the later migrations, and checks every record and the new fields.
func RunUpgrade(t *testing.T, backend, driver, dsn string, d sqlstore.Dialect) {
	ctx := t.Context()
	first, err := migrationsUpTo(d.Migrations, 1)
	must(t, err)
	d.Migrations = first
	db, err := sql.Open(driver, dsn)
	must(t, err)
	v1, err := sqlstore.New(ctx, d, db, db)
	must(t, err)
	eq(t, schemaVersion(t, db), 1)

	// The records, as version 1 wrote them.
	a := store.Tenant{ID: "tenant-a", Name: "Contoso", CreatedAt: at(0)}
	b := store.Tenant{ID: "tenant-b", Name: "Fabrikam", CreatedAt: at(1)}
	alice := store.User{ID: "user-alice", Name: "alice", ServiceAdmin: true, CreatedAt: at(2)}
	tok := newToken("tok-1", alice.ID, a.ID)
	role := store.RoleAssignment{TenantID: a.ID, UserID: alice.ID, UserName: alice.Name,
		Role: store.RoleAdministrator, CreatedAt: at(3), UpdatedAt: at(4)}
	p := newProduct(a.ID, "prod-1", "Thermostat")
	g := newGroup(a.ID, p.ID, "group-1", "Field")
	d1 := newDevice(a.ID, g.ID, 1)
	d1.EKCertificate = []byte{0x30, 0x82, 0, 0}
	d1.ProductID = p.ID
	d2 := newDevice(b.ID, "", 2)
	entry := store.AuditEntry{TenantID: a.ID, Time: at(5), ActorID: alice.ID, ActorName: alice.Name,
		Action: "device.claim", ResourceType: "device", ResourceID: d1.ID, Result: store.AuditSuccess,
		Details: `{"group":"group-1"}`}
	micros := func(t time.Time) any {
		if t.IsZero() {
			return nil
		}
		return t.UnixMicro()
	}
	bytes := func(b []byte) any {
		if len(b) == 0 {
			return nil
		}
		return b
	}
	group := func(id string) any {
		if id == "" {
			return nil
		}
		return id
	}
	exec := func(query string, args ...any) {
		t.Helper()
		if _, err := db.ExecContext(ctx, query, args...); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
	}
	for _, x := range []store.Tenant{a, b} {
		exec(`INSERT INTO tenants (id, name, name_key, created_at) VALUES ($1, $2, $3, $4)`,
			x.ID, x.Name, strings.ToLower(x.Name), micros(x.CreatedAt))
	}
	exec(`INSERT INTO users (id, name, name_key, service_admin, created_at) VALUES ($1, $2, $3, $4, $5)`,
		alice.ID, alice.Name, alice.Name, alice.ServiceAdmin, micros(alice.CreatedAt))
	exec(`INSERT INTO tokens (id, user_id, tenant_id, hash, description, created_by, created_at, expires_at, revoked_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL)`,
		tok.ID, tok.UserID, tok.TenantID, tok.Hash, tok.Description, tok.CreatedBy, micros(tok.CreatedAt), micros(tok.ExpiresAt))
	exec(`INSERT INTO roles (tenant_id, user_id, role, created_at, updated_at) VALUES ($1, $2, $3, $4, $5)`,
		role.TenantID, role.UserID, string(role.Role), micros(role.CreatedAt), micros(role.UpdatedAt))
	exec(`INSERT INTO products (id, tenant_id, name, name_key, description, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		p.ID, p.TenantID, p.Name, strings.ToLower(p.Name), p.Description, micros(p.CreatedAt), micros(p.UpdatedAt))
	exec(`INSERT INTO device_groups (id, tenant_id, product_id, name, name_key, description, os_feed, update_policy,
			check_in_interval, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		g.ID, g.TenantID, g.ProductID, g.Name, strings.ToLower(g.Name), g.Description, string(g.OSFeed),
		string(g.UpdatePolicy), int64(g.CheckInInterval/time.Second), micros(g.CreatedAt), micros(g.UpdatedAt))
	for _, x := range []store.Device{d1, d2} {
		exec(`INSERT INTO devices (id, tenant_id, device_group_id, root_of_trust, agent_version, ek_public,
				ek_certificate, ak_public, enrollment, claimed_by, claimed_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
			x.ID, x.TenantID, group(x.DeviceGroupID), x.RootOfTrust, x.AgentVersion, bytes(x.EKPublic),
			bytes(x.EKCertificate), bytes(x.AKPublic), bytes(x.Enrollment), x.ClaimedBy, micros(x.ClaimedAt), micros(x.UpdatedAt))
	}
	exec(`INSERT INTO audit (tenant_id, at, actor_id, actor_name, action, resource_type, resource_id, result,
			error_code, message, details) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		entry.TenantID, micros(entry.Time), entry.ActorID, entry.ActorName, entry.Action, entry.ResourceType,
		entry.ResourceID, entry.Result, entry.ErrorCode, entry.Message, entry.Details)
	must(t, v1.Close())

	// The current binary upgrades the database and finds every record as it was.
	s, err := store.Open(ctx, backend, dsn)
	must(t, err)
	check := func(s store.Store) {
		t.Helper()
		for _, x := range []store.Tenant{a, b} {
			got, err := s.GetTenant(ctx, x.ID)
			must(t, err)
			eq(t, got, norm(x))
		}
		gotUser, err := s.GetUserByName(ctx, "ALICE")
		must(t, err)
		eq(t, gotUser, norm(alice))
		gotToken, err := s.GetTokenByHash(ctx, tok.Hash)
		must(t, err)
		eq(t, gotToken, norm(tok))
		gotRole, err := s.GetRole(ctx, a.ID, alice.ID)
		must(t, err)
		eq(t, gotRole, norm(role))
		gotProduct, err := s.GetProduct(ctx, a.ID, p.ID)
		must(t, err)
		eq(t, gotProduct, norm(p))
		pa, err := s.ListAudit(ctx, store.AuditFilter{TenantID: a.ID}, store.ListOptions{})
		must(t, err)
		if len(pa.Items) != 1 {
			t.Fatalf("audit log after the upgrade: %+v", pa.Items)
		}
		entry.Seq = pa.Items[0].Seq
		eq(t, pa.Items[0], norm(entry))
	}
	check(s)
	// The new fields of old records are zero: the group follows the default certificate
	// lifetime, and the devices are enabled, not activated and not attested.
	gotGroup, err := s.GetDeviceGroup(ctx, a.ID, g.ID)
	must(t, err)
	eq(t, gotGroup, norm(g))
	for _, x := range []store.Device{d1, d2} {
		got, err := s.GetDeviceByID(ctx, x.ID)
		must(t, err)
		eq(t, got, norm(x))
	}
	must(t, s.Close())

	raw, err := sql.Open(driver, dsn)
	must(t, err)
	defer raw.Close()
	latest := schemaVersion(t, raw)
	if latest < 2 {
		t.Fatalf("schema version %d after the upgrade", latest)
	}

	// Opening again changes nothing; the new state works on the old records.
	s = Open(t, backend, dsn)
	check(s)
	eq(t, schemaVersion(t, raw), latest)
	g.CertLifetime, g.UpdatedAt = 12*time.Hour, at(60)
	must(t, s.UpdateDeviceGroup(ctx, g))
	gotGroup, err = s.GetDeviceGroup(ctx, a.ID, g.ID)
	must(t, err)
	eq(t, gotGroup, norm(g))
	must(t, s.SetDeviceAKActivated(ctx, d1.ID, at(61)))
	must(t, s.SetDeviceDisabled(ctx, b.ID, d2.ID, true, at(62)))
	att := newAttestation(a.ID, d1.ID, 1, store.AttestationPass)
	must(t, s.RecordAttestation(ctx, att))
	d1.AKActivated, d1.LastAttestation, d1.LastResult, d1.LastMessage = at(61), att.Time, att.Result, att.Message
	d1.CertificateExpires = att.CertificateExpires
	d2.Disabled, d2.UpdatedAt = true, at(62)
	for _, x := range []store.Device{d1, d2} {
		got, err := s.GetDeviceByID(ctx, x.ID)
		must(t, err)
		eq(t, got, norm(x))
	}
	must(t, s.CreateNonce(ctx, store.Nonce{Hash: hashOf("n"), DeviceID: d2.ID, TenantID: b.ID, ExpiresAt: at(70)}))
	isErr(t, s.CreateNonce(ctx, store.Nonce{Hash: hashOf("n"), DeviceID: d2.ID, TenantID: b.ID, ExpiresAt: at(70)}), store.ErrConflict)
	must(t, s.CreateOSRelease(ctx, newRelease(a.ID, "rel-1", "1.0")))
	must(t, s.CreateCACertificate(ctx, store.CACertificate{ID: "ca-root", CertDER: []byte("root"), CreatedAt: at(0)}))
	must(t, s.CreateCACertificate(ctx, store.CACertificate{ID: "ca-a", TenantID: a.ID, CreatedAt: at(0)}))
	// The devices' (tenant_id, id) is unique now, as it always was.
	_, claimed, err := s.ClaimDevice(ctx, newDevice(a.ID, "", 3))
	must(t, err)
	if !claimed {
		t.Error("a new device was not claimed after the upgrade")
	}
}

// migrationsUpTo returns a file system with the first n migrations of fsys.
func migrationsUpTo(fsys fs.FS, n int) (fs.FS, error) {
	out := fstest.MapFS{}
	for v := 1; v <= n; v++ {
		matches, err := fs.Glob(fsys, fmt.Sprintf("%04d_*.sql", v))
		if err != nil || len(matches) != 1 {
			return nil, fmt.Errorf("want one migration %04d, found %v: %v", v, matches, err)
		}
		b, err := fs.ReadFile(fsys, matches[0])
		if err != nil {
			return nil, err
		}
		out[matches[0]] = &fstest.MapFile{Data: b}
	}
	return out, nil
}

// schemaVersion returns the schema version the migration runner recorded in db.
func schemaVersion(t *testing.T, db *sql.DB) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var v int
	must(t, db.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&v))
	return v
}
