package httpapi_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/enrollment/enrollmenttest"
	"github.com/rampart-iot/rampart/internal/server/servertest"
)

// backends runs f against SQLite and PostgreSQL.
func backends(t *testing.T, f func(t *testing.T, e *env)) {
	for _, b := range []string{"sqlite", "postgres"} {
		t.Run(b, func(t *testing.T) { f(t, newEnv(t, servertest.Backend(b))) })
	}
}

func TestProductClaimMoveAudit(t *testing.T) {
	backends(t, func(t *testing.T, e *env) {
		admin := e.srv.AdminToken
		base := "/v1/tenants/" + e.srv.TenantID
		var p v1.Product
		e.must(admin, "POST", base+"/products", v1.ProductCreate{Name: "Thermostat", Description: "Smart thermostat"}, 201, &p)
		var groups v1.List[v1.DeviceGroup]
		e.must(admin, "GET", base+"/products/"+p.ID+"/device-groups", nil, 200, &groups)
		want := map[string][2]string{
			"Development":              {"Retail", "No3rdPartyAppUpdates"},
			"Field Test":               {"Retail", "UpdateAll"},
			"Production":               {"Retail", "UpdateAll"},
			"Field Test OS Evaluation": {"RetailEval", "UpdateAll"},
			"Production OS Evaluation": {"RetailEval", "UpdateAll"},
		}
		byName := map[string]v1.DeviceGroup{}
		for _, g := range groups.Items {
			byName[g.Name] = g
			w, ok := want[g.Name]
			if !ok || g.OSFeed != w[0] || g.UpdatePolicy != w[1] || g.CheckInIntervalSeconds != 3600 || g.ProductID != p.ID {
				t.Errorf("unexpected default group %+v", g)
			}
		}
		if len(groups.Items) != 5 {
			t.Fatalf("%d default groups", len(groups.Items))
		}

		// Delete one default group, then recreate the defaults: only it comes back.
		e.must(admin, "DELETE", base+"/device-groups/"+byName["Field Test"].ID, nil, 204, nil)
		var defs v1.DefaultDeviceGroups
		e.must(admin, "POST", base+"/products/"+p.ID+"/device-groups/defaults", nil, 200, &defs)
		if len(defs.Created) != 1 || defs.Created[0].Name != "Field Test" || len(defs.Existing) != 4 {
			t.Fatalf("create-defaults: %+v", defs)
		}
		var none v1.Product
		e.must(admin, "POST", base+"/products", v1.ProductCreate{Name: "Bare", NoDefaultDeviceGroups: true}, 201, &none)
		var bare v1.List[v1.DeviceGroup]
		e.must(admin, "GET", base+"/device-groups?product_id="+none.ID, nil, 200, &bare)
		if len(bare.Items) != 0 {
			t.Fatalf("opt-out product has groups: %+v", bare.Items)
		}

		// Claim one into Production, then the same record again (idempotent, 200).
		rec := enrollmenttest.Record(t)
		prod := byName["Production"].ID
		var d v1.Device
		e.must(admin, "POST", base+"/devices", v1.DeviceClaim{Enrollment: rec, DeviceGroupID: prod}, 201, &d)
		if d.DeviceGroupID != prod || d.ProductID != p.ID || d.RootOfTrust != "software" {
			t.Fatalf("claimed device: %+v", d)
		}
		var again v1.Device
		e.must(admin, "POST", base+"/devices", v1.DeviceClaim{Enrollment: rec}, 200, &again)
		if again.ID != d.ID || again.DeviceGroupID != prod {
			t.Fatalf("re-claim changed the device: %+v", again)
		}

		// Bulk: three new, one already ours, one invalid, one another tenant's.
		other := e.newTenant("Competitor")
		theirs := enrollmenttest.Record(t)
		e.must(other.admin, "POST", "/v1/tenants/"+other.id+"/devices", v1.DeviceClaim{Enrollment: theirs}, 201, nil)
		records := []json.RawMessage{enrollmenttest.Record(t), enrollmenttest.Record(t), rec, json.RawMessage(`{"version":1}`), theirs, enrollmenttest.Record(t)}
		var res v1.DeviceBulkClaimResult
		e.must(admin, "POST", base+"/devices/bulk-claim", v1.DeviceBulkClaim{Enrollments: records, DeviceGroupID: byName["Field Test OS Evaluation"].ID}, 200, &res)
		if res.Claimed != 3 || res.Already != 1 || res.Failed != 2 || len(res.Results) != 6 {
			t.Fatalf("bulk result: %+v", res)
		}
		if res.Results[3].Error == nil || res.Results[3].Error.Code != v1.CodeValidation {
			t.Errorf("invalid record result: %+v", res.Results[3])
		}
		if res.Results[4].Error == nil || res.Results[4].Error.Code != v1.CodeDeviceClaimed {
			t.Errorf("other tenant's record result: %+v", res.Results[4])
		}
		if res.Results[2].Result != v1.ClaimAlreadyClaimed {
			t.Errorf("own record result: %+v", res.Results[2])
		}

		// The other tenant still owns its device; we cannot see it.
		var theirDev struct {
			DeviceID string `json:"device_id"`
		}
		_ = json.Unmarshal(theirs, &theirDev)
		if r := e.do(admin, "GET", base+"/devices/"+theirDev.DeviceID, nil); r.status != 404 {
			t.Errorf("another tenant's device visible: %d", r.status)
		}

		// Move a device between groups.
		dev := byName["Development"].ID
		var moved v1.Device
		e.must(admin, "PATCH", base+"/devices/"+d.ID, v1.DeviceUpdate{DeviceGroupID: &dev}, 200, &moved)
		if moved.DeviceGroupID != dev {
			t.Fatalf("move: %+v", moved)
		}
		var count v1.DeviceCount
		e.must(admin, "GET", base+"/devices/count?device_group_id="+dev, nil, 200, &count)
		if count.Count != 1 {
			t.Fatalf("count in Development: %d", count.Count)
		}
		e.must(admin, "GET", base+"/devices/count?product_id="+p.ID, nil, 200, &count)
		if count.Count != 4 {
			t.Fatalf("count in product: %d", count.Count)
		}

		// The audit log has all of it, including the refused cross-tenant claim.
		var audit v1.List[v1.AuditEntry]
		e.must(admin, "GET", base+"/audit?max_page_size=1000", nil, 200, &audit)
		seen := map[string]int{}
		for _, a := range audit.Items {
			seen[a.Action+"/"+a.Result]++
			if a.Actor != "dev-admin" && a.Actor != "system" {
				t.Errorf("unexpected actor %q", a.Actor)
			}
		}
		for k, n := range map[string]int{"product.create/success": 2, "device-group.delete/success": 1, "device-group.create/success": 1,
			"device.claim/success": 6, "device.claim/failure": 2, "device.move/success": 1} {
			if seen[k] != n {
				t.Errorf("audit has %d %s, want %d (all: %v)", seen[k], k, n, seen)
			}
		}
		var claimedElsewhere v1.List[v1.AuditEntry]
		e.must(admin, "GET", base+"/audit?action=device.claim&result=failure&resource_id="+theirDev.DeviceID, nil, 200, &claimedElsewhere)
		if len(claimedElsewhere.Items) != 1 || claimedElsewhere.Items[0].ErrorCode != v1.CodeDeviceClaimed {
			t.Fatalf("cross-tenant claim attempt not audited: %+v", claimedElsewhere.Items)
		}
		// ...and the other tenant's log does not mention us.
		var theirAudit v1.List[v1.AuditEntry]
		e.must(other.admin, "GET", "/v1/tenants/"+other.id+"/audit", nil, 200, &theirAudit)
		for _, a := range theirAudit.Items {
			if a.TenantID != other.id {
				t.Errorf("foreign entry in another tenant's log: %+v", a)
			}
		}
	})
}

