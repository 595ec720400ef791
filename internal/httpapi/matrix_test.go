package httpapi_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/enrollment/enrollmenttest"
	"github.com/rampart-iot/rampart/imagepkg/imagepkgtest"
	"github.com/rampart-iot/rampart/internal/authz"
	"github.com/rampart-iot/rampart/internal/httpapi"
	"github.com/rampart-iot/rampart/internal/store"
)

// request is one call to an endpoint, built against a tenant fixture.
type request struct {
	path string
	body any
	raw  []byte // sent as application/octet-stream instead of body
	// action overrides the endpoint's documented action for the expectation (e.g. revoking
	// another user's token needs token.revoke).
	action authz.Action
	// self marks endpoints that act on the caller, not a tenant: no "other tenant" case.
	self bool
}

// builders make a valid request for each endpoint against fixture f. victim is a user with a
// role in f's tenant and victimToken its token's ID.
type buildCtx struct {
	t                     *testing.T
	e                     *env
	f                     *tenantFixture
	victim, victimTokenID string
}

var builders = map[string]func(b *buildCtx) request{
	"getMe":       func(b *buildCtx) request { return request{path: "/v1/me", self: true} },
	"listTenants": func(b *buildCtx) request { return request{path: "/v1/tenants", self: true} },
	"createTenant": func(b *buildCtx) request {
		return request{path: "/v1/tenants", body: v1.TenantCreate{Name: "New Tenant"}, self: true}
	},
	"getTenant": func(b *buildCtx) request { return request{path: "/v1/tenants/" + b.f.id} },
	"listRoles": func(b *buildCtx) request { return request{path: "/v1/tenants/" + b.f.id + "/roles"} },
	"addRole": func(b *buildCtx) request {
		return request{path: "/v1/tenants/" + b.f.id + "/roles", body: v1.RoleAdd{User: "someone-new", Role: "Reader"}}
	},
	"deleteRole": func(b *buildCtx) request { return request{path: "/v1/tenants/" + b.f.id + "/roles/" + b.victim} },
	"createUserToken": func(b *buildCtx) request {
		return request{path: "/v1/tenants/" + b.f.id + "/users/" + b.victim + "/tokens", body: v1.TokenCreate{}}
	},
	"listTokens": func(b *buildCtx) request { return request{path: "/v1/tokens", self: true} },
	"createToken": func(b *buildCtx) request {
		return request{path: "/v1/tokens", body: v1.TokenCreate{Description: "mine"}, self: true}
	},
	"revokeToken": func(b *buildCtx) request {
		return request{path: "/v1/tokens/" + b.victimTokenID, action: authz.TokenRevoke, self: true}
	},
	"listProducts": func(b *buildCtx) request { return request{path: "/v1/tenants/" + b.f.id + "/products"} },
	"createProduct": func(b *buildCtx) request {
		return request{path: "/v1/tenants/" + b.f.id + "/products", body: v1.ProductCreate{Name: "Fresh " + b.f.productName}}
	},
	"getProduct": func(b *buildCtx) request { return request{path: "/v1/tenants/" + b.f.id + "/products/" + b.f.product} },
	"updateProduct": func(b *buildCtx) request {
		d := "changed"
		return request{path: "/v1/tenants/" + b.f.id + "/products/" + b.f.product, body: v1.ProductUpdate{Description: &d}}
	},
	"deleteProduct": func(b *buildCtx) request {
		// A product whose groups hold no devices.
		var p v1.Product
		b.e.must(b.f.admin, "POST", "/v1/tenants/"+b.f.id+"/products", v1.ProductCreate{Name: "Doomed " + b.f.productName}, 201, &p)
		return request{path: "/v1/tenants/" + b.f.id + "/products/" + p.ID}
	},
	"listProductDeviceGroups": func(b *buildCtx) request {
		return request{path: "/v1/tenants/" + b.f.id + "/products/" + b.f.product + "/device-groups"}
	},
	"createDeviceGroup": func(b *buildCtx) request {
		return request{path: "/v1/tenants/" + b.f.id + "/products/" + b.f.product + "/device-groups", body: v1.DeviceGroupCreate{Name: "Three"}}
	},
	"createDefaultDeviceGroups": func(b *buildCtx) request {
		return request{path: "/v1/tenants/" + b.f.id + "/products/" + b.f.product + "/device-groups/defaults"}
	},
	"listDeviceGroups": func(b *buildCtx) request { return request{path: "/v1/tenants/" + b.f.id + "/device-groups"} },
	"getDeviceGroup": func(b *buildCtx) request {
		return request{path: "/v1/tenants/" + b.f.id + "/device-groups/" + b.f.group}
	},
	"updateDeviceGroup": func(b *buildCtx) request {
		feed := "RetailEval"
		return request{path: "/v1/tenants/" + b.f.id + "/device-groups/" + b.f.group, body: v1.DeviceGroupUpdate{OSFeed: &feed}}
	},
	"deleteDeviceGroup": func(b *buildCtx) request {
		return request{path: "/v1/tenants/" + b.f.id + "/device-groups/" + b.f.group2}
	},
	"listDevices":  func(b *buildCtx) request { return request{path: "/v1/tenants/" + b.f.id + "/devices"} },
	"countDevices": func(b *buildCtx) request { return request{path: "/v1/tenants/" + b.f.id + "/devices/count"} },
	"claimDevice": func(b *buildCtx) request {
		return request{path: "/v1/tenants/" + b.f.id + "/devices", body: v1.DeviceClaim{Enrollment: enrollmenttest.Record(b.t)}}
	},
	"bulkClaimDevices": func(b *buildCtx) request {
		return request{path: "/v1/tenants/" + b.f.id + "/devices/bulk-claim",
			body: map[string]any{"enrollments": []any{rawJSON(enrollmenttest.Record(b.t)), rawJSON(enrollmenttest.Record(b.t))}}}
	},
	"getDevice": func(b *buildCtx) request { return request{path: "/v1/tenants/" + b.f.id + "/devices/" + b.f.device} },
	"updateDevice": func(b *buildCtx) request {
		return request{path: "/v1/tenants/" + b.f.id + "/devices/" + b.f.device, body: v1.DeviceUpdate{DeviceGroupID: &b.f.group2}}
	},
	"listAudit": func(b *buildCtx) request { return request{path: "/v1/tenants/" + b.f.id + "/audit"} },
	"disableDevice": func(b *buildCtx) request {
		return request{path: "/v1/tenants/" + b.f.id + "/devices/" + b.f.device + "/disable"}
	},
	"getUpdateRootStatus": func(b *buildCtx) request {
		b.image()
		return request{path: "/v1/tenants/" + b.f.id + "/update-keys/root"}
	},
	"getImagesRootMetadata": func(b *buildCtx) request {
		// The repository exists once the tenant uploaded an image.
		b.image()
		return request{path: "/v1/tenants/" + b.f.id + "/update-keys/root/metadata"}
	},
	"pressDeviceButton": func(b *buildCtx) request {
		// The device reported an emulated board (as its check-in would).
		rep := `{"agent_version":"1.0.0","images":[],"board":{"board":"emulated","leds":[],"buttons":[{"name":"BUTTON_A","gpio":12,"presses":0}]}}`
		if err := b.e.srv.Store.PutDeviceReport(b.t.Context(), store.DeviceReport{TenantID: b.f.id, DeviceID: b.f.device,
			Report: []byte(rep), CheckedInAt: time.Now()}); err != nil {
			b.t.Fatal(err)
		}
		return request{path: "/v1/tenants/" + b.f.id + "/devices/" + b.f.device + "/board/press", body: v1.BoardPress{Button: "BUTTON_A"}}
	},
	"enableDevice": func(b *buildCtx) request {
		return request{path: "/v1/tenants/" + b.f.id + "/devices/" + b.f.device + "/enable"}
	},
	"listAttestations": func(b *buildCtx) request {
		return request{path: "/v1/tenants/" + b.f.id + "/devices/" + b.f.device + "/attestations"}
	},
	"listOSReleases": func(b *buildCtx) request { return request{path: "/v1/tenants/" + b.f.id + "/os-releases"} },
	"createOSRelease": func(b *buildCtx) request {
		return request{path: "/v1/tenants/" + b.f.id + "/os-releases", body: v1.OSReleaseCreate{Version: "v" + itoa(fixtureSeq) + "-new",
			Measurements: map[string]string{"agent": strings.Repeat("ab", 32)}}}
	},
	"deleteOSRelease": func(b *buildCtx) request {
		var r v1.OSRelease
		b.e.must(b.f.admin, "POST", "/v1/tenants/"+b.f.id+"/os-releases", v1.OSReleaseCreate{Version: "v" + itoa(fixtureSeq) + "-doomed",
			Measurements: map[string]string{"agent": strings.Repeat("cd", 32)}}, 201, &r)
		return request{path: "/v1/tenants/" + b.f.id + "/os-releases/" + r.ID}
	},
	"listCACertificates": func(b *buildCtx) request { return request{path: "/v1/tenants/" + b.f.id + "/ca-certificates"} },
	"caCertificateChain": func(b *buildCtx) request { return request{path: "/v1/tenants/" + b.f.id + "/ca-certificates/chain"} },
	"addImage": func(b *buildCtx) request {
		return request{path: "/v1/tenants/" + b.f.id + "/images", raw: appPackage(b.t, newComponent(b.t), "m", "1.0.0", 3)}
	},
	"listImages": func(b *buildCtx) request { return request{path: "/v1/tenants/" + b.f.id + "/images"} },
	"getImage":   func(b *buildCtx) request { return request{path: "/v1/tenants/" + b.f.id + "/images/" + b.image().ID} },
	"downloadImage": func(b *buildCtx) request {
		return request{path: "/v1/tenants/" + b.f.id + "/images/" + b.image().ID + "/package"}
	},
	"createDeployment": func(b *buildCtx) request {
		b.rootOnline()
		return request{path: "/v1/tenants/" + b.f.id + "/device-groups/" + b.f.group + "/deployments",
			body: v1.DeploymentCreate{ImageIDs: []string{b.image().ID}}}
	},
	"listDeployments": func(b *buildCtx) request { return request{path: "/v1/tenants/" + b.f.id + "/deployments"} },
	"getDeployment": func(b *buildCtx) request {
		b.rootOnline()
		var d v1.Deployment
		b.e.must(b.f.admin, "POST", "/v1/tenants/"+b.f.id+"/device-groups/"+b.f.group+"/deployments",
			v1.DeploymentCreate{ImageIDs: []string{b.image().ID}}, 201, &d)
		return request{path: "/v1/tenants/" + b.f.id + "/deployments/" + d.ID}
	},
	"getRollout": func(b *buildCtx) request {
		return request{path: "/v1/tenants/" + b.f.id + "/deployments/" + b.rollout(false) + "/rollout"}
	},
	"pauseRollout": func(b *buildCtx) request {
		return request{path: "/v1/tenants/" + b.f.id + "/deployments/" + b.rollout(false) + "/rollout/pause"}
	},
	"resumeRollout": func(b *buildCtx) request {
		return request{path: "/v1/tenants/" + b.f.id + "/deployments/" + b.rollout(true) + "/rollout/resume"}
	},
	"abortRollout": func(b *buildCtx) request {
		return request{path: "/v1/tenants/" + b.f.id + "/deployments/" + b.rollout(false) + "/rollout/abort"}
	},
	"caProofOfPossession": func(b *buildCtx) request {
		return request{path: "/v1/tenants/" + b.f.id + "/ca-certificates/active/proof", body: v1.ProofOfPossessionRequest{VerificationCode: "ABC123"}}
	},
	"listServiceAudit": func(b *buildCtx) request { return request{path: "/v1/audit", self: true} },
	"publishOSRelease": func(b *buildCtx) request {
		return request{path: "/v1/tenants/" + b.f.id + "/os-releases/" + b.osRelease() + "/publish", body: v1.OSReleasePublish{Feed: "RetailEval"}}
	},
	"withdrawOSRelease": func(b *buildCtx) request {
		id := b.osRelease()
		b.e.must(b.f.admin, "POST", "/v1/tenants/"+b.f.id+"/os-releases/"+id+"/publish", v1.OSReleasePublish{Feed: "Retail"}, 200, nil)
		return request{path: "/v1/tenants/" + b.f.id + "/os-releases/" + id + "/withdraw"}
	},
	"exportUpdateRootKey": func(b *buildCtx) request {
		b.rootKey(false)
		return request{path: "/v1/tenants/" + b.f.id + "/update-keys/root/export"}
	},
	"importUpdateRootKey": func(b *buildCtx) request {
		return request{path: "/v1/tenants/" + b.f.id + "/update-keys/root/import", body: v1.UpdateRootKey{KeyPEM: b.rootKey(true)}}
	},
	"rotateUpdateRootKey": func(b *buildCtx) request {
		b.rootOnline()
		delete(rootKeys, b.f.id) // rotated out: it can never be imported again
		return request{path: "/v1/tenants/" + b.f.id + "/update-keys/root/rotate", body: v1.UpdateRootRotate{}}
	},
	"prepareUpdateRootRotation":  prepareRootRequest,
	"completeUpdateRootRotation": completeRootRequest,
	"listErrorReports": func(b *buildCtx) request {
		return request{path: "/v1/tenants/" + b.f.id + "/error-reports?type=AppCrash&device_group_id=" + b.f.group}
	},
	"listErrorBuckets": func(b *buildCtx) request {
		return request{path: "/v1/tenants/" + b.f.id + "/error-reports/buckets?limit=5"}
	},
	"downloadErrorReports": func(b *buildCtx) request {
		return request{path: "/v1/tenants/" + b.f.id + "/error-reports/download?format=csv"}
	},
	"listWebhooks": func(b *buildCtx) request { return request{path: "/v1/tenants/" + b.f.id + "/webhooks"} },
	"createWebhook": func(b *buildCtx) request {
		return request{path: "/v1/tenants/" + b.f.id + "/webhooks", body: v1.WebhookCreate{URL: "https://hooks.example.com/new", Events: []string{"rollout.state_changed"}}}
	},
	"getWebhook": func(b *buildCtx) request {
		return request{path: "/v1/tenants/" + b.f.id + "/webhooks/" + b.webhook(false)}
	},
	"deleteWebhook": func(b *buildCtx) request {
		return request{path: "/v1/tenants/" + b.f.id + "/webhooks/" + b.webhook(true)}
	},
	"retryWebhookDelivery": func(b *buildCtx) request {
		return request{path: "/v1/tenants/" + b.f.id + "/webhooks/" + b.webhook(false) + "/deliveries/" + b.failedDelivery() + "/retry"}
	},
	"redeliverWebhookDelivery": func(b *buildCtx) request {
		return request{path: "/v1/tenants/" + b.f.id + "/webhooks/" + b.webhook(false) + "/deliveries/" + b.failedDelivery() + "/redeliver"}
	},
	"pingWebhook": func(b *buildCtx) request {
		return request{path: "/v1/tenants/" + b.f.id + "/webhooks/" + b.webhook(false) + "/ping"}
	},
	"rotateWebhookSecret": func(b *buildCtx) request {
		return request{path: "/v1/tenants/" + b.f.id + "/webhooks/" + b.webhook(false) + "/rotate-secret", body: v1.WebhookRotateSecret{}}
	},
	"enableWebhook": func(b *buildCtx) request {
		return request{path: "/v1/tenants/" + b.f.id + "/webhooks/" + b.webhook(false) + "/enable"}
	},
	"listWebhookDeliveries": func(b *buildCtx) request {
		return request{path: "/v1/tenants/" + b.f.id + "/webhooks/" + b.webhook(false) + "/deliveries"}
	},
}

