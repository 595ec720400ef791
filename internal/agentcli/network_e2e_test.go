package agentcli

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/net/dns/dnsmessage"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/imagepkg/imagepkgtest"
	"github.com/rampart-iot/rampart/internal/localapi"
	"github.com/rampart-iot/rampart/internal/netpolicy"
	"github.com/rampart-iot/rampart/internal/server/servertest"
)

// The network of TestAppNetworkThroughTheAgent. The agent runs in the test's own network
// namespace (the machine's, as a device's agent runs in the device's), which its netpolicy
// manager prepares and gives each app a link into; the test adds a fresh namespace, "world",
// that plays the internet, routed from the machine's namespace over a veth pair:
//
//	app ── eth0 ═══ rp-N ── machine ── e2eWorldLink ═══ peer ── world
//	     (agent's pool: e2ePool)       worldGateway/29          worldAllowed, worldOther
//
// The world has TCP servers on both its addresses, ports worldPort and worldPort2, that greet
// with the address they were reached at and record who connected; and a UDP sink on port 53
// of both, a DNS server of the app's own choosing, that counts what it receives. The agent
// resolves the app's allowed names with a DNS server the test runs in the machine's namespace
// (--app-network-dns): allowed.test is worldAllowed, denied.test is worldOther.
var (
	worldGateway = netip.MustParseAddr("198.18.0.1")
	worldAllowed = netip.MustParseAddr("198.18.0.2")
	worldOther   = netip.MustParseAddr("198.18.0.3")
	e2ePool      = "198.18.8.0/28"
)

const (
	e2eWorldLink = "rpe2e-w0" // not LinkPrefix: the agent deletes its own leftovers by that
	worldPort    = 9000
	worldPort2   = 9001
	appServe     = 8080 // declared in the manifest
	appUndecl    = 8081 // the app listens here too, undeclared
)

// netPrereqs skips the test unless it can make network namespaces, veth links and nftables
// tables, and takes a lock so that no other run of it shares the machine's namespace.
func netPrereqs(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the agent makes veth links and nftables tables in this namespace")
	}
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "rampart-agentcli-app-network.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lock.Close() })
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	c, err := nftables.New()
	if err != nil {
		t.Skipf("needs nftables: %v", err)
	}
	tabs, err := c.ListTables()
	if err != nil {
		t.Skipf("needs nftables (listing this namespace's tables): %v", err)
	}
	for _, tab := range tabs {
		if tab.Name == netpolicy.TableName && tab.Family == nftables.TableFamilyIPv4 {
			t.Skipf("another agent's app network is up in this namespace (nftables table ip %s): the agent would take it over", tab.Name)
		}
	}
}

// e2eWorld is the world namespace and what listens in it.
type e2eWorld struct {
	ns  netns.NsHandle
	mu  sync.Mutex
	tcp []string // "LOCAL<-REMOTE" of each accepted connection
	dns map[netip.Addr]int
}