func TestPagination(t *testing.T) {
	e := newEnv(t)
	admin := e.srv.AdminToken
	base := "/v1/tenants/" + e.srv.TenantID
	const n = 230
	records := make([]json.RawMessage, n)
	for i := range records {
		records[i] = enrollmenttest.Record(t)
	}
	e.must(admin, "POST", base+"/devices/bulk-claim", v1.DeviceBulkClaim{Enrollments: records}, 200, nil)
	seen := map[string]bool{}
	token, pages := "", 0
	for {
		var page v1.List[v1.Device]
		path := base + "/devices?max_page_size=100"
		if token != "" {
			path += "&page_token=" + token
		}
		e.must(admin, "GET", path, nil, 200, &page)
		pages++
		for _, d := range page.Items {
			if seen[d.ID] {
				t.Fatalf("device %s on two pages", d.ID)
			}
			seen[d.ID] = true
		}
		if page.NextPageToken == "" {
			break
		}
		token = page.NextPageToken
		if pages > 10 {
			t.Fatal("pagination does not end")
		}
	}
	if len(seen) != n || pages != 3 {
		t.Fatalf("%d devices in %d pages", len(seen), pages)
	}
	// The default page size is 100.
	var first v1.List[v1.Device]
	e.must(admin, "GET", base+"/devices", nil, 200, &first)
	if len(first.Items) != 100 || first.NextPageToken == "" {
		t.Fatalf("default page: %d items, next %q", len(first.Items), first.NextPageToken)
	}
	// Audit pages run newest first.
	var a1, a2 v1.List[v1.AuditEntry]
	e.must(admin, "GET", base+"/audit?max_page_size=5", nil, 200, &a1)
	e.must(admin, "GET", base+"/audit?max_page_size=5&page_token="+a1.NextPageToken, nil, 200, &a2)
	if len(a1.Items) != 5 || len(a2.Items) != 5 || a2.Items[0].Seq >= a1.Items[4].Seq {
		t.Fatalf("audit paging: %v then %v", seqs(a1.Items), seqs(a2.Items))
	}
}