// webhooks are the webhooks the matrix keeps, by tenant.
var webhooks = map[string]string{}

// webhook returns a webhook of the fixture's tenant: the one kept for it (made once), or with
// fresh a new one (for a request that deletes it).
func (b *buildCtx) webhook(fresh bool) string {
	if id, ok := webhooks[b.f.id]; ok && !fresh {
		return id
	}
	var w v1.Webhook
	b.e.must(b.f.admin, "POST", "/v1/tenants/"+b.f.id+"/webhooks",
		v1.WebhookCreate{URL: "https://hooks.example.com/matrix", Events: []string{"error_report.bucket_created"}}, 201, &w)
	if !fresh {
		webhooks[b.f.id] = w.ID
	}
	return w.ID
}

// failedDelivery makes a failed delivery to the tenant's kept webhook, through the store (no
// endpoint makes one without waiting for retries), and returns its ID.
func (b *buildCtx) failedDelivery() string {
	hook := b.webhook(false)
	fixtureSeq++
	id := fmt.Sprintf("01975f3a-0000-7000-8000-%012d", fixtureSeq)
	now := time.Now().UTC()
	err := b.e.srv.Store.CreateWebhookDelivery(b.t.Context(), store.WebhookDelivery{ID: id, TenantID: b.f.id, WebhookID: hook,
		EventID: id, EventType: "rollout.state_changed", Payload: []byte("{}"), State: store.DeliveryFailed, Attempts: 8,
		NextAttemptAt: now, LastStatus: 500, CreatedAt: now, UpdatedAt: now})
	if err != nil {
		b.t.Fatal(err)
	}
	return id
}

