package storetest

import (
	"testing"

	"github.com/rampart-iot/rampart/internal/store"
)

// testImagePackageReferenced: a package digest is referenced once an image of any tenant has
// it, inside the transaction that adds the image and after, and not before or after a rollback.
func testImagePackageReferenced(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	img := newImage(w.a.ID, 1, 1)
	other := newImage(w.b.ID, 2, 2)
	ref := func(d string) bool {
		t.Helper()
		ok, err := s.ImagePackageReferenced(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if ref(img.PackageSHA256) {
		t.Fatal("a digest no image has is referenced")
	}
	errRollback := errorString("roll back")
	err := s.Update(ctx, func(tx store.Tx) error {
		if err := tx.CreateImage(ctx, img); err != nil {
			return err
		}
		if ok, err := tx.ImagePackageReferenced(ctx, img.PackageSHA256); err != nil || !ok {
			t.Errorf("inside the transaction that adds it: %v %v", ok, err)
		}
		return errRollback
	})
	if err != errRollback {
		t.Fatal(err)
	}
	if ref(img.PackageSHA256) {
		t.Fatal("referenced after the image's transaction rolled back")
	}
	w.image(w.a.ID, 1, 1)
	if !ref(img.PackageSHA256) {
		t.Fatal("not referenced after the image was added")
	}
	w.image(w.b.ID, 2, 2) // another tenant's
	if !ref(other.PackageSHA256) || ref(hexOf("nothing")) {
		t.Fatal("another tenant's image's digest, or a digest no image has")
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }
