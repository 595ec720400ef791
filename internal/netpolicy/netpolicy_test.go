package netpolicy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/nftables"
	"golang.org/x/net/dns/dnsmessage"

	"github.com/rampart-iot/rampart/manifest"
)

// TestEgressAllowList: the application reaches the allowed name's server and the allowed IP
// literal, masqueraded behind the host, and nothing else; without the ruleset it would reach
// the other server too.
func TestEgressAllowList(t *testing.T) {
	w := newWorld(t)
	m := newManager(t, w, Config{})
	td, err := m.Setup(context.Background(), w.app.path, "app-egress", manifest.Capabilities{
		AllowedConnections: []string{"allowed.test", literalIP.String()},
	})
	must(t, err)
	defer td()

	for _, to := range []netip.Addr{allowedIP, literalIP} {
		got, err := dialFrom(w.app, netip.AddrPortFrom(to, serverPort))
		if err != nil || got != to.String() {
			t.Fatalf("allowed %s: got %q, %v", to, got, err)
		}
		if peers := w.servers[to].seen(); len(peers) != 1 || peers[0] != inetHost {
			t.Errorf("%s saw %v; want one connection from the host's address %s (masquerade)", to, peers, inetHost)
		}
	}
	got, err := dialFrom(w.app, netip.AddrPortFrom(deniedIP, serverPort))
	if err == nil {
		t.Fatalf("denied %s: connected, read %q", deniedIP, got)
	}
	t.Logf("denied %s: %v", deniedIP, err)
	if peers := w.servers[deniedIP].seen(); len(peers) != 0 {
		t.Errorf("the denied server saw %v", peers)
	}

	// Control: without the application's ruleset the same dial gets through.
	deleteAppTable(t, w.app)
	if got, err := dialFrom(w.app, netip.AddrPortFrom(deniedIP, serverPort)); err != nil || got != deniedIP.String() {
		t.Fatalf("control: without the ruleset the denied server should be reachable: %q, %v", got, err)
	}
}

// dnsQuery sends an A query for name from ns to server over UDP and returns the reply's
// code and addresses.
func dnsQuery(t *testing.T, ns testNS, server netip.AddrPort, name string) (dnsmessage.RCode, []netip.Addr, error) {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 77, RecursionDesired: true})
	must(t, b.StartQuestions())
	must(t, b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name + "."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}))
	q, err := b.Finish()
	must(t, err)
	var c net.Conn
	if err := inNetNS(ns.h, func() (err error) {
		c, err = net.Dial("udp4", server.String())
		return err
	}); err != nil {
		return 0, nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(probeTimeout))
	if _, err := c.Write(q); err != nil {
		return 0, nil, err
	}
	buf := make([]byte, 1500)
	n, err := c.Read(buf)
	if err != nil {
		return 0, nil, err
	}
	var msg dnsmessage.Message
	must(t, msg.Unpack(buf[:n]))
	if msg.ID != 77 || !msg.Response {
		t.Fatalf("reply %+v", msg.Header)
	}
	var addrs []netip.Addr
	for _, a := range msg.Answers {
		if r, ok := a.Body.(*dnsmessage.AResource); ok {
			addrs = append(addrs, netip.AddrFrom4(r.A))
		}
	}
	return msg.RCode, addrs, nil
}

