package apprun_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"syscall"
	"testing"

	"github.com/rampart-iot/rampart/internal/apprun"
	"github.com/rampart-iot/rampart/manifest"
)

// fakeNetwork records each Setup and teardown.
type fakeNetwork struct {
	mu        sync.Mutex
	setups    []string // component IDs
	hosts     [][]string
	teardowns int
	errs      []error
}

func (n *fakeNetwork) Setup(ctx context.Context, netns, cid string, caps manifest.Capabilities) (func() error, error) {
	var own, theirs syscall.Stat_t
	err := syscall.Stat("/proc/self/ns/net", &own)
	if err == nil {
		err = syscall.Stat(netns, &theirs)
	}
	if err == nil && own.Ino == theirs.Ino {
		err = fmt.Errorf("%s is the agent's own network namespace", netns)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if err != nil {
		n.errs = append(n.errs, err)
	}
	n.setups = append(n.setups, cid)
	n.hosts = append(n.hosts, caps.AllowedConnections)
	return func() error {
		n.mu.Lock()
		defer n.mu.Unlock()
		n.teardowns++
		return nil
	}, nil
}

// TestNetworkPerRun: with Config.Network set, an application whose manifest allows
// connections gets its network set up in its own sandbox's namespace for each run and torn
// down after each; an application that grants itself no network gets none.
func TestNetworkPerRun(t *testing.T) {
	needRoot(t)
	d := newDevice(t)
	online, offline := newUUID(t), newUUID(t)
	d.install(t, image{component: online, name: "online", version: "1.0.0", args: []string{"-exit", "3"}, hosts: []string{"example.com"}})
	d.install(t, image{component: offline, name: "offline", version: "1.0.0"})
	net := &fakeNetwork{}
	s := d.supervisor(t, func(c *apprun.Config) { c.Network = net })
	stop := run(t, s)
	waitFor(t, "the online app has run 3 times", func() bool { return len(d.events.of(apprun.EventExited, online)) >= 3 })
	waitFor(t, "the offline app runs", func() bool { return logHas(s, offline, "started 1.0.0") })
	must(t, stop())

	net.mu.Lock()
	defer net.mu.Unlock()
	if len(net.errs) > 0 {
		t.Error(net.errs)
	}
	if len(net.setups) < 3 || slices.Contains(net.setups, offline) {
		t.Errorf("setups for %v; want 3 or more, all for %s", net.setups, online)
	}
	if len(net.hosts) > 0 && !slices.Equal(net.hosts[0], []string{"example.com"}) {
		t.Errorf("capabilities passed: %v", net.hosts[0])
	}
	if net.teardowns != len(net.setups) {
		t.Errorf("%d teardowns for %d setups", net.teardowns, len(net.setups))
	}
}