// osRelease uploads an OS image that names every measurement a device makes, and returns the
// ID of the OS release the upload registered.
func (b *buildCtx) osRelease() string {
	t := b.t
	sum := strings.Repeat("ab", 32)
	pkg := imagepkgtest.OSMeasured(t, "", "9."+itoa(fixtureSeq)+"."+itoa(len(b.f.id)), map[string]string{"VERSION": "x"},
		map[string]string{"agent": sum, "policy": sum}, nil)
	r := b.e.doRaw(b.f.admin, "POST", "/v1/tenants/"+b.f.id+"/images", pkg.Bytes, "application/octet-stream")
	if r.status != 201 {
		t.Fatalf("upload: %d %s", r.status, r.body)
	}
	var rels v1.List[v1.OSRelease]
	b.e.must(b.f.admin, "GET", "/v1/tenants/"+b.f.id+"/os-releases?max_page_size=1000", nil, 200, &rels)
	for _, rel := range rels.Items {
		if rel.ImageID == pkg.ImageID {
			return rel.ID
		}
	}
	t.Fatalf("uploading OS image %s registered no release", pkg.ImageID)
	return ""
}

// rootOnline brings the tenant's root key back if the matrix left it offline (a group's first
// deployment needs it).
func (b *buildCtx) rootOnline() {
	if k, ok := rootKeys[b.f.id]; ok {
		r := b.e.do(b.f.admin, "POST", "/v1/tenants/"+b.f.id+"/update-keys/root/import", v1.UpdateRootKey{KeyPEM: k})
		if r.status != 204 && r.status != 409 {
			b.t.Fatalf("import: %d %s", r.status, r.body)
		}
	}
}

