package netpolicy

import (
	"context"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/rampart-iot/rampart/internal/nflog"
)

// Denial is one attempt of an application's that its network refused: a packet its ruleset
// rejected, or a name its DNS answerer would not resolve.
type Denial struct {
	// App is the application (its component ID, as given to Setup).
	App string
	// By is what refused it: DeniedByNetwork or DeniedByDNS.
	By string
	// Object is what was refused: "tcp to 198.18.0.3:9000" (the protocol, and the destination
	// and its port when the protocol has ports), "inbound udp to port 5000" (a packet sent to
	// the application's address, on a port it did not declare), or a DNS name, which the
	// application chose: untrusted text.
	Object string
	// Capability is the manifest field that would have allowed it: AllowedConnections,
	// AllowedTcpServerPorts or AllowedUdpServerPorts.
	Capability string
}

// The values of Denial.By.
const (
	DeniedByNetwork = "network"
	DeniedByDNS     = "dns"
)

// maxPendingDenials bounds the denials waiting for NextDenial; past it they are dropped, and
// counted.
const maxPendingDenials = 256

// NextDenial returns the next refused attempt of any application, in the order they were
// seen; it returns ctx's error when ctx ends. Packets are logged by the kernel at most 10 a
// second per application and direction; names, once per query. Nothing is coalesced here:
// the caller counts repeats. Denials that find NextDenial behind by maxPendingDenials are
// dropped, and the next call logs how many.
func (m *Manager) NextDenial(ctx context.Context) (Denial, error) {
	if n := m.lostDenials.Swap(0); n > 0 {
		m.log.Warn("network denials not reported: too many at once", "lost", n)
	}
	select {
	case d := <-m.denials:
		return d, nil
	case <-ctx.Done():
		return Denial{}, ctx.Err()
	}
}

// deny queues d for NextDenial, or drops it when the queue is full.
func (m *Manager) deny(d Denial) {
	select {
	case m.denials <- d:
	default:
		m.lostDenials.Add(1)
	}
}

// openLog binds LogGroup in the application's namespace and turns what its ruleset logs into
// denials until teardown. Without it (a kernel without nfnetlink_log) the application's network
// works as before, unreported.
func (a *appNet) openLog(ctx context.Context) {
	var r *nflog.Reader
	err := inNetNS(a.ns, func() (err error) {
		r, err = nflog.Open(nflog.Config{Group: LogGroup, CopyRange: logSnaplen, Logger: a.m.log})
		return err
	})
	if err != nil {
		a.m.log.Warn("refused packets of this app are not reported", "app", a.name, "err", err)
		return
	}
	a.nflog, a.logDone = r, make(chan struct{})
	addr := a.appAddr()
	go func() {
		defer close(a.logDone)
		for {
			p, err := r.Next(ctx)
			if err != nil {
				return // closed at teardown
			}
			if d, ok := packetDenial(a.name, addr, p); ok {
				a.m.deny(d)
			} else {
				a.m.log.Debug("a logged packet not attributed", "app", a.name, "prefix", p.Prefix, "hook", p.Hook, "bytes", len(p.Payload))
			}
		}
	}()
}

// packetDenial attributes a packet logged in the namespace of application app, whose address
// is addr. The namespace is the application's alone, so the packet is its, if it is what its
// rules log: an IPv4 packet from addr that the output chain refused (prefix logOut), or a TCP
// or UDP packet to addr that the input chain refused (logIn). Anything else is not attributed.
func packetDenial(app string, addr netip.Addr, p nflog.Packet) (Denial, bool) {
	if p.Family != unix.NFPROTO_IPV4 {
		return Denial{}, false
	}
	h, err := nflog.ParseIPv4(p.Payload)
	if err != nil {
		return Denial{}, false
	}
	d := Denial{App: app, By: DeniedByNetwork}
	switch {
	case p.Prefix == logOut && p.Hook == unix.NF_INET_LOCAL_OUT && h.Src == addr:
		d.Capability = "AllowedConnections"
		d.Object = protoName(h.Proto) + " to " + h.Dst.String()
		if h.HasPorts {
			d.Object = protoName(h.Proto) + " to " + netip.AddrPortFrom(h.Dst, h.DstPort).String()
		}
	case p.Prefix == logIn && p.Hook == unix.NF_INET_LOCAL_IN && h.Dst == addr && h.HasPorts &&
		(h.Proto == unix.IPPROTO_TCP || h.Proto == unix.IPPROTO_UDP):
		d.Capability = "AllowedTcpServerPorts"
		if h.Proto == unix.IPPROTO_UDP {
			d.Capability = "AllowedUdpServerPorts"
		}
		d.Object = fmt.Sprintf("inbound %s to port %d", protoName(h.Proto), h.DstPort)
	default:
		return Denial{}, false
	}
	return d, true
}

// protoName names an IP protocol as nft does, or "protocol N".
func protoName(p uint8) string {
	switch p {
	case unix.IPPROTO_TCP:
		return "tcp"
	case unix.IPPROTO_UDP:
		return "udp"
	case unix.IPPROTO_ICMP:
		return "icmp"
	case unix.IPPROTO_IGMP:
		return "igmp"
	case unix.IPPROTO_UDPLITE:
		return "udplite"
	case unix.IPPROTO_SCTP:
		return "sctp"
	case unix.IPPROTO_DCCP:
		return "dccp"
	case unix.IPPROTO_GRE:
		return "gre"
	}
	return fmt.Sprintf("protocol %d", p)
}
