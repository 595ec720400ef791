package netpolicy

import (
	"bytes"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// TableName names the nftables table the agent owns: one of family inet in each application's
// network namespace, and one of family ip in the host's.
const TableName = "rampart"

// Names of the sets in an application's table.
const (
	setAllowed = "allowed" // ipv4_addr: the addresses the application may send to
	setTCPIn   = "tcp-in"  // inet_service: AllowedTcpServerPorts
	setUDPIn   = "udp-in"  // inet_service: AllowedUdpServerPorts
)

// appTable is the table in an application's namespace.
func appTable() *nftables.Table {
	return &nftables.Table{Family: nftables.TableFamilyINet, Name: TableName}
}

// hostTable is the table in the host's namespace.
func hostTable() *nftables.Table {
	return &nftables.Table{Family: nftables.TableFamilyIPv4, Name: TableName}
}

// Chains of the host's table.
const (
	hostForward     = "forward"
	hostInput       = "input"
	hostPostrouting = "postrouting"
	hostGuard       = "forward-guard"
)

// installAppRules writes the whole ruleset of an application's namespace in one transaction
// (replacing one already there):
//
//	table inet rampart {
//	  set allowed { type ipv4_addr }         # the manifest's IPs and the resolved names
//	  set tcp-in  { type inet_service }      # AllowedTcpServerPorts
//	  set udp-in  { type inet_service }      # AllowedUdpServerPorts
//	  chain dns { type nat hook output priority -100
//	    udp dport 53 redirect to :53         # every DNS query goes to the agent's answerer
//	    tcp dport 53 redirect to :53 }
//	  chain out { type filter hook output priority 0; policy drop
//	    oifname "lo" accept
//	    ip daddr 127.0.0.0/8 accept          # loopback, and DNS after the redirect
//	    ct state established,related accept
//	    ip daddr @allowed accept
//	    meta nfproto ipv4 limit rate 10/second burst 10 packets log prefix "out" group 0x5250 snaplen 128
//	    meta l4proto tcp reject with tcp reset
//	    reject with icmpx admin-prohibited }
//	  chain in { type filter hook input priority 0; policy drop
//	    iifname "lo" accept
//	    ct state established,related accept
//	    tcp dport @tcp-in accept
//	    udp dport @udp-in accept
//	    meta nfproto ipv4 meta pkttype host limit rate 10/second burst 10 packets log prefix "in" group 0x5250 snaplen 128
//	    meta l4proto tcp reject with tcp reset
//	    reject with icmpx admin-prohibited }
//	}
//
// IPv6 reaches only loopback: the link has no IPv6 route and the chains accept nothing else.
//
// With logging, the two log rules hand what is about to be refused to the agent (LogGroup,
// read in the namespace: denials.go), at most logRate packets a second each. Only IPv4 is
// logged: the application cannot route IPv6 anywhere, so what IPv6 reaches these chains is
// the kernel's own (neighbour discovery, multicast listener reports). Inbound, only unicast to
// the application is: broadcasts and multicasts on the link are none of its doing.
func installAppRules(c *nftables.Conn, allowed []netip.Addr, tcp, udp []uint16, logging bool) error {
	t := appTable()
	// Start from nothing: add then delete the table, so a leftover is gone either way.
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)
	sAllowed := &nftables.Set{Table: t, Name: setAllowed, KeyType: nftables.TypeIPAddr}
	sTCP := &nftables.Set{Table: t, Name: setTCPIn, KeyType: nftables.TypeInetService}
	sUDP := &nftables.Set{Table: t, Name: setUDPIn, KeyType: nftables.TypeInetService}
	if err := c.AddSet(sAllowed, addrElems(allowed)); err != nil {
		return err
	}
	if err := c.AddSet(sTCP, portElems(tcp)); err != nil {
		return err
	}
	if err := c.AddSet(sUDP, portElems(udp)); err != nil {
		return err
	}
	drop := nftables.ChainPolicyDrop

	dns := c.AddChain(&nftables.Chain{Name: "dns", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest})
	for _, proto := range []byte{unix.IPPROTO_UDP, unix.IPPROTO_TCP} {
		c.AddRule(&nftables.Rule{Table: t, Chain: dns, Exprs: concat(
			l4proto(proto),
			dport(),
			[]expr.Any{
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(53)},
				&expr.Immediate{Register: 1, Data: binaryutil.BigEndian.PutUint16(53)},
				&expr.Redir{RegisterProtoMin: 1, Flags: unix.NF_NAT_RANGE_PROTO_SPECIFIED},
			})})
	}

	out := c.AddChain(&nftables.Chain{Name: "out", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityFilter, Policy: &drop})
	c.AddRule(&nftables.Rule{Table: t, Chain: out, Exprs: concat(ifname(expr.MetaKeyOIFNAME, "lo", expr.CmpOpEq), accept())})
	c.AddRule(&nftables.Rule{Table: t, Chain: out, Exprs: concat(ipv4(), daddr(),
		[]expr.Any{
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte{255, 0, 0, 0}, Xor: []byte{0, 0, 0, 0}},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{127, 0, 0, 0}},
		}, accept())})
	c.AddRule(&nftables.Rule{Table: t, Chain: out, Exprs: concat(established(), accept())})
	c.AddRule(&nftables.Rule{Table: t, Chain: out, Exprs: concat(ipv4(), daddr(),
		[]expr.Any{&expr.Lookup{SourceRegister: 1, SetName: sAllowed.Name, SetID: sAllowed.ID}}, accept())})
	if logging {
		c.AddRule(&nftables.Rule{Table: t, Chain: out, Exprs: concat(ipv4(), logRefused(logOut))})
	}
	reject(c, t, out)

	in := c.AddChain(&nftables.Chain{Name: "in", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter, Policy: &drop})
	c.AddRule(&nftables.Rule{Table: t, Chain: in, Exprs: concat(ifname(expr.MetaKeyIIFNAME, "lo", expr.CmpOpEq), accept())})
	c.AddRule(&nftables.Rule{Table: t, Chain: in, Exprs: concat(established(), accept())})
	for _, s := range []struct {
		proto byte
		set   *nftables.Set
	}{{unix.IPPROTO_TCP, sTCP}, {unix.IPPROTO_UDP, sUDP}} {
		c.AddRule(&nftables.Rule{Table: t, Chain: in, Exprs: concat(l4proto(s.proto), dport(),
			[]expr.Any{&expr.Lookup{SourceRegister: 1, SetName: s.set.Name, SetID: s.set.ID}}, accept())})
	}
	if logging {
		c.AddRule(&nftables.Rule{Table: t, Chain: in, Exprs: concat(ipv4(), []expr.Any{
			&expr.Meta{Key: expr.MetaKeyPKTTYPE, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.PACKET_HOST}},
		}, logRefused(logIn))})
	}
	reject(c, t, in)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("installing the ruleset in the application's namespace: %w", err)
	}
	return nil
}

