package cli

import (
	"context"
	"errors"
	"strings"
	"testing"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/client"
)

// fakeLookup is an in-memory tenant whose name filters behave as the API's: exact,
// case-insensitive. A missing ID is a not_found APIError.
type fakeLookup struct {
	products []v1.Product
	groups   []v1.DeviceGroup
	calls    []string
}

func (f *fakeLookup) GetProduct(_ context.Context, _, id string) (*v1.Product, error) {
	f.calls = append(f.calls, "GetProduct "+id)
	for i := range f.products {
		if f.products[i].ID == id {
			return &f.products[i], nil
		}
	}
	return nil, &client.APIError{Status: 404, Body: v1.Error{Code: v1.CodeNotFound, Message: "product not found"}}
}

func (f *fakeLookup) AllProducts(_ context.Context, _ string, o client.ProductListOptions) ([]v1.Product, error) {
	f.calls = append(f.calls, "AllProducts "+o.Name)
	var ps []v1.Product
	for _, p := range f.products {
		if o.Name == "" || strings.EqualFold(p.Name, o.Name) {
			ps = append(ps, p)
		}
	}
	return ps, nil
}

func (f *fakeLookup) GetDeviceGroup(_ context.Context, _, id string) (*v1.DeviceGroup, error) {
	f.calls = append(f.calls, "GetDeviceGroup "+id)
	for i := range f.groups {
		if f.groups[i].ID == id {
			return &f.groups[i], nil
		}
	}
	return nil, &client.APIError{Status: 404, Body: v1.Error{Code: v1.CodeNotFound, Message: "device group not found"}}
}

func (f *fakeLookup) AllDeviceGroups(_ context.Context, _ string, o client.DeviceGroupListOptions) ([]v1.DeviceGroup, error) {
	f.calls = append(f.calls, "AllDeviceGroups "+o.ProductID+" "+o.Name)
	var gs []v1.DeviceGroup
	for _, g := range f.groups {
		if (o.Name == "" || strings.EqualFold(g.Name, o.Name)) && (o.ProductID == "" || g.ProductID == o.ProductID) {
			gs = append(gs, g)
		}
	}
	return gs, nil
}

const (
	idCoffee = "01900000-0000-7000-8000-000000000001"
	idKettle = "01900000-0000-7000-8000-000000000002"
	idCDev   = "01900000-0000-7000-8000-0000000000c1"
	idCProd  = "01900000-0000-7000-8000-0000000000c2"
	idKProd  = "01900000-0000-7000-8000-0000000000d2"
	idKOnly  = "01900000-0000-7000-8000-0000000000d3"
	idGone   = "01900000-0000-7000-8000-0000000000ff"
)

func newFakeLookup() *fakeLookup {
	return &fakeLookup{
		products: []v1.Product{{ID: idCoffee, Name: "Coffee Maker"}, {ID: idKettle, Name: "Kettle"}},
		groups: []v1.DeviceGroup{
			{ID: idCDev, ProductID: idCoffee, Name: "Development"},
			{ID: idCProd, ProductID: idCoffee, Name: "Production"},
			{ID: idKProd, ProductID: idKettle, Name: "Production"},
			{ID: idKOnly, ProductID: idKettle, Name: "Kettle Lab"},
		},
	}
}

func TestResolveProduct(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		ref, wantID, wantErr string
	}{
		{ref: "Coffee Maker", wantID: idCoffee},
		{ref: "coffee maker", wantID: idCoffee},
		{ref: idKettle, wantID: idKettle},
		{ref: strings.ToUpper(idKettle), wantID: idKettle},
		{ref: "Toaster", wantErr: `product "Toaster" not found`},
		{ref: idGone, wantErr: `product "` + idGone + `" not found`},
		{ref: " ", wantErr: "empty product name"},
	}
	for _, tt := range tests {
		p, err := resolveProduct(ctx, newFakeLookup(), "t", tt.ref)
		if tt.wantErr != "" {
			var nf *notFoundError
			if err == nil || err.Error() != tt.wantErr || !errors.As(err, &nf) {
				t.Errorf("resolveProduct(%q) err = %v, want %q", tt.ref, err, tt.wantErr)
			}
			continue
		}
		if err != nil || p.ID != tt.wantID {
			t.Errorf("resolveProduct(%q) = %v, %v; want %s", tt.ref, p, err, tt.wantID)
		}
	}
}

func TestResolveGroup(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		product, ref, wantID, wantErr string
	}{
		{ref: "Development", wantID: idCDev},
		{ref: "development", wantID: idCDev},
		{ref: "kettle lab", wantID: idKOnly},
		{ref: "Production", wantErr: `device group "Production" exists in several products; pass --product`},
		{product: "Kettle", ref: "production", wantID: idKProd},
		{product: idCoffee, ref: "Production", wantID: idCProd},
		{product: "Coffee Maker", ref: "Kettle Lab", wantErr: `device group "Kettle Lab" not found in product "Coffee Maker"`},
		{ref: "Nowhere", wantErr: `device group "Nowhere" not found`},
		{ref: idKOnly, wantID: idKOnly},
		{product: "Kettle", ref: idKOnly, wantID: idKOnly},
		{product: "Coffee Maker", ref: idKOnly, wantErr: "device group " + idKOnly + ` is not in product "Coffee Maker"`},
		{ref: idGone, wantErr: `device group "` + idGone + `" not found`},
		{product: "Toaster", ref: "Production", wantErr: `product "Toaster" not found`},
	}
	for _, tt := range tests {
		_, g, err := resolveProductAndGroup(ctx, newFakeLookup(), "t", tt.product, tt.ref)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("resolve(%q, %q) err = %v, want %q", tt.product, tt.ref, err, tt.wantErr)
			}
			continue
		}
		if err != nil || g.ID != tt.wantID {
			t.Errorf("resolve(%q, %q) = %v, %v; want %s", tt.product, tt.ref, g, err, tt.wantID)
		}
	}
}

// TestResolveDoesNotTrustFilter checks that names are matched locally too, so a server that
// ignored ?name= could not make a different product stand in for the one named.
func TestResolveDoesNotTrustFilter(t *testing.T) {
	l := &ignoringFilter{newFakeLookup()}
	p, err := resolveProduct(context.Background(), l, "t", "Kettle")
	if err != nil || p.ID != idKettle {
		t.Errorf("resolveProduct = %v, %v", p, err)
	}
}

type ignoringFilter struct{ *fakeLookup }

func (l *ignoringFilter) AllProducts(ctx context.Context, tenant string, _ client.ProductListOptions) ([]v1.Product, error) {
	return l.fakeLookup.AllProducts(ctx, tenant, client.ProductListOptions{})
}

func TestResolveOtherErrorsPass(t *testing.T) {
	l := &failing{newFakeLookup()}
	_, err := resolveProduct(context.Background(), l, "t", idCoffee)
	if !client.HasCode(err, v1.CodeForbidden) {
		t.Errorf("err = %v, want the forbidden error", err)
	}
}

type failing struct{ *fakeLookup }

func (failing) GetProduct(context.Context, string, string) (*v1.Product, error) {
	return nil, &client.APIError{Status: 403, Body: v1.Error{Code: v1.CodeForbidden, Message: "forbidden: no"}}
}
