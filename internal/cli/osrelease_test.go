package cli

import (
	"strings"
	"testing"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/imagepkg/imagepkgtest"
)

// TestE2EOSReleaseWithdraw publishes an OS release made from an image, withdraws it, and
// checks what the list and the audit log say.
func TestE2EOSReleaseWithdraw(t *testing.T) {
	e := startE2E(t)
	r := e.admin
	sum := strings.Repeat("ab", 32)
	pkg := imagepkgtest.OSMeasured(t, "", "7.1.0", map[string]string{"VERSION": "7.1"}, map[string]string{"agent": sum, "policy": sum}, nil)
	r.ok(t, "image", "add", "--image-path", pkg.File(t, t.TempDir()))
	r.fails(t, "not published to a feed", "os-release", "withdraw", "7.1.0")
	r.ok(t, "os-release", "publish", "7.1.0", "--feed", "Retail")
	out := r.ok(t, "os-release", "withdraw", "7.1.0")
	if !strings.Contains(out, "7.1.0 is withdrawn") {
		t.Fatalf("withdraw printed %q", out)
	}
	var rels []v1.OSRelease
	r.json(t, &rels, "os-release", "list")
	if len(rels) != 1 || rels[0].Feed != "Withdrawn" {
		t.Fatalf("releases %+v", rels)
	}
	r.fails(t, "not published to a feed", "os-release", "withdraw", "7.1.0")
	r.fails(t, "not found", "os-release", "withdraw", "9.9.9")
	var audit []v1.AuditEntry
	r.json(t, &audit, "audit", "list", "--resource-type", "os-release")
	found := false
	for _, a := range audit {
		found = found || (a.Result == "success" && strings.Contains(a.Message, "withdrew OS release 7.1.0 from Retail"))
	}
	if !found {
		t.Fatalf("no audit entry for the withdrawal: %+v", audit)
	}
}