// LogGroup is the netlink log group the rules of every application's namespace log refused
// packets to ("RP"); each namespace has its own groups, and the agent binds this one in each.
const LogGroup = 0x5250

// The prefixes of the log rules: a packet the application sent, and one sent to it.
const (
	logOut = "out"
	logIn  = "in"
)

// logRate bounds the packets each log rule logs, per second (and its burst): what the agent
// reads of one application's refused traffic, whatever the application sends.
const logRate = 10

// logSnaplen is how much of a logged packet the kernel copies: enough for the IPv4 header and
// the ports.
const logSnaplen = 128

// logRefused is "limit rate 10/second burst 10 packets log prefix P group LogGroup snaplen
// 128".
func logRefused(prefix string) []expr.Any {
	return []expr.Any{
		&expr.Limit{Type: expr.LimitTypePkts, Rate: logRate, Unit: expr.LimitTimeSecond, Burst: logRate},
		&expr.Log{Key: 1<<unix.NFTA_LOG_GROUP | 1<<unix.NFTA_LOG_PREFIX | 1<<unix.NFTA_LOG_SNAPLEN,
			Group: LogGroup, Data: []byte(prefix), Snaplen: logSnaplen},
	}
}

// reject ends a chain: TCP gets a reset, anything else an ICMP administratively prohibited,
// so that the application (or the peer) learns at once that it is refused instead of waiting
// for a timeout. The chain's policy drops what these do not catch.
func reject(c *nftables.Conn, t *nftables.Table, ch *nftables.Chain) {
	c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: concat(l4proto(unix.IPPROTO_TCP),
		[]expr.Any{&expr.Reject{Type: unix.NFT_REJECT_TCP_RST}})})
	c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
		&expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_ADMIN_PROHIBITED}}})
}

// updateAllowed adds and removes addresses of the allowed set.
func updateAllowed(c *nftables.Conn, add, del []netip.Addr) error {
	s := &nftables.Set{Table: appTable(), Name: setAllowed, KeyType: nftables.TypeIPAddr}
	if len(add) > 0 {
		if err := c.SetAddElements(s, addrElems(add)); err != nil {
			return err
		}
	}
	if len(del) > 0 {
		if err := c.SetDeleteElements(s, addrElems(del)); err != nil {
			return err
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("updating the allowed addresses: %w", err)
	}
	return nil
}

// installHostTable makes the host's table with its empty chains, replacing a leftover one.
// With guard, a second forward chain drops forwarded traffic that neither comes from nor goes
// to an application's link: the agent turned forwarding on, and the device must not become a
// router for anything else.
func installHostTable(c *nftables.Conn, guard bool) error {
	t := hostTable()
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)
	pass := nftables.ChainPolicyAccept
	c.AddChain(&nftables.Chain{Name: hostForward, Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &pass})
	c.AddChain(&nftables.Chain{Name: hostInput, Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter, Policy: &pass})
	c.AddChain(&nftables.Chain{Name: hostPostrouting, Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource})
	if guard {
		g := c.AddChain(&nftables.Chain{Name: hostGuard, Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityRef(10), Policy: &pass})
		c.AddRule(&nftables.Rule{Table: t, Chain: g, Exprs: concat(ifnamePrefix(expr.MetaKeyIIFNAME, LinkPrefix), accept())})
		c.AddRule(&nftables.Rule{Table: t, Chain: g, Exprs: concat(ifnamePrefix(expr.MetaKeyOIFNAME, LinkPrefix), accept())})
		c.AddRule(&nftables.Rule{Table: t, Chain: g, Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}}})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("installing the host's table: %w", err)
	}
	return nil
}

