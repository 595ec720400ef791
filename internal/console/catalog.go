package console

import (
	"errors"
	"net/http"
	"net/url"
	"slices"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/authz"
	"github.com/rampart-iot/rampart/internal/ids"
	"github.com/rampart-iot/rampart/internal/problem"
	"github.com/rampart-iot/rampart/internal/store"
)

// Bounds of the catalog pages.
const (
	productsPage    = 100
	productGroups   = 1000 // groups read to list under the page's products
	imagesPage      = 50
	deploymentsPage = 50
	imageLookups    = 200 // images looked up by ID to name a page of deployments
	formImages      = 500 // images offered by the new-deployment form
)

type productRow struct {
	Product store.Product
	Groups  []store.DeviceGroup
}

type productsView struct {
	Products   []productRow
	NextURL    string
	MoreGroups bool
	CanCreate  bool
	New        *form // the new-product form
}

// products lists products and their device groups, with the new-product form for roles that
// may use it.
func (h *Handler) products(c *call) error {
	return h.showProducts(c, http.StatusOK, &form{Values: map[string]string{"default_groups": "on"}})
}

func (h *Handler) showProducts(c *call, status int, newProduct *form) error {
	ctx := c.r.Context()
	after, err := c.query("after")
	if err != nil {
		return err
	}
	page, err := h.m.ListProducts(ctx, c.p, c.tenant.ID, store.ProductFilter{}, store.ListOptions{After: after, Limit: productsPage})
	if err != nil {
		return err
	}
	groups, err := h.m.ListDeviceGroups(ctx, c.p, c.tenant.ID, store.DeviceGroupFilter{}, store.ListOptions{Limit: productGroups})
	if err != nil {
		return err
	}
	byProduct := map[string][]store.DeviceGroup{}
	for _, g := range groups.Items {
		byProduct[g.ProductID] = append(byProduct[g.ProductID], g)
	}
	v := productsView{MoreGroups: groups.Next != "", CanCreate: c.can(authz.ProductCreate), New: newProduct}
	for _, p := range page.Items {
		v.Products = append(v.Products, productRow{Product: p, Groups: byProduct[p.ID]})
	}
	if page.Next != "" {
		v.NextURL = c.tenantPath("products") + "?" + url.Values{"after": {page.Next}}.Encode()
	}
	vw := h.view(c, "Products and device groups", "products")
	vw.Data = v
	h.render(c.w, c.r, status, "products", vw)
	return nil
}

type imagesView struct {
	Images  []store.Image
	NextURL string
}

// images lists the tenant's images.
func (h *Handler) images(c *call) error {
	after, err := c.query("after")
	if err != nil {
		return err
	}
	page, err := h.m.ListImages(c.r.Context(), c.p, c.tenant.ID, store.ImageFilter{}, store.ListOptions{After: after, Limit: imagesPage})
	if err != nil {
		return err
	}
	v := imagesView{Images: page.Items}
	if page.Next != "" {
		v.NextURL = c.tenantPath("images") + "?" + url.Values{"after": {page.Next}}.Encode()
	}
	vw := h.view(c, "Images", "images")
	vw.Data = v
	h.render(c.w, c.r, http.StatusOK, "images", vw)
	return nil
}

type deploymentRow struct {
	Deployment store.Deployment
	Current    bool
	Group      string
	Images     []imageRef
}

type imageRef struct {
	ID    string
	Label string // name and version; "" when not looked up
}

type deploymentsView struct {
	Group      string
	Groups     []store.DeviceGroup
	Rows       []deploymentRow
	NextURL    string
	CanCreate  bool
	NewURL     string
	GroupNames map[string]string
}

