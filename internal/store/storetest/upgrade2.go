package storetest

import (
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/internal/store"
	"github.com/rampart-iot/rampart/internal/store/sqlstore"
)

// RunUpgradeFrom2 checks that a database that an older binary left at schema version 2 (with
// attestation, before images and deployments) upgrades in place and keeps its records, as
// RunUpgrade does from version 1: it migrates dsn, an empty database, to version 2 with the
// backend's dialect d cut down to migrations 0001 and 0002, writes records through driver as
// version 2 wrote them, opens the backend on dsn, checks every record, and then uses the new
// state (images, component ownership, deployments, signing keys) on the old records.
func RunUpgradeFrom2(t *testing.T, backend, driver, dsn string, d sqlstore.Dialect) {
	ctx := t.Context()
	upTo2, err := migrationsUpTo(d.Migrations, 2)
	must(t, err)
	d.Migrations = upTo2
	db, err := sql.Open(driver, dsn)
	must(t, err)
	v2, err := sqlstore.New(ctx, d, db, db)
	must(t, err)
	eq(t, schemaVersion(t, db), 2)

	// The records, as version 2 wrote them.
	a := store.Tenant{ID: "tenant-a", Name: "Contoso", CreatedAt: at(0)}
	b := store.Tenant{ID: "tenant-b", Name: "Fabrikam", CreatedAt: at(1)}
	p := newProduct(a.ID, "prod-1", "Thermostat")
	g1 := newGroup(a.ID, p.ID, "group-1", "Field")
	g1.CertLifetime = 12 * time.Hour
	g2 := newGroup(a.ID, p.ID, "group-2", "Lab")
	g3 := newGroup(a.ID, p.ID, "group-3", "Spare")
	d1 := newDevice(a.ID, g1.ID, 1)
	d1.ProductID = p.ID
	att := newAttestation(a.ID, d1.ID, 1, store.AttestationPass)
	d1.AKActivated, d1.LastAttestation, d1.LastResult, d1.LastMessage = at(31), att.Time, att.Result, att.Message
	d1.CertificateExpires = att.CertificateExpires
	d2 := newDevice(b.ID, "", 2)
	d2.Disabled = true
	nonce := store.Nonce{Hash: hashOf("n"), DeviceID: d1.ID, TenantID: a.ID, CreatedAt: at(60), ExpiresAt: at(65)}
	rel := newRelease(a.ID, "rel-1", "1.0.0")
	root := store.CACertificate{ID: "ca-root", CertDER: []byte("root"), KeyCiphertext: []byte("root key"),
		NotBefore: at(0), NotAfter: at(1000), ActiveFrom: at(0), CreatedAt: at(0)}
	caA := store.CACertificate{ID: "ca-a", TenantID: a.ID, CertDER: []byte("a"), NotBefore: at(1), NotAfter: at(500),
		ActiveFrom: at(1), RevokedAt: at(400), CreatedAt: at(1)}
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
	text := func(s string) any {
		if s == "" {
			return nil
		}
		return s
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
	exec(`INSERT INTO products (id, tenant_id, name, name_key, description, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		p.ID, p.TenantID, p.Name, strings.ToLower(p.Name), p.Description, micros(p.CreatedAt), micros(p.UpdatedAt))
	for _, g := range []store.DeviceGroup{g1, g2, g3} {
		exec(`INSERT INTO device_groups (id, tenant_id, product_id, name, name_key, description, os_feed, update_policy,
				check_in_interval, cert_lifetime, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
			g.ID, g.TenantID, g.ProductID, g.Name, strings.ToLower(g.Name), g.Description, string(g.OSFeed),
			string(g.UpdatePolicy), int64(g.CheckInInterval/time.Second), int64(g.CertLifetime/time.Second),
			micros(g.CreatedAt), micros(g.UpdatedAt))
	}
	for _, x := range []store.Device{d1, d2} {
		exec(`INSERT INTO devices (id, tenant_id, device_group_id, root_of_trust, agent_version, ek_public,
				ek_certificate, ak_public, enrollment, claimed_by, claimed_at, updated_at, disabled, ak_activated,
				last_attestation, last_result, last_reason, last_message, certificate_expires)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)`,
			x.ID, x.TenantID, text(x.DeviceGroupID), x.RootOfTrust, x.AgentVersion, bytes(x.EKPublic),
			bytes(x.EKCertificate), bytes(x.AKPublic), bytes(x.Enrollment), x.ClaimedBy, micros(x.ClaimedAt),
			micros(x.UpdatedAt), x.Disabled, micros(x.AKActivated), micros(x.LastAttestation), x.LastResult,
			x.LastReason, x.LastMessage, micros(x.CertificateExpires))
	}
	exec(`INSERT INTO attestations (id, tenant_id, device_id, at, result, reason, message, os_release_id, measurements,
			certificate_serial, certificate_expires) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		att.ID, att.TenantID, att.DeviceID, micros(att.Time), att.Result, att.Reason, att.Message, att.OSReleaseID,
		att.Measurements, att.CertificateSerial, micros(att.CertificateExpires))
	exec(`INSERT INTO nonces (hash, tenant_id, device_id, activation_hash, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6)`,
		nonce.Hash, nonce.TenantID, nonce.DeviceID, bytes(hashOf("secret")), micros(nonce.CreatedAt), micros(nonce.ExpiresAt))
	exec(`INSERT INTO os_releases (id, tenant_id, version, description, measurements, created_by, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		rel.ID, rel.TenantID, rel.Version, rel.Description,
		`{"agent":"`+rel.Measurements["agent"]+`","os-bundle":"`+rel.Measurements["os-bundle"]+`","policy":"`+
			rel.Measurements["policy"]+`"}`, rel.CreatedBy, micros(rel.CreatedAt))
	for _, c := range []store.CACertificate{root, caA} {
		exec(`INSERT INTO ca_certificates (id, tenant_id, cert_der, key_ciphertext, not_before, not_after, active_from,
				revoked_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			c.ID, text(c.TenantID), bytes(c.CertDER), bytes(c.KeyCiphertext), micros(c.NotBefore), micros(c.NotAfter),
			micros(c.ActiveFrom), micros(c.RevokedAt), micros(c.CreatedAt))
	}
	must(t, v2.Close())

	// The current binary upgrades the database and finds every record as it was.
	s, err := store.Open(ctx, backend, dsn)
	must(t, err)
	check := func(s store.Store) {
		t.Helper()
		for _, g := range []store.DeviceGroup{g1, g2} {
			got, err := s.GetDeviceGroup(ctx, a.ID, g.ID)
			must(t, err)
			eq(t, got, norm(g))
		}
		for _, x := range []store.Device{d1, d2} {
			got, err := s.GetDeviceByID(ctx, x.ID)
			must(t, err)
			eq(t, got, norm(x))
		}
		pa, err := s.ListAttestations(ctx, a.ID, d1.ID, store.ListOptions{})
		must(t, err)
		eq(t, pa.Items, norm([]store.Attestation{att}))
		gotRel, err := s.GetOSRelease(ctx, a.ID, rel.ID)
		must(t, err)
		eq(t, gotRel, norm(rel))
		cas, err := s.ListCACertificates(ctx, "")
		must(t, err)
		eq(t, cas, norm([]store.CACertificate{root}))
		cas, err = s.ListCACertificates(ctx, a.ID)
		must(t, err)
		eq(t, cas, norm([]store.CACertificate{caA}))
	}
	check(s)
	for _, tenant := range []string{a.ID, b.ID} {
		imgs, err := s.ListImages(ctx, tenant, store.ImageFilter{}, store.ListOptions{})
		must(t, err)
		eq(t, imgs.Items, []store.Image{})
		ds, err := s.ListDeployments(ctx, tenant, store.DeploymentFilter{}, store.ListOptions{})
		must(t, err)
		eq(t, ds.Items, []store.Deployment{})
		ks, err := s.ListSigningKeys(ctx, tenant, store.KeyImageSigning)
		must(t, err)
		eq(t, ks, []store.SigningKey{})
	}
	isErr(t, s.CreateNonce(ctx, nonce), store.ErrConflict) // the nonce survived the upgrade
	must(t, s.Close())

	raw, err := sql.Open(driver, dsn)
	must(t, err)
	defer raw.Close()
	latest := schemaVersion(t, raw)
	if latest < 3 {
		t.Fatalf("schema version %d after the upgrade", latest)
	}

	// Opening again changes nothing; the new state works on the old records.
	s = Open(t, backend, dsn)
	check(s)
	eq(t, schemaVersion(t, raw), latest)
	img := newImage(a.ID, 1, 1)
	must(t, s.CreateImage(ctx, img))
	isErr(t, s.CreateImage(ctx, newImage(b.ID, 1, 2)), store.ErrComponentOwned)
	gotImg, err := s.GetImage(ctx, a.ID, img.ID)
	must(t, err)
	eq(t, gotImg, norm(img))
	dep := newDeployment(a.ID, g2.ID, 1, img.ID)
	must(t, s.CreateDeployment(ctx, dep))
	isErr(t, s.CreateDeployment(ctx, newDeployment(b.ID, g2.ID, 2, img.ID)), store.ErrNotFound)
	cur, err := s.CurrentDeployment(ctx, a.ID, g2.ID)
	must(t, err)
	eq(t, cur, norm(dep))
	// An old group that was deployed to stays; one that never was goes, as before.
	isErr(t, s.DeleteDeviceGroup(ctx, a.ID, g2.ID), store.ErrNotEmpty)
	must(t, s.DeleteDeviceGroup(ctx, a.ID, g3.ID))
	must(t, s.SetDeviceGroup(ctx, a.ID, d1.ID, "", at(70)))
	isErr(t, s.DeleteProduct(ctx, a.ID, p.ID), store.ErrNotEmpty)
	key := newSigningKey(a.ID, store.KeyImageSigning, 1, 2)
	must(t, s.CreateSigningKey(ctx, key))
	key.KeyCiphertext, key.RevokedAt = nil, at(80)
	must(t, s.UpdateSigningKey(ctx, key))
	ks, err := s.ListSigningKeys(ctx, a.ID, store.KeyImageSigning)
	must(t, err)
	eq(t, ks, norm([]store.SigningKey{key}))
}
