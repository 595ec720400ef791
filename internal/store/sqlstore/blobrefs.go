package sqlstore

import (
	"context"
	"fmt"
)

// ImagePackageReferenced implements store.Tx (the images_package index answers it).
func (t *tx) ImagePackageReferenced(ctx context.Context, packageSHA256 string) (bool, error) {
	var n int
	if err := t.queryRow(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM images WHERE package_sha256 = ? LIMIT 1) x`, packageSHA256).Scan(&n); err != nil {
		return false, t.dbErr(err, fmt.Sprintf("look up package %q", packageSHA256), nil)
	}
	return n > 0, nil
}

// ImagePackageReferenced implements store.Tx.
func (s *DB) ImagePackageReferenced(ctx context.Context, packageSHA256 string) (bool, error) {
	return s.read.ImagePackageReferenced(ctx, packageSHA256)
}
