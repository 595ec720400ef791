package console

import (
	"net/http"
	"net/url"
	"strconv"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/authz"
	"github.com/rampart-iot/rampart/internal/store"
)

// The forms that create, change and delete products and device groups. Each calls the same
// manage method as the API (which authorizes, validates and audits it, in one transaction);
// a refusal the user can act on is shown on the page again with what was typed.

// Inputs of the forms, named as the API's fields so that manage's problems land next to them.
var (
	productInputs  = []string{"name", "description"}
	groupInputs    = []string{"name", "description", "os_feed", "update_policy", "check_in_interval_seconds", "cert_lifetime_seconds"}
	osFeeds        = []string{string(store.OSFeedRetail), string(store.OSFeedRetailEval)}
	updatePolicies = []string{string(store.UpdateAll), string(store.No3rdPartyAppUpdates)}
)

type productView struct {
	Product                              store.Product
	Groups                               []store.DeviceGroup
	MoreGroups                           bool
	CanUpdate, CanDelete, CanCreateGroup bool
	Edit, NewGroup, Delete               *form
	Feeds, Policies                      []string
}

// product shows a product, its groups and, for roles that may use them, the forms that
// change or delete it and add a group to it.
func (h *Handler) product(c *call) error { return h.showProduct(c, http.StatusOK, nil, nil, nil) }

func (h *Handler) showProduct(c *call, status int, edit, newGroup, del *form) error {
	ctx := c.r.Context()
	p, err := h.m.GetProduct(ctx, c.p, c.tenant.ID, c.r.PathValue("product"))
	if err != nil {
		return err
	}
	groups, err := h.m.ListDeviceGroups(ctx, c.p, c.tenant.ID, store.DeviceGroupFilter{ProductID: p.ID}, store.ListOptions{Limit: maxFilterGroups})
	if err != nil {
		return err
	}
	if edit == nil {
		edit = &form{Values: map[string]string{"name": p.Name, "description": p.Description}}
	}
	if newGroup == nil {
		newGroup = &form{Values: map[string]string{"os_feed": string(store.OSFeedRetail), "update_policy": string(store.UpdateAll)}}
	}
	v := productView{Product: p, Groups: groups.Items, MoreGroups: groups.Next != "",
		CanUpdate: c.can(authz.ProductUpdate), CanDelete: c.can(authz.ProductDelete), CanCreateGroup: c.can(authz.DeviceGroupCreate),
		Edit: edit, NewGroup: newGroup, Delete: del, Feeds: osFeeds, Policies: updatePolicies}
	vw := h.view(c, "Product "+p.Name, "products")
	vw.Data = v
	h.render(c.w, c.r, status, "product", vw)
	return nil
}

// createProduct makes a product (with the five default groups unless unticked) and opens it.
func (h *Handler) createProduct(c *call) error {
	f := newForm(c, "name", "description", "default_groups")
	p, err := h.m.CreateProduct(c.r.Context(), c.p, c.tenant.ID, v1.ProductCreate{Name: f.V("name"), Description: f.V("description"),
		NoDefaultDeviceGroups: f.V("default_groups") != "on"})
	if err != nil {
		status, err := f.refuse(err)
		if err != nil {
			return err
		}
		return h.showProducts(c, status, f)
	}
	c.redirect(c.tenantPath("products/" + url.PathEscape(p.ID)))
	return nil
}

// updateProduct changes a product's name and description, sending manage only what changed.
func (h *Handler) updateProduct(c *call) error {
	ctx := c.r.Context()
	f := newForm(c, productInputs...)
	id := c.r.PathValue("product")
	cur, err := h.m.GetProduct(ctx, c.p, c.tenant.ID, id)
	if err != nil {
		return err
	}
	var req v1.ProductUpdate
	if n := f.V("name"); n != cur.Name {
		req.Name = &n
	}
	if d := f.V("description"); d != cur.Description {
		req.Description = &d
	}
	if _, err := h.m.UpdateProduct(ctx, c.p, c.tenant.ID, id, req); err != nil {
		status, err := f.refuse(err)
		if err != nil {
			return err
		}
		return h.showProduct(c, status, f, nil, nil)
	}
	c.redirect(c.tenantPath("products/" + url.PathEscape(id)))
	return nil
}

// deleteProduct deletes a product and its groups; manage refuses while a group holds a device,
// which is shown on the product's page.
func (h *Handler) deleteProduct(c *call) error {
	f := &form{Values: map[string]string{}}
	if err := h.m.DeleteProduct(c.r.Context(), c.p, c.tenant.ID, c.r.PathValue("product")); err != nil {
		status, err := f.refuse(err)
		if err != nil {
			return err
		}
		return h.showProduct(c, status, nil, nil, f)
	}
	c.redirect(c.tenantPath("products"))
	return nil
}

// groupRequest reads a device group form into the fields manage takes.
type groupRequest struct {
	name, description, feed, policy string
	interval, lifetime              *int64
}

func readGroupForm(f *form) groupRequest {
	return groupRequest{name: f.V("name"), description: f.V("description"), feed: f.V("os_feed"), policy: f.V("update_policy"),
		interval: f.int64Field("check_in_interval_seconds"), lifetime: f.int64Field("cert_lifetime_seconds")}
}

