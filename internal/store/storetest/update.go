package storetest

import (
	"errors"
	"testing"

	"github.com/rampart-iot/rampart/internal/store"
)

func testUpdateCommits(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	p := newProduct(w.a.ID, "prod-1", "Thermostat")
	g := newGroup(w.a.ID, p.ID, "group-1", "Field")
	must(t, s.Update(ctx, func(tx store.Tx) error {
		if err := tx.CreateProduct(ctx, p); err != nil {
			return err
		}
		// The transaction sees its own writes.
		if _, err := tx.GetProduct(ctx, w.a.ID, p.ID); err != nil {
			return err
		}
		if err := tx.CreateDeviceGroup(ctx, g); err != nil {
			return err
		}
		_, _, err := tx.ClaimDevice(ctx, newDevice(w.a.ID, g.ID, 1))
		return err
	}))
	got, err := s.GetDevice(ctx, w.a.ID, deviceIDOf(1))
	must(t, err)
	eq(t, got.ProductID, p.ID)
}

func testUpdateRollsBack(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	errStop := errors.New("stop")
	err := s.Update(ctx, func(tx store.Tx) error {
		if err := tx.CreateProduct(ctx, newProduct(w.a.ID, "prod-1", "Thermostat")); err != nil {
			return err
		}
		if err := tx.CreateDeviceGroup(ctx, newGroup(w.a.ID, "prod-1", "group-1", "Field")); err != nil {
			return err
		}
		if _, _, err := tx.ClaimDevice(ctx, newDevice(w.a.ID, "group-1", 1)); err != nil {
			return err
		}
		if err := tx.PutRole(ctx, store.RoleAssignment{TenantID: w.a.ID, UserID: w.bob.ID, Role: store.RoleReader}); err != nil {
			return err
		}
		if _, err := tx.AppendAudit(ctx, store.AuditEntry{TenantID: w.a.ID, Action: "x"}); err != nil {
			return err
		}
		return errStop
	})
	if !errors.Is(err, errStop) {
		t.Fatalf("Update returned %v, want the function's error", err)
	}
	assertUntouched(t, s, w)
}

// assertUntouched checks that w holds nothing but its tenants and users.
func assertUntouched(t *testing.T, s store.Store, w *world) {
	t.Helper()
	ctx := t.Context()
	for _, tenant := range []string{w.a.ID, w.b.ID} {
		ps, err := s.ListProducts(ctx, tenant, store.ProductFilter{}, store.ListOptions{})
		must(t, err)
		gs, err := s.ListDeviceGroups(ctx, tenant, store.DeviceGroupFilter{}, store.ListOptions{})
		must(t, err)
		n, err := s.CountDevices(ctx, tenant, store.DeviceFilter{})
		must(t, err)
		rs, err := s.ListRoles(ctx, tenant, store.ListOptions{})
		must(t, err)
		as, err := s.ListAudit(ctx, store.AuditFilter{TenantID: tenant}, store.ListOptions{})
		must(t, err)
		if len(ps.Items)+len(gs.Items)+n+len(rs.Items)+len(as.Items) != 0 {
			t.Errorf("tenant %s: a rolled back transaction left %d products, %d groups, %d devices, %d roles, %d audit entries",
				tenant, len(ps.Items), len(gs.Items), n, len(rs.Items), len(as.Items))
		}
	}
}

func testUpdateRollsBackOnConflict(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	err := s.Update(ctx, func(tx store.Tx) error {
		for _, p := range []store.Product{
			newProduct(w.a.ID, "prod-1", "Thermostat"),
			newProduct(w.b.ID, "prod-2", "Thermostat"),
			newProduct(w.a.ID, "prod-3", "Doorbell"),
			newProduct(w.a.ID, "prod-4", "thermostat"), // conflicts half way through
			newProduct(w.a.ID, "prod-5", "Camera"),
		} {
			if err := tx.CreateProduct(ctx, p); err != nil {
				return err
			}
		}
		return nil
	})
	isErr(t, err, store.ErrConflict)
	assertUntouched(t, s, w)
}