// TestDNSGoesOnlyToTheAgent: a query to somebody's DNS server is answered by the agent (the
// allowed name with its address, another name with NXDOMAIN) and never reaches that server;
// other traffic to it is refused; a name under a wildcard entry is resolved when asked for and
// its address becomes reachable. Without the ruleset the query reaches the server.
func TestDNSGoesOnlyToTheAgent(t *testing.T) {
	w := newWorld(t)
	res := testResolver()
	m := newManager(t, w, Config{Resolver: res})
	td, err := m.Setup(context.Background(), w.app.path, "app-dns", manifest.Capabilities{
		AllowedConnections: []string{"allowed.test", "*.wild.test"},
	})
	must(t, err)
	defer td()

	foreign := netip.AddrPortFrom(dnsIP, 53)
	for _, server := range []netip.AddrPort{foreign, netip.MustParseAddrPort("127.0.0.1:53")} {
		rc, addrs, err := dnsQuery(t, w.app, server, "allowed.test")
		if err != nil || rc != dnsmessage.RCodeSuccess || len(addrs) != 1 || addrs[0] != allowedIP {
			t.Errorf("allowed.test via %s: %v %v %v", server, rc, addrs, err)
		}
		rc, addrs, err = dnsQuery(t, w.app, server, "denied.test")
		if err != nil || rc != dnsmessage.RCodeNameError || len(addrs) != 0 {
			t.Errorf("denied.test via %s: %v %v %v; want NXDOMAIN", server, rc, addrs, err)
		}
	}
	if n := res.count("denied.test"); n != 0 {
		t.Errorf("the agent resolved denied.test %d times; it must not even ask", n)
	}
	if n := w.dns53.count(); n != 0 {
		t.Errorf("the foreign DNS server received %d queries", n)
	}
	// Another port on the same server: refused at once (ICMP administratively prohibited).
	if _, _, err := dnsQuery(t, w.app, netip.AddrPortFrom(dnsIP, 5353), "allowed.test"); err == nil {
		t.Error("a query to port 5353 of the foreign server got a reply")
	} else {
		t.Logf("port 5353: %v", err)
	}
	if n := w.dns5353.count(); n != 0 {
		t.Errorf("the foreign server's port 5353 received %d datagrams", n)
	}

	// A wildcard: a.wild.test is unreachable until the application resolves it.
	if _, err := dialFrom(w.app, netip.AddrPortFrom(literalIP, serverPort)); err == nil {
		t.Fatal("a.wild.test's address reachable before it was resolved")
	}
	rc, addrs, err := dnsQuery(t, w.app, foreign, "a.wild.test")
	if err != nil || rc != dnsmessage.RCodeSuccess || len(addrs) != 1 || addrs[0] != literalIP {
		t.Fatalf("a.wild.test: %v %v %v", rc, addrs, err)
	}
	if got, err := dialFrom(w.app, netip.AddrPortFrom(literalIP, serverPort)); err != nil || got != literalIP.String() {
		t.Errorf("a.wild.test's address after resolving it: %q %v", got, err)
	}
	if rc, _, err := dnsQuery(t, w.app, foreign, "wild.test"); err != nil || rc != dnsmessage.RCodeNameError {
		t.Errorf("wild.test (the wildcard's apex): %v %v; want NXDOMAIN", rc, err)
	}

	// Control: without the ruleset, the query goes to the foreign server.
	deleteAppTable(t, w.app)
	_, _, _ = dnsQuery(t, w.app, foreign, "allowed.test") // it answers nothing
	if n := w.dns53.count(); n != 1 {
		t.Errorf("control: the foreign DNS server received %d queries without the ruleset; want 1", n)
	}
}

// TestInboundOnlyOnDeclaredPorts: from the host, the application's declared TCP and UDP server
// ports answer; an undeclared port where it also listens is refused. Without the ruleset the
// undeclared ones answer too.
func TestInboundOnlyOnDeclaredPorts(t *testing.T) {
	w := newWorld(t)
	m := newManager(t, w, Config{})
	td, err := m.Setup(context.Background(), w.app.path, "app-in", manifest.Capabilities{
		AllowedTcpServerPorts: []int{7000},
		AllowedUdpServerPorts: []int{7002},
	})
	must(t, err)
	defer td()
	link, ok := m.LinkOf("app-in")
	if !ok {
		t.Fatal("no link")
	}
	for _, p := range []uint16{7000, 7001} {
		startTCPServer(t, w.app, netip.AddrPortFrom(link.AppAddr, p))
	}
	for _, p := range []uint16{7002, 7003} {
		startUDPEcho(t, w.app, netip.AddrPortFrom(link.AppAddr, p))
	}
	if got, err := dialFrom(w.host, netip.AddrPortFrom(link.AppAddr, 7000)); err != nil || got != link.AppAddr.String() {
		t.Errorf("tcp 7000 (declared): %q %v", got, err)
	}
	if got, err := dialFrom(w.host, netip.AddrPortFrom(link.AppAddr, 7001)); err == nil {
		t.Errorf("tcp 7001 (not declared): connected, read %q", got)
	} else {
		t.Logf("tcp 7001: %v", err)
	}
	if err := udpEcho(w.host, netip.AddrPortFrom(link.AppAddr, 7002)); err != nil {
		t.Errorf("udp 7002 (declared): %v", err)
	}
	if err := udpEcho(w.host, netip.AddrPortFrom(link.AppAddr, 7003)); err == nil {
		t.Error("udp 7003 (not declared) echoed")
	} else {
		t.Logf("udp 7003: %v", err)
	}

	deleteAppTable(t, w.app)
	if _, err := dialFrom(w.host, netip.AddrPortFrom(link.AppAddr, 7001)); err != nil {
		t.Errorf("control: tcp 7001 without the ruleset: %v", err)
	}
	if err := udpEcho(w.host, netip.AddrPortFrom(link.AppAddr, 7003)); err != nil {
		t.Errorf("control: udp 7003 without the ruleset: %v", err)
	}
}

