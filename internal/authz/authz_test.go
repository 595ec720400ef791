package authz

import (
	"testing"

	"github.com/rampart-iot/rampart/internal/store"
)

func TestRoleMatrix(t *testing.T) {
	for _, a := range TenantActions() {
		admin := Allowed(store.RoleAdministrator, a)
		contrib := Allowed(store.RoleContributor, a)
		reader := Allowed(store.RoleReader, a)
		if !admin {
			t.Errorf("Administrator cannot %s", a)
		}
		if IsWrite(a) && reader {
			t.Errorf("Reader can write: %s", a)
		}
		if !IsWrite(a) && (!reader || !contrib) {
			t.Errorf("read %s not allowed to every role", a)
		}
		isDelete := a == ProductDelete || a == DeviceGroupDelete || a == RoleDelete || a == OSReleaseDelete
		if isDelete && contrib {
			t.Errorf("Contributor can delete: %s", a)
		}
	}
	for _, a := range []Action{TenantCreate, ServiceAuditRead, SelfTokenCreate, SelfTokenRevoke, "nonsense"} {
		for _, r := range []store.Role{store.RoleAdministrator, store.RoleContributor, store.RoleReader, ""} {
			if Allowed(r, a) {
				t.Errorf("role %q grants service action %s", r, a)
			}
		}
	}
	if Allowed("Owner", ProductRead) {
		t.Error("unknown role grants a read")
	}
}

func TestParseRole(t *testing.T) {
	for _, s := range []string{"Administrator", "Contributor", "Reader"} {
		if _, ok := ParseRole(s); !ok {
			t.Errorf("ParseRole(%q) failed", s)
		}
	}
	for _, s := range []string{"administrator", "Admin", "", "Owner"} {
		if _, ok := ParseRole(s); ok {
			t.Errorf("ParseRole(%q) accepted", s)
		}
	}
}

func TestInScope(t *testing.T) {
	p := Principal{TokenTenantID: "a"}
	if !p.InScope("a") || p.InScope("b") {
		t.Fatal("scoped token scope wrong")
	}
	u := Principal{}
	if !u.InScope("anything") {
		t.Fatal("unscoped token should be in every scope")
	}
}
