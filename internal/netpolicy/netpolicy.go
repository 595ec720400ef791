// Package netpolicy gives a sandboxed application the network its manifest grants and nothing
// more: a veth link from the host into the application's network namespace, with addresses
// from a private pool, masqueraded on the host; inside the namespace, an nftables ruleset that
// lets the application send only to the addresses of its AllowedConnections (IPv4 literals as
// they are, names as the agent resolves them), accept connections only on its
// AllowedTcpServerPorts and AllowedUdpServerPorts, and reach no DNS server but the agent's
// own answerer, which resolves only the names the manifest allows. What it refuses an
// application, a packet its ruleset rejects (logged by the kernel, rate-limited, and read in
// the application's namespace through internal/nflog) or a name the answerer will not
// resolve, comes out of NextDenial attributed to it. docs/SANDBOX.md, "Network", has the
// whole picture.
//
// The package owns, in the host's network namespace, the nftables table "rampart" (family ip)
// and every interface whose name starts with LinkPrefix; in each application's namespace, the
// link AppLink, its addresses and routes, the table "rampart" (family inet), and the netlink
// log group LogGroup. It turns IPv4 forwarding on in the host's namespace if it is off, and
// back off when the Manager closes.
//
// Trust: it trusts the capabilities it is given (the caller takes them from a verified
// manifest) and the Resolver it is given (the agent's own view of DNS). It trusts nothing that
// comes from the application: DNS queries and logged packets are parsed as hostile input, and
// every decision is made by the kernel's ruleset in a namespace the application holds no
// capability in (so it cannot bind the log group itself, nor log packets of its choosing).
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
	"strings"
	"sync"
	"sync/atomic"
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
	// and the host's table live; "" means the agent's own: that of the thread that calls New,
	// not /proc/self/ns/net, which is the main thread's, and a goroutine that locked the main
	// thread and entered another namespace leaves it there (tests use another).
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

	// denials queue what the applications' networks refused, for NextDenial; lostDenials
	// counts those dropped because it was full.
	denials     chan Denial
	lostDenials atomic.Int64

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
	hostNS, err := hostNetNS(cfg.HostNetNS)
	if err != nil {
		return nil, fmt.Errorf("netpolicy: opening the host's network namespace: %w", err)
	}
	m := &Manager{cfg: cfg, log: log, hostNS: hostNS, used: map[slot]string{}, apps: map[string]*appNet{},
		denials: make(chan Denial, maxPendingDenials)}
	if err := m.prepareHost(); err != nil {
		hostNS.Close()
		return nil, fmt.Errorf("netpolicy: %w", err)
	}
	return m, nil
}

// hostNetNS opens the namespace at path, or with "" the calling thread's. A thread that runs
// goroutines unlocked is in the process's own namespace: the runtime ends a locked thread with
// its goroutine, or, the main thread, never runs anything on it again.
func hostNetNS(path string) (netns.NsHandle, error) {
	if path != "" {
		return netns.GetFromPath(path)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return netns.Get()
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
// turns IPv4 forwarding off again if New turned it on. Setup fails after Close. Call it once
// the applications have stopped (after apprun's Run returns): a Setup still in progress when
// Close runs may leave its link behind until the next New.
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
	a.resolveAll(ctx, pol.Names)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	a.mu.Lock()
	want := a.wanted()
	logging := true
	err = installAppRules(a.nft, want, pol.TCPPorts, pol.UDPPorts, logging)
	if err != nil {
		// A kernel without nft's log or limit expressions: the rules without them.
		if err2 := installAppRules(a.nft, want, pol.TCPPorts, pol.UDPPorts, false); err2 == nil {
			m.log.Warn("refused packets of this app are not reported: the kernel refused the log rules", "app", app, "err", err)
			logging, err = false, nil
		}
	}
	if err == nil {
		a.inSet = want
	}
	a.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if logging {
		a.openLog(life)
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
