// Package netpolicy gives a sandboxed application the network its manifest grants and nothing
// more: a veth link from the host into the application's network namespace, with addresses
// from a private pool, masqueraded on the host; inside the namespace, an nftables ruleset that
// lets the application send only to the addresses of its AllowedConnections (IPv4 literals as
// they are, names as the agent resolves them), accept connections only on its
// AllowedTcpServerPorts and AllowedUdpServerPorts, and reach no DNS server but the agent's
// own answerer, which resolves only the names the manifest allows. docs/SANDBOX.md, "Network",
// has the whole picture.
//
// The package owns, in the host's network namespace, the nftables table "rampart" (family ip)
// and every interface whose name starts with LinkPrefix; in each application's namespace, the
// link AppLink, its addresses and routes, and the table "rampart" (family inet). It turns IPv4
// forwarding on in the host's namespace if it is off, and back off when the Manager closes.
//
// Trust: it trusts the capabilities it is given (the caller takes them from a verified
// manifest) and the Resolver it is given (the agent's own view of DNS). It trusts nothing that
// comes from the application: DNS queries are parsed as hostile input, and every decision is
// made by the kernel's ruleset in a namespace the application holds no capability in.
package netpolicy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/rampart-iot/rampart/manifest"
)

// Defaults for Config.
const (
	DefaultRefresh       = time.Minute
	DefaultLookupTimeout = 5 * time.Second
	DefaultMaxNames      = 64
)

// DefaultPool is the address pool when Config.Pool is not set: the shared address space of
// RFC 6598, which a device's own networks rarely use. A device whose uplink or destinations
// are in it must configure another pool.
var DefaultPool = netip.MustParsePrefix("100.64.0.0/10")

// Resolver resolves the names of AllowedConnections for the agent; *net.Resolver has it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Config configures a Manager. Its zero value is usable: every zero field takes its default.
type Config struct {
	// Pool is the IPv4 prefix the links' addresses come from, one /31 per running
	// application (DefaultPool). At most a /30.
	Pool netip.Prefix
	// HostNetNS is the path of the host's network namespace, where the host end of each link
	// and the host's table live; "" means the agent's own (tests use another).
	HostNetNS string
	// Resolver resolves allowed names; nil means net.DefaultResolver. It is asked for IPv4
	// addresses only.
	Resolver Resolver
	// Refresh is how often each application's names are resolved again (DefaultRefresh). An
	// address a name no longer resolves to stays allowed until it has not been seen for two
	// Refresh periods, so that an application that cached it (answers carry a TTL of Refresh)
	// is not cut off.
	Refresh time.Duration
	// LookupTimeout bounds one resolution (DefaultLookupTimeout).
	LookupTimeout time.Duration
	// MaxNames bounds, per application, the names learned through wildcard entries
	// (DefaultMaxNames); past it the one asked for least recently is forgotten.
	MaxNames int
	// Now and After are the clock (defaults time.Now and time.After).
	Now   func() time.Time
	After func(time.Duration) <-chan time.Time
	// Logger is nil for no logging.
	Logger *slog.Logger
}

// Manager sets up and tears down the network of each application. It is safe for concurrent
// use.
type Manager struct {
	cfg    Config
	log    *slog.Logger
	hostNS netns.NsHandle
	// forwardOff is true when IPv4 forwarding was off and the Manager turned it on.
	forwardOff bool

	mu     sync.Mutex
	used   map[slot]string
	apps   map[string]*appNet
	closed bool
}

// ErrClosed is returned by Setup after Close.
var ErrClosed = errors.New("netpolicy: the manager is closed")