func startUDPEcho(t *testing.T, ns testNS, at netip.AddrPort) {
	t.Helper()
	var pc net.PacketConn
	must(t, inNetNS(ns.h, func() (err error) {
		pc, err = net.ListenPacket("udp4", at.String())
		return err
	}))
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(buf[:n], from)
		}
	}()
}

// udpEcho sends a datagram from ns to to and waits for it to come back.
func udpEcho(ns testNS, to netip.AddrPort) error {
	var c net.Conn
	if err := inNetNS(ns.h, func() (err error) {
		c, err = net.Dial("udp4", to.String())
		return err
	}); err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(probeTimeout))
	if _, err := c.Write([]byte("ping")); err != nil {
		return err
	}
	buf := make([]byte, 16)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	if string(buf[:n]) != "ping" {
		return fmt.Errorf("echo %q", buf[:n])
	}
	return nil
}

// TestTeardownRemovesEverything: teardown deletes both ends of the link and the host's rules
// for it; Close deletes the host's table and turns forwarding back off.
func TestTeardownRemovesEverything(t *testing.T) {
	w := newWorld(t)
	m, err := New(Config{HostNetNS: w.host.path, Resolver: testResolver()})
	must(t, err)
	if got := readForward(t, w.host); got != "1" {
		t.Errorf("ip_forward in the host namespace after New = %s, want 1", got)
	}
	td, err := m.Setup(context.Background(), w.app.path, "app-td", manifest.Capabilities{AllowedConnections: []string{"allowed.test"}})
	must(t, err)
	link, _ := m.LinkOf("app-td")
	hh := handle(t, w.host)
	if _, err := hh.LinkByName(link.Host); err != nil {
		t.Fatalf("host end %s missing: %v", link.Host, err)
	}
	if n := hostRules(t, w.host, link.Host); n != 7 {
		t.Errorf("%d host rules tagged %s, want 7", n, link.Host)
	}
	must(t, td())
	must(t, td()) // again: nothing to do
	if _, err := hh.LinkByName(link.Host); err == nil {
		t.Errorf("host end %s still there after teardown", link.Host)
	}
	if _, err := handle(t, w.app).LinkByName(AppLink); err == nil {
		t.Errorf("%s still in the application's namespace after teardown", AppLink)
	}
	if n := hostRules(t, w.host, link.Host); n != 0 {
		t.Errorf("%d host rules tagged %s after teardown", n, link.Host)
	}
	if _, ok := m.LinkOf("app-td"); ok {
		t.Error("the manager still lists the application")
	}
	must(t, m.Close())
	c, err := nftables.New(nftables.WithNetNSFd(int(w.host.h)))
	must(t, err)
	if tabs, err := c.ListTables(); err != nil || len(tabs) != 0 {
		t.Errorf("tables left in the host namespace after Close: %v %v", tabs, err)
	}
	if got := readForward(t, w.host); got != "0" {
		t.Errorf("ip_forward after Close = %s, want 0 (as it was)", got)
	}
	if _, err := m.Setup(context.Background(), w.app.path, "app-td", manifest.Capabilities{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Setup after Close: %v", err)
	}
}

func readForward(t *testing.T, ns testNS) string {
	t.Helper()
	var b []byte
	must(t, inNetNS(ns.h, func() (err error) {
		b, err = os.ReadFile("/proc/sys/net/ipv4/ip_forward")
		return err
	}))
	return strings.TrimSpace(string(b))
}

// hostRules counts the host's rules tagged with link.
func hostRules(t *testing.T, ns testNS, link string) int {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(int(ns.h)))
	must(t, err)
	n := 0
	for _, ch := range []string{hostForward, hostInput, hostPostrouting} {
		rules, err := c.GetRules(hostTable(), &nftables.Chain{Name: ch, Table: hostTable()})
		must(t, err)
		for _, r := range rules {
			if string(r.UserData) == link {
				n++
			}
		}
	}
	return n
}

