package storetest

import (
	"crypto/sha256"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/internal/store"
)

func testTenants(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := store.Tenant{ID: "tenant-a", Name: "Contoso", CreatedAt: at(0)}
	must(t, s.CreateTenant(ctx, a))

	got, err := s.GetTenant(ctx, a.ID)
	must(t, err)
	eq(t, got, norm(a))
	got, err = s.GetTenantByName(ctx, "cONTOSO")
	must(t, err)
	eq(t, got, norm(a))

	_, err = s.GetTenant(ctx, "tenant-x")
	isErr(t, err, store.ErrNotFound)
	_, err = s.GetTenantByName(ctx, "Contoso Ltd")
	isErr(t, err, store.ErrNotFound)

	isErr(t, s.CreateTenant(ctx, store.Tenant{ID: a.ID, Name: "Other"}), store.ErrConflict)
	isErr(t, s.CreateTenant(ctx, store.Tenant{ID: "tenant-b", Name: "CONTOSO"}), store.ErrConflict)
	_, err = s.GetTenant(ctx, "tenant-b")
	isErr(t, err, store.ErrNotFound)
	_, err = s.GetTenantByName(ctx, "Other")
	isErr(t, err, store.ErrNotFound)
}

func testUsers(t *testing.T, s store.Store) {
	ctx := t.Context()
	alice := store.User{ID: "user-alice", Name: "Alice", CreatedAt: at(0)}
	root := store.User{ID: "user-root", Name: "root", ServiceAdmin: true, CreatedAt: at(1)}
	must(t, s.CreateUser(ctx, alice))
	must(t, s.CreateUser(ctx, root))

	got, err := s.GetUser(ctx, alice.ID)
	must(t, err)
	eq(t, got, norm(alice))
	got, err = s.GetUser(ctx, root.ID)
	must(t, err)
	eq(t, got, norm(root))
	got, err = s.GetUserByName(ctx, "ALICE")
	must(t, err)
	eq(t, got, norm(alice))

	_, err = s.GetUser(ctx, "user-x")
	isErr(t, err, store.ErrNotFound)
	_, err = s.GetUserByName(ctx, "bob")
	isErr(t, err, store.ErrNotFound)

	isErr(t, s.CreateUser(ctx, store.User{ID: alice.ID, Name: "alice2"}), store.ErrConflict)
	isErr(t, s.CreateUser(ctx, store.User{ID: "user-2", Name: "aLiCe"}), store.ErrConflict)
	_, err = s.GetUser(ctx, "user-2")
	isErr(t, err, store.ErrNotFound)

	// A user name may equal a tenant name: the namespaces are separate.
	must(t, s.CreateTenant(ctx, store.Tenant{ID: "tenant-a", Name: "Alice"}))
}

func newToken(id, userID, tenantID string) store.Token {
	hash := sha256.Sum256([]byte("secret of " + id))
	return store.Token{ID: id, UserID: userID, TenantID: tenantID, Hash: hash[:],
		Description: "token " + id, CreatedBy: userID, CreatedAt: at(5), ExpiresAt: at(5).Add(90 * 24 * time.Hour)}
}

