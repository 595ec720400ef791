package netpolicy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/rampart-iot/rampart/internal/nflog"
)

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
	// nflog reads what the ruleset logs (nil without it); logDone is closed when its
	// goroutine ends.
	nflog   *nflog.Reader
	logDone chan struct{}

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
	ans := &answerer{allows: a.pol.allows, lookup: a.lookup, ttl: uint32(a.m.cfg.Refresh / time.Second),
		denied: func(name string) {
			a.m.deny(Denial{App: a.name, By: DeniedByDNS, Object: name, Capability: "AllowedConnections"})
		}}
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
		if a.nflog != nil {
			errs = append(errs, a.nflog.Close())
			<-a.logDone
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
