package cli

// End-to-end tests: the real CLI, in-process, against a real dev-mode server on SQLite.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/enrollment/enrollmenttest"
	"github.com/rampart-iot/rampart/internal/server/servertest"
)

// e2e is a running server and a CLI runner logged in as its service administrator.
type e2e struct {
	srv   *servertest.Server
	admin *runner
}

func startE2E(t *testing.T) *e2e {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test; skipped with -short")
	}
	srv := servertest.Start(t)
	return &e2e{srv: srv, admin: newRunner(t, map[string]string{
		envAddr: srv.URL, envToken: srv.AdminToken, envCACert: srv.CACertFile,
	})}
}

// as returns a runner that uses token instead of the administrator's.
func (e *e2e) as(t *testing.T, token string) *runner {
	r := newRunner(t, maps.Clone(e.admin.env))
	r.env[envToken] = token
	return r
}

// ok runs a command that must succeed and returns its stdout.
func (r *runner) ok(t *testing.T, args ...string) string {
	t.Helper()
	res := r.run(t, args...)
	if res.code != 0 {
		t.Fatalf("rampart %s: exit %d, stderr %q", strings.Join(args, " "), res.code, res.err)
	}
	return res.out
}

// json runs a command with -o json that must succeed and decodes its output into v.
func (r *runner) json(t *testing.T, v any, args ...string) {
	t.Helper()
	out := r.ok(t, append(args, "-o", "json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("rampart %s -o json: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// fails runs a command that must fail with exit code 1 and one error line containing want.
func (r *runner) fails(t *testing.T, want string, args ...string) string {
	t.Helper()
	res := r.run(t, args...)
	if res.code != 1 {
		t.Errorf("rampart %s: exit %d, want 1 (stdout %q, stderr %q)", strings.Join(args, " "), res.code, res.out, res.err)
		return ""
	}
	line := res.oneErrorLine(t)
	if !strings.Contains(line, want) {
		t.Errorf("rampart %s: error %q, want it to contain %q", strings.Join(args, " "), line, want)
	}
	return line
}

// writeRecords writes n fresh enrollment records to a file, as a JSON array or as JSONL.
func writeRecords(t *testing.T, n int, array bool) (path string, recs [][]byte) {
	t.Helper()
	var b strings.Builder
	if array {
		b.WriteString("[\n")
	}
	for i := range n {
		rec := enrollmenttest.Record(t)
		recs = append(recs, rec)
		if array && i > 0 {
			b.WriteString(",\n")
		}
		if array {
			b.Write(rec)
		} else {
			var line bytes.Buffer
			if err := json.Compact(&line, rec); err != nil {
				t.Fatal(err)
			}
			b.Write(line.Bytes())
			b.WriteString("\n")
		}
	}
	if array {
		b.WriteString("\n]\n")
	}
	path = filepath.Join(t.TempDir(), fmt.Sprintf("records-%d.json", n))
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, recs
}

func deviceIDOf(t *testing.T, rec []byte) string {
	t.Helper()
	var r struct {
		DeviceID string `json:"device_id"`
	}
	if err := json.Unmarshal(rec, &r); err != nil || r.DeviceID == "" {
		t.Fatalf("record without device_id: %v", err)
	}
	return r.DeviceID
}

var defaultGroups = []string{"Development", "Field Test", "Production", "Field Test OS Evaluation", "Production OS Evaluation"}

// TestE2EWalkthrough is the "done when": create a product and see its five groups,
// claim a device and then a bulk of five, move a device between groups, and see it all in the
// audit log.
func TestE2EWalkthrough(t *testing.T) {
	e := startE2E(t)
	a := e.admin

	var p v1.Product
	a.json(t, &p, "product", "create", "--name", "Coffee Maker", "--description", "Espresso machines")
	if p.ID == "" || p.Name != "Coffee Maker" || p.TenantID != e.srv.TenantID {
		t.Fatalf("product = %+v", p)
	}

	// The five default groups, in the table and as JSON, by product name in any case.
	out := a.ok(t, "device-group", "list", "--product", "Coffee Maker")
	for _, g := range defaultGroups {
		if !strings.Contains(out, g) {
			t.Errorf("device-group list lacks %q:\n%s", g, out)
		}
	}
	if !strings.HasPrefix(out, "ID ") || !strings.Contains(out, "Retail") {
		t.Errorf("device-group list table:\n%s", out)
	}
	var groups []v1.DeviceGroup
	a.json(t, &groups, "device-group", "list", "--product", "coffee maker")
	byName := map[string]v1.DeviceGroup{}
	for _, g := range groups {
		byName[g.Name] = g
	}
	if len(groups) != 5 || len(byName) != 5 {
		t.Fatalf("product has %d groups, want the 5 defaults: %v", len(groups), slices.Collect(maps.Keys(byName)))
	}

	// Claim one device straight into Development.
	one, recs := writeRecords(t, 1, false)
	id1 := deviceIDOf(t, recs[0])
	var d v1.Device
	a.json(t, &d, "device", "claim", "--enrollment", one, "--product", "Coffee Maker", "--device-group", "Development")
	if d.ID != id1 || d.DeviceGroupID != byName["Development"].ID || d.ProductID != p.ID {
		t.Fatalf("claimed device = %+v", d)
	}
	// Claiming it again is no error.
	a.ok(t, "device", "claim", "--enrollment", one)

	// A bulk of five into Field Test, from a JSONL file, and again from a JSON array.
	bulk, bulkRecs := writeRecords(t, 5, false)
	out = a.ok(t, "device", "claim", "--bulk", bulk, "--product", p.ID, "--device-group", "field test")
	if strings.Count(out, "  claimed  ") != 5 || !strings.Contains(out, "\n5     ") || !strings.Contains(out, "Claimed 5, already claimed 0, failed 0.") {
		t.Errorf("bulk claim output:\n%s", out)
	}
	var res v1.DeviceBulkClaimResult
	a.json(t, &res, "device", "claim", "--bulk", bulk)
	if res.Already != 5 || len(res.Results) != 5 {
		t.Errorf("second bulk claim = %+v, want 5 already claimed", res)
	}
	arr, arrRecs := writeRecords(t, 3, true)
	a.json(t, &res, "device", "claim", "--bulk", arr)
	if res.Claimed != 3 || res.Results[2].Index != 2 || res.Results[2].DeviceID != deviceIDOf(t, arrRecs[2]) {
		t.Errorf("array bulk claim = %+v", res)
	}

	// A bulk with one bad record reports it and fails.
	mixed := filepath.Join(t.TempDir(), "mixed.jsonl")
	var good bytes.Buffer
	json.Compact(&good, enrollmenttest.Record(t))
	os.WriteFile(mixed, []byte(good.String()+"\n{\"version\":1}\n"), 0o600)
	r := a.run(t, "device", "claim", "--bulk", mixed)
	if r.code != 1 || !strings.Contains(r.out, "failed") || !strings.Contains(r.out, "Claimed 1, already claimed 0, failed 1.") {
		t.Errorf("mixed bulk: exit %d, out:\n%s", r.code, r.out)
	}
	if line := r.oneErrorLine(t); !strings.Contains(line, "1 of 2 enrollment records failed") {
		t.Errorf("mixed bulk error = %q", line)
	}

	var devs []v1.Device
	a.json(t, &devs, "device", "list", "--device-group", "Field Test", "--product", "Coffee Maker")
	if len(devs) != 5 {
		t.Errorf("Field Test holds %d devices, want 5", len(devs))
	}
	var n v1.DeviceCount
	a.json(t, &n, "device", "show-count", "--product", "Coffee Maker")
	if n.Count != 6 {
		t.Errorf("product count = %d, want 6", n.Count)
	}
	a.json(t, &n, "device", "show-count", "--unassigned")
	if n.Count != 4 {
		t.Errorf("unassigned count = %d, want 4", n.Count)
	}
	if out := a.ok(t, "device", "show-count"); !strings.Contains(out, "Count") || !strings.Contains(out, "10") {
		t.Errorf("show-count table:\n%s", out)
	}

	// Move a bulk-claimed device from Field Test to Production: the group name is found in the
	// device's product although every product has a Production group.
	a.ok(t, "product", "create", "--name", "Kettle")
	id2 := deviceIDOf(t, bulkRecs[0])
	a.json(t, &d, "device", "assign", strings.ToUpper(id2), "--device-group", "Production")
	if d.DeviceGroupID != byName["Production"].ID {
		t.Errorf("moved device in group %s, want Production %s", d.DeviceGroupID, byName["Production"].ID)
	}
	out = a.ok(t, "device", "show", id2)
	if !strings.Contains(out, "Production ("+byName["Production"].ID+")") || !strings.Contains(out, "Coffee Maker") {
		t.Errorf("device show:\n%s", out)
	}
	a.json(t, &n, "device", "show-count", "--device-group", "Field Test", "--product", "Coffee Maker")
	if n.Count != 4 {
		t.Errorf("Field Test count after the move = %d, want 4", n.Count)
	}
	// Across products, the same name is ambiguous without --product.
	a.fails(t, `device group "Production" exists in several products; pass --product`, "device-group", "show", "Production")
	a.ok(t, "device-group", "show", "Production", "--product", "Kettle")

	// All of it is in the audit log.
	var entries []v1.AuditEntry
	a.json(t, &entries, "audit", "list", "--max", "0")
	seen := map[string]bool{}
	for _, en := range entries {
		seen[en.Action+" "+en.Result] = true
		if en.ResourceID == id2 && en.Action == "device.move" {
			seen["moved "+id2] = true
		}
	}
	for _, want := range []string{"product.create success", "device.claim success", "device.claim failure", "device.move success", "moved " + id2} {
		if !seen[want] {
			t.Errorf("audit log lacks %q; has %v", want, slices.Sorted(maps.Keys(seen)))
		}
	}
	a.json(t, &entries, "audit", "list", "--action", "device.move")
	if len(entries) != 1 {
		t.Errorf("audit list --action device.move: %d entries", len(entries))
	}
	a.json(t, &entries, "audit", "list", "--max", "2")
	if len(entries) != 2 {
		t.Errorf("audit list --max 2: %d entries", len(entries))
	}
	a.json(t, &entries, "audit", "list", "--actor", "dev-admin", "--resource-type", "product", "--max", "0")
	if len(entries) != 2 {
		t.Errorf("audit list --actor dev-admin --resource-type product: %d entries, want 2", len(entries))
	}
	a.json(t, &entries, "audit", "list", "--until", "2000-01-01")
	if len(entries) != 0 {
		t.Errorf("audit list --until 2000-01-01: %d entries", len(entries))
	}
	var svc []v1.AuditEntry
	a.json(t, &svc, "audit", "list", "--service")
	if len(svc) == 0 {
		t.Error("service audit log is empty")
	}
	out = a.ok(t, "audit", "list", "--result", "failure", "--since", "1h")
	if !strings.Contains(out, "device.claim") || strings.Contains(out, "product.create") {
		t.Errorf("audit list --result failure:\n%s", out)
	}

	// Update and delete, by name and ID.
	a.json(t, &p, "product", "update", "coffee maker", "--description", "")
	if p.Description != "" {
		t.Errorf("description = %q after update", p.Description)
	}
	var g v1.DeviceGroup
	a.json(t, &g, "device-group", "create", "--product", "Kettle", "--name", "Lab", "--os-feed", "retaileval",
		"--application-update", "No3rdPartyAppUpdates", "--check-in-interval", "15m")
	if g.OSFeed != "RetailEval" || g.UpdatePolicy != "No3rdPartyAppUpdates" || g.CheckInIntervalSeconds != 900 {
		t.Errorf("group = %+v", g)
	}
	a.json(t, &g, "device-group", "update", g.ID, "--check-in-interval", "2h", "--name", "Kettle Lab")
	if g.Name != "Kettle Lab" || g.CheckInIntervalSeconds != 7200 {
		t.Errorf("updated group = %+v", g)
	}
	a.ok(t, "device-group", "delete", "Kettle Lab")
	a.fails(t, `device group "Kettle Lab" not found`, "device-group", "show", "Kettle Lab")
	a.ok(t, "device-group", "delete", "Development", "--product", "Kettle")
	var dd v1.DefaultDeviceGroups
	a.json(t, &dd, "device-group", "create-defaults", "--product", "Kettle")
	if len(dd.Created) != 1 || dd.Created[0].Name != "Development" || len(dd.Existing) != 4 {
		t.Errorf("create-defaults = %+v", dd)
	}
	a.ok(t, "product", "delete", "Kettle")
	a.fails(t, `product "Kettle" not found`, "product", "show", "Kettle")
	a.fails(t, "", "product", "delete", "Coffee Maker") // it still holds devices
}

// TestE2EReaderForbidden checks that a Reader gets a clear "forbidden" error, exit 1, for every
// write, and that none of them changes anything.
func TestE2EReaderForbidden(t *testing.T) {
	e := startE2E(t)
	a := e.admin
	a.ok(t, "product", "create", "--name", "Toaster")
	one, recs := writeRecords(t, 1, false)
	a.ok(t, "device", "claim", "--enrollment", one, "--product", "Toaster", "--device-group", "Development")
	id := deviceIDOf(t, recs[0])

	var ra v1.RoleAssignment
	a.json(t, &ra, "role", "add", "--user", "rita", "--role", "reader")
	if ra.Role != "Reader" || ra.User != "rita" {
		t.Fatalf("role add = %+v", ra)
	}
	var tok v1.Token
	a.json(t, &tok, "token", "create", "--user", "rita", "--description", "read only")
	if tok.Secret == "" || tok.TenantID != e.srv.TenantID {
		t.Fatalf("token = %+v", tok)
	}
	reader := e.as(t, tok.Secret)

	var before []v1.AuditEntry
	a.json(t, &before, "audit", "list", "--max", "0", "--result", "success")

	newRec, _ := writeRecords(t, 1, false)
	writes := [][]string{
		{"product", "create", "--name", "Grill"},
		{"product", "update", "Toaster", "--description", "x"},
		{"product", "delete", "Toaster"},
		{"device-group", "create", "--product", "Toaster", "--name", "Lab"},
		{"device-group", "create-defaults", "--product", "Toaster"},
		{"device-group", "update", "Development", "--product", "Toaster", "--os-feed", "RetailEval"},
		{"device-group", "delete", "Production", "--product", "Toaster"},
		{"device", "claim", "--enrollment", newRec},
		{"device", "claim", "--bulk", newRec},
		{"device", "assign", id, "--device-group", "Production"},
		{"role", "add", "--user", "mallory", "--role", "Administrator"},
		{"role", "delete", "--user", "rita"},
		{"token", "create", "--user", "rita"},
		{"tenant", "create", "--name", "Mine"},
		{"audit", "list", "--service"},
	}
	for _, w := range writes {
		reader.fails(t, "forbidden", w...)
	}
	if line := reader.fails(t, "forbidden", "product", "create", "--name", "Grill"); !strings.Contains(line, "Reader") {
		t.Errorf("forbidden error does not name the role: %q", line)
	}

	// Reads work, and nothing changed.
	var ps []v1.Product
	reader.json(t, &ps, "product", "list")
	if len(ps) != 1 || ps[0].Name != "Toaster" {
		t.Errorf("products = %+v", ps)
	}
	var n v1.DeviceCount
	reader.json(t, &n, "device", "show-count", "--device-group", "Development")
	if n.Count != 1 {
		t.Errorf("Development holds %d devices, want 1", n.Count)
	}
	var gs []v1.DeviceGroup
	reader.json(t, &gs, "device-group", "list")
	if len(gs) != 5 {
		t.Errorf("%d groups, want 5", len(gs))
	}
	var after []v1.AuditEntry
	a.json(t, &after, "audit", "list", "--max", "0", "--result", "success")
	if len(after) != len(before) {
		t.Errorf("successful writes went from %d to %d", len(before), len(after))
	}
	// A Reader may still make a token for itself.
	reader.ok(t, "token", "create", "--description", "mine")
}

// TestE2EOtherTenant checks that another tenant's token sees nothing of the dev tenant.
func TestE2EOtherTenant(t *testing.T) {
	e := startE2E(t)
	a := e.admin
	var p v1.Product
	a.json(t, &p, "product", "create", "--name", "Secret Product")
	one, recs := writeRecords(t, 1, false)
	a.ok(t, "device", "claim", "--enrollment", one)
	id := deviceIDOf(t, recs[0])

	var other v1.Tenant
	a.json(t, &other, "tenant", "create", "--name", "Other")
	a.ok(t, "--tenant", "Other", "role", "add", "--user", "oscar", "--role", "Administrator")
	var tok v1.Token
	a.json(t, &tok, "--tenant", "other", "token", "create", "--user", "oscar")
	if tok.TenantID != other.ID {
		t.Fatalf("oscar's token is for tenant %q, want %q", tok.TenantID, other.ID)
	}
	oscar := e.as(t, tok.Secret)

	var ts []v1.Tenant
	oscar.json(t, &ts, "tenant", "list")
	if len(ts) != 1 || ts[0].ID != other.ID {
		t.Errorf("oscar's tenants = %+v", ts)
	}
	for _, list := range [][]string{{"product", "list"}, {"device-group", "list"}, {"device", "list"}} {
		var items []map[string]any
		oscar.json(t, &items, list...)
		if len(items) != 0 {
			t.Errorf("%v: oscar sees %v", list, items)
		}
	}
	oscar.fails(t, `product "Secret Product" not found`, "product", "show", "Secret Product")
	oscar.fails(t, "not found", "product", "show", p.ID)
	oscar.fails(t, "not found", "device", "show", id)
	oscar.fails(t, "not found", "device-group", "show", "Development")
	oscar.fails(t, "", "--tenant", e.srv.TenantID, "product", "list")
	oscar.fails(t, "", "--tenant", "dev", "product", "list")
	var entries []v1.AuditEntry
	oscar.json(t, &entries, "audit", "list", "--max", "0")
	for _, en := range entries {
		if en.TenantID != other.ID || en.ResourceID == p.ID || en.ResourceID == id {
			t.Errorf("oscar sees audit entry %+v", en)
		}
	}

	// A device claimed by dev cannot be claimed by Other, and the attempt is audited.
	line := oscar.fails(t, "", "device", "claim", "--enrollment", one)
	if !strings.Contains(line, "another tenant") && !strings.Contains(line, "claimed") {
		t.Errorf("cross-tenant claim error = %q", line)
	}
	oscar.json(t, &entries, "audit", "list", "--action", "device.claim", "--result", "failure")
	if len(entries) != 1 {
		t.Errorf("%d failed claims in Other's audit log, want 1", len(entries))
	}
}

// TestE2EJSON checks that -o json prints the API's objects, with their id fields.
func TestE2EJSON(t *testing.T) {
	e := startE2E(t)
	a := e.admin
	a.ok(t, "product", "create", "--name", "Lamp")
	one, _ := writeRecords(t, 1, false)
	a.ok(t, "device", "claim", "--enrollment", one, "--device-group", "Production", "--product", "Lamp")
	a.ok(t, "token", "create", "--description", "json test")

	for _, args := range [][]string{
		{"tenant", "list"}, {"product", "list"}, {"device-group", "list"}, {"device-group", "list", "--product", "Lamp"},
		{"device", "list"}, {"token", "list"},
	} {
		var items []map[string]any
		a.json(t, &items, args...)
		if len(items) == 0 {
			t.Errorf("%v: empty list", args)
		}
		for _, it := range items {
			if id, _ := it["id"].(string); id == "" {
				t.Errorf("%v: item without id: %v", args, it)
			}
		}
	}
	for _, args := range [][]string{
		{"tenant", "show"}, {"tenant", "show", "dev"}, {"product", "show", "lamp"},
		{"device-group", "show", "Production"}, {"tenant", "select", "dev"},
	} {
		var obj map[string]any
		a.json(t, &obj, args...)
		if id, _ := obj["id"].(string); id == "" {
			t.Errorf("%v: object without id: %v", args, obj)
		}
	}
	var roles []v1.RoleAssignment
	a.json(t, &roles, "role", "list")
	if len(roles) != 1 || roles[0].User != "dev-admin" || roles[0].Role != "Administrator" {
		t.Errorf("roles = %+v", roles)
	}
	// An empty list is an empty array, not null.
	if out := a.ok(t, "device", "list", "--unassigned", "-o", "json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("empty list printed %q", out)
	}
}

// TestE2ELogin logs in with a config directory of its own, uses the saved login, selects a
// tenant, and logs out, revoking the token.
func TestE2ELogin(t *testing.T) {
	e := startE2E(t)
	// A token of its own, so that revoking it leaves the admin token alone.
	var tok v1.Token
	e.admin.json(t, &tok, "token", "create", "--description", "login test")

	cfgDir := t.TempDir()
	r := newRunner(t, map[string]string{"XDG_CONFIG_HOME": cfgDir})
	cfgFile := filepath.Join(cfgDir, "rampart", "config.json")

	// Without the CA the server is not trusted; with a bad token login fails. Neither saves.
	r.fails(t, "pass --cacert or set RAMPART_CACERT", "login", "--addr", e.srv.URL, "--token", tok.Secret)
	r.fails(t, "login failed: unauthenticated", "login", "--addr", e.srv.URL, "--cacert", e.srv.CACertFile, "--token", "rampart_nope")
	if _, err := os.Stat(cfgFile); err == nil {
		t.Fatal("failed login wrote the config file")
	}

	r.stdin = tok.Secret + "\n"
	out := r.ok(t, "login", "--addr", e.srv.URL, "--cacert", e.srv.CACertFile, "--token", "-")
	r.stdin = ""
	if !strings.Contains(out, "Logged in to "+e.srv.URL+" as dev-admin") {
		t.Errorf("login said %q", out)
	}
	fi, err := os.Stat(cfgFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("config file: %v, %v", fi, err)
	}
	cfg, err := loadConfig(cfgFile)
	if err != nil || cfg.Token != tok.Secret || cfg.Addr != e.srv.URL || !filepath.IsAbs(cfg.CACert) {
		t.Fatalf("saved config = %+v, %v", cfg, err)
	}

	// The saved login works without any environment.
	r.ok(t, "product", "create", "--name", "Saved Login")
	r.ok(t, "tenant", "create", "--name", "Second")
	// With two tenants, the tenant must be chosen.
	r.fails(t, "rampart tenant select", "product", "list")
	var sel v1.Tenant
	r.json(t, &sel, "tenant", "select", "dev")
	if sel.ID != e.srv.TenantID {
		t.Errorf("selected %+v", sel)
	}
	if out := r.ok(t, "product", "list"); !strings.Contains(out, "Saved Login") {
		t.Errorf("product list after select:\n%s", out)
	}
	r.fails(t, `tenant "nowhere" not found`, "tenant", "select", "nowhere")
	if out := r.ok(t, "--tenant", "Second", "product", "list"); strings.Contains(out, "Saved Login") {
		t.Errorf("--tenant Second lists dev's products:\n%s", out)
	}

	// The saved token is not sent to another server.
	other := newRunner(t, map[string]string{"XDG_CONFIG_HOME": cfgDir, envAddr: "https://127.0.0.1:1"})
	other.fails(t, "the saved login is for "+e.srv.URL, "product", "list")

	out = r.ok(t, "logout", "--revoke")
	if !strings.Contains(out, "Logged out of "+e.srv.URL+". The token is revoked.") {
		t.Errorf("logout said %q", out)
	}
	r.fails(t, "not logged in", "product", "list")
	e.as(t, tok.Secret).fails(t, "unauthenticated", "product", "list")
	if out := r.ok(t, "logout"); !strings.Contains(out, "Not logged in.") {
		t.Errorf("second logout said %q", out)
	}
	// The address and CA stay, so logging in again needs only a token.
	r.ok(t, "login", "--token", e.srv.AdminToken)
	r.ok(t, "product", "show", "Saved Login")
}

// TestE2ECompletion checks that shell completion offers names from the server.
func TestE2ECompletion(t *testing.T) {
	e := startE2E(t)
	a := e.admin
	a.ok(t, "product", "create", "--name", "Coffee Maker", "--description", "Espresso")
	a.ok(t, "product", "create", "--name", "Kettle", "--no-default-device-groups")
	a.ok(t, "device-group", "create", "--product", "Kettle", "--name", "Kettle Lab")
	tests := []struct {
		args          []string
		want, notWant []string
	}{
		{[]string{"product", "show", ""}, []string{"Coffee Maker\tEspresso", "Kettle"}, nil},
		{[]string{"product", "show", "Kettle", ""}, nil, []string{"Coffee Maker"}},
		{[]string{"device-group", "list", "--product", ""}, []string{"Coffee Maker", "Kettle"}, nil},
		{[]string{"device", "claim", "--device-group", ""}, []string{"Production", "Kettle Lab"}, nil},
		{[]string{"device-group", "show", "--product", "Kettle", ""}, []string{"Kettle Lab"}, []string{"Production"}},
		{[]string{"tenant", "select", ""}, []string{"dev\tAdministrator"}, nil},
		{[]string{"--tenant", ""}, []string{"dev"}, nil},
	}
	for _, tt := range tests {
		out := a.ok(t, append([]string{"__complete"}, tt.args...)...)
		for _, w := range tt.want {
			if !strings.Contains(out, w) {
				t.Errorf("complete %q: %q lacks %q", tt.args, out, w)
			}
		}
		for _, w := range tt.notWant {
			if strings.Contains(out, w) {
				t.Errorf("complete %q: %q offers %q", tt.args, out, w)
			}
		}
	}
	// Without a server, completion offers nothing and does not fail loudly.
	res := newRunner(t, nil).run(t, "__complete", "product", "show", "")
	if res.code != 0 || strings.Contains(res.out, "Kettle") {
		t.Errorf("offline completion: code %d, out %q", res.code, res.out)
	}
}
