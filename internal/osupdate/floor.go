package osupdate

import (
	"context"
	"fmt"

	"github.com/rampart-iot/rampart/imagepkg"
	"github.com/rampart-iot/rampart/internal/rot"
)

// stateCounter keeps the anti-rollback counter in the state file (Status.SecurityCounter),
// for a device whose root of trust has no counter. Like stateFloor it protects against a
// server that offers old releases, not against someone who can write the state directory.
type stateCounter struct{ m *Machine }

func (c stateCounter) ReadCounter(context.Context) (uint64, error) {
	return c.m.st.SecurityCounter, nil
}

func (c stateCounter) AdvanceCounter(_ context.Context, v uint64) error {
	if v <= c.m.st.SecurityCounter {
		return nil
	}
	next := c.m.st
	next.SecurityCounter = v
	return c.m.save(next, "counter")
}

// bothCounters keeps the anti-rollback counter in the root of trust and in the state file, and
// reads the higher: the state file's copy covers a root of trust that forgets (the TPM
// simulator starts afresh with each process, a cleared TPM), the root of trust's covers a
// state file put back or edited.
type bothCounters struct {
	state stateCounter
	rot   Counter
}

func (c bothCounters) ReadCounter(ctx context.Context) (uint64, error) {
	r, err := c.rot.ReadCounter(ctx)
	if err != nil {
		return 0, err
	}
	s, _ := c.state.ReadCounter(ctx)
	return max(r, s), nil
}

func (c bothCounters) AdvanceCounter(ctx context.Context, v uint64) error {
	if err := c.rot.AdvanceCounter(ctx, v); err != nil {
		return err
	}
	return c.state.AdvanceCounter(ctx, v)
}

// MaxSecurityStep is the most one update raises the anti-rollback counter by: a target
// further above the counter is refused, since a root of trust advances its counter one step
// at a time (rot.MaxCounterStep) and a commit must not fail after boot control committed.
const MaxSecurityStep = rot.MaxCounterStep

// belowCounter says why t may not be installed under the anti-rollback counter, "" if it may.
func (m *Machine) belowCounter(ctx context.Context, t *Target) (string, error) {
	c, err := m.counter.ReadCounter(ctx)
	if err != nil {
		return "", fmt.Errorf("reading the anti-rollback counter: %w", err)
	}
	switch {
	case t.SecurityVersion < c:
		return fmt.Sprintf("version %s has security version %d, below the anti-rollback counter %d", t.Version, t.SecurityVersion, c), nil
	case t.SecurityVersion-c > MaxSecurityStep:
		return fmt.Sprintf("version %s has security version %d, more than %d above the anti-rollback counter %d", t.Version, t.SecurityVersion, MaxSecurityStep, c), nil
	}
	return "", nil
}

// stateFloor keeps the anti-rollback floor in the state file (Status.Floor). It protects
// against a server that offers old releases, not against someone who can write the state
// directory: that is what a TPM NV counter is for.
type stateFloor struct{ m *Machine }

func (f stateFloor) Get(context.Context) (string, error) { return f.m.st.Floor, nil }

func (f stateFloor) Raise(_ context.Context, v string) error {
	if f.m.st.Floor != "" {
		c, err := compareVersions(v, f.m.st.Floor)
		if err != nil || c <= 0 {
			return err
		}
	} else if _, err := imagepkg.ParseVersion(v); err != nil {
		return err
	}
	next := f.m.st
	next.Floor = v
	return f.m.save(next, "floor")
}