func newE2EWorld(t *testing.T) *e2eWorld {
	t.Helper()
	w := &e2eWorld{dns: map[netip.Addr]int{}}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		var err error
		w.ns, err = netns.New()
		errc <- err
	}()
	if err := <-errc; err != nil {
		t.Skipf("needs network namespaces: %v", err)
	}
	t.Cleanup(func() { w.ns.Close() })

	mh, err := netlink.NewHandle()
	if err != nil {
		t.Fatal(err)
	}
	defer mh.Close()
	if old, err := mh.LinkByName(e2eWorldLink); err == nil {
		_ = mh.LinkDel(old) // left by a run that was killed
	}
	if err := mh.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: e2eWorldLink}, PeerName: "up1", PeerNamespace: netlink.NsFd(w.ns)}); err != nil {
		t.Fatalf("adding the world's link: %v", err)
	}
	t.Cleanup(func() {
		if l, err := mh.LinkByName(e2eWorldLink); err == nil {
			_ = mh.LinkDel(l)
		}
	})
	ml, err := mh.LinkByName(e2eWorldLink)
	if err != nil {
		t.Fatal(err)
	}
	mustE2E(t, mh.AddrAdd(ml, &netlink.Addr{IPNet: prefixNet(worldGateway, 29)}))
	mustE2E(t, mh.LinkSetUp(ml))
	wh, err := netlink.NewHandleAt(w.ns)
	if err != nil {
		t.Fatal(err)
	}
	defer wh.Close()
	wl, err := wh.LinkByName("up1")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []netip.Addr{worldAllowed, worldOther} {
		mustE2E(t, wh.AddrAdd(wl, &netlink.Addr{IPNet: prefixNet(a, 29)}))
	}
	mustE2E(t, wh.LinkSetUp(wl))
	lo, err := wh.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	mustE2E(t, wh.LinkSetUp(lo))

	// The servers: sockets made in the world stay there, whichever thread serves them.
	var listeners []net.Listener
	var sinks []net.PacketConn
	mustE2E(t, inWorld(w.ns, func() error {
		for _, p := range []int{worldPort, worldPort2} {
			l, err := net.Listen("tcp4", fmt.Sprintf("0.0.0.0:%d", p))
			if err != nil {
				return err
			}
			listeners = append(listeners, l)
		}
		for _, a := range []netip.Addr{worldAllowed, worldOther} {
			pc, err := net.ListenPacket("udp4", netip.AddrPortFrom(a, 53).String())
			if err != nil {
				return err
			}
			sinks = append(sinks, pc)
		}
		return nil
	}))
	for _, l := range listeners {
		t.Cleanup(func() { l.Close() })
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				w.mu.Lock()
				w.tcp = append(w.tcp, c.LocalAddr().String()+"<-"+c.RemoteAddr().(*net.TCPAddr).IP.String())
				w.mu.Unlock()
				fmt.Fprintf(c, "hello from %s\n", c.LocalAddr())
				c.Close()
			}
		}()
	}
	for _, pc := range sinks {
		t.Cleanup(func() { pc.Close() })
		go func() {
			at := netip.MustParseAddrPort(pc.LocalAddr().String()).Addr()
			buf := make([]byte, 1500)
			for {
				if _, _, err := pc.ReadFrom(buf); err != nil {
					return
				}
				w.mu.Lock()
				w.dns[at]++
				w.mu.Unlock()
			}
		}()
	}
	return w
}

// seen returns what the world's TCP servers saw and how many datagrams its DNS sinks got.
func (w *e2eWorld) seen() ([]string, map[netip.Addr]int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	dns := map[netip.Addr]int{}
	for a, n := range w.dns {
		dns[a] = n
	}
	return append([]string(nil), w.tcp...), dns
}

// inWorld runs f on a thread in ns; the thread is never given back to the scheduler.
func inWorld(ns netns.NsHandle, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := netns.Set(ns); err != nil {
			errc <- err
			return
		}
		errc <- f()
	}()
	return <-errc
}

func prefixNet(a netip.Addr, bits int) *net.IPNet {
	return &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(bits, 32)}
}

func mustE2E(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// agentDNS is the DNS server the agent asks for the apps' allowed names: a fixed table,
// NXDOMAIN for anything else. It counts the A queries for each name.
type agentDNS struct {
	pc    net.PacketConn
	names map[string]netip.Addr
	mu    sync.Mutex
	asked map[string]int
}

func newAgentDNS(t *testing.T, names map[string]netip.Addr) *agentDNS {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	s := &agentDNS{pc: pc, names: names, asked: map[string]int{}}
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var q dnsmessage.Message
			if q.Unpack(buf[:n]) != nil || len(q.Questions) != 1 {
				continue
			}
			qu := q.Questions[0]
			name := strings.TrimSuffix(qu.Name.String(), ".")
			rh := dnsmessage.Header{ID: q.ID, Response: true, RecursionAvailable: true}
			a, ok := names[name]
			if !ok {
				rh.RCode = dnsmessage.RCodeNameError
			}
			b := dnsmessage.NewBuilder(nil, rh)
			_ = b.StartQuestions()
			_ = b.Question(qu)
			if ok && qu.Type == dnsmessage.TypeA {
				s.mu.Lock()
				s.asked[name]++
				s.mu.Unlock()
				_ = b.StartAnswers()
				_ = b.AResource(dnsmessage.ResourceHeader{Name: qu.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 60},
					dnsmessage.AResource{A: a.As4()})
			}
			if out, err := b.Finish(); err == nil {
				_, _ = pc.WriteTo(out, from)
			}
		}
	}()
	return s
}

func (s *agentDNS) count(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.asked[name]
}

