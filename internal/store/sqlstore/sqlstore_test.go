package sqlstore

import (
	"testing"
	"testing/fstest"
)

// The store itself is tested against real databases by storetest, from each backend.

func TestRebind(t *testing.T) {
	for _, tc := range []struct {
		numbered bool
		in, want string
	}{
		{false, `SELECT 1 FROM t WHERE a = ? AND b > ?`, `SELECT 1 FROM t WHERE a = ? AND b > ?`},
		{true, `SELECT 1 FROM t WHERE a = ? AND b > ?`, `SELECT 1 FROM t WHERE a = $1 AND b > $2`},
		{true, `SELECT 1`, `SELECT 1`},
		{true, `VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, `VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`},
	} {
		d := Dialect{NumberedPlaceholders: tc.numbered}
		if got := d.rebind(tc.in); got != tc.want {
			t.Errorf("rebind(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestLoadMigrations(t *testing.T) {
	file := &fstest.MapFile{Data: []byte("CREATE TABLE x (id TEXT)")}
	ms, err := loadMigrations(fstest.MapFS{"0002_more.sql": file, "0001_init.sql": file})
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 || ms[0].version != 1 || ms[1].version != 2 || ms[1].name != "0002_more.sql" {
		t.Errorf("loaded %+v", ms)
	}
	for name, fsys := range map[string]fstest.MapFS{
		"none":         {},
		"gap":          {"0001_init.sql": file, "0003_more.sql": file},
		"not from one": {"0002_init.sql": file},
		"duplicate":    {"0001_init.sql": file, "0001_again.sql": file},
		"bad name":     {"0001_init.sql": file, "0002 more.sql": file},
		"not sql":      {"0001_init.sql": file, "README.md": file},
	} {
		if _, err := loadMigrations(fsys); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestDialectValidate(t *testing.T) {
	if err := (&Dialect{}).validate(); err == nil {
		t.Error("an empty dialect is valid")
	}
}
