// Package nflog reads the packets that nftables rules log to a netlink log group (the "log
// group N" statement, nfnetlink_log, NFLOG) and parses them: a Reader binds a NETLINK_NETFILTER
// socket to one group in the network namespace it is opened in, and each message becomes a
// Packet (the rule's prefix, the hook, the interfaces and the first bytes of the packet), whose
// IPv4 header ParseIPv4 reads (protocol, addresses, ports).
//
// It owns no file and no rule: the caller writes the rules that log, and opens the Reader in
// the namespace whose rules they are (log groups are per network namespace). Binding a group
// takes CAP_NET_ADMIN in that namespace's owning user namespace.
//
// Trust: the messages come from the kernel, but the packets in them were written by whoever
// sent them (a sandboxed application, a host on the network), so every message and every
// packet header is parsed strictly and with bounds, and a Packet's prefix and payload are
// untrusted beyond what the kernel itself sets.
package nflog

import (
	"errors"
	"net/netip"
)

// Netlink message types and attributes of nfnetlink_log
// (include/uapi/linux/netfilter/nfnetlink_log.h); x/sys/unix does not have them.
const (
	subsysULOG = 4 // NFNL_SUBSYS_ULOG

	msgPacket = 0 // NFULNL_MSG_PACKET
	msgConfig = 1 // NFULNL_MSG_CONFIG

	attrPacketHdr = 1  // NFULA_PACKET_HDR: struct nfulnl_msg_packet_hdr
	attrMark      = 2  // NFULA_MARK: __be32
	attrTimestamp = 3  // NFULA_TIMESTAMP: struct nfulnl_msg_packet_timestamp
	attrInDev     = 4  // NFULA_IFINDEX_INDEV: __be32
	attrOutDev    = 5  // NFULA_IFINDEX_OUTDEV: __be32
	attrPayload   = 9  // NFULA_PAYLOAD
	attrPrefix    = 10 // NFULA_PREFIX: NUL-terminated string
	attrUID       = 11 // NFULA_UID: __be32
	attrGID       = 14 // NFULA_GID: __be32

	cfgCmd     = 1 // NFULA_CFG_CMD: struct nfulnl_msg_config_cmd
	cfgMode    = 2 // NFULA_CFG_MODE: struct nfulnl_msg_config_mode
	cfgQThresh = 5 // NFULA_CFG_QTHRESH: __be32

	cmdBind    = 1 // NFULNL_CFG_CMD_BIND
	copyPacket = 2 // NFULNL_COPY_PACKET
)

// MaxPrefix is the longest prefix the parser accepts, with its NUL: the kernel's
// NF_LOG_PREFIXLEN.
const MaxPrefix = 128

// ErrSyntax is wrapped by every parse error.
var ErrSyntax = errors.New("malformed nflog message")

// Packet is one logged packet.
type Packet struct {
	// Family is the protocol family of the hook that logged it (unix.NFPROTO_IPV4, _IPV6).
	Family uint8
	// Group is the log group it was logged to.
	Group uint16
	// HWProtocol is the packet's EtherType (0x0800 for IPv4), Hook the netfilter hook
	// (unix.NF_INET_LOCAL_OUT, ...).
	HWProtocol uint16
	Hook       uint8
	// Prefix is the logging rule's prefix.
	Prefix string
	// InDev and OutDev are the interface indexes the packet came in on and was to go out of,
	// 0 if none.
	InDev, OutDev uint32
	// Mark is the packet's mark.
	Mark uint32
	// UID and GID are the sending socket's owner, when the group's flags ask for them and the
	// packet has a socket; HasUID says whether they were given.
	UID, GID uint32
	HasUID   bool
	// Payload is the packet from its network header on, cut at the copy range: untrusted.
	Payload []byte
}

// IPv4 is what ParseIPv4 reads of an IPv4 packet. Its fields were written by the sender.
type IPv4 struct {
	Src, Dst netip.Addr
	// Proto is the transport protocol (unix.IPPROTO_TCP, ...).
	Proto uint8
	// SrcPort and DstPort are TCP's, UDP's, UDP-Lite's, SCTP's or DCCP's ports; HasPorts says
	// whether the packet had them (a later fragment, or a payload cut before them, has none).
	SrcPort, DstPort uint16
	HasPorts         bool
	// ICMPType and ICMPCode are ICMP's, with Proto unix.IPPROTO_ICMP and HasPorts false.
	ICMPType, ICMPCode uint8
	HasICMP            bool
}