func testUpdateRollsBackOnPanic(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Errorf("recovered %v, want the function's panic", r)
			}
		}()
		_ = s.Update(ctx, func(tx store.Tx) error {
			must(t, tx.CreateProduct(ctx, newProduct(w.a.ID, "prod-1", "Thermostat")))
			panic("boom")
		})
	}()
	assertUntouched(t, s, w)
	// The store still takes writes: the transaction did not keep its lock.
	w.product(w.a.ID, "prod-1", "Thermostat")
}

// testUpdateContinuesAfterError checks that a method failing inside Update leaves the
// transaction usable, so that fn may handle the error and go on.
func testUpdateContinuesAfterError(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	w.product(w.a.ID, "prod-1", "Thermostat")
	w.group(w.a.ID, "prod-1", "group-1", "Field")
	w.claim(w.b.ID, "", 1)
	w.claim(w.a.ID, "group-1", 2)
	must(t, s.RecordAttestation(ctx, newAttestation(w.a.ID, deviceIDOf(2), 1, store.AttestationPass)))
	nonce := store.Nonce{Hash: hashOf("n1"), DeviceID: deviceIDOf(2), TenantID: w.a.ID, ExpiresAt: at(10)}
	must(t, s.CreateNonce(ctx, nonce))
	must(t, s.CreateOSRelease(ctx, newRelease(w.a.ID, "rel-1", "1.0")))
	must(t, s.CreateCACertificate(ctx, store.CACertificate{ID: "ca-1", TenantID: w.a.ID}))
	w.image(w.a.ID, 1, 1)
	must(t, s.CreateDeployment(ctx, newDeployment(w.a.ID, "group-1", 1, imageIDOf(1))))
	key := newSigningKey(w.a.ID, store.KeyImageSigning, 1, 0)
	must(t, s.CreateSigningKey(ctx, key))
	must(t, s.Update(ctx, func(tx store.Tx) error {
		var errs []error
		check := func(err, want error) {
			if !errors.Is(err, want) {
				errs = append(errs, err)
			}
		}
		check(tx.CreateProduct(ctx, newProduct(w.a.ID, "prod-2", "THERMOSTAT")), store.ErrConflict)
		check(tx.CreateProduct(ctx, newProduct(w.a.ID, "prod-1", "Other")), store.ErrConflict)
		check(tx.CreateTenant(ctx, store.Tenant{ID: "tenant-c", Name: "contoso"}), store.ErrConflict)
		check(tx.CreateUser(ctx, store.User{ID: w.alice.ID, Name: "someone"}), store.ErrConflict)
		check(tx.CreateDeviceGroup(ctx, newGroup(w.a.ID, "prod-x", "group-2", "Lab")), store.ErrNotFound)
		check(tx.CreateToken(ctx, newToken("tok-1", "user-x", "")), store.ErrNotFound)
		check(tx.PutRole(ctx, store.RoleAssignment{TenantID: "tenant-x", UserID: w.bob.ID}), store.ErrNotFound)
		check(tx.DeleteDeviceGroup(ctx, w.a.ID, "group-1"), store.ErrNotEmpty)
		check(tx.DeleteProduct(ctx, w.a.ID, "prod-1"), store.ErrNotEmpty)
		check(tx.SetDeviceGroup(ctx, w.a.ID, deviceIDOf(2), "group-x", at(1)), store.ErrNotFound)
		_, _, err := tx.ClaimDevice(ctx, newDevice(w.a.ID, "", 1))
		check(err, store.ErrClaimedByOtherTenant)
		_, err = tx.GetProduct(ctx, w.b.ID, "prod-1")
		check(err, store.ErrNotFound)
		check(tx.UpdateProduct(ctx, newProduct(w.b.ID, "prod-1", "x")), store.ErrNotFound)
		check(tx.RevokeToken(ctx, "tok-x", at(1)), store.ErrNotFound)
		check(tx.DeleteRole(ctx, w.a.ID, w.bob.ID), store.ErrNotFound)
		_, err = tx.GetDeviceByID(ctx, deviceIDOf(99))
		check(err, store.ErrNotFound)
		check(tx.SetDeviceDisabled(ctx, w.b.ID, deviceIDOf(2), true, at(1)), store.ErrNotFound)
		check(tx.SetDeviceAKActivated(ctx, deviceIDOf(99), at(1)), store.ErrNotFound)
		check(tx.RecordAttestation(ctx, newAttestation(w.a.ID, deviceIDOf(2), 1, store.AttestationFail)), store.ErrConflict)
		check(tx.RecordAttestation(ctx, newAttestation(w.a.ID, deviceIDOf(1), 2, store.AttestationFail)), store.ErrNotFound)
		_, err = tx.ListAttestations(ctx, w.a.ID, deviceIDOf(1), store.ListOptions{})
		check(err, store.ErrNotFound)
		check(tx.CreateNonce(ctx, nonce), store.ErrConflict)
		check(tx.CreateNonce(ctx, store.Nonce{Hash: hashOf("n2"), DeviceID: deviceIDOf(1), TenantID: w.a.ID, ExpiresAt: at(10)}), store.ErrNotFound)
		check(tx.CreateOSRelease(ctx, newRelease(w.a.ID, "rel-2", "1.0")), store.ErrConflict)
		check(tx.CreateOSRelease(ctx, newRelease(w.b.ID, "rel-1", "1.0")), store.ErrConflict)
		check(tx.CreateOSRelease(ctx, newRelease("tenant-x", "rel-3", "1.0")), store.ErrNotFound)
		_, err = tx.GetOSRelease(ctx, w.b.ID, "rel-1")
		check(err, store.ErrNotFound)
		check(tx.DeleteOSRelease(ctx, w.b.ID, "rel-1"), store.ErrNotFound)
		check(tx.CreateCACertificate(ctx, store.CACertificate{ID: "ca-1"}), store.ErrConflict)
		check(tx.CreateCACertificate(ctx, store.CACertificate{ID: "ca-2", TenantID: "tenant-x"}), store.ErrNotFound)
		check(tx.UpdateCACertificate(ctx, store.CACertificate{ID: "ca-1", TenantID: w.b.ID}), store.ErrNotFound)
		check(tx.CreateImage(ctx, newImage(w.b.ID, 1, 2)), store.ErrComponentOwned)
		check(tx.CreateImage(ctx, newImage(w.b.ID, 1, 1)), store.ErrComponentOwned)
		check(tx.CreateImage(ctx, newImage(w.a.ID, 2, 1)), store.ErrConflict)
		check(tx.CreateImage(ctx, newImage(w.b.ID, 3, 1)), store.ErrConflict)
		check(tx.CreateImage(ctx, newImage("tenant-x", 4, 4)), store.ErrNotFound)
		_, err = tx.GetImage(ctx, w.b.ID, imageIDOf(1))
		check(err, store.ErrNotFound)
		check(tx.CreateDeployment(ctx, newDeployment(w.a.ID, "group-1", 1, imageIDOf(1))), store.ErrConflict)
		check(tx.CreateDeployment(ctx, newDeployment(w.a.ID, "group-1", 0, imageIDOf(1))), store.ErrConflict)
		check(tx.CreateDeployment(ctx, newDeployment(w.a.ID, "group-1", 2, imageIDOf(99))), store.ErrNotFound)
		check(tx.CreateDeployment(ctx, newDeployment(w.b.ID, "group-1", 3)), store.ErrNotFound)
		_, err = tx.GetDeployment(ctx, w.b.ID, uuid7(1))
		check(err, store.ErrNotFound)
		_, err = tx.CurrentDeployment(ctx, w.b.ID, "group-1")
		check(err, store.ErrNotFound)
		check(tx.CreateSigningKey(ctx, key), store.ErrConflict)
		check(tx.CreateSigningKey(ctx, newSigningKey("tenant-x", store.KeyImageSigning, 2, 0)), store.ErrNotFound)
		check(tx.UpdateSigningKey(ctx, store.SigningKey{ID: key.ID, TenantID: w.b.ID}), store.ErrNotFound)
		// Component 2 was not claimed by the failed upload; b claims it now.
		if err := tx.CreateImage(ctx, newImage(w.b.ID, 2, 2)); err != nil {
			errs = append(errs, err)
		}
		if err := errors.Join(errs...); err != nil {
			return err
		}
		return tx.CreateProduct(ctx, newProduct(w.a.ID, "prod-3", "Doorbell"))
	}))
	_, err := s.GetProduct(ctx, w.a.ID, "prod-3")
	must(t, err)
	eq(t, w.images(w.b.ID, store.ImageFilter{}), []string{imageIDOf(2)})
	eq(t, w.current(w.a.ID, "group-1"), uuid7(1))
}

