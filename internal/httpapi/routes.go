package httpapi

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/authz"
	"github.com/rampart-iot/rampart/internal/manage"
	"github.com/rampart-iot/rampart/internal/problem"
	"github.com/rampart-iot/rampart/internal/store"
)

// route describes one endpoint: how it is reached, what it takes and returns, and who may
// call it. action documents the tenant permission the management plane checks ("" means any
// authenticated caller, acting on itself; service-level actions are for service administrators).
type route struct {
	method, path string
	op, summary  string
	action       authz.Action
	in, out      any // zero values of the body and response types; nil for none
	status       int
	query        []queryParam
	list         bool   // takes page_token and max_page_size
	limit        int64  // body limit; 0 means DefaultBodyLimit
	public       bool   // no token; the request authenticates itself (or needs nothing)
	device       bool   // a device on mutual TLS, with a certificate from its tenant's CA
	perDevice    bool   // limited per device by Config.ReportLimit (error-report uploads)
	rawBody      bool   // the body is not JSON (application/octet-stream); the handler reads it, bounded by limit
	produces     string // the response's media type when it is not JSON
	handle       func(c *call) (any, error)
}

const (
	tenantPath = "/v1/tenants/{tenant}"
)

// routes is the whole API.
func routes() []route {
	return slices.Concat(managementRoutes(), attestationRoutes(), imageRoutes(), checkInRoutes(), reportRoutes(), rolloutRoutes(), webhookRoutes(),
		boardRoutes())
}