// rootKeys are the update-metadata root keys the matrix has exported, by tenant.
var rootKeys = map[string]string{}

// rootKey exports the tenant's update-metadata root key as its administrator and returns it,
// leaving it offline or importing it back; if an earlier request left it offline, it brings it
// back first.
func (b *buildCtx) rootKey(leaveOffline bool) string {
	path := "/v1/tenants/" + b.f.id + "/update-keys/root/"
	b.rootOnline()
	var k v1.UpdateRootKey
	b.e.must(b.f.admin, "POST", path+"export", nil, 200, &k)
	rootKeys[b.f.id] = k.KeyPEM
	if leaveOffline {
		return k.KeyPEM
	}
	if r := b.e.do(b.f.admin, "POST", path+"import", v1.UpdateRootKey{KeyPEM: k.KeyPEM}); r.status != 204 {
		b.t.Fatalf("import: %d %s", r.status, r.body)
	}
	return k.KeyPEM
}

// image uploads an image to the fixture's tenant as its administrator.
func (b *buildCtx) image() v1.Image {
	t := b.t
	r := b.e.doRaw(b.f.admin, "POST", "/v1/tenants/"+b.f.id+"/images", appPackage(t, newComponent(t), "m", "1.0.0", 2), "application/octet-stream")
	if r.status != 201 {
		t.Fatalf("upload: %d %s", r.status, r.body)
	}
	var img v1.Image
	mustJSON(t, r.body, &img)
	return img
}