// deleteHostTable deletes the host's table if it is there.
func deleteHostTable(c *nftables.Conn) error {
	t := hostTable()
	c.AddTable(t)
	c.DelTable(t)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("deleting the host's table: %w", err)
	}
	return nil
}

// addHostRules adds the host's rules for one application's link (host end name link, the
// application's address app), each tagged with the link's name:
//
//	chain forward      { iifname LINK ip saddr != APP drop     # no spoofed sources
//	                     iifname LINK accept                    # its ruleset already decided
//	                     oifname LINK ct state established,related accept
//	                     oifname LINK drop }                    # nothing unsolicited in
//	chain input        { iifname LINK ct state established,related accept
//	                     iifname LINK drop }                    # the host itself is not reachable
//	chain postrouting  { ip saddr APP oifname != LINK masquerade }
func addHostRules(c *nftables.Conn, link string, app netip.Addr) error {
	t := hostTable()
	tag := []byte(link)
	fwd := &nftables.Chain{Name: hostForward, Table: t}
	in := &nftables.Chain{Name: hostInput, Table: t}
	post := &nftables.Chain{Name: hostPostrouting, Table: t}
	a := app.As4()
	drop := []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}}
	rules := []struct {
		chain *nftables.Chain
		exprs []expr.Any
	}{
		{fwd, concat(ifname(expr.MetaKeyIIFNAME, link, expr.CmpOpEq), saddr(),
			[]expr.Any{&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: a[:]}}, drop)},
		{fwd, concat(ifname(expr.MetaKeyIIFNAME, link, expr.CmpOpEq), accept())},
		{fwd, concat(ifname(expr.MetaKeyOIFNAME, link, expr.CmpOpEq), established(), accept())},
		{fwd, concat(ifname(expr.MetaKeyOIFNAME, link, expr.CmpOpEq), drop)},
		{in, concat(ifname(expr.MetaKeyIIFNAME, link, expr.CmpOpEq), established(), accept())},
		{in, concat(ifname(expr.MetaKeyIIFNAME, link, expr.CmpOpEq), drop)},
		{post, concat(saddr(), []expr.Any{&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a[:]}},
			ifname(expr.MetaKeyOIFNAME, link, expr.CmpOpNeq), []expr.Any{&expr.Masq{}})},
	}
	for _, r := range rules {
		c.AddRule(&nftables.Rule{Table: t, Chain: r.chain, Exprs: r.exprs, UserData: tag})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("adding the host's rules for %s: %w", link, err)
	}
	return nil
}

// delHostRules deletes the host's rules tagged with link.
func delHostRules(c *nftables.Conn, link string) error {
	t := hostTable()
	n := 0
	for _, name := range []string{hostForward, hostInput, hostPostrouting} {
		rules, err := c.GetRules(t, &nftables.Chain{Name: name, Table: t})
		if err != nil {
			return fmt.Errorf("listing the host's rules: %w", err)
		}
		for _, r := range rules {
			if bytes.Equal(r.UserData, []byte(link)) {
				if err := c.DelRule(r); err != nil {
					return err
				}
				n++
			}
		}
	}
	if n == 0 {
		return nil
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("deleting the host's rules for %s: %w", link, err)
	}
	return nil
}

// Expression helpers, named after the nft syntax they stand for.

func concat(parts ...[]expr.Any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func accept() []expr.Any { return []expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}} }

// ifname compares iifname or oifname with name.
func ifname(key expr.MetaKey, name string, op expr.CmpOp) []expr.Any {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: op, Register: 1, Data: b},
	}
}

// ifnamePrefix matches iifname or oifname "PREFIX*".
func ifnamePrefix(key expr.MetaKey, prefix string) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte(prefix)},
	}
}

// ipv4 matches IPv4 packets (in a table of family inet).
func ipv4() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
	}
}

// daddr and saddr load the IPv4 destination or source address.
func daddr() []expr.Any {
	return []expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4}}
}

func saddr() []expr.Any {
	return []expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4}}
}

// l4proto matches the transport protocol.
func l4proto(p byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p}},
	}
}

// dport loads the TCP or UDP destination port (after l4proto).
func dport() []expr.Any {
	return []expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2}}
}

// established matches ct state established,related.
func established() []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED),
			Xor:  binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)},
	}
}

func addrElems(as []netip.Addr) []nftables.SetElement {
	out := make([]nftables.SetElement, 0, len(as))
	for _, a := range as {
		b := a.As4()
		out = append(out, nftables.SetElement{Key: b[:]})
	}
	return out
}

func portElems(ps []uint16) []nftables.SetElement {
	out := make([]nftables.SetElement, 0, len(ps))
	for _, p := range ps {
		out = append(out, nftables.SetElement{Key: binaryutil.BigEndian.PutUint16(p)})
	}
	return out
}