func testTokens(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	t1 := newToken("tok-1", w.alice.ID, "")
	t2 := newToken("tok-2", w.alice.ID, w.a.ID)
	t3 := newToken("tok-3", w.bob.ID, w.a.ID)
	t4 := newToken("tok-4", w.bob.ID, w.b.ID)
	t4.ExpiresAt = time.Time{}
	t4.CreatedBy = w.alice.ID
	for _, tok := range []store.Token{t3, t1, t4, t2} {
		must(t, s.CreateToken(ctx, tok))
	}
	for _, tok := range []store.Token{t1, t2, t3, t4} {
		got, err := s.GetToken(ctx, tok.ID)
		must(t, err)
		eq(t, got, norm(tok))
		got, err = s.GetTokenByHash(ctx, tok.Hash)
		must(t, err)
		eq(t, got, norm(tok))
	}

	_, err := s.GetToken(ctx, "tok-x")
	isErr(t, err, store.ErrNotFound)
	unknown := sha256.Sum256([]byte("no such secret"))
	_, err = s.GetTokenByHash(ctx, unknown[:])
	isErr(t, err, store.ErrNotFound)

	dupID := newToken("tok-1", w.bob.ID, "")
	isErr(t, s.CreateToken(ctx, dupID), store.ErrConflict)
	dupHash := newToken("tok-5", w.bob.ID, "")
	dupHash.Hash = t2.Hash
	isErr(t, s.CreateToken(ctx, dupHash), store.ErrConflict)
	isErr(t, s.CreateToken(ctx, newToken("tok-6", "user-x", "")), store.ErrNotFound)
	isErr(t, s.CreateToken(ctx, newToken("tok-7", w.bob.ID, "tenant-x")), store.ErrNotFound)
	for _, id := range []string{"tok-5", "tok-6", "tok-7"} {
		_, err := s.GetToken(ctx, id)
		isErr(t, err, store.ErrNotFound)
	}

	for _, tc := range []struct {
		filter store.TokenFilter
		want   []string
	}{
		{store.TokenFilter{}, []string{"tok-1", "tok-2", "tok-3", "tok-4"}},
		{store.TokenFilter{UserID: w.alice.ID}, []string{"tok-1", "tok-2"}},
		{store.TokenFilter{TenantID: w.a.ID}, []string{"tok-2", "tok-3"}},
		{store.TokenFilter{UserID: w.bob.ID, TenantID: w.b.ID}, []string{"tok-4"}},
		{store.TokenFilter{UserID: w.alice.ID, TenantID: w.b.ID}, []string{}},
		{store.TokenFilter{UserID: "user-x"}, []string{}},
	} {
		p, err := s.ListTokens(ctx, tc.filter, store.ListOptions{})
		must(t, err)
		eq(t, keys(p.Items, tokenID), tc.want)
		if p.Next != "" {
			t.Errorf("ListTokens(%+v): Next = %q on the only page", tc.filter, p.Next)
		}
		for _, limit := range []int{1, 2, 3} {
			eq(t, pageAll(t, limit, func(opt store.ListOptions) (store.Page[store.Token], error) {
				return s.ListTokens(ctx, tc.filter, opt)
			}, tokenID), tc.want)
		}
	}
	p, err := s.ListTokens(ctx, store.TokenFilter{}, store.ListOptions{Limit: 2})
	must(t, err)
	eq(t, p.Items, norm([]store.Token{t1, t2}))

	must(t, s.RevokeToken(ctx, t2.ID, at(60)))
	t2.RevokedAt = at(60)
	got, err := s.GetToken(ctx, t2.ID)
	must(t, err)
	eq(t, got, norm(t2))
	must(t, s.RevokeToken(ctx, t2.ID, at(70))) // not an error, and keeps the first time
	got, err = s.GetToken(ctx, t2.ID)
	must(t, err)
	eq(t, got, norm(t2))
	isErr(t, s.RevokeToken(ctx, "tok-x", at(60)), store.ErrNotFound)
	got, err = s.GetToken(ctx, t1.ID)
	must(t, err)
	if !got.RevokedAt.IsZero() {
		t.Errorf("revoking %s revoked %s", t2.ID, t1.ID)
	}
}