// managementRoutes are the endpoints of people and their automation.
func managementRoutes() []route {
	return []route{
		{method: "GET", path: "/v1/openapi.json", op: "getOpenAPI", summary: "This API's OpenAPI 3.1 description.",
			public: true, status: 200, handle: func(c *call) (any, error) { return c.h.openapi, nil }},

		{method: "GET", path: "/v1/me", op: "getMe", summary: "The caller: its user and token.",
			out: v1.Me{}, status: 200, handle: getMe},

		{method: "GET", path: "/v1/tenants", op: "listTenants", summary: "Tenants in which the caller holds a role.",
			out: v1.List[v1.Tenant]{}, status: 200, list: true, handle: listTenants},
		{method: "POST", path: "/v1/tenants", op: "createTenant", summary: "Create a tenant; the caller becomes its Administrator. Service administrators only.",
			action: authz.TenantCreate, in: v1.TenantCreate{}, out: v1.Tenant{}, status: 201, handle: createTenant},
		{method: "GET", path: tenantPath, op: "getTenant", summary: "A tenant.",
			action: authz.TenantRead, out: v1.Tenant{}, status: 200, handle: getTenant},

		{method: "GET", path: tenantPath + "/roles", op: "listRoles", summary: "Users and their roles in the tenant.",
			action: authz.RoleRead, out: v1.List[v1.RoleAssignment]{}, status: 200, list: true, handle: listRoles},
		{method: "POST", path: tenantPath + "/roles", op: "addRole", summary: "Give a user a role in the tenant, creating the user if new and replacing any role it held.",
			action: authz.RoleAdd, in: v1.RoleAdd{}, out: v1.RoleAssignment{}, status: 200, handle: addRole},
		{method: "DELETE", path: tenantPath + "/roles/{user}", op: "deleteRole", summary: "Remove a user's role in the tenant ({user} is a name or ID).",
			action: authz.RoleDelete, status: 204, handle: deleteRole},

		{method: "POST", path: tenantPath + "/users/{user}/tokens", op: "createUserToken", summary: "Create an API token for a user of the tenant, limited to the tenant. The secret is shown once.",
			action: authz.TokenCreate, in: v1.TokenCreate{}, out: v1.Token{}, status: 201, handle: createUserToken},
		{method: "GET", path: "/v1/tokens", op: "listTokens", summary: "The caller's API tokens.",
			out: v1.List[v1.Token]{}, status: 200, list: true, handle: listTokens},
		{method: "POST", path: "/v1/tokens", op: "createToken", summary: "Create an API token for the caller, limited as the caller's token is. The secret is shown once.",
			in: v1.TokenCreate{}, out: v1.Token{}, status: 201, handle: createToken},
		{method: "DELETE", path: "/v1/tokens/{token}", op: "revokeToken", summary: "Revoke one of the caller's tokens, or (Administrators) a token limited to their tenant.",
			status: 204, handle: revokeToken},

		{method: "GET", path: tenantPath + "/products", op: "listProducts", summary: "The tenant's products.",
			action: authz.ProductRead, out: v1.List[v1.Product]{}, status: 200, list: true,
			query: []queryParam{{"name", "string", "only the product with this name (case-insensitive)"}}, handle: listProducts},
		{method: "POST", path: tenantPath + "/products", op: "createProduct", summary: "Create a product and, unless no_default_device_groups is set, its five default device groups.",
			action: authz.ProductCreate, in: v1.ProductCreate{}, out: v1.Product{}, status: 201, handle: createProduct},
		{method: "GET", path: tenantPath + "/products/{product}", op: "getProduct", summary: "A product.",
			action: authz.ProductRead, out: v1.Product{}, status: 200, handle: getProduct},
		{method: "PATCH", path: tenantPath + "/products/{product}", op: "updateProduct", summary: "Change a product's name or description.",
			action: authz.ProductUpdate, in: v1.ProductUpdate{}, out: v1.Product{}, status: 200, handle: updateProduct},
		{method: "DELETE", path: tenantPath + "/products/{product}", op: "deleteProduct", summary: "Delete a product and its device groups, which must hold no devices.",
			action: authz.ProductDelete, status: 204, handle: deleteProduct},

		{method: "GET", path: tenantPath + "/products/{product}/device-groups", op: "listProductDeviceGroups", summary: "A product's device groups.",
			action: authz.DeviceGroupRead, out: v1.List[v1.DeviceGroup]{}, status: 200, list: true,
			query: []queryParam{{"name", "string", "only the group with this name (case-insensitive)"}}, handle: listProductGroups},
		{method: "POST", path: tenantPath + "/products/{product}/device-groups", op: "createDeviceGroup", summary: "Create a device group in a product.",
			action: authz.DeviceGroupCreate, in: v1.DeviceGroupCreate{}, out: v1.DeviceGroup{}, status: 201, handle: createGroup},
		{method: "POST", path: tenantPath + "/products/{product}/device-groups/defaults", op: "createDefaultDeviceGroups", summary: "Recreate whichever of the product's five default device groups are missing.",
			action: authz.DeviceGroupCreate, out: v1.DefaultDeviceGroups{}, status: 200, handle: createDefaultGroups},
		{method: "GET", path: tenantPath + "/device-groups", op: "listDeviceGroups", summary: "The tenant's device groups.",
			action: authz.DeviceGroupRead, out: v1.List[v1.DeviceGroup]{}, status: 200, list: true,
			query: []queryParam{{"product_id", "string", "only groups of this product"}, {"name", "string", "only groups with this name (case-insensitive)"}}, handle: listGroups},
		{method: "GET", path: tenantPath + "/device-groups/{group}", op: "getDeviceGroup", summary: "A device group.",
			action: authz.DeviceGroupRead, out: v1.DeviceGroup{}, status: 200, handle: getGroup},
		{method: "PATCH", path: tenantPath + "/device-groups/{group}", op: "updateDeviceGroup", summary: "Change a device group.",
			action: authz.DeviceGroupUpdate, in: v1.DeviceGroupUpdate{}, out: v1.DeviceGroup{}, status: 200, handle: updateGroup},
		{method: "DELETE", path: tenantPath + "/device-groups/{group}", op: "deleteDeviceGroup", summary: "Delete a device group that holds no devices.",
			action: authz.DeviceGroupDelete, status: 204, handle: deleteGroup},

		{method: "GET", path: tenantPath + "/devices", op: "listDevices", summary: "The tenant's devices.",
			action: authz.DeviceRead, out: v1.List[v1.Device]{}, status: 200, list: true, query: deviceFilterParams, handle: listDevices},
		{method: "GET", path: tenantPath + "/devices/count", op: "countDevices", summary: "How many of the tenant's devices match the filters.",
			action: authz.DeviceRead, out: v1.DeviceCount{}, status: 200, query: deviceFilterParams, handle: countDevices},
		{method: "POST", path: tenantPath + "/devices", op: "claimDevice", summary: "Claim a device from its enrollment record (201; 200 if this tenant had already claimed it).",
			action: authz.DeviceClaim, in: v1.DeviceClaim{}, out: v1.Device{}, status: 201, handle: claimDevice},
		{method: "POST", path: tenantPath + "/devices/bulk-claim", op: "bulkClaimDevices", summary: "Claim up to 1000 devices; each record gets its own result.",
			action: authz.DeviceClaim, in: v1.DeviceBulkClaim{}, out: v1.DeviceBulkClaimResult{}, status: 200, limit: BulkClaimBodyLimit, handle: bulkClaim},
		{method: "GET", path: tenantPath + "/devices/{device}", op: "getDevice", summary: "A device.",
			action: authz.DeviceRead, out: v1.Device{}, status: 200, handle: getDevice},
		{method: "PATCH", path: tenantPath + "/devices/{device}", op: "updateDevice", summary: "Move a device to another device group of the tenant.",
			action: authz.DeviceMove, in: v1.DeviceUpdate{}, out: v1.Device{}, status: 200, handle: updateDevice},

		{method: "GET", path: tenantPath + "/audit", op: "listAudit", summary: "The tenant's audit log, newest first.",
			action: authz.AuditRead, out: v1.List[v1.AuditEntry]{}, status: 200, list: true, query: auditParams, handle: listAudit},
		{method: "GET", path: "/v1/audit", op: "listServiceAudit", summary: "The service-level audit log, newest first. Service administrators only.",
			action: authz.ServiceAuditRead, out: v1.List[v1.AuditEntry]{}, status: 200, list: true, query: auditParams, handle: listServiceAudit},
	}
}