// New checks cfg, then prepares the host's namespace: it deletes links and the table an agent
// that crashed may have left, turns IPv4 forwarding on if it is off (then also dropping
// forwarded traffic that does not involve an application's link), and makes the host's table.
func New(cfg Config) (*Manager, error) {
	var errs []error
	if !cfg.Pool.IsValid() {
		cfg.Pool = DefaultPool
	}
	if !cfg.Pool.Addr().Is4() || cfg.Pool.Bits() > 30 {
		errs = append(errs, fmt.Errorf("pool %s: must be an IPv4 prefix of at most /30", cfg.Pool))
	}
	cfg.Pool = cfg.Pool.Masked()
	if cfg.Refresh < 0 || cfg.LookupTimeout < 0 || cfg.MaxNames < 0 {
		errs = append(errs, errors.New("refresh, lookup timeout and max names must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("netpolicy: %w", err)
	}
	if cfg.Resolver == nil {
		cfg.Resolver = net.DefaultResolver
	}
	if cfg.Refresh == 0 {
		cfg.Refresh = DefaultRefresh
	}
	if cfg.LookupTimeout == 0 {
		cfg.LookupTimeout = DefaultLookupTimeout
	}
	if cfg.MaxNames == 0 {
		cfg.MaxNames = DefaultMaxNames
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.After == nil {
		cfg.After = time.After
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	path := cfg.HostNetNS
	if path == "" {
		path = "/proc/self/ns/net"
	}
	hostNS, err := netns.GetFromPath(path)
	if err != nil {
		return nil, fmt.Errorf("netpolicy: opening the host's network namespace: %w", err)
	}
	m := &Manager{cfg: cfg, log: log, hostNS: hostNS, used: map[slot]string{}, apps: map[string]*appNet{}}
	if err := m.prepareHost(); err != nil {
		hostNS.Close()
		return nil, fmt.Errorf("netpolicy: %w", err)
	}
	return m, nil
}

func (m *Manager) prepareHost() error {
	h, err := netlink.NewHandleAt(m.hostNS)
	if err != nil {
		return fmt.Errorf("netlink in the host's namespace: %w", err)
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		return fmt.Errorf("listing the host's links: %w", err)
	}
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Name, LinkPrefix) && l.Type() == "veth" {
			m.log.Info("deleting a link left behind", "link", l.Attrs().Name)
			if err := h.LinkDel(l); err != nil {
				return fmt.Errorf("deleting %s: %w", l.Attrs().Name, err)
			}
		}
	}
	var was []byte
	err = inNetNS(m.hostNS, func() error {
		const f = "/proc/sys/net/ipv4/ip_forward"
		if was, err = os.ReadFile(f); err != nil {
			return err
		}
		if strings.TrimSpace(string(was)) == "0" {
			return os.WriteFile(f, []byte("1\n"), 0o644)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("turning IPv4 forwarding on: %w", err)
	}
	m.forwardOff = strings.TrimSpace(string(was)) == "0"
	if m.forwardOff {
		m.log.Info("turned IPv4 forwarding on; forwarding only for application links")
	}
	c, err := nftables.New(nftables.WithNetNSFd(int(m.hostNS)))
	if err != nil {
		return err
	}
	return installHostTable(c, m.forwardOff)
}

// Close tears down every application's network still set up, deletes the host's table, and
// turns IPv4 forwarding off again if New turned it on. Setup fails after Close.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	apps := make([]*appNet, 0, len(m.apps))
	for _, a := range m.apps {
		apps = append(apps, a)
	}
	m.mu.Unlock()
	var errs []error
	for _, a := range apps {
		errs = append(errs, a.teardown())
	}
	c, err := nftables.New(nftables.WithNetNSFd(int(m.hostNS)))
	if err == nil {
		err = deleteHostTable(c)
	}
	errs = append(errs, err)
	if m.forwardOff {
		errs = append(errs, inNetNS(m.hostNS, func() error {
			return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("0\n"), 0o644)
		}))
	}
	errs = append(errs, m.hostNS.Close())
	return errors.Join(errs...)
}

// Link is what Setup gave an application.
type Link struct {
	// Host is the name of the host end; HostAddr and AppAddr are the two ends' addresses.
	Host              string
	HostAddr, AppAddr netip.Addr
}

// Setup gives the application app (its component ID), whose network namespace is at
// netnsPath, the network caps grant: the link, its routes, the ruleset, the DNS answerer and
// the host's rules, then keeps its names resolved until teardown. It is made for
// sandbox.Spec.ConfigureNetwork, and must run before the application does. Teardown (safe to
// call more than once, and from any goroutine) undoes all of it; call it when the application
// has exited, or when its start failed after Setup. A failed Setup leaves nothing behind.
//
// A name that does not resolve at Setup (the device may be offline) does not fail it: the
// name is tried again at each refresh and when the application asks for it.
func (m *Manager) Setup(ctx context.Context, netnsPath, app string, caps manifest.Capabilities) (teardown func() error, err error) {
	a, err := m.setup(ctx, netnsPath, app, NewPolicy(caps))
	if err != nil {
		return nil, fmt.Errorf("netpolicy: %s: %w", app, err)
	}
	return a.teardown, nil
}

// LinkOf returns the link of a running application.
func (m *Manager) LinkOf(app string) (Link, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a, ok := m.apps[app]
	if !ok {
		return Link{}, false
	}
	h, ap := a.slot.addrs(m.cfg.Pool)
	return Link{Host: a.slot.link(), HostAddr: h, AppAddr: ap}, true
}

func (m *Manager) setup(ctx context.Context, netnsPath, app string, pol Policy) (*appNet, error) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, ErrClosed
	}
	if _, dup := m.apps[app]; dup {
		m.mu.Unlock()
		return nil, errors.New("its network is already set up")
	}
	s, err := allocate(m.cfg.Pool, app, m.used)
	if err != nil {
		m.mu.Unlock()
		return nil, err
	}
	life, cancel := context.WithCancel(context.Background())
	a := &appNet{m: m, name: app, slot: s, pol: pol, cancel: cancel, done: make(chan struct{}),
		names: map[string]*nameState{}}
	m.used[s] = app
	m.apps[app] = a
	m.mu.Unlock()

	ok := false
	defer func() {
		if !ok {
			_ = a.teardown()
		}
	}()
	if a.ns, err = netns.GetFromPath(netnsPath); err != nil {
		return nil, fmt.Errorf("opening its network namespace: %w", err)
	}
	if err := a.makeLink(); err != nil {
		return nil, err
	}
	if a.nft, err = nftables.New(nftables.WithNetNSFd(int(a.ns))); err != nil {
		return nil, err
	}
	// Resolve the names first, so the ruleset starts with their addresses.
	for _, n := range pol.Names {
		a.names[n] = &nameState{addrs: map[netip.Addr]time.Time{}}
	}
	for _, n := range pol.Names {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		a.resolve(ctx, n)
	}
	a.mu.Lock()
	want := a.wanted()
	err = installAppRules(a.nft, want, pol.TCPPorts, pol.UDPPorts)
	if err == nil {
		a.inSet = want
	}
	a.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if err := a.startDNS(life); err != nil {
		return nil, err
	}
	hc, err := nftables.New(nftables.WithNetNSFd(int(m.hostNS)))
	if err != nil {
		return nil, err
	}
	if err := addHostRules(hc, s.link(), a.appAddr()); err != nil {
		return nil, err
	}
	a.hostRules = true
	a.loopStarted = true
	go a.refreshLoop(life)
	ok = true
	_, appAddr := s.addrs(m.cfg.Pool)
	m.log.Info("app network up", "app", app, "link", s.link(), "addr", appAddr,
		"addrs", len(pol.Addrs), "names", len(pol.Names), "wildcards", len(pol.Wildcards),
		"tcp", pol.TCPPorts, "udp", pol.UDPPorts)
	if len(pol.Unsupported) > 0 {
		m.log.Warn("AllowedConnections entries not enforced (they grant nothing)", "app", app, "entries", pol.Unsupported)
	}
	return a, nil
}

