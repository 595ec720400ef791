package osupdate

import (
	"context"

	"github.com/rampart-iot/rampart/imagepkg"
)

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