var deviceFilterParams = []queryParam{
	{"product_id", "string", "only devices in groups of this product"},
	{"device_group_id", "string", "only devices in this group"},
	{"unassigned", "boolean", "only devices in no group"},
}

var auditParams = []queryParam{
	{"actor", "string", "only entries by this user name"},
	{"action", "string", "only this action, e.g. product.create"},
	{"resource_type", "string", "only this resource type, e.g. device"},
	{"resource_id", "string", "only this resource"},
	{"result", "string", "success or failure"},
	{"since", "date-time", "only entries at or after this time"},
	{"until", "date-time", "only entries before this time"},
}

// conv renders the result of a management call with f, or passes its error on.
func conv[S, T any](f func(S) T) func(S, error) (any, error) {
	return func(s S, err error) (any, error) {
		if err != nil {
			return nil, err
		}
		return f(s), nil
	}
}

// listWith reads the paging parameters, fetches one page and converts it.
func listWith[S, T any](c *call, fetch func(store.ListOptions) (store.Page[S], error), conv func(S) T) (any, error) {
	opt, err := c.listOptions()
	if err != nil {
		return nil, err
	}
	page, err := fetch(opt)
	if err != nil {
		return nil, err
	}
	return list(page, conv), nil
}

func getMe(c *call) (any, error) {
	u, err := c.h.m.Me(c.r.Context(), c.p)
	if err != nil {
		return nil, err
	}
	return v1.Me{User: toUser(u), TokenID: c.p.TokenID, TenantID: c.p.TokenTenantID, ExpiresAt: c.p.ExpiresAt}, nil
}

func listTenants(c *call) (any, error) {
	return listWith(c, func(o store.ListOptions) (store.Page[manage.TenantView], error) {
		return c.h.m.ListTenants(c.r.Context(), c.p, o)
	}, toTenant)
}

func createTenant(c *call) (any, error) {
	var req v1.TenantCreate
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	return conv(toTenant)(c.h.m.CreateTenant(c.r.Context(), c.p, req))
}

func getTenant(c *call) (any, error) {
	return conv(toTenant)(c.h.m.GetTenant(c.r.Context(), c.p, c.param("tenant")))
}

func listRoles(c *call) (any, error) {
	return listWith(c, func(o store.ListOptions) (store.Page[store.RoleAssignment], error) {
		return c.h.m.ListRoles(c.r.Context(), c.p, c.param("tenant"), o)
	}, toRole)
}

func addRole(c *call) (any, error) {
	var req v1.RoleAdd
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	return conv(toRole)(c.h.m.AddRole(c.r.Context(), c.p, c.param("tenant"), req))
}

func deleteRole(c *call) (any, error) {
	return nil, c.h.m.DeleteRole(c.r.Context(), c.p, c.param("tenant"), c.param("user"))
}

func createUserToken(c *call) (any, error) {
	var req v1.TokenCreate
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	return conv(toIssuedToken)(c.h.m.CreateTokenFor(c.r.Context(), c.p, c.param("tenant"), c.param("user"), req))
}

func listTokens(c *call) (any, error) {
	return listWith(c, func(o store.ListOptions) (store.Page[store.Token], error) {
		return c.h.m.ListOwnTokens(c.r.Context(), c.p, o)
	}, toToken)
}

func createToken(c *call) (any, error) {
	var req v1.TokenCreate
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	return conv(toIssuedToken)(c.h.m.CreateOwnToken(c.r.Context(), c.p, req))
}

func revokeToken(c *call) (any, error) {
	return nil, c.h.m.RevokeToken(c.r.Context(), c.p, c.param("token"))
}