// deployments lists deployments newest first, optionally of one group, saying which are
// their group's current one.
func (h *Handler) deployments(c *call) error {
	ctx := c.r.Context()
	after, err := c.query("after")
	if err != nil {
		return err
	}
	group, err := c.query("group")
	if err != nil {
		return err
	}
	if group != "" && !ids.Valid(group) {
		return problem.Invalid(v1.ErrorDetail{Field: "group", Message: "is not a device group ID"})
	}
	groups, err := h.m.ListDeviceGroups(ctx, c.p, c.tenant.ID, store.DeviceGroupFilter{}, store.ListOptions{Limit: maxFilterGroups})
	if err != nil {
		return err
	}
	page, current, err := h.m.ListDeployments(ctx, c.p, c.tenant.ID, store.DeploymentFilter{DeviceGroupID: group}, store.ListOptions{After: after, Limit: deploymentsPage})
	if err != nil {
		return err
	}
	v := deploymentsView{Group: group, Groups: groups.Items, GroupNames: groupNames(groups.Items), CanCreate: c.can(authz.DeploymentCreate)}
	v.NewURL = c.tenantPath("deployments/new")
	if group != "" {
		v.NewURL += "?" + url.Values{"group": {group}}.Encode()
	}
	labels := map[string]string{}
	lookups := 0
	for _, d := range page.Items {
		row := deploymentRow{Deployment: d, Current: current[d.ID], Group: v.GroupNames[d.DeviceGroupID]}
		for _, id := range d.ImageIDs {
			label, ok := labels[id]
			if !ok && lookups < imageLookups {
				lookups++
				img, err := h.m.GetImage(ctx, c.p, c.tenant.ID, id)
				switch {
				case err == nil:
					label = img.Name + " " + img.Version
				case !errors.Is(err, store.ErrNotFound):
					return err
				}
				labels[id] = label
			}
			row.Images = append(row.Images, imageRef{ID: id, Label: label})
		}
		v.Rows = append(v.Rows, row)
	}
	if page.Next != "" {
		q := url.Values{"after": {page.Next}}
		if group != "" {
			q.Set("group", group)
		}
		v.NextURL = c.tenantPath("deployments") + "?" + q.Encode()
	}
	vw := h.view(c, "Deployments", "deployments")
	vw.Data = v
	h.render(c.w, c.r, http.StatusOK, "deployments", vw)
	return nil
}

type deploymentForm struct {
	Groups     []store.DeviceGroup
	Images     []store.Image
	MoreImages bool
	Group      string
	Selected   map[string]bool
	Policy     policyForm
	Error      string
	Details    []v1.ErrorDetail
	Fields     map[string][]string // problems by the form input they belong to
	Action     string
}

// newDeployment shows the form that makes a group's new deployment from existing images.
func (h *Handler) newDeployment(c *call) error {
	group, err := c.query("group")
	if err != nil {
		return err
	}
	return h.showDeploymentForm(c, http.StatusOK, deploymentForm{Group: group})
}

func (h *Handler) showDeploymentForm(c *call, status int, f deploymentForm) error {
	if !c.can(authz.DeploymentCreate) {
		return problem.Forbidden(c.tenant.Role, string(authz.DeploymentCreate))
	}
	ctx := c.r.Context()
	groups, err := h.m.ListDeviceGroups(ctx, c.p, c.tenant.ID, store.DeviceGroupFilter{}, store.ListOptions{Limit: maxFilterGroups})
	if err != nil {
		return err
	}
	images, err := h.m.ListImages(ctx, c.p, c.tenant.ID, store.ImageFilter{}, store.ListOptions{Limit: formImages})
	if err != nil {
		return err
	}
	f.Groups, f.Images, f.MoreImages = groups.Items, images.Items, images.Next != ""
	f.Action = c.tenantPath("deployments")
	if f.Selected == nil {
		f.Selected = map[string]bool{}
	}
	vw := h.view(c, "New deployment", "deployments")
	vw.Data = f
	h.render(c.w, c.r, status, "deployment_new", vw)
	return nil
}

// createDeployment makes the deployment (POST, CSRF-checked; manage authorizes, validates and
// audits it). A request the user can fix is shown again with the problems in place.
func (h *Handler) createDeployment(c *call) error {
	group := c.r.PostForm.Get("group")
	images := c.r.PostForm["image"]
	f := deploymentForm{Group: group, Selected: map[string]bool{}, Policy: readPolicyForm(c.r.PostForm)}
	for _, id := range images {
		f.Selected[id] = true
	}
	policy, typed := f.Policy.policy()
	var err error
	var d store.Deployment
	switch {
	case group == "":
		err = problem.Invalid(append([]v1.ErrorDetail{{Field: "group", Message: "choose a device group"}}, typed...)...)
	case len(typed) > 0:
		err = problem.Invalid(typed...)
	default:
		d, err = h.m.CreateDeployment(c.r.Context(), c.p, c.tenant.ID, group, v1.DeploymentCreate{ImageIDs: slices.Clip(images), Rollout: policy})
	}
	if err == nil {
		if policy != nil {
			c.redirect(c.tenantPath("deployments/" + url.PathEscape(d.ID)))
			return nil
		}
		c.redirect(c.tenantPath("deployments") + "?" + url.Values{"group": {group}}.Encode())
		return nil
	}
	status, body, internal := problem.Describe(err)
	if internal || status == http.StatusForbidden || status == http.StatusUnauthorized {
		return err
	}
	f.Error, f.Details = body.Message, body.Details
	f.Fields = map[string][]string{}
	for _, dt := range body.Details {
		if in := fieldInput(dt.Field); in != "" {
			f.Fields[in] = append(f.Fields[in], dt.Message)
		}
	}
	return h.showDeploymentForm(c, status, f)
}