// appNet is one application's network.
type appNet struct {
	m      *Manager
	name   string
	slot   slot
	pol    Policy
	ns     netns.NsHandle
	nft    *nftables.Conn
	cancel context.CancelFunc
	done   chan struct{} // closed when the refresh loop ends
	dns    net.PacketConn

	linkMade, hostRules, loopStarted bool

	mu sync.Mutex
	// names are the resolved names: the manifest's and those learned through wildcards.
	names map[string]*nameState
	// inSet is what the allowed set holds.
	inSet []netip.Addr
	// down is set by teardown: the ruleset is not to be touched again.
	down bool

	once  sync.Once
	tdErr error
}

// nameState is one name's resolution.
type nameState struct {
	learned  bool                     // through a wildcard
	asked    time.Time                // last asked for by the application (learned names)
	resolved time.Time                // last resolved
	addrs    map[netip.Addr]time.Time // address → last seen in a resolution
}

func (a *appNet) appAddr() netip.Addr {
	_, app := a.slot.addrs(a.m.cfg.Pool)
	return app
}

// makeLink adds the veth pair, with the application's end made straight in its namespace.
func (a *appNet) makeLink() error {
	host, app := a.slot.addrs(a.m.cfg.Pool)
	hh, err := netlink.NewHandleAt(a.m.hostNS)
	if err != nil {
		return err
	}
	defer hh.Close()
	name := a.slot.link()
	if old, err := hh.LinkByName(name); err == nil {
		_ = hh.LinkDel(old) // left by a crashed agent after New
	}
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: AppLink, PeerNamespace: netlink.NsFd(a.ns)}
	if err := hh.LinkAdd(veth); err != nil {
		return fmt.Errorf("adding link %s: %w", name, err)
	}
	a.linkMade = true
	hl, err := hh.LinkByName(name)
	if err != nil {
		return err
	}
	if err := hh.AddrAdd(hl, &netlink.Addr{IPNet: ipnet(host, 31)}); err != nil {
		return fmt.Errorf("addressing %s: %w", name, err)
	}
	if err := hh.LinkSetUp(hl); err != nil {
		return err
	}
	ah, err := netlink.NewHandleAt(a.ns)
	if err != nil {
		return err
	}
	defer ah.Close()
	// Loopback first: the DNS answerer listens there, and the sandbox's init, which also
	// brings it up, runs after this.
	lo, err := ah.LinkByName("lo")
	if err != nil {
		return err
	}
	if err := ah.LinkSetUp(lo); err != nil {
		return fmt.Errorf("bringing lo up: %w", err)
	}
	al, err := ah.LinkByName(AppLink)
	if err != nil {
		return err
	}
	if err := ah.AddrAdd(al, &netlink.Addr{IPNet: ipnet(app, 31)}); err != nil {
		return fmt.Errorf("addressing %s: %w", AppLink, err)
	}
	if err := ah.LinkSetUp(al); err != nil {
		return err
	}
	if err := ah.RouteAdd(&netlink.Route{LinkIndex: al.Attrs().Index, Gw: host.AsSlice()}); err != nil {
		return fmt.Errorf("adding the default route: %w", err)
	}
	return nil
}

