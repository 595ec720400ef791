package examples_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"

	"github.com/rampart-iot/rampart/internal/netpolicy"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// The network the networked examples run in: two fresh network namespaces, never the
// machine's own, beside each app's own (made by its sandbox).
//
//	app ── eth0 ═══ rp-N ── host ── up0 ═══ up1 ── inet
//	                (netpolicy)  10.201.0.1/24   10.201.0.2/24: the broker, the HTTPS server
//
// The agent's network policy works in "host"; "inet" plays the internet. The manifests'
// names (broker.example.com, api.example.com) resolve to serverIP through the policy's
// resolver, as a device's DNS would resolve them.
var (
	upstreamIP = netip.MustParseAddr("10.201.0.1")
	serverIP   = netip.MustParseAddr("10.201.0.2")
)

type world struct {
	host, inet netns.NsHandle
	hostPath   string
	policy     *netpolicy.Manager
}

// newWorld makes the namespaces and the agent's network policy, which resolves names with
// the given table.
func newWorld(t *testing.T, names map[string]netip.Addr) *world {
	t.Helper()
	w := &world{host: newNS(t), inet: newNS(t)}
	w.hostPath = fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), int(w.host))
	hh, err := netlink.NewHandleAt(w.host)
	must(t, err)
	defer hh.Close()
	must(t, hh.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "up0"}, PeerName: "up1", PeerNamespace: netlink.NsFd(w.inet)}))
	up0, err := hh.LinkByName("up0")
	must(t, err)
	must(t, hh.AddrAdd(up0, &netlink.Addr{IPNet: &net.IPNet{IP: upstreamIP.AsSlice(), Mask: net.CIDRMask(24, 32)}}))
	must(t, hh.LinkSetUp(up0))
	ih, err := netlink.NewHandleAt(w.inet)
	must(t, err)
	defer ih.Close()
	up1, err := ih.LinkByName("up1")
	must(t, err)
	must(t, ih.AddrAdd(up1, &netlink.Addr{IPNet: &net.IPNet{IP: serverIP.AsSlice(), Mask: net.CIDRMask(24, 32)}}))
	must(t, ih.LinkSetUp(up1))

	w.policy, err = netpolicy.New(netpolicy.Config{HostNetNS: w.hostPath, Resolver: table(names)})
	must(t, err)
	t.Cleanup(func() {
		if err := w.policy.Close(); err != nil {
			t.Error(err)
		}
	})
	return w
}

// newNS makes a fresh network namespace with lo up, alive until the test ends.
func newNS(t *testing.T) netns.NsHandle {
	t.Helper()
	errc := make(chan error, 1)
	var h netns.NsHandle
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		var err error
		h, err = netns.New()
		errc <- err
	}()
	must(t, <-errc)
	t.Cleanup(func() { h.Close() })
	nl, err := netlink.NewHandleAt(h)
	must(t, err)
	defer nl.Close()
	lo, err := nl.LinkByName("lo")
	must(t, err)
	must(t, nl.LinkSetUp(lo))
	return h
}

// inInet runs f on a thread in "inet": sockets it makes and processes it starts live there.
func (w *world) inInet(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		if err := netns.Set(w.inet); err != nil {
			errc <- fmt.Errorf("entering the inet namespace: %w", err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// dialInet connects from "inet" (a client beside the servers).
func (w *world) dialInet(ctx context.Context, addr string) (net.Conn, error) {
	var c net.Conn
	err := w.inInet(func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, "tcp4", addr)
		return err
	})
	return c, err
}

// table is a netpolicy.Resolver over a fixed table.
type table map[string]netip.Addr

func (r table) LookupNetIP(_ context.Context, network, host string) ([]netip.Addr, error) {
	if a, ok := r[host]; ok && network == "ip4" {
		return []netip.Addr{a}, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}