// fakeClock is a settable clock whose After fires only when the test says so.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	ticks   chan time.Time
	waiting chan struct{} // a value each time the refresh loop starts waiting
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), ticks: make(chan time.Time), waiting: make(chan struct{}, 1)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(time.Duration) <-chan time.Time {
	c.waiting <- struct{}{}
	return c.ticks
}

// refresh advances the clock by d and runs one refresh to its end.
func (c *fakeClock) refresh(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	now := c.now
	c.mu.Unlock()
	c.ticks <- now
	<-c.waiting
}

// TestRefreshFollowsTheName: when an allowed name moves to a new address, a refresh allows the
// new one; the old one stays allowed until it has not been seen for two refresh periods.
func TestRefreshFollowsTheName(t *testing.T) {
	w := newWorld(t)
	res := testResolver()
	clock := newFakeClock()
	const every = time.Minute
	m := newManager(t, w, Config{Resolver: res, Now: clock.Now, After: clock.After, Refresh: every})
	td, err := m.Setup(context.Background(), w.app.path, "app-refresh", manifest.Capabilities{AllowedConnections: []string{"allowed.test"}})
	must(t, err)
	defer td()
	<-clock.waiting
	reach := func(a netip.Addr) bool {
		_, err := dialFrom(w.app, netip.AddrPortFrom(a, serverPort))
		return err == nil
	}
	if !reach(allowedIP) || reach(deniedIP) {
		t.Fatal("before the move: want only the old address reachable")
	}
	res.set("allowed.test", deniedIP) // the name moves
	clock.refresh(every)
	if !reach(deniedIP) {
		t.Error("after a refresh the name's new address is not reachable")
	}
	if !reach(allowedIP) {
		t.Error("the old address went at once; it should stay while an application may have it cached")
	}
	if rc, addrs, err := dnsQuery(t, w.app, netip.MustParseAddrPort("127.0.0.1:53"), "allowed.test"); err != nil || rc != dnsmessage.RCodeSuccess || len(addrs) != 1 || addrs[0] != deniedIP {
		t.Errorf("the answer after the move: %v %v %v; want only the new address", rc, addrs, err)
	}
	clock.refresh(every)
	clock.refresh(every + time.Second)
	if reach(allowedIP) {
		t.Error("the old address is still reachable two refresh periods after it was last seen")
	}
	if !reach(deniedIP) {
		t.Error("the new address is no longer reachable")
	}
}

// TestNewTakesTheCallersNamespace: with no HostNetNS, the host's namespace is that of the
// thread that calls New, not /proc/self/ns/net (the main thread's, which a goroutine that
// locked it may have moved into another namespace for good).
func TestNewTakesTheCallersNamespace(t *testing.T) {
	needRoot(t)
	// First the main thread goes for good into a namespace of its own, as it does when a
	// goroutine that locked it enters one and ends: New must not take that one.
	moved := func() bool { // the main thread is not where a thread running goroutines is
		c := make(chan bool)
		go func() {
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			main, err1 := os.Readlink("/proc/self/ns/net")
			this, err2 := os.Readlink("/proc/thread-self/ns/net")
			c <- err1 == nil && err2 == nil && main != this
		}()
		return <-c
	}
	for i := 0; i < 20 && !moved(); i++ {
		newNS(t)
	}
	if !moved() {
		t.Skip("the runtime never ran a namespace-making goroutine on the main thread, so nothing moved it")
	}
	host := newNS(t)
	var m *Manager
	must(t, inNetNS(host.h, func() (err error) {
		m, err = New(Config{Resolver: testResolver()})
		return err
	}))
	hasTable := func() bool {
		c, err := nftables.New(nftables.WithNetNSFd(int(host.h)))
		must(t, err)
		tabs, err := c.ListTables()
		must(t, err)
		for _, tab := range tabs {
			if tab.Name == TableName && tab.Family == nftables.TableFamilyIPv4 {
				return true
			}
		}
		return false
	}
	if !hasTable() {
		t.Error("New made no table in the namespace of the thread that called it")
	}
	if got := readForward(t, host); got != "1" {
		t.Errorf("ip_forward in the caller's namespace = %s, want 1", got)
	}
	must(t, m.Close())
	if hasTable() {
		t.Error("the table is still there after Close")
	}
	if got := readForward(t, host); got != "0" {
		t.Errorf("ip_forward after Close = %s, want 0", got)
	}
}