func testRoles(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	bobReader := store.RoleAssignment{TenantID: w.a.ID, UserID: w.bob.ID, Role: store.RoleReader,
		CreatedAt: at(10), UpdatedAt: at(10)}
	must(t, s.PutRole(ctx, bobReader))
	got, err := s.GetRole(ctx, w.a.ID, w.bob.ID)
	must(t, err)
	want := bobReader
	want.UserName = w.bob.Name
	eq(t, got, norm(want))

	// Replacing the role keeps when it was first given.
	must(t, s.PutRole(ctx, store.RoleAssignment{TenantID: w.a.ID, UserID: w.bob.ID,
		Role: store.RoleAdministrator, CreatedAt: at(20), UpdatedAt: at(20)}))
	got, err = s.GetRole(ctx, w.a.ID, w.bob.ID)
	must(t, err)
	want.Role, want.UpdatedAt = store.RoleAdministrator, at(20)
	eq(t, got, norm(want))

	must(t, s.PutRole(ctx, store.RoleAssignment{TenantID: w.a.ID, UserID: w.alice.ID,
		Role: store.RoleAdministrator, CreatedAt: at(30), UpdatedAt: at(30)}))
	must(t, s.PutRole(ctx, store.RoleAssignment{TenantID: w.b.ID, UserID: w.alice.ID,
		Role: store.RoleContributor, CreatedAt: at(30), UpdatedAt: at(30)}))

	_, err = s.GetRole(ctx, w.b.ID, w.bob.ID)
	isErr(t, err, store.ErrNotFound)
	_, err = s.GetRole(ctx, "tenant-x", w.bob.ID)
	isErr(t, err, store.ErrNotFound)
	isErr(t, s.PutRole(ctx, store.RoleAssignment{TenantID: "tenant-x", UserID: w.bob.ID, Role: store.RoleReader}), store.ErrNotFound)
	isErr(t, s.PutRole(ctx, store.RoleAssignment{TenantID: w.b.ID, UserID: "user-x", Role: store.RoleReader}), store.ErrNotFound)

	for _, tc := range []struct {
		tenant string
		role   store.Role
		want   int
	}{
		{w.a.ID, store.RoleAdministrator, 2},
		{w.a.ID, store.RoleReader, 0},
		{w.b.ID, store.RoleContributor, 1},
		{w.b.ID, store.RoleAdministrator, 0},
		{"tenant-x", store.RoleAdministrator, 0},
	} {
		n, err := s.CountRoles(ctx, tc.tenant, tc.role)
		must(t, err)
		if n != tc.want {
			t.Errorf("CountRoles(%s, %s) = %d, want %d", tc.tenant, tc.role, n, tc.want)
		}
	}

	p, err := s.ListRoles(ctx, w.a.ID, store.ListOptions{})
	must(t, err)
	eq(t, keys(p.Items, roleUserID), []string{w.alice.ID, w.bob.ID})
	eq(t, p.Items[1], norm(want))
	eq(t, p.Items[0].UserName, w.alice.Name)
	list := func(tenant string) func(store.ListOptions) (store.Page[store.RoleAssignment], error) {
		return func(opt store.ListOptions) (store.Page[store.RoleAssignment], error) {
			return s.ListRoles(ctx, tenant, opt)
		}
	}
	eq(t, pageAll(t, 1, list(w.a.ID), roleUserID), []string{w.alice.ID, w.bob.ID})
	eq(t, pageAll(t, 1, list(w.b.ID), roleUserID), []string{w.alice.ID})
	eq(t, pageAll(t, 1, list("tenant-x"), roleUserID), []string{})

	must(t, s.DeleteRole(ctx, w.a.ID, w.bob.ID))
	_, err = s.GetRole(ctx, w.a.ID, w.bob.ID)
	isErr(t, err, store.ErrNotFound)
	isErr(t, s.DeleteRole(ctx, w.a.ID, w.bob.ID), store.ErrNotFound)
	isErr(t, s.DeleteRole(ctx, w.b.ID, w.bob.ID), store.ErrNotFound)
	eq(t, pageAll(t, 1, list(w.a.ID), roleUserID), []string{w.alice.ID})
	n, err := s.CountRoles(ctx, w.a.ID, store.RoleAdministrator)
	must(t, err)
	if n != 1 {
		t.Errorf("CountRoles after DeleteRole = %d, want 1", n)
	}
}

func testListTenantsForUser(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	c := store.Tenant{ID: "tenant-0", Name: "Northwind", CreatedAt: at(5)}
	must(t, s.CreateTenant(ctx, c))
	for _, tenant := range []string{w.b.ID, c.ID, w.a.ID} {
		must(t, s.PutRole(ctx, store.RoleAssignment{TenantID: tenant, UserID: w.alice.ID, Role: store.RoleReader}))
	}
	must(t, s.PutRole(ctx, store.RoleAssignment{TenantID: w.b.ID, UserID: w.bob.ID, Role: store.RoleReader}))

	p, err := s.ListTenantsForUser(ctx, w.alice.ID, store.ListOptions{})
	must(t, err)
	eq(t, p.Items, norm([]store.Tenant{c, w.a, w.b}))
	if p.Next != "" {
		t.Errorf("Next = %q on the only page", p.Next)
	}
	list := func(user string) func(store.ListOptions) (store.Page[store.Tenant], error) {
		return func(opt store.ListOptions) (store.Page[store.Tenant], error) {
			return s.ListTenantsForUser(ctx, user, opt)
		}
	}
	for _, limit := range []int{1, 2, 3} {
		eq(t, pageAll(t, limit, list(w.alice.ID), tenantID), []string{c.ID, w.a.ID, w.b.ID})
	}
	eq(t, pageAll(t, 1, list(w.bob.ID), tenantID), []string{w.b.ID})
	eq(t, pageAll(t, 1, list("user-x"), tenantID), []string{})
}
