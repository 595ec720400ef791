package cli

import (
	"context"
	"fmt"
	"strings"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/client"
	"github.com/rampart-iot/rampart/internal/ids"
)

// lookup is what name-or-ID resolution needs from the API; *client.Client implements it.
type lookup interface {
	GetProduct(ctx context.Context, tenant, product string) (*v1.Product, error)
	AllProducts(ctx context.Context, tenant string, o client.ProductListOptions) ([]v1.Product, error)
	GetDeviceGroup(ctx context.Context, tenant, group string) (*v1.DeviceGroup, error)
	AllDeviceGroups(ctx context.Context, tenant string, o client.DeviceGroupListOptions) ([]v1.DeviceGroup, error)
}

// notFoundError is a name or ID that matches nothing.
type notFoundError struct{ msg string }

func (e *notFoundError) Error() string { return e.msg }

// resolveProduct finds a product by ID or by name, case-insensitively. Something shaped like a
// UUID is tried as an ID first, then as a name.
func resolveProduct(ctx context.Context, l lookup, tenant, ref string) (*v1.Product, error) {
	ref = strings.TrimSpace(ref)
	if ref == "" {
		return nil, &notFoundError{"empty product name"}
	}
	if ids.LooksLikeUUID(ref) {
		p, err := l.GetProduct(ctx, tenant, strings.ToLower(ref))
		if err == nil || !client.HasCode(err, v1.CodeNotFound) {
			return p, err
		}
	}
	ps, err := l.AllProducts(ctx, tenant, client.ProductListOptions{Name: ref})
	if err != nil {
		return nil, err
	}
	var found []v1.Product
	for _, p := range ps {
		if strings.EqualFold(p.Name, ref) {
			found = append(found, p)
		}
	}
	switch len(found) {
	case 0:
		return nil, &notFoundError{fmt.Sprintf("product %q not found", ref)}
	case 1:
		return &found[0], nil
	}
	return nil, fmt.Errorf("%d products are named %q; use the product's ID", len(found), ref)
}

// resolveGroup finds a device group by ID or by name, case-insensitively, within product if it
// is not nil and across the tenant's products otherwise. A name that several products use is an
// error that asks for --product.
func resolveGroup(ctx context.Context, l lookup, tenant, ref string, product *v1.Product) (*v1.DeviceGroup, error) {
	ref = strings.TrimSpace(ref)
	if ref == "" {
		return nil, &notFoundError{"empty device group name"}
	}
	if ids.LooksLikeUUID(ref) {
		g, err := l.GetDeviceGroup(ctx, tenant, strings.ToLower(ref))
		switch {
		case err == nil && product != nil && g.ProductID != product.ID:
			return nil, &notFoundError{fmt.Sprintf("device group %s is not in product %q", g.ID, product.Name)}
		case err == nil:
			return g, nil
		case !client.HasCode(err, v1.CodeNotFound):
			return nil, err
		}
	}
	o := client.DeviceGroupListOptions{Name: ref}
	if product != nil {
		o.ProductID = product.ID
	}
	gs, err := l.AllDeviceGroups(ctx, tenant, o)
	if err != nil {
		return nil, err
	}
	var found []v1.DeviceGroup
	for _, g := range gs {
		if strings.EqualFold(g.Name, ref) && (product == nil || g.ProductID == product.ID) {
			found = append(found, g)
		}
	}
	switch {
	case len(found) == 1:
		return &found[0], nil
	case len(found) > 1 && product == nil:
		return nil, fmt.Errorf("device group %q exists in several products; pass --product", ref)
	case len(found) > 1:
		return nil, fmt.Errorf("%d device groups of product %q are named %q; use the group's ID", len(found), product.Name, ref)
	case product != nil:
		return nil, &notFoundError{fmt.Sprintf("device group %q not found in product %q", ref, product.Name)}
	}
	return nil, &notFoundError{fmt.Sprintf("device group %q not found", ref)}
}

// resolveProductAndGroup resolves --product (optional) and then the group within it.
func resolveProductAndGroup(ctx context.Context, l lookup, tenant, productRef, groupRef string) (*v1.Product, *v1.DeviceGroup, error) {
	var p *v1.Product
	if productRef != "" {
		var err error
		if p, err = resolveProduct(ctx, l, tenant, productRef); err != nil {
			return nil, nil, err
		}
	}
	g, err := resolveGroup(ctx, l, tenant, groupRef, p)
	if err != nil {
		return nil, nil, err
	}
	return p, g, nil
}

// names maps the IDs of a tenant's products and device groups to their names, for tables.
type names struct {
	products map[string]string
	groups   map[string]string
}

func loadNames(ctx context.Context, l lookup, tenant string) (*names, error) {
	n := &names{products: map[string]string{}, groups: map[string]string{}}
	ps, err := l.AllProducts(ctx, tenant, client.ProductListOptions{})
	if err != nil {
		return nil, err
	}
	for _, p := range ps {
		n.products[p.ID] = p.Name
	}
	gs, err := l.AllDeviceGroups(ctx, tenant, client.DeviceGroupListOptions{})
	if err != nil {
		return nil, err
	}
	for _, g := range gs {
		n.groups[g.ID] = g.Name
	}
	return n, nil
}

func (n *names) product(id string) string { return nameOr(n.products, id) }
func (n *names) group(id string) string   { return nameOr(n.groups, id) }

func nameOr(m map[string]string, id string) string {
	if name, ok := m[id]; ok {
		return name
	}
	return id
}
