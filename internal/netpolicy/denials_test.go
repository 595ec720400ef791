package netpolicy

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/net/dns/dnsmessage"
	"golang.org/x/sys/unix"

	"github.com/rampart-iot/rampart/internal/nflog"
	"github.com/rampart-iot/rampart/manifest"
)

// TestRefusedAttemptsAreReported: what the application's network refuses it comes out of
// NextDenial, attributed to it: a TCP connection and a UDP datagram to unlisted addresses (the
// ruleset's log rules, read in its namespace), a name it may not resolve (the answerer), and a
// connection from the host to a port it did not declare. What is allowed is not reported. The
// log rules carry their rate limit.
func TestRefusedAttemptsAreReported(t *testing.T) {
	w := newWorld(t)
	m := newManager(t, w, Config{})
	td, err := m.Setup(context.Background(), w.app.path, "app-denied", manifest.Capabilities{
		AllowedConnections:    []string{"allowed.test"},
		AllowedTcpServerPorts: []int{7000},
	})
	must(t, err)
	defer td()
	link, ok := m.LinkOf("app-denied")
	if !ok {
		t.Fatal("no link")
	}
	startTCPServer(t, w.app, netip.AddrPortFrom(link.AppAddr, 7001))

	if _, err := dialFrom(w.app, netip.AddrPortFrom(allowedIP, serverPort)); err != nil {
		t.Fatalf("the allowed server: %v", err)
	}
	if _, err := dialFrom(w.app, netip.AddrPortFrom(deniedIP, serverPort)); err == nil {
		t.Fatal("the denied server was reached")
	}
	must(t, inNetNS(w.app.h, func() error {
		c, err := net.Dial("udp4", netip.AddrPortFrom(dnsIP, 5353).String())
		if err != nil {
			return err
		}
		defer c.Close()
		_, _ = c.Write([]byte("x")) // refused: EPERM, or nothing
		return nil
	}))
	if rc, _, err := dnsQuery(t, w.app, netip.AddrPortFrom(dnsIP, 53), "denied.test"); err != nil || rc != dnsmessage.RCodeNameError {
		t.Fatalf("denied.test: %v %v", rc, err)
	}
	if _, err := dialFrom(w.host, netip.AddrPortFrom(link.AppAddr, 7001)); err == nil {
		t.Fatal("the undeclared port was reached from the host")
	}

	want := map[Denial]bool{
		{App: "app-denied", By: DeniedByNetwork, Object: "tcp to 10.200.0.4:8080", Capability: "AllowedConnections"}:      true,
		{App: "app-denied", By: DeniedByNetwork, Object: "udp to 10.200.0.5:5353", Capability: "AllowedConnections"}:      true,
		{App: "app-denied", By: DeniedByDNS, Object: "denied.test", Capability: "AllowedConnections"}:                     true,
		{App: "app-denied", By: DeniedByNetwork, Object: "inbound tcp to port 7001", Capability: "AllowedTcpServerPorts"}: true,
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second) // bounds a hang only
	defer cancel()
	for len(want) > 0 {
		d, err := m.NextDenial(ctx)
		if err != nil {
			t.Fatalf("still waiting for %v: %v", want, err)
		}
		t.Logf("denial: %+v", d)
		if d.App != "app-denied" || d.Object == "tcp to "+netip.AddrPortFrom(allowedIP, serverPort).String() {
			t.Errorf("unexpected denial %+v", d)
		}
		delete(want, d)
	}

	// Both log rules are rate-limited in the kernel.
	c, err := nftables.New(nftables.WithNetNSFd(int(w.app.h)))
	must(t, err)
	logs := 0
	for _, chain := range []string{"out", "in"} {
		rules, err := c.GetRules(appTable(), &nftables.Chain{Name: chain, Table: appTable()})
		must(t, err)
		for _, r := range rules {
			limited := false
			for _, e := range r.Exprs {
				switch e := e.(type) {
				case *expr.Limit:
					limited = e.Rate == logRate && e.Unit == expr.LimitTimeSecond
				case *expr.Log:
					logs++
					if !limited || e.Group != LogGroup {
						t.Errorf("chain %s: a log rule to group %d, limited %v; want group %d after a limit of %d/s", chain, e.Group, limited, LogGroup, logRate)
					}
				}
			}
		}
	}
	if logs != 2 {
		t.Errorf("%d log rules, want 2", logs)
	}
}

