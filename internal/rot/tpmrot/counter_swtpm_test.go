package tpmrot

import (
	"context"
	"testing"

	"github.com/rampart-iot/rampart/internal/rot"
	"github.com/rampart-iot/rampart/internal/rot/swtpmtest"
)

// TestSWTPMCounter: on swtpm, whose NV is a separate process's, the counter starts at 0 and is
// still there for a root opened afterwards with another, empty state directory: nothing of it
// is in the agent's files.
func TestSWTPMCounter(t *testing.T) {
	ctx := context.Background()
	spec, _ := swtpmtest.Start(t)
	r := openSpec(t, spec, t.TempDir())
	c, ok := r.(rot.Counter)
	if !ok {
		t.Fatal("the swtpm root of trust has no counter")
	}
	if v, err := c.ReadCounter(ctx); err != nil || v != 0 {
		t.Fatalf("a new counter reads %d, %v; want 0", v, err)
	}
	if err := c.AdvanceCounter(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if err := c.AdvanceCounter(ctx, 2); err != nil {
		t.Fatal(err)
	}
	r.Close()

	r = openSpec(t, spec, t.TempDir())
	defer r.Close()
	if v, err := r.(rot.Counter).ReadCounter(ctx); err != nil || v != 3 {
		t.Fatalf("after reopening with a new state directory the counter reads %d, %v; want 3", v, err)
	}
	tr := r.(*TPM)
	tr.mu.Lock()
	defer tr.mu.Unlock()
	base, err := tr.readNVPublic(BaseIndex)
	if err != nil {
		t.Fatal(err)
	}
	b, err := tr.readUint64(base)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("swtpm's counter started at %d", b)
}