// createGroup adds a device group to a product and shows the product again.
func (h *Handler) createGroup(c *call) error {
	f := newForm(c, groupInputs...)
	g := readGroupForm(f)
	if bad, err := f.typed(c, authz.DeviceGroupCreate); err != nil {
		return err
	} else if bad {
		return h.showProduct(c, http.StatusUnprocessableEntity, nil, f, nil)
	}
	req := v1.DeviceGroupCreate{Name: g.name, Description: g.description, OSFeed: g.feed, UpdatePolicy: g.policy}
	if g.interval != nil {
		req.CheckInIntervalSeconds = *g.interval
	}
	if g.lifetime != nil {
		req.CertLifetimeSeconds = *g.lifetime
	}
	if _, err := h.m.CreateDeviceGroup(c.r.Context(), c.p, c.tenant.ID, c.r.PathValue("product"), req); err != nil {
		status, err := f.refuse(err)
		if err != nil {
			return err
		}
		return h.showProduct(c, status, nil, f, nil)
	}
	c.redirect(c.tenantPath("products/"+url.PathEscape(c.r.PathValue("product"))) + "#groups-h")
	return nil
}

type groupView struct {
	Group                store.DeviceGroup
	Product              store.Product
	CanUpdate, CanDelete bool
	Edit, Delete         *form
	Feeds, Policies      []string
	DevicesURL           string
}

// group shows a device group with the forms that change and delete it.
func (h *Handler) group(c *call) error { return h.showGroup(c, http.StatusOK, nil, nil) }

func (h *Handler) showGroup(c *call, status int, edit, del *form) error {
	ctx := c.r.Context()
	g, err := h.m.GetDeviceGroup(ctx, c.p, c.tenant.ID, c.r.PathValue("group"))
	if err != nil {
		return err
	}
	p, err := h.m.GetProduct(ctx, c.p, c.tenant.ID, g.ProductID)
	if err != nil {
		return err
	}
	if edit == nil {
		edit = &form{Values: groupValues(g)}
	}
	v := groupView{Group: g, Product: p, CanUpdate: c.can(authz.DeviceGroupUpdate), CanDelete: c.can(authz.DeviceGroupDelete),
		Edit: edit, Delete: del, Feeds: osFeeds, Policies: updatePolicies,
		DevicesURL: c.tenantPath("devices") + "?" + url.Values{"group": {g.ID}}.Encode()}
	vw := h.view(c, "Device group "+g.Name, "products")
	vw.Data = v
	h.render(c.w, c.r, status, "group", vw)
	return nil
}

// groupValues are a group's fields as its form shows them.
func groupValues(g store.DeviceGroup) map[string]string {
	v := map[string]string{"name": g.Name, "description": g.Description, "os_feed": string(g.OSFeed), "update_policy": string(g.UpdatePolicy),
		"check_in_interval_seconds": seconds(g.CheckInInterval), "cert_lifetime_seconds": ""}
	if g.CertLifetime != 0 {
		v["cert_lifetime_seconds"] = seconds(g.CertLifetime)
	}
	return v
}

func seconds(d time.Duration) string { return strconv.FormatInt(int64(d/time.Second), 10) }

// updateGroup changes a group, sending manage only the fields that differ from the group as
// it is (an empty certificate lifetime leaves it as it is).
func (h *Handler) updateGroup(c *call) error {
	ctx := c.r.Context()
	f := newForm(c, groupInputs...)
	in := readGroupForm(f)
	if bad, err := f.typed(c, authz.DeviceGroupUpdate); err != nil {
		return err
	} else if bad {
		return h.showGroup(c, http.StatusUnprocessableEntity, f, nil)
	}
	id := c.r.PathValue("group")
	cur, err := h.m.GetDeviceGroup(ctx, c.p, c.tenant.ID, id)
	if err != nil {
		return err
	}
	was := groupValues(cur)
	var req v1.DeviceGroupUpdate
	str := func(name, v string) *string {
		if v == was[name] {
			return nil
		}
		return &v
	}
	req.Name, req.Description = str("name", in.name), str("description", in.description)
	req.OSFeed, req.UpdatePolicy = str("os_feed", in.feed), str("update_policy", in.policy)
	if in.interval != nil && strconv.FormatInt(*in.interval, 10) != was["check_in_interval_seconds"] {
		req.CheckInIntervalSeconds = in.interval
	}
	if in.lifetime != nil && strconv.FormatInt(*in.lifetime, 10) != was["cert_lifetime_seconds"] {
		req.CertLifetimeSeconds = in.lifetime
	}
	if _, err := h.m.UpdateDeviceGroup(ctx, c.p, c.tenant.ID, id, req); err != nil {
		status, err := f.refuse(err)
		if err != nil {
			return err
		}
		return h.showGroup(c, status, f, nil)
	}
	c.redirect(c.tenantPath("groups/" + url.PathEscape(id)))
	return nil
}

// deleteGroup deletes an empty group; manage refuses one that holds devices or has
// deployments, which is shown on the group's page.
func (h *Handler) deleteGroup(c *call) error {
	ctx := c.r.Context()
	id := c.r.PathValue("group")
	g, err := h.m.GetDeviceGroup(ctx, c.p, c.tenant.ID, id)
	if err != nil {
		return err
	}
	f := &form{Values: map[string]string{}}
	if err := h.m.DeleteDeviceGroup(ctx, c.p, c.tenant.ID, id); err != nil {
		status, err := f.refuse(err)
		if err != nil {
			return err
		}
		return h.showGroup(c, status, nil, f)
	}
	c.redirect(c.tenantPath("products/" + url.PathEscape(g.ProductID)))
	return nil
}