// ipv4Packet is an IPv4 header of 20 bytes and, for proto TCP or UDP, the ports.
func ipv4Packet(proto uint8, src, dst netip.Addr, sport, dport uint16) []byte {
	b := make([]byte, 28)
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], 28)
	b[8], b[9] = 64, proto
	s, d := src.As4(), dst.As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	binary.BigEndian.PutUint16(b[20:], sport)
	binary.BigEndian.PutUint16(b[22:], dport)
	return b
}

// TestPacketDenial: a logged packet is the application's only if it is what its log rules
// log: sent from its address and refused on output, or sent to its address (TCP or UDP) and
// refused on input.
func TestPacketDenial(t *testing.T) {
	app := netip.MustParseAddr("100.64.0.9")
	other := netip.MustParseAddr("198.18.0.3")
	pkt := func(prefix string, hook uint8, payload []byte) nflog.Packet {
		return nflog.Packet{Family: unix.NFPROTO_IPV4, Group: LogGroup, Hook: hook, Prefix: prefix, Payload: payload}
	}
	out, in := uint8(unix.NF_INET_LOCAL_OUT), uint8(unix.NF_INET_LOCAL_IN)
	icmp := ipv4Packet(unix.IPPROTO_ICMP, app, other, 0x0800, 0)
	for _, tc := range []struct {
		name string
		p    nflog.Packet
		want string // Object, "" for not attributed
		cap  string
	}{
		{"tcp out", pkt(logOut, out, ipv4Packet(unix.IPPROTO_TCP, app, other, 40000, 9000)), "tcp to 198.18.0.3:9000", "AllowedConnections"},
		{"udp out", pkt(logOut, out, ipv4Packet(unix.IPPROTO_UDP, app, other, 40000, 53)), "udp to 198.18.0.3:53", "AllowedConnections"},
		{"icmp out", pkt(logOut, out, icmp), "icmp to 198.18.0.3", "AllowedConnections"},
		{"gre out", pkt(logOut, out, ipv4Packet(unix.IPPROTO_GRE, app, other, 0, 0)), "gre to 198.18.0.3", "AllowedConnections"},
		{"tcp in", pkt(logIn, in, ipv4Packet(unix.IPPROTO_TCP, other, app, 40000, 8081)), "inbound tcp to port 8081", "AllowedTcpServerPorts"},
		{"udp in", pkt(logIn, in, ipv4Packet(unix.IPPROTO_UDP, other, app, 40000, 5000)), "inbound udp to port 5000", "AllowedUdpServerPorts"},
		{"icmp in", pkt(logIn, in, ipv4Packet(unix.IPPROTO_ICMP, other, app, 0x0800, 0)), "", ""},
		{"out from another address", pkt(logOut, out, ipv4Packet(unix.IPPROTO_TCP, other, app, 1, 2)), "", ""},
		{"in to another address", pkt(logIn, in, ipv4Packet(unix.IPPROTO_TCP, app, other, 1, 2)), "", ""},
		{"out prefix on input", pkt(logOut, in, ipv4Packet(unix.IPPROTO_TCP, app, other, 1, 2)), "", ""},
		{"another prefix", pkt("x", out, ipv4Packet(unix.IPPROTO_TCP, app, other, 1, 2)), "", ""},
		{"IPv6", nflog.Packet{Family: unix.NFPROTO_IPV6, Hook: out, Prefix: logOut, Payload: ipv4Packet(unix.IPPROTO_TCP, app, other, 1, 2)}, "", ""},
		{"cut", pkt(logOut, out, ipv4Packet(unix.IPPROTO_TCP, app, other, 1, 2)[:12]), "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, ok := packetDenial("cid", app, tc.p)
			if tc.want == "" {
				if ok {
					t.Errorf("attributed: %+v", d)
				}
				return
			}
			want := Denial{App: "cid", By: DeniedByNetwork, Object: tc.want, Capability: tc.cap}
			if !ok || d != want {
				t.Errorf("got %+v, %v; want %+v", d, ok, want)
			}
		})
	}
}
