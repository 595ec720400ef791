package sqlstore

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/rampart-iot/rampart/internal/store"
)

const productCols = `p.id, p.tenant_id, p.name, p.description, p.created_at, p.updated_at`

func scanProduct(s scanner) (store.Product, error) {
	var x store.Product
	var created, updated sql.NullInt64
	if err := s.Scan(&x.ID, &x.TenantID, &x.Name, &x.Description, &created, &updated); err != nil {
		return store.Product{}, err
	}
	x.CreatedAt, x.UpdatedAt = timeOf(created), timeOf(updated)
	return x, nil
}

// CreateProduct implements store.Tx.
func (t *tx) CreateProduct(ctx context.Context, p store.Product) error {
	if err := t.checkTenant(ctx, p.TenantID); err != nil {
		return fmt.Errorf("create product %q: %w", p.ID, err)
	}
	n, err := t.exec(ctx, `INSERT INTO products (id, tenant_id, name, name_key, description, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		p.ID, p.TenantID, p.Name, nameKey(p.Name), p.Description, timeArg(p.CreatedAt), timeArg(p.UpdatedAt))
	if err != nil {
		return t.dbErr(err, fmt.Sprintf("create product %q", p.ID), store.ErrNotFound)
	}
	if n == 0 {
		return t.insertConflict(ctx, "products", "product", p.ID, fmt.Sprintf("a product named %q already exists", p.Name))
	}
	return nil
}

// GetProduct implements store.Tx.
func (t *tx) GetProduct(ctx context.Context, tenantID, id string) (store.Product, error) {
	x, err := scanProduct(t.queryRow(ctx, `SELECT `+productCols+` FROM products p WHERE p.tenant_id = ? AND p.id = ?`,
		tenantID, id))
	if err != nil {
		return store.Product{}, notFound(err, fmt.Sprintf("product %q", id))
	}
	return x, nil
}

// checkProduct returns ErrNotFound unless the tenant has the product.
func (t *tx) checkProduct(ctx context.Context, tenantID, id string) error {
	ok, err := t.exists(ctx, `SELECT 1 FROM products WHERE tenant_id = ? AND id = ?`, tenantID, id)
	if err != nil {
		return fmt.Errorf("read product %q: %w", id, err)
	}
	if !ok {
		return fmt.Errorf("product %q: %w", id, store.ErrNotFound)
	}
	return nil
}

// UpdateProduct implements store.Tx. It writes Name, Description and UpdatedAt.
func (t *tx) UpdateProduct(ctx context.Context, p store.Product) error {
	if err := t.checkProduct(ctx, p.TenantID, p.ID); err != nil {
		return err
	}
	taken, err := t.exists(ctx, `SELECT 1 FROM products WHERE tenant_id = ? AND name_key = ? AND id <> ?`,
		p.TenantID, nameKey(p.Name), p.ID)
	if err != nil {
		return fmt.Errorf("update product %q: %w", p.ID, err)
	}
	if taken {
		return fmt.Errorf("a product named %q already exists: %w", p.Name, store.ErrConflict)
	}
	_, err = t.exec(ctx, `UPDATE products SET name = ?, name_key = ?, description = ?, updated_at = ?
		WHERE tenant_id = ? AND id = ?`,
		p.Name, nameKey(p.Name), p.Description, timeArg(p.UpdatedAt), p.TenantID, p.ID)
	if err != nil {
		return t.dbErr(err, fmt.Sprintf("update product %q", p.ID), nil)
	}
	return nil
}

// DeleteProduct implements store.Tx. A product none of whose groups holds a device or has a
// deployment is deleted with its groups.
func (t *tx) DeleteProduct(ctx context.Context, tenantID, id string) error {
	if err := t.checkProduct(ctx, tenantID, id); err != nil {
		return err
	}
	busy, err := t.exists(ctx, `SELECT 1 FROM devices d JOIN device_groups g ON g.id = d.device_group_id
		WHERE g.tenant_id = ? AND g.product_id = ? LIMIT 1`, tenantID, id)
	if err != nil {
		return fmt.Errorf("delete product %q: %w", id, err)
	}
	if busy {
		return fmt.Errorf("product %q has device groups that hold devices: %w", id, store.ErrNotEmpty)
	}
	deployed, err := t.exists(ctx, `SELECT 1 FROM deployments d JOIN device_groups g ON g.id = d.device_group_id
		WHERE g.tenant_id = ? AND g.product_id = ? LIMIT 1`, tenantID, id)
	if err != nil {
		return fmt.Errorf("delete product %q: %w", id, err)
	}
	if deployed {
		return fmt.Errorf("product %q has device groups with deployments, which are kept as history: %w", id, store.ErrNotEmpty)
	}
	what := fmt.Sprintf("delete product %q", id)
	if _, err := t.exec(ctx, `DELETE FROM device_groups WHERE tenant_id = ? AND product_id = ?`, tenantID, id); err != nil {
		return t.dbErr(err, what, store.ErrNotEmpty)
	}
	if _, err := t.exec(ctx, `DELETE FROM products WHERE tenant_id = ? AND id = ?`, tenantID, id); err != nil {
		return t.dbErr(err, what, store.ErrNotEmpty)
	}
	return t.raisePolicyGeneration(ctx, tenantID) // its groups went with it
}

// ListProducts implements store.Tx.
func (t *tx) ListProducts(ctx context.Context, tenantID string, filter store.ProductFilter, opt store.ListOptions) (store.Page[store.Product], error) {
	opt = opt.Normalize()
	var w where
	w.add(`p.tenant_id = ?`, tenantID)
	if filter.Name != "" {
		w.add(`p.name_key = ?`, nameKey(filter.Name))
	}
	if opt.After != "" {
		w.add(`p.id > ?`, opt.After)
	}
	p, err := list(ctx, t, opt, `SELECT `+productCols+` FROM products p`+w.String()+` ORDER BY p.id LIMIT ?`, w.args,
		scanProduct, func(x store.Product) string { return x.ID })
	if err != nil {
		return p, fmt.Errorf("list products of tenant %q: %w", tenantID, err)
	}
	return p, nil
}