// outcome is what testdata/netapp reports for one attempt.
type outcome struct {
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// TestAppNetworkThroughTheAgent runs `rampart-agent run --app-network` and an app whose
// manifest allows one name (allowed.test) and declares one TCP server port, and checks from
// the app's side and from outside what issue 5 asks: the allowed host is reached (by name,
// resolved by the agent); an unlisted name does not resolve, and an unlisted address, the
// machine itself and IPv6 are refused; a raw socket is refused; a DNS query to a server of
// the app's own is answered by the agent and never reaches that server; inbound, the declared
// port answers and an undeclared one the app also listens on is refused. Each refused attempt
// is reported as a SandboxDenied event of the app (reason network, dns, or, for the raw
// socket, seccomp), and nothing else is.
// When the agent stops, the links and the table it made are gone and IP forwarding is as it
// was.
func TestAppNetworkThroughTheAgent(t *testing.T) {
	netPrereqs(t)
	forwardBefore := readIPForward(t)
	w := newE2EWorld(t)
	dns := newAgentDNS(t, map[string]netip.Addr{"allowed.test": worldAllowed, "denied.test": worldOther})
	// The machine itself listens where the app's traffic would arrive, so that reaching it
	// would show.
	machine, err := net.Listen("tcp4", netip.AddrPortFrom(worldGateway, worldPort).String())
	mustE2E(t, err)
	t.Cleanup(func() { machine.Close() })
	machineSaw := make(chan string, 10)
	go func() {
		for {
			c, err := machine.Accept()
			if err != nil {
				return
			}
			machineSaw <- c.RemoteAddr().String()
			c.Close()
		}
	}()

	srv := servertest.Start(t, servertest.AllowSoftwareRootOfTrust(true))
	// A short state directory: the applibs socket's path, under it, must fit in 108 bytes.
	state, err := os.MkdirTemp("", "rpnet")
	mustE2E(t, err)
	t.Cleanup(func() { os.RemoveAll(state) })
	d := &emulated{t: t, srv: srv, state: state, exits: make(chan int, 1), log: &lockedBuffer{},
		args: []string{"--app-network", "--app-network-pool", e2ePool, "--app-network-dns", dns.pc.LocalAddr().String()}}
	mustE2E(t, os.MkdirAll(filepath.Join(d.state, "os", "active"), 0o755))
	d.start()
	stopped := false
	defer func() {
		if !stopped {
			d.stop()
		}
	}()

	// The app: each attempt below, then its results on the declared port.
	allowedHost := fmt.Sprintf("allowed.test:%d", worldPort)
	attempts := map[string]string{
		"allowed":       "dial " + allowedHost,
		"allowed-port2": fmt.Sprintf("dial allowed.test:%d", worldPort2),
		"denied-name":   fmt.Sprintf("dial denied.test:%d", worldPort),
		"other-ip":      "dial " + netip.AddrPortFrom(worldOther, worldPort).String(),
		"machine":       "dial " + netip.AddrPortFrom(worldGateway, worldPort).String(),
		"ipv6":          "dial [2001:db8::1]:" + fmt.Sprint(worldPort),
		"dns-allowed":   "dns " + netip.AddrPortFrom(worldAllowed, 53).String() + "=allowed.test",
		"dns-denied":    "dns " + netip.AddrPortFrom(worldOther, 53).String() + "=denied.test",
		"raw":           "raw",
	}
	args := []string{"-serve", fmt.Sprint(appServe), "-listen", fmt.Sprint(appUndecl), "-raw"}
	for _, a := range attempts {
		if kind, v, ok := strings.Cut(a, " "); ok {
			args = append(args, "-"+kind, v)
		}
	}
	app := imagepkgtest.Application(t, imagepkgtest.App{Name: "netapp", Version: "1.0.0",
		Files: map[string]string{"bin/app": buildProgram(t, "netapp")}, CmdArgs: args,
		Capabilities: fmt.Sprintf(`{"AllowedConnections":["allowed.test"],"AllowedTcpServerPorts":[%d]}`, appServe)})
	// A second app, which refuses itself nothing, runs beside it under a uid of its own:
	// nothing may be attributed to it.
	quiet := imagepkgtest.Application(t, imagepkgtest.App{Name: "quiet", Version: "1.0.0", Files: map[string]string{"bin/app": buildProgram(t, "app")}})
	d.local("sideload", "deploy", quiet.File(t, t.TempDir()))
	d.waitUntil("the quiet app running", func() bool {
		var apps []localapi.App
		if err := json.Unmarshal([]byte(d.local("app", "list", "-o", "json")), &apps); err != nil {
			t.Fatalf("app list: %v", err)
		}
		for _, a := range apps {
			if a.ComponentID == quiet.ComponentID && a.State == "running" {
				return true
			}
		}
		return false
	})
	d.local("sideload", "deploy", app.File(t, t.TempDir()))

	// The app's address, as the agent logs it when the app's network is up.
	upLine := regexp.MustCompile(`msg="app network up" app=` + regexp.QuoteMeta(app.ComponentID) + ` link=(\S+) addr=(\S+)`)
	var link string
	var appAddr netip.Addr
	d.waitUntil("the app's network up", func() bool {
		m := upLine.FindStringSubmatch(d.log.String())
		if m == nil {
			return false
		}
		link, appAddr = m[1], netip.MustParseAddr(m[2])
		return true
	})
	if !strings.HasPrefix(link, netpolicy.LinkPrefix) || !netip.MustParsePrefix(e2ePool).Contains(appAddr) {
		t.Fatalf("the app's link %s, address %s: want an %s link with an address of %s", link, appAddr, netpolicy.LinkPrefix, e2ePool)
	}

	// 6. Inbound: the declared port answers from outside (with the app's results) ...
	results := map[string]outcome{}
	hc := &http.Client{Timeout: 5 * time.Second}
	d.waitUntil("the app's results on its declared port", func() bool {
		resp, err := hc.Get(fmt.Sprintf("http://%s/", netip.AddrPortFrom(appAddr, appServe)))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&results) == nil
	})
	t.Logf("the app's results: %+v", results)
	get := func(name string) outcome {
		t.Helper()
		o, ok := results[attempts[name]]
		if !ok {
			t.Fatalf("the app reported nothing for %q", attempts[name])
		}
		return o
	}
	// ... and the undeclared one, where the app listens too, is refused.
	if c, err := net.DialTimeout("tcp4", netip.AddrPortFrom(appAddr, appUndecl).String(), 5*time.Second); err == nil {
		line, _ := bufio.NewReader(c).ReadString('\n')
		c.Close()
		t.Errorf("the undeclared port %d was reached from outside (%q)", appUndecl, line)
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("the undeclared port %d: %v; want connection refused (a reset from the app's ruleset)", appUndecl, err)
	}

	// 1. The allowed host, by the name the agent resolved, seen by its server from the
	// machine's address (the link is masqueraded).
	if o := get("allowed"); !o.OK || o.Detail != "hello from "+netip.AddrPortFrom(worldAllowed, worldPort).String() {
		t.Errorf("the allowed host: %+v", o)
	}
	// As on Azure Sphere, AllowedConnections names hosts, not ports: its other port is open.
	if o := get("allowed-port2"); !o.OK {
		t.Errorf("the allowed host's second port: %+v", o)
	}
	// 2, 3. What the manifest does not list: a name (the app's resolver gets NXDOMAIN from the
	// agent, which never asks its DNS server), a second server's address, the machine itself,
	// and IPv6 (no route, and the ruleset passes IPv6 only on loopback).
	for _, name := range []string{"denied-name", "other-ip", "machine", "ipv6"} {
		if o := get(name); o.OK {
			t.Errorf("%s (%s) was reached: %+v", name, attempts[name], o)
		}
	}
	if o := get("denied-name"); !strings.Contains(o.Detail, "no such host") {
		t.Errorf("denied.test: %q; want no such host", o.Detail)
	}
	if o := get("other-ip"); !strings.Contains(o.Detail, "connection refused") {
		t.Errorf("%s: %q; want connection refused (a reset from the app's ruleset)", worldOther, o.Detail)
	}
	// 4. A raw socket.
	if o := get("raw"); o.OK || !strings.Contains(o.Detail, "operation not permitted") {
		t.Errorf("raw socket: %+v; want operation not permitted", o)
	}
	// 5. DNS to a server of the app's own: the agent answers (the allowed name with its
	// address, the other with NXDOMAIN), and the servers never see a query.
	if o := get("dns-allowed"); !o.OK || o.Detail != "RCodeSuccess "+worldAllowed.String() {
		t.Errorf("a query for allowed.test to %s: %+v; want the agent's answer %s", worldAllowed, o, worldAllowed)
	}
	if o := get("dns-denied"); !o.OK || o.Detail != "RCodeNameError" {
		t.Errorf("a query for denied.test to %s: %+v; want the agent's NXDOMAIN", worldOther, o)
	}
	select {
	case from := <-machineSaw:
		t.Errorf("the machine's own %s was reached from %s", netip.AddrPortFrom(worldGateway, worldPort), from)
	default:
	}
	tcp, sinks := w.seen()
	if len(sinks) != 0 {
		t.Errorf("the world's DNS servers received datagrams: %v", sinks)
	}
	if n := dns.count("denied.test"); n != 0 {
		t.Errorf("the agent asked its DNS server for denied.test %d times; it must not ask for names the app may not use", n)
	}
	if n := dns.count("allowed.test"); n == 0 {
		t.Error("the agent never asked its DNS server for allowed.test")
	}
	// The world saw exactly the two allowed connections, both from the machine's address.
	want := map[string]bool{
		netip.AddrPortFrom(worldAllowed, worldPort).String() + "<-" + worldGateway.String():  true,
		netip.AddrPortFrom(worldAllowed, worldPort2).String() + "<-" + worldGateway.String(): true,
	}
	if len(tcp) != len(want) {
		t.Errorf("the world's servers saw %v; want %d connections", tcp, len(want))
	}
	for _, c := range tcp {
		if !want[c] {
			t.Errorf("the world's servers saw %s; want only the allowed host, from %s", c, worldGateway)
		}
	}

	// 7. The refused attempts are reported: SandboxDenied events of the app in the agent's
	// error-report queue (the emulated device is not enrolled, so nothing is uploaded), one
	// per destination or name, the first at once. The raw socket is refused by the sandbox's
	// seccomp argument filter, which the kernel logs to its audit (docs/SANDBOX.md); nothing
	// is attributed to another app, nor anything else to this one.
	wantDenied := map[string]string{
		"seccomp: socket refused: raw or packet socket, or a refused address family":                "seccomp", // raw
		"network: " + fmt.Sprintf("tcp to %s refused", netip.AddrPortFrom(worldOther, worldPort)):   "network", // other-ip
		"network: " + fmt.Sprintf("tcp to %s refused", netip.AddrPortFrom(worldGateway, worldPort)): "network", // machine
		"dns: denied.test not in AllowedConnections":                                                "dns",     // denied-name, dns-denied
		fmt.Sprintf("network: inbound tcp to port %d refused", appUndecl):                           "network", // from the machine
	}
	times := regexp.MustCompile(` \(\d+ times\)$`)
	var denied []v1.ReportEvent
	d.waitUntil("the refused attempts reported", func() bool {
		var evs localapi.Events
		if err := json.Unmarshal([]byte(d.local("events", "list", "-o", "json")), &evs); err != nil {
			t.Fatalf("events list: %v", err)
		}
		denied = denied[:0]
		seen := map[string]bool{}
		for _, ev := range evs.Events {
			if ev.Type == v1.EventSandboxDenied {
				denied = append(denied, ev)
				seen[times.ReplaceAllString(ev.Message, "")] = true
			}
		}
		for m := range wantDenied {
			if !seen[m] {
				return false
			}
		}
		return true
	})
	for _, ev := range denied {
		m := times.ReplaceAllString(ev.Message, "")
		t.Logf("reported: %s %s", ev.Reason, ev.Message)
		if ev.ComponentID == quiet.ComponentID {
			t.Errorf("reported %+v as the quiet app's", ev)
		}
		if reason, ok := wantDenied[m]; !ok || ev.Reason != reason || ev.ComponentID != app.ComponentID || ev.ImageID != app.ImageID {
			t.Errorf("reported %+v; want only the refused attempts, as %v, of component %s image %s", ev, wantDenied, app.ComponentID, app.ImageID)
		}
	}

	// The agent stops: its apps stop, then their network goes.
	d.stop()
	stopped = true
	mh, err := netlink.NewHandle()
	mustE2E(t, err)
	defer mh.Close()
	links, err := mh.LinkList()
	mustE2E(t, err)
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Name, netpolicy.LinkPrefix) {
			t.Errorf("link %s left after the agent stopped", l.Attrs().Name)
		}
	}
	c, err := nftables.New()
	mustE2E(t, err)
	tabs, err := c.ListTables()
	mustE2E(t, err)
	for _, tab := range tabs {
		if tab.Name == netpolicy.TableName {
			t.Errorf("nftables table %s (family %d) left after the agent stopped", tab.Name, tab.Family)
		}
	}
	if got := readIPForward(t); got != forwardBefore {
		t.Errorf("ip_forward is %s after the agent stopped; it was %s", got, forwardBefore)
	}
	if t.Failed() {
		t.Logf("agent log:\n%s", d.log.String())
	}
}

func readIPForward(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}
