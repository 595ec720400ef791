package netpolicy

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/rampart-iot/rampart/manifest"
)

// Policy is what an application's manifest grants on the network, sorted out by kind. The
// manifest package has already checked every entry.
type Policy struct {
	// Addrs are the IPv4 literals of AllowedConnections: allowed as they are.
	Addrs []netip.Addr
	// Names are the DNS names of AllowedConnections, lower case: the agent resolves them.
	Names []string
	// Wildcards are the suffixes of wildcard entries ("*.example.com" gives "example.com"),
	// lower case: a name with one or more labels before the suffix is allowed, the suffix
	// itself is not. The agent resolves such names when the application asks for them.
	Wildcards []string
	// Unsupported are entries the platform cannot honour yet (DNS-SD instance names such as
	// "_sample._tcp.local", which need multicast DNS): they grant nothing.
	Unsupported []string
	// TCPPorts and UDPPorts are the inbound ports (AllowedTcpServerPorts,
	// AllowedUdpServerPorts), sorted, without repeats.
	TCPPorts []uint16
	UDPPorts []uint16
}

// NewPolicy sorts the network capabilities of a manifest.
func NewPolicy(caps manifest.Capabilities) Policy {
	var p Policy
	for _, h := range caps.AllowedConnections {
		h = strings.ToLower(h)
		if a, err := netip.ParseAddr(h); err == nil {
			if a.Is4() {
				p.Addrs = append(p.Addrs, a)
			} else {
				p.Unsupported = append(p.Unsupported, h)
			}
			continue
		}
		switch {
		case strings.HasPrefix(h, "_") || strings.Contains(h, "._"):
			p.Unsupported = append(p.Unsupported, h)
		case strings.HasPrefix(h, "*."):
			p.Wildcards = append(p.Wildcards, h[2:])
		default:
			p.Names = append(p.Names, h)
		}
	}
	p.TCPPorts = ports(caps.AllowedTcpServerPorts)
	p.UDPPorts = ports(caps.AllowedUdpServerPorts)
	slices.SortFunc(p.Addrs, netip.Addr.Compare)
	p.Addrs = slices.Compact(p.Addrs)
	for _, l := range []*[]string{&p.Names, &p.Wildcards, &p.Unsupported} {
		slices.Sort(*l)
		*l = slices.Compact(*l)
	}
	return p
}

func ports(in []int) []uint16 {
	var out []uint16
	for _, p := range in {
		if p > 0 && p < 1<<16 {
			out = append(out, uint16(p))
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Grants reports whether caps grant any network access, so that the application needs a link
// at all: an allowed connection or a server port.
func Grants(caps manifest.Capabilities) bool {
	return len(caps.AllowedConnections) > 0 || len(caps.AllowedTcpServerPorts) > 0 ||
		len(caps.AllowedUdpServerPorts) > 0
}

// allows reports whether name (lower case, no trailing dot) is one the application may
// resolve: one of Names, or below one of Wildcards.
func (p *Policy) allows(name string) bool {
	if _, ok := slices.BinarySearch(p.Names, name); ok {
		return true
	}
	for _, w := range p.Wildcards {
		if len(name) > len(w)+1 && strings.HasSuffix(name, w) && name[len(name)-len(w)-1] == '.' {
			return true
		}
	}
	return false
}
