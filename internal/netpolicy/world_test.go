package netpolicy

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// The test world: three fresh network namespaces, none of them the machine's own.
//
//	app  ── eth0 ═══ rp-N ── host ── up0 ═══ up1 ── inet
//	                 (Manager)   10.200.0.1/24    10.200.0.2/24 and .3 .4 .5 .7
//
// "inet" plays the internet: TCP servers on 10.200.0.3, .4 and .7 port 8080 that greet with
// their own address and record who connected, and UDP sinks on 10.200.0.5 ports 53 and 5353
// that count what they receive.
var (
	inetHost   = netip.MustParseAddr("10.200.0.1")
	allowedIP  = netip.MustParseAddr("10.200.0.3") // allowed.test
	deniedIP   = netip.MustParseAddr("10.200.0.4") // denied.test
	dnsIP      = netip.MustParseAddr("10.200.0.5") // somebody's DNS server
	literalIP  = netip.MustParseAddr("10.200.0.7") // allowed as an IP literal
	serverPort = uint16(8080)
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: makes network namespaces, veth links and nftables rulesets")
	}
}

// testNS is a fresh network namespace, alive while its handle is open.
type testNS struct {
	h    netns.NsHandle
	path string
}

func newNS(t *testing.T) testNS {
	t.Helper()
	var h netns.NsHandle
	err := func() error {
		errc := make(chan error, 1)
		go func() {
			runtime.LockOSThread()
			var err error
			h, err = netns.New() // the thread ends with the goroutine
			errc <- err
		}()
		return <-errc
	}()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	ns := testNS{h: h, path: fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), int(h))}
	nl := handle(t, ns)
	lo, err := nl.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := nl.LinkSetUp(lo); err != nil {
		t.Fatal(err)
	}
	return ns
}

func handle(t *testing.T, ns testNS) *netlink.Handle {
	t.Helper()
	h, err := netlink.NewHandleAt(ns.h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

// world is the three namespaces and the servers of "inet".
type world struct {
	host, inet, app testNS
	servers         map[netip.Addr]*tcpServer
	dns53, dns5353  *udpSink
}

func newWorld(t *testing.T) *world {
	t.Helper()
	needRoot(t)
	w := &world{host: newNS(t), inet: newNS(t), app: newNS(t), servers: map[netip.Addr]*tcpServer{}}
	hh := handle(t, w.host)
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "up0"}, PeerName: "up1", PeerNamespace: netlink.NsFd(w.inet.h)}
	if err := hh.LinkAdd(veth); err != nil {
		t.Fatal(err)
	}
	up0, err := hh.LinkByName("up0")
	if err != nil {
		t.Fatal(err)
	}
	must(t, hh.AddrAdd(up0, &netlink.Addr{IPNet: ipnet(inetHost, 24)}))
	must(t, hh.LinkSetUp(up0))
	ih := handle(t, w.inet)
	up1, err := ih.LinkByName("up1")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"10.200.0.2", "10.200.0.3", "10.200.0.4", "10.200.0.5", "10.200.0.7"} {
		must(t, ih.AddrAdd(up1, &netlink.Addr{IPNet: ipnet(netip.MustParseAddr(a), 24)}))
	}
	must(t, ih.LinkSetUp(up1))
	for _, a := range []netip.Addr{allowedIP, deniedIP, literalIP} {
		w.servers[a] = startTCPServer(t, w.inet, netip.AddrPortFrom(a, serverPort))
	}
	w.dns53 = startUDPSink(t, w.inet, netip.AddrPortFrom(dnsIP, 53))
	w.dns5353 = startUDPSink(t, w.inet, netip.AddrPortFrom(dnsIP, 5353))
	return w
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// fakeResolver resolves from a map; names not in it do not exist.
type fakeResolver struct {
	mu    sync.Mutex
	names map[string][]netip.Addr
	asked map[string]int
}

func newResolver(m map[string][]netip.Addr) *fakeResolver {
	return &fakeResolver{names: m, asked: map[string]int{}}
}

func (r *fakeResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.asked[host]++
	if network != "ip4" {
		return nil, fmt.Errorf("asked for %s", network)
	}
	a, ok := r.names[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return a, nil
}

func (r *fakeResolver) count(name string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.asked[name]
}

func (r *fakeResolver) set(name string, addrs ...netip.Addr) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.names[name] = addrs
}

func testResolver() *fakeResolver {
	return newResolver(map[string][]netip.Addr{
		"allowed.test":     {allowedIP},
		"denied.test":      {deniedIP},
		"a.wild.test":      {literalIP},
		"other.wild2.test": {deniedIP},
	})
}

// newManager makes a Manager over w's host namespace, closed at the end of the test.
func newManager(t *testing.T, w *world, cfg Config) *Manager {
	t.Helper()
	cfg.HostNetNS = w.host.path
	if cfg.Resolver == nil {
		cfg.Resolver = testResolver()
	}
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	})
	return m
}

// tcpServer greets each connection with its own address and records the peers.
type tcpServer struct {
	mu    sync.Mutex
	peers []netip.Addr
}

func (s *tcpServer) seen() []netip.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]netip.Addr(nil), s.peers...)
}

func startTCPServer(t *testing.T, ns testNS, at netip.AddrPort) *tcpServer {
	t.Helper()
	var l net.Listener
	must(t, inNetNS(ns.h, func() (err error) {
		l, err = net.Listen("tcp4", at.String())
		return err
	}))
	t.Cleanup(func() { l.Close() })
	s := &tcpServer{}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.peers = append(s.peers, c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap())
			s.mu.Unlock()
			fmt.Fprintf(c, "%s\n", at.Addr())
			c.Close()
		}
	}()
	return s
}

// udpSink counts the datagrams it receives.
type udpSink struct {
	mu sync.Mutex
	n  int
}

func (s *udpSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

func startUDPSink(t *testing.T, ns testNS, at netip.AddrPort) *udpSink {
	t.Helper()
	var pc net.PacketConn
	must(t, inNetNS(ns.h, func() (err error) {
		pc, err = net.ListenPacket("udp4", at.String())
		return err
	}))
	t.Cleanup(func() { pc.Close() })
	s := &udpSink{}
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
			s.mu.Lock()
			s.n++
			s.mu.Unlock()
		}
	}()
	return s
}

// probeTimeout bounds a probe that is expected to fail when the traffic is dropped silently.
// No test asserts on elapsed time.
const probeTimeout = 2 * time.Second

// dialFrom connects from ns to to over TCP and reads the greeting.
func dialFrom(ns testNS, to netip.AddrPort) (string, error) {
	var c net.Conn
	err := inNetNS(ns.h, func() (err error) {
		c, err = net.DialTimeout("tcp4", to.String(), probeTimeout)
		return err
	})
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(probeTimeout))
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if n > 0 {
		return string(buf[:n-1]), nil
	}
	return "", err
}

// deleteAppTable deletes the application's ruleset: the control that shows a probe's outcome
// is the ruleset's doing.
func deleteAppTable(t *testing.T, ns testNS) {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(int(ns.h)))
	must(t, err)
	c.DelTable(appTable())
	must(t, c.Flush())
}