func seqs(es []v1.AuditEntry) string {
	var s []string
	for _, e := range es {
		s = append(s, fmt.Sprint(e.Seq))
	}
	return strings.Join(s, ",")
}

func TestOpenAPIDocumentDescribesEveryEndpoint(t *testing.T) {
	e := newEnv(t)
	r := e.do("", "GET", "/v1/openapi.json", nil)
	if r.status != 200 {
		t.Fatalf("status %d", r.status)
	}
	var doc struct {
		OpenAPI    string                               `json:"openapi"`
		Paths      map[string]map[string]map[string]any `json:"paths"`
		Components struct {
			Schemas map[string]any `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(r.body, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi %q", doc.OpenAPI)
	}
	n := 0
	for path, ops := range doc.Paths {
		for method, op := range ops {
			n++
			if op["operationId"] == "" || op["responses"] == nil {
				t.Errorf("%s %s incomplete", method, path)
			}
		}
	}
	if n < 30 {
		t.Errorf("only %d operations", n)
	}
	// Every $ref resolves.
	for _, ref := range findRefs(string(r.body)) {
		name := strings.TrimPrefix(ref, "#/components/schemas/")
		if _, ok := doc.Components.Schemas[name]; !ok {
			t.Errorf("dangling $ref %s", ref)
		}
	}
	for _, s := range []string{"Product", "DeviceList", "Error", "DeviceBulkClaimResult"} {
		if _, ok := doc.Components.Schemas[s]; !ok {
			t.Errorf("schema %s missing", s)
		}
	}
}

func findRefs(doc string) []string {
	var out []string
	for _, part := range strings.Split(doc, `"$ref": "`)[1:] {
		out = append(out, part[:strings.IndexByte(part, '"')])
	}
	return out
}