// testUpdateEveryMethod calls every method of Tx in one transaction.
func testUpdateEveryMethod(t *testing.T, s store.Store) {
	ctx := t.Context()
	var seq int64
	must(t, s.Update(ctx, func(tx store.Tx) error {
		steps := []func() error{
			func() error {
				return tx.CreateTenant(ctx, store.Tenant{ID: "tenant-a", Name: "Contoso", CreatedAt: at(0)})
			},
			func() error { _, err := tx.GetTenant(ctx, "tenant-a"); return err },
			func() error { _, err := tx.GetTenantByName(ctx, "contoso"); return err },
			func() error { return tx.CreateUser(ctx, store.User{ID: "user-alice", Name: "alice", CreatedAt: at(0)}) },
			func() error { _, err := tx.GetUser(ctx, "user-alice"); return err },
			func() error { _, err := tx.GetUserByName(ctx, "ALICE"); return err },
			func() error { return tx.CreateToken(ctx, newToken("tok-1", "user-alice", "tenant-a")) },
			func() error { _, err := tx.GetToken(ctx, "tok-1"); return err },
			func() error { _, err := tx.GetTokenByHash(ctx, newToken("tok-1", "", "").Hash); return err },
			func() error {
				_, err := tx.ListTokens(ctx, store.TokenFilter{UserID: "user-alice"}, store.ListOptions{})
				return err
			},
			func() error { return tx.RevokeToken(ctx, "tok-1", at(1)) },
			func() error {
				return tx.PutRole(ctx, store.RoleAssignment{TenantID: "tenant-a", UserID: "user-alice", Role: store.RoleAdministrator})
			},
			func() error { _, err := tx.GetRole(ctx, "tenant-a", "user-alice"); return err },
			func() error { _, err := tx.ListRoles(ctx, "tenant-a", store.ListOptions{}); return err },
			func() error { _, err := tx.CountRoles(ctx, "tenant-a", store.RoleAdministrator); return err },
			func() error { _, err := tx.ListTenantsForUser(ctx, "user-alice", store.ListOptions{}); return err },
			func() error { return tx.CreateProduct(ctx, newProduct("tenant-a", "prod-1", "Thermostat")) },
			func() error { _, err := tx.GetProduct(ctx, "tenant-a", "prod-1"); return err },
			func() error { return tx.UpdateProduct(ctx, newProduct("tenant-a", "prod-1", "Thermostat 2")) },
			func() error {
				_, err := tx.ListProducts(ctx, "tenant-a", store.ProductFilter{}, store.ListOptions{})
				return err
			},
			func() error { return tx.CreateDeviceGroup(ctx, newGroup("tenant-a", "prod-1", "group-1", "Field")) },
			func() error { _, err := tx.GetDeviceGroup(ctx, "tenant-a", "group-1"); return err },
			func() error { return tx.UpdateDeviceGroup(ctx, newGroup("tenant-a", "prod-1", "group-1", "Lab")) },
			func() error {
				_, err := tx.ListDeviceGroups(ctx, "tenant-a", store.DeviceGroupFilter{}, store.ListOptions{})
				return err
			},
			func() error { _, _, err := tx.ClaimDevice(ctx, newDevice("tenant-a", "", 1)); return err },
			func() error { _, err := tx.GetDevice(ctx, "tenant-a", deviceIDOf(1)); return err },
			func() error { return tx.SetDeviceGroup(ctx, "tenant-a", deviceIDOf(1), "group-1", at(2)) },
			func() error {
				_, err := tx.ListDevices(ctx, "tenant-a", store.DeviceFilter{}, store.ListOptions{})
				return err
			},
			func() error { _, err := tx.CountDevices(ctx, "tenant-a", store.DeviceFilter{}); return err },
			func() error {
				var err error
				seq, err = tx.AppendAudit(ctx, store.AuditEntry{TenantID: "tenant-a", Action: "everything"})
				return err
			},
			func() error {
				_, err := tx.ListAudit(ctx, store.AuditFilter{TenantID: "tenant-a"}, store.ListOptions{})
				return err
			},
			func() error { _, err := tx.GetDeviceByID(ctx, deviceIDOf(1)); return err },
			func() error { _, _, err := tx.GetDeviceByIDWithGeneration(ctx, deviceIDOf(1)); return err },
			func() error { _, err := tx.PolicyGeneration(ctx, "tenant-a"); return err },
			func() error { return tx.SetDeviceDisabled(ctx, "tenant-a", deviceIDOf(1), true, at(2)) },
			func() error { return tx.SetDeviceAKActivated(ctx, deviceIDOf(1), at(2)) },
			func() error {
				return tx.RecordAttestation(ctx, newAttestation("tenant-a", deviceIDOf(1), 1, store.AttestationPass))
			},
			func() error {
				_, err := tx.ListAttestations(ctx, "tenant-a", deviceIDOf(1), store.ListOptions{})
				return err
			},
			func() error {
				return tx.CreateNonce(ctx, store.Nonce{Hash: hashOf("n1"), DeviceID: deviceIDOf(1), TenantID: "tenant-a", ExpiresAt: at(1)})
			},
			func() error {
				return tx.CreateNonce(ctx, store.Nonce{Hash: hashOf("n2"), DeviceID: deviceIDOf(1), TenantID: "tenant-a", ExpiresAt: at(5)})
			},
			func() error { _, err := tx.DeleteExpiredNonces(ctx, at(2)); return err },
			func() error { return tx.CreateOSRelease(ctx, newRelease("tenant-a", "rel-1", "1.0")) },
			func() error { _, err := tx.GetOSRelease(ctx, "tenant-a", "rel-1"); return err },
			func() error { _, err := tx.ListOSReleases(ctx, "tenant-a", store.ListOptions{}); return err },
			func() error { return tx.CreateOSRelease(ctx, newRelease("tenant-a", "rel-2", "2.0")) },
			func() error { return tx.DeleteOSRelease(ctx, "tenant-a", "rel-2") },
			func() error { return tx.CreateCACertificate(ctx, store.CACertificate{ID: "ca-1", CreatedAt: at(0)}) },
			func() error {
				return tx.UpdateCACertificate(ctx, store.CACertificate{ID: "ca-1", RevokedAt: at(4)})
			},
			func() error { _, err := tx.ListCACertificates(ctx, ""); return err },
			func() error { return tx.CreateProduct(ctx, newProduct("tenant-a", "prod-2", "Doorbell")) },
			func() error { return tx.CreateDeviceGroup(ctx, newGroup("tenant-a", "prod-2", "group-2", "Field")) },
			func() error { return tx.CreateImage(ctx, newImage("tenant-a", 1, 1)) },
			func() error { _, err := tx.GetImage(ctx, "tenant-a", imageIDOf(1)); return err },
			func() error {
				_, err := tx.ListImages(ctx, "tenant-a", store.ImageFilter{}, store.ListOptions{})
				return err
			},
			func() error {
				return tx.CreateDeployment(ctx, newDeployment("tenant-a", "group-2", 1, imageIDOf(1)))
			},
			func() error { _, err := tx.GetDeployment(ctx, "tenant-a", uuid7(1)); return err },
			func() error {
				_, err := tx.ListDeployments(ctx, "tenant-a", store.DeploymentFilter{}, store.ListOptions{})
				return err
			},
			func() error { _, err := tx.CurrentDeployment(ctx, "tenant-a", "group-2"); return err },
			func() error {
				return tx.CreateRollout(ctx, newRollout("tenant-a", "group-2", 1), []store.RolloutDevice{{DeviceID: deviceIDOf(1)}})
			},
			func() error { _, err := tx.GetRollout(ctx, "tenant-a", uuid7(1)); return err },
			func() error { _, err := tx.ActiveRollout(ctx, "tenant-a", "group-2"); return err },
			func() error {
				r := newRollout("tenant-a", "group-2", 1)
				r.State, r.UpdatedAt = store.RolloutPaused, at(90)
				return tx.UpdateRollout(ctx, r)
			},
			func() error {
				return tx.ReleaseRolloutDevices(ctx, "tenant-a", uuid7(1), []string{deviceIDOf(1)}, at(91))
			},
			func() error { _, err := tx.ListRolloutDevices(ctx, "tenant-a", uuid7(1)); return err },
			func() error { _, err := tx.GetRolloutDevice(ctx, "tenant-a", uuid7(1), deviceIDOf(1)); return err },
			func() error { _, err := tx.ListActiveRollouts(ctx, 10); return err },
			func() error {
				return tx.CreateSigningKey(ctx, newSigningKey("tenant-a", store.KeyImageSigning, 1, 0))
			},
			func() error { _, err := tx.ListSigningKeys(ctx, "tenant-a", store.KeyImageSigning); return err },
			func() error {
				return tx.UpdateSigningKey(ctx, store.SigningKey{ID: hexOf("key 1"), TenantID: "tenant-a", RevokedAt: at(6)})
			},
			func() error {
				return tx.PutDeviceReport(ctx, store.DeviceReport{TenantID: "tenant-a", DeviceID: deviceIDOf(1), Report: []byte(`{}`), CheckedInAt: at(4)})
			},
			func() error { _, err := tx.GetDeviceReport(ctx, "tenant-a", deviceIDOf(1)); return err },
			func() error {
				return tx.PutTUFMetadata(ctx, newTUF("tenant-a", store.TUFImages, store.TUFTimestamp, 1, 5))
			},
			func() error {
				_, err := tx.GetTUFMetadata(ctx, "tenant-a", store.TUFImages, store.TUFTimestamp, 0)
				return err
			},
			func() error { _, err := tx.ListTUFExpiring(ctx, store.TUFTimestamp, at(100), 10); return err },
			func() error {
				r := newReport("tenant-a", 1, 1, 1, 11)
				r.DeviceGroupID, r.ProductID, r.DeploymentID = "", "", ""
				_, err := tx.AddErrorReports(ctx, []store.ErrorReport{r, newReport("tenant-a", 1, 2, 1, 11)})
				return err
			},
			func() error { return tx.PutErrorReportDrops(ctx, "tenant-a", deviceIDOf(1), 2, at(4)) },
			func() error {
				_, err := tx.ListErrorReports(ctx, "tenant-a", store.ErrorReportFilter{}, store.ListOptions{})
				return err
			},
			func() error {
				_, err := tx.ListErrorBuckets(ctx, "tenant-a", store.ErrorReportFilter{}, true, 10)
				return err
			},
			func() error {
				_, err := tx.CountDroppedErrorReports(ctx, "tenant-a", store.ErrorReportFilter{})
				return err
			},
			func() error { _, err := tx.DeleteErrorReportsBefore(ctx, at(1002), 10); return err },
			func() error { return tx.SetDeviceGroup(ctx, "tenant-a", deviceIDOf(1), "", at(3)) },
			func() error { return tx.DeleteDeviceGroup(ctx, "tenant-a", "group-1") },
			func() error { return tx.DeleteProduct(ctx, "tenant-a", "prod-1") },
			func() error { return tx.DeleteRole(ctx, "tenant-a", "user-alice") },
		}
		for i, step := range steps {
			if err := step(); err != nil {
				t.Errorf("step %d: %v", i, err)
			}
		}
		return nil
	}))
	tok, err := s.GetToken(ctx, "tok-1")
	must(t, err)
	eq(t, tok.RevokedAt, stored(at(1)))
	d, err := s.GetDevice(ctx, "tenant-a", deviceIDOf(1))
	must(t, err)
	if d.DeviceGroupID != "" || !d.UpdatedAt.Equal(stored(at(3))) || !d.Disabled || d.AKActivated.IsZero() ||
		d.LastResult != store.AttestationPass {
		t.Errorf("device after the transaction: %+v", d)
	}
	// n1 expired and was deleted in the transaction; n2 is kept.
	must(t, s.CreateNonce(ctx, store.Nonce{Hash: hashOf("n1"), DeviceID: deviceIDOf(1), TenantID: "tenant-a", ExpiresAt: at(1)}))
	isErr(t, s.CreateNonce(ctx, store.Nonce{Hash: hashOf("n2"), DeviceID: deviceIDOf(1), TenantID: "tenant-a", ExpiresAt: at(5)}), store.ErrConflict)
	rs, err := s.ListOSReleases(ctx, "tenant-a", store.ListOptions{})
	must(t, err)
	eq(t, keys(rs.Items, releaseID), []string{"rel-1"})
	cs, err := s.ListCACertificates(ctx, "")
	must(t, err)
	if len(cs) != 1 || !cs[0].RevokedAt.Equal(stored(at(4))) {
		t.Errorf("CA certificates after the transaction: %+v", cs)
	}
	p, err := s.ListAudit(ctx, store.AuditFilter{TenantID: "tenant-a"}, store.ListOptions{})
	must(t, err)
	if len(p.Items) != 1 || p.Items[0].Seq != seq {
		t.Errorf("audit log after the transaction: %+v", p.Items)
	}
	_, err = s.GetProduct(ctx, "tenant-a", "prod-1")
	isErr(t, err, store.ErrNotFound)
	img, err := s.GetImage(ctx, "tenant-a", imageIDOf(1))
	must(t, err)
	eq(t, img, norm(newImage("tenant-a", 1, 1)))
	cur, err := s.CurrentDeployment(ctx, "tenant-a", "group-2")
	must(t, err)
	eq(t, cur, norm(newDeployment("tenant-a", "group-2", 1, imageIDOf(1))))
	ro, err := s.GetRollout(ctx, "tenant-a", uuid7(1))
	must(t, err)
	eq(t, ro.State, store.RolloutPaused)
	rd, err := s.GetRolloutDevice(ctx, "tenant-a", uuid7(1), deviceIDOf(1))
	must(t, err)
	eq(t, rd.ReleasedAt, stored(at(91)))
	rp, err := s.ListErrorReports(ctx, "tenant-a", store.ErrorReportFilter{}, store.ListOptions{})
	must(t, err)
	if len(rp.Items) != 1 || rp.Items[0].ID != eventIDOf(2) {
		t.Errorf("error reports after the transaction: %+v", rp.Items)
	}
	ks, err := s.ListSigningKeys(ctx, "tenant-a", store.KeyImageSigning)
	must(t, err)
	if len(ks) != 1 || !ks[0].RevokedAt.Equal(stored(at(6))) || ks[0].KeyCiphertext != nil {
		t.Errorf("signing keys after the transaction: %+v", ks)
	}
}