type rawJSON []byte

func (r rawJSON) MarshalJSON() ([]byte, error) { return r, nil }

// TestRoleTenantMatrix walks every endpoint × role × (own tenant, other tenant) and checks
// that each role gets exactly what authz allows, and that another tenant's resources are
// indistinguishable from missing ones.
func TestRoleTenantMatrix(t *testing.T) {
	e := newEnv(t)
	own := e.fixture(e.srv.TenantID, e.srv.AdminToken)
	other := e.newTenant("Other Corp")
	tokens := map[store.Role]string{
		store.RoleAdministrator: e.user(own, "alice", "Administrator"),
		store.RoleContributor:   e.user(own, "carol", "Contributor"),
		store.RoleReader:        e.user(own, "rita", "Reader"),
	}
	covered := map[string]bool{}
	for _, ep := range httpapi.Endpoints() {
		if ep.Public || ep.Device {
			// No token is involved: these authenticate with TPM evidence or a device
			// certificate, and have tests of their own (attestation_test.go).
			continue
		}
		build, ok := builders[ep.Op]
		if !ok {
			t.Errorf("endpoint %s (%s %s) has no builder: add one so the matrix covers it", ep.Op, ep.Method, ep.Path)
			continue
		}
		covered[ep.Op] = true
		for role, token := range tokens {
			for _, target := range []string{"own", "other"} {
				name := fmt.Sprintf("%s/%s/%s", ep.Op, role, target)
				t.Run(name, func(t *testing.T) {
					f := own
					if target == "other" {
						f = other
					}
					f.refresh(e)
					victim := fmt.Sprintf("victim-%d", fixtureSeq)
					e.must(f.admin, "POST", "/v1/tenants/"+f.id+"/roles", v1.RoleAdd{User: victim, Role: "Reader"}, 200, nil)
					var vt v1.Token
					e.must(f.admin, "POST", "/v1/tenants/"+f.id+"/users/"+victim+"/tokens", v1.TokenCreate{}, 201, &vt)
					b := &buildCtx{t: t, e: e, f: f, victim: victim, victimTokenID: vt.ID}
					req := build(b)
					if req.self && target == "other" && ep.Op != "revokeToken" {
						t.Skip("acts on the caller; no other tenant involved")
					}
					action := ep.Action
					if req.action != "" {
						action = req.action
					}
					var r response
					if req.raw != nil {
						r = e.doRaw(token, ep.Method, req.path, req.raw, "application/octet-stream")
					} else {
						r = e.do(token, ep.Method, req.path, req.body)
					}
					var want int
					switch {
					case target == "other":
						want = 404
					case action == "":
						want = 0 // any 2xx
					case action == authz.TenantCreate || action == authz.ServiceAuditRead:
						want = 403
					case authz.Allowed(role, action):
						want = 0
					default:
						want = 403
					}
					switch {
					case want == 0 && (r.status < 200 || r.status > 299):
						t.Fatalf("%s %s as %s: status %d, want 2xx: %s", ep.Method, req.path, role, r.status, r.body)
					case want != 0 && r.status != want:
						t.Fatalf("%s %s as %s: status %d, want %d: %s", ep.Method, req.path, role, r.status, want, r.body)
					}
					if want == 403 && !strings.Contains(r.apiError().Message, "forbidden") {
						t.Errorf("forbidden message does not say so: %s", r.body)
					}
					if target == "other" {
						// Nothing of the other tenant may appear beyond what the caller sent.
						for _, secret := range []string{other.productName, "Other Corp", "victim"} {
							if strings.Contains(string(r.body), secret) && !strings.Contains(req.path, secret) {
								t.Errorf("response leaks %q: %s", secret, r.body)
							}
						}
						if r.apiError().Code != v1.CodeNotFound {
							t.Errorf("other tenant: code %q, want not_found", r.apiError().Code)
						}
					}
				})
			}
		}
	}
	for op := range builders {
		if !covered[op] {
			t.Errorf("builder for %s matches no endpoint", op)
		}
	}
}

// TestOtherTenantsResourcesInOwnTenantPath checks that another tenant's resource IDs are not
// found through the caller's own tenant path.
func TestOtherTenantsResourcesInOwnTenantPath(t *testing.T) {
	e := newEnv(t)
	own := e.fixture(e.srv.TenantID, e.srv.AdminToken)
	other := e.newTenant("Elsewhere")
	admin := e.srv.AdminToken // Administrator of both: the tenant in the path decides
	base := "/v1/tenants/" + own.id
	cases := []struct {
		method, path string
		body         any
	}{
		{"GET", base + "/products/" + other.product, nil},
		{"PATCH", base + "/products/" + other.product, v1.ProductUpdate{}},
		{"DELETE", base + "/products/" + other.product, nil},
		{"GET", base + "/products/" + other.product + "/device-groups", nil},
		{"POST", base + "/products/" + other.product + "/device-groups", v1.DeviceGroupCreate{Name: "X"}},
		{"POST", base + "/products/" + other.product + "/device-groups/defaults", nil},
		{"GET", base + "/device-groups/" + other.group, nil},
		{"PATCH", base + "/device-groups/" + other.group, v1.DeviceGroupUpdate{}},
		{"DELETE", base + "/device-groups/" + other.group2, nil},
		{"GET", base + "/devices/" + other.device, nil},
		{"PATCH", base + "/devices/" + other.device, v1.DeviceUpdate{DeviceGroupID: &own.group2}},
		{"PATCH", base + "/devices/" + own.device, v1.DeviceUpdate{DeviceGroupID: &other.group}},
		{"POST", base + "/devices", v1.DeviceClaim{Enrollment: enrollmenttest.Record(t), DeviceGroupID: other.group}},
		{"GET", base + "/device-groups?product_id=" + other.product, nil},
	}
	for _, c := range cases {
		r := e.do(admin, c.method, c.path, c.body)
		if r.status != 404 {
			t.Errorf("%s %s: status %d, want 404: %s", c.method, c.path, r.status, r.body)
		}
	}
	// Lists with another tenant's filters are empty, not errors.
	var l v1.List[v1.Device]
	e.must(admin, "GET", base+"/devices?device_group_id="+other.group, nil, 200, &l)
	if len(l.Items) != 0 {
		t.Errorf("listed another tenant's devices: %+v", l.Items)
	}
}

// rollout makes a deployment with a rollout (soaking for a day, so it stays running) after a
// previous one, optionally paused, and returns its ID.
func (b *buildCtx) rollout(paused bool) string {
	b.rootOnline()
	path := "/v1/tenants/" + b.f.id + "/device-groups/" + b.f.group + "/deployments"
	b.e.must(b.f.admin, "POST", path, v1.DeploymentCreate{ImageIDs: []string{b.image().ID}}, 201, nil)
	var d v1.Deployment
	b.e.must(b.f.admin, "POST", path, v1.DeploymentCreate{ImageIDs: []string{b.image().ID},
		Rollout: &v1.RolloutPolicy{Batches: []v1.RolloutBatch{{Count: 1}}, SoakSeconds: 86400}}, 201, &d)
	if paused {
		b.e.must(b.f.admin, "POST", "/v1/tenants/"+b.f.id+"/deployments/"+d.ID+"/rollout/pause", nil, 200, nil)
	}
	return d.ID
}