func listProducts(c *call) (any, error) {
	f := store.ProductFilter{Name: c.r.URL.Query().Get("name")}
	return listWith(c, func(o store.ListOptions) (store.Page[store.Product], error) {
		return c.h.m.ListProducts(c.r.Context(), c.p, c.param("tenant"), f, o)
	}, toProduct)
}

func createProduct(c *call) (any, error) {
	var req v1.ProductCreate
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	return conv(toProduct)(c.h.m.CreateProduct(c.r.Context(), c.p, c.param("tenant"), req))
}

func getProduct(c *call) (any, error) {
	return conv(toProduct)(c.h.m.GetProduct(c.r.Context(), c.p, c.param("tenant"), c.param("product")))
}

func updateProduct(c *call) (any, error) {
	var req v1.ProductUpdate
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	return conv(toProduct)(c.h.m.UpdateProduct(c.r.Context(), c.p, c.param("tenant"), c.param("product"), req))
}

func deleteProduct(c *call) (any, error) {
	return nil, c.h.m.DeleteProduct(c.r.Context(), c.p, c.param("tenant"), c.param("product"))
}

func listProductGroups(c *call) (any, error) {
	f := store.DeviceGroupFilter{ProductID: c.param("product"), Name: c.r.URL.Query().Get("name")}
	return listWith(c, func(o store.ListOptions) (store.Page[store.DeviceGroup], error) {
		return c.h.m.ListDeviceGroups(c.r.Context(), c.p, c.param("tenant"), f, o)
	}, toGroup)
}

func createGroup(c *call) (any, error) {
	var req v1.DeviceGroupCreate
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	return conv(toGroup)(c.h.m.CreateDeviceGroup(c.r.Context(), c.p, c.param("tenant"), c.param("product"), req))
}

func createDefaultGroups(c *call) (any, error) {
	created, existing, err := c.h.m.CreateDefaultGroups(c.r.Context(), c.p, c.param("tenant"), c.param("product"))
	if err != nil {
		return nil, err
	}
	return v1.DefaultDeviceGroups{Created: toGroups(created), Existing: toGroups(existing)}, nil
}

func listGroups(c *call) (any, error) {
	q := c.r.URL.Query()
	f := store.DeviceGroupFilter{ProductID: q.Get("product_id"), Name: q.Get("name")}
	return listWith(c, func(o store.ListOptions) (store.Page[store.DeviceGroup], error) {
		return c.h.m.ListDeviceGroups(c.r.Context(), c.p, c.param("tenant"), f, o)
	}, toGroup)
}

func getGroup(c *call) (any, error) {
	return conv(toGroup)(c.h.m.GetDeviceGroup(c.r.Context(), c.p, c.param("tenant"), c.param("group")))
}

func updateGroup(c *call) (any, error) {
	var req v1.DeviceGroupUpdate
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	return conv(toGroup)(c.h.m.UpdateDeviceGroup(c.r.Context(), c.p, c.param("tenant"), c.param("group"), req))
}

func deleteGroup(c *call) (any, error) {
	return nil, c.h.m.DeleteDeviceGroup(c.r.Context(), c.p, c.param("tenant"), c.param("group"))
}

func (c *call) deviceFilter() (store.DeviceFilter, error) {
	q := c.r.URL.Query()
	f := store.DeviceFilter{ProductID: q.Get("product_id"), DeviceGroupID: q.Get("device_group_id")}
	var err error
	f.Unassigned, err = c.queryBool("unassigned")
	return f, err
}

func listDevices(c *call) (any, error) {
	f, err := c.deviceFilter()
	if err != nil {
		return nil, err
	}
	return listWith(c, func(o store.ListOptions) (store.Page[store.Device], error) {
		return c.h.m.ListDevices(c.r.Context(), c.p, c.param("tenant"), f, o)
	}, toDevice)
}

func countDevices(c *call) (any, error) {
	f, err := c.deviceFilter()
	if err != nil {
		return nil, err
	}
	n, err := c.h.m.CountDevices(c.r.Context(), c.p, c.param("tenant"), f)
	if err != nil {
		return nil, err
	}
	return v1.DeviceCount{Count: n}, nil
}

func claimDevice(c *call) (any, error) {
	var req v1.DeviceClaim
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	if len(req.Enrollment) == 0 {
		return nil, problem.Invalid(v1.ErrorDetail{Field: "enrollment", Message: "is required"})
	}
	out, err := c.h.m.Claim(c.r.Context(), c.p, c.param("tenant"), []json.RawMessage{req.Enrollment}, req.DeviceGroupID)
	if err != nil {
		return nil, err
	}
	oc := out[0]
	switch oc.Result {
	case v1.ClaimFailed:
		return nil, oc.Err
	case v1.ClaimAlreadyClaimed:
		c.status = http.StatusOK
	}
	return toDevice(oc.Device), nil
}

func bulkClaim(c *call) (any, error) {
	var req v1.DeviceBulkClaim
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	out, err := c.h.m.Claim(c.r.Context(), c.p, c.param("tenant"), req.Enrollments, req.DeviceGroupID)
	if err != nil {
		return nil, err
	}
	res := v1.DeviceBulkClaimResult{Results: make([]v1.ClaimResult, len(out))}
	for i, oc := range out {
		r := v1.ClaimResult{Index: oc.Index, DeviceID: oc.DeviceID, Result: oc.Result}
		switch oc.Result {
		case v1.ClaimClaimed:
			res.Claimed++
		case v1.ClaimAlreadyClaimed:
			res.Already++
		case v1.ClaimFailed:
			res.Failed++
			_, body, _ := problem.Describe(oc.Err)
			r.Error = &body
		}
		if oc.Result != v1.ClaimFailed {
			d := toDevice(oc.Device)
			r.Device = &d
		}
		res.Results[i] = r
	}
	return res, nil
}

func getDevice(c *call) (any, error) {
	d, err := c.h.m.GetDevice(c.r.Context(), c.p, c.param("tenant"), c.param("device"))
	if err != nil {
		return nil, err
	}
	return deviceStatus(c, toDevice(d))
}

func updateDevice(c *call) (any, error) {
	var req v1.DeviceUpdate
	if err := decode(c, &req); err != nil {
		return nil, err
	}
	if req.DeviceGroupID == nil {
		return nil, problem.Invalid(v1.ErrorDetail{Field: "device_group_id", Message: "is required (\"\" leaves the device in no group)"})
	}
	return conv(toDevice)(c.h.m.MoveDevice(c.r.Context(), c.p, c.param("tenant"), c.param("device"), *req.DeviceGroupID))
}

func (c *call) auditFilter() (store.AuditFilter, error) {
	q := c.r.URL.Query()
	f := store.AuditFilter{ActorName: q.Get("actor"), Action: q.Get("action"), ResourceType: q.Get("resource_type"),
		ResourceID: q.Get("resource_id"), Result: q.Get("result")}
	if f.Result != "" && f.Result != store.AuditSuccess && f.Result != store.AuditFailure {
		return f, problem.New(v1.CodeBadRequest, "query parameter result must be success or failure, not %q", f.Result)
	}
	var err error
	if f.Since, err = c.queryTime("since"); err != nil {
		return f, err
	}
	f.Until, err = c.queryTime("until")
	return f, err
}

// auditListOptions reads the paging parameters of an audit list, whose cursor is a sequence
// number.
func (c *call) auditListOptions() (store.ListOptions, error) {
	opt, err := c.listOptions()
	if err != nil {
		return opt, err
	}
	if opt.After != "" {
		if n, err := strconv.ParseInt(opt.After, 10, 64); err != nil || n <= 0 {
			return opt, problem.New(v1.CodeBadRequest, "page_token is not a token this server issued")
		}
	}
	return opt, nil
}

func listAudit(c *call) (any, error) {
	opt, err := c.auditListOptions()
	if err != nil {
		return nil, err
	}
	f, err := c.auditFilter()
	if err != nil {
		return nil, err
	}
	page, err := c.h.m.ListAudit(c.r.Context(), c.p, c.param("tenant"), f, opt)
	if err != nil {
		return nil, err
	}
	return list(page, toAudit), nil
}

func listServiceAudit(c *call) (any, error) {
	opt, err := c.auditListOptions()
	if err != nil {
		return nil, err
	}
	f, err := c.auditFilter()
	if err != nil {
		return nil, err
	}
	page, err := c.h.m.ListServiceAudit(c.r.Context(), c.p, f, opt)
	if err != nil {
		return nil, err
	}
	return list(page, toAudit), nil
}

// Endpoint describes one endpoint of the API, for tests and documentation.
type Endpoint struct {
	Method, Path, Op string
	// Action is the permission the endpoint requires ("" for any authenticated caller acting on
	// itself).
	Action authz.Action
	Public bool // no token
	Device bool // mutual TLS with a device certificate
	List   bool
	Body   bool // takes a JSON body
}

// Endpoints lists every endpoint of the API.
func Endpoints() []Endpoint {
	var out []Endpoint
	for _, rt := range routes() {
		out = append(out, Endpoint{Method: rt.method, Path: rt.path, Op: rt.op, Action: rt.action, Public: rt.public, Device: rt.device, List: rt.list, Body: rt.in != nil})
	}
	return out
}