func ipnet(a netip.Addr, bits int) *net.IPNet {
	return &net.IPNet{IP: a.AsSlice(), Mask: net.CIDRMask(bits, 32)}
}

// startDNS opens the answerer's socket, 127.0.0.1:53 inside the application's namespace, and
// serves it until ctx ends. The socket is made before the application runs, so it cannot take
// the port (it could not anyway: 53 is privileged and it has no capability).
func (a *appNet) startDNS(ctx context.Context) error {
	var pc net.PacketConn
	err := inNetNS(a.ns, func() (err error) {
		pc, err = net.ListenPacket("udp4", "127.0.0.1:53")
		return err
	})
	if err != nil {
		return fmt.Errorf("opening the DNS answerer's socket: %w", err)
	}
	a.dns = pc
	ans := &answerer{allows: a.pol.allows, lookup: a.lookup, ttl: uint32(a.m.cfg.Refresh / time.Second)}
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return // closed at teardown
			}
			qctx, cancel := context.WithTimeout(ctx, a.m.cfg.LookupTimeout)
			if out := ans.answer(qctx, buf[:n]); out != nil {
				_, _ = pc.WriteTo(out, from)
			}
			cancel()
		}
	}()
	return nil
}

// lookup answers the DNS answerer: the addresses of an allowed name, resolving it (and adding
// its addresses to the allowed set) unless it was resolved less than a Refresh ago.
func (a *appNet) lookup(ctx context.Context, name string) ([]netip.Addr, error) {
	now := a.m.cfg.Now()
	a.mu.Lock()
	ns, known := a.names[name]
	if known && ns.learned {
		ns.asked = now
	}
	fresh := known && !ns.resolved.IsZero() && now.Sub(ns.resolved) < a.m.cfg.Refresh
	a.mu.Unlock()
	if !fresh {
		if !known {
			a.mu.Lock()
			a.learn(name, now)
			a.mu.Unlock()
		}
		a.resolve(ctx, name)
		a.mu.Lock()
		err := a.sync()
		a.mu.Unlock()
		if err != nil {
			a.m.log.Warn("updating allowed addresses", "app", a.name, "err", err)
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	ns, ok := a.names[name]
	if !ok {
		return nil, nil
	}
	// The addresses seen in the last resolution first; older ones still allowed after.
	var out []netip.Addr
	for ad, seen := range ns.addrs {
		if seen.Equal(ns.resolved) {
			out = append(out, ad)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out, nil
}

// learn records a name allowed by a wildcard, forgetting the least recently asked one beyond
// MaxNames. a.mu is held.
func (a *appNet) learn(name string, now time.Time) {
	var learned []string
	for n, s := range a.names {
		if s.learned {
			learned = append(learned, n)
		}
	}
	if len(learned) >= a.m.cfg.MaxNames {
		slices.SortFunc(learned, func(x, y string) int { return a.names[x].asked.Compare(a.names[y].asked) })
		for _, n := range learned[:len(learned)-a.m.cfg.MaxNames+1] {
			delete(a.names, n)
		}
	}
	a.names[name] = &nameState{learned: true, asked: now, addrs: map[netip.Addr]time.Time{}}
}

// resolve resolves one name and records its addresses. It does not touch the ruleset.
func (a *appNet) resolve(ctx context.Context, name string) {
	ctx, cancel := context.WithTimeout(ctx, a.m.cfg.LookupTimeout)
	defer cancel()
	addrs, err := a.m.cfg.Resolver.LookupNetIP(ctx, "ip4", name)
	now := a.m.cfg.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	ns, ok := a.names[name]
	if !ok {
		return // forgotten meanwhile
	}
	if err != nil {
		a.m.log.Warn("resolving an allowed name", "app", a.name, "name", name, "err", err)
		return
	}
	ns.resolved = now
	for _, ad := range addrs {
		ad = ad.Unmap()
		if ad.Is4() {
			ns.addrs[ad] = now
		}
	}
}

// wanted is what the allowed set should hold now: the manifest's addresses and every resolved
// address seen within the last two Refresh periods. It forgets older ones. a.mu is held.
func (a *appNet) wanted() []netip.Addr {
	limit := a.m.cfg.Now().Add(-2 * a.m.cfg.Refresh)
	out := slices.Clone(a.pol.Addrs)
	for _, ns := range a.names {
		for ad, seen := range ns.addrs {
			if seen.Before(limit) {
				delete(ns.addrs, ad)
				continue
			}
			out = append(out, ad)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

// sync brings the allowed set to wanted(). a.mu is held.
func (a *appNet) sync() error {
	if a.down {
		return nil // the namespace's descriptor is closed, its number maybe reused
	}
	want := a.wanted()
	var add, del []netip.Addr
	for _, ad := range want {
		if _, ok := slices.BinarySearchFunc(a.inSet, ad, netip.Addr.Compare); !ok {
			add = append(add, ad)
		}
	}
	for _, ad := range a.inSet {
		if _, ok := slices.BinarySearchFunc(want, ad, netip.Addr.Compare); !ok {
			del = append(del, ad)
		}
	}
	if len(add) == 0 && len(del) == 0 {
		return nil
	}
	if err := updateAllowed(a.nft, add, del); err != nil {
		return err
	}
	a.inSet = want
	return nil
}

// refreshLoop resolves every name again each Refresh until ctx ends.
func (a *appNet) refreshLoop(ctx context.Context) {
	defer close(a.done)
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.m.cfg.After(a.m.cfg.Refresh):
		}
		a.refresh(ctx)
	}
}

// refresh resolves every name again and updates the allowed set.
func (a *appNet) refresh(ctx context.Context) {
	a.mu.Lock()
	names := make([]string, 0, len(a.names))
	for n := range a.names {
		names = append(names, n)
	}
	a.mu.Unlock()
	slices.Sort(names)
	for _, n := range names {
		if ctx.Err() != nil {
			return
		}
		a.resolve(ctx, n)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if ctx.Err() != nil {
		return
	}
	if err := a.sync(); err != nil {
		a.m.log.Warn("updating allowed addresses", "app", a.name, "err", err)
	}
}

// teardown undoes Setup: the refresh loop and the answerer stop, the host's rules go, the
// link goes (deleting one end of a veth pair deletes both), the slot is free again. The
// application's ruleset goes with its namespace.
func (a *appNet) teardown() error {
	a.once.Do(func() {
		a.cancel()
		a.mu.Lock()
		a.down = true
		a.mu.Unlock()
		var errs []error
		if a.dns != nil {
			errs = append(errs, a.dns.Close())
		}
		if a.hostRules {
			if c, err := nftables.New(nftables.WithNetNSFd(int(a.m.hostNS))); err != nil {
				errs = append(errs, err)
			} else {
				errs = append(errs, delHostRules(c, a.slot.link()))
			}
		}
		if a.linkMade {
			errs = append(errs, a.deleteLink())
		}
		if a.loopStarted {
			<-a.done
		}
		if a.ns.IsOpen() {
			errs = append(errs, a.ns.Close())
		}
		a.m.mu.Lock()
		delete(a.m.used, a.slot)
		delete(a.m.apps, a.name)
		a.m.mu.Unlock()
		a.tdErr = errors.Join(errs...)
		if a.tdErr != nil {
			a.tdErr = fmt.Errorf("netpolicy: %s: teardown: %w", a.name, a.tdErr)
		} else {
			a.m.log.Info("app network down", "app", a.name, "link", a.slot.link())
		}
	})
	return a.tdErr
}

func (a *appNet) deleteLink() error {
	hh, err := netlink.NewHandleAt(a.m.hostNS)
	if err != nil {
		return err
	}
	defer hh.Close()
	l, err := hh.LinkByName(a.slot.link())
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil // gone with the application's namespace
		}
		return err
	}
	return hh.LinkDel(l)
}

// inNetNS runs f on an OS thread in the network namespace ns. The thread is never returned to
// the scheduler: it ends with its goroutine, so no other goroutine ever runs in ns.
func inNetNS(ns netns.NsHandle, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		if err := netns.Set(ns); err != nil {
			errc <- fmt.Errorf("entering a network namespace: %w", err)
			return
		}
		errc <- f()
	}()
	return <-errc
}
