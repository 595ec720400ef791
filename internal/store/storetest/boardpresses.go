package storetest

import (
	"fmt"
	"testing"

	"github.com/rampart-iot/rampart/internal/store"
)

// testBoardPresses: presses wait for the device's next check-in, which takes them in order
// once; they are bounded per device and confined to the device's tenant.
func testBoardPresses(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	w.product(w.a.ID, "prod-1", "Lamp")
	w.group(w.a.ID, "prod-1", "group-1", "Field")
	w.claim(w.a.ID, "group-1", 1)
	w.claim(w.b.ID, "", 2)
	d1 := deviceIDOf(1)

	got, err := s.TakeBoardPresses(ctx, w.a.ID, d1)
	must(t, err)
	if len(got) != 0 {
		t.Fatalf("presses before any: %v", got)
	}
	must(t, s.AddBoardPress(ctx, w.a.ID, d1, "BUTTON_A", at(1)))
	must(t, s.AddBoardPress(ctx, w.a.ID, d1, "BUTTON_B", at(2)))
	must(t, s.AddBoardPress(ctx, w.a.ID, d1, "BUTTON_A", at(3)))
	// Another tenant can neither press nor take.
	isErr(t, s.AddBoardPress(ctx, w.b.ID, d1, "BUTTON_A", at(4)), store.ErrNotFound)
	got, err = s.TakeBoardPresses(ctx, w.b.ID, d1)
	must(t, err)
	if len(got) != 0 {
		t.Fatalf("another tenant took %v", got)
	}
	got, err = s.TakeBoardPresses(ctx, w.a.ID, d1)
	must(t, err)
	if fmt.Sprint(got) != "[BUTTON_A BUTTON_B BUTTON_A]" {
		t.Fatalf("taken %v", got)
	}
	got, err = s.TakeBoardPresses(ctx, w.a.ID, d1)
	must(t, err)
	if len(got) != 0 {
		t.Fatalf("taken twice: %v", got)
	}
	// Bounded.
	for i := range store.MaxBoardPresses {
		must(t, s.AddBoardPress(ctx, w.a.ID, d1, "BUTTON_A", at(10+i)))
	}
	isErr(t, s.AddBoardPress(ctx, w.a.ID, d1, "BUTTON_A", at(99)), store.ErrConflict)
	got, err = s.TakeBoardPresses(ctx, w.a.ID, d1)
	must(t, err)
	if len(got) != store.MaxBoardPresses {
		t.Fatalf("took %d, want %d", len(got), store.MaxBoardPresses)
	}
	must(t, s.AddBoardPress(ctx, w.a.ID, d1, "BUTTON_B", at(100))) // room again
}
