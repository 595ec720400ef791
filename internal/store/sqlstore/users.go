package sqlstore

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/rampart-iot/rampart/internal/store"
)

const userCols = `u.id, u.name, u.service_admin, u.created_at`

func scanUser(s scanner) (store.User, error) {
	var x store.User
	var created sql.NullInt64
	if err := s.Scan(&x.ID, &x.Name, &x.ServiceAdmin, &created); err != nil {
		return store.User{}, err
	}
	x.CreatedAt = timeOf(created)
	return x, nil
}

// CreateUser implements store.Tx.
func (t *tx) CreateUser(ctx context.Context, x store.User) error {
	n, err := t.exec(ctx, `INSERT INTO users (id, name, name_key, service_admin, created_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT DO NOTHING`, x.ID, x.Name, nameKey(x.Name), x.ServiceAdmin, timeArg(x.CreatedAt))
	if err != nil {
		return t.dbErr(err, fmt.Sprintf("create user %q", x.ID), nil)
	}
	if n == 0 {
		return t.insertConflict(ctx, "users", "user", x.ID, fmt.Sprintf("a user named %q already exists", x.Name))
	}
	return nil
}

// GetUser implements store.Tx.
func (t *tx) GetUser(ctx context.Context, id string) (store.User, error) {
	x, err := scanUser(t.queryRow(ctx, `SELECT `+userCols+` FROM users u WHERE u.id = ?`, id))
	if err != nil {
		return store.User{}, notFound(err, fmt.Sprintf("user %q", id))
	}
	return x, nil
}

// GetUserByName implements store.Tx.
func (t *tx) GetUserByName(ctx context.Context, name string) (store.User, error) {
	x, err := scanUser(t.queryRow(ctx, `SELECT `+userCols+` FROM users u WHERE u.name_key = ?`, nameKey(name)))
	if err != nil {
		return store.User{}, notFound(err, fmt.Sprintf("user named %q", name))
	}
	return x, nil
}

// checkUser returns ErrNotFound unless the user exists.
func (t *tx) checkUser(ctx context.Context, id string) error {
	ok, err := t.exists(ctx, `SELECT 1 FROM users WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("read user %q: %w", id, err)
	}
	if !ok {
		return fmt.Errorf("user %q: %w", id, store.ErrNotFound)
	}
	return nil
}

// checkTenant returns ErrNotFound unless the tenant exists.
func (t *tx) checkTenant(ctx context.Context, id string) error {
	ok, err := t.exists(ctx, `SELECT 1 FROM tenants WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("read tenant %q: %w", id, err)
	}
	if !ok {
		return fmt.Errorf("tenant %q: %w", id, store.ErrNotFound)
	}
	return nil
}
