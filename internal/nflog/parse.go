package nflog

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
)

// Parse returns the packets in one datagram read from an nflog socket: one or more netlink
// messages (the kernel batches them, each with NLM_F_MULTI, the batch ended by NLMSG_DONE).
// Every message must be a whole, well-formed NFULNL_MSG_PACKET; an error names the first that
// is not, and the packets before it are returned with it.
func Parse(b []byte) ([]Packet, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: an empty datagram", ErrSyntax)
	}
	var out []Packet
	for len(b) > 0 {
		if len(b) < unix.NLMSG_HDRLEN {
			return out, fmt.Errorf("%w: %d bytes left, shorter than a netlink header", ErrSyntax, len(b))
		}
		l := binary.NativeEndian.Uint32(b[0:4])
		typ := binary.NativeEndian.Uint16(b[4:6])
		if l < unix.NLMSG_HDRLEN || int64(l) > int64(len(b)) {
			return out, fmt.Errorf("%w: netlink message length %d, %d bytes left", ErrSyntax, l, len(b))
		}
		msg := b[unix.NLMSG_HDRLEN:l]
		next := nlmsgAlign(int(l))
		if next > len(b) {
			next = len(b) // the last message need not be padded
		}
		b = b[next:]
		switch typ {
		case unix.NLMSG_DONE:
			if len(b) != 0 {
				return out, fmt.Errorf("%w: %d bytes after NLMSG_DONE", ErrSyntax, len(b))
			}
			return out, nil
		case unix.NLMSG_NOOP:
			continue
		case subsysULOG<<8 | msgPacket:
			p, err := parsePacket(msg)
			if err != nil {
				return out, err
			}
			out = append(out, p)
		default:
			return out, fmt.Errorf("%w: netlink message type %#x, want an nflog packet", ErrSyntax, typ)
		}
	}
	return out, nil
}

func nlmsgAlign(n int) int { return (n + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1) }

// parsePacket parses the payload of an NFULNL_MSG_PACKET: struct nfgenmsg, then attributes.
func parsePacket(b []byte) (Packet, error) {
	var p Packet
	if len(b) < 4 {
		return p, fmt.Errorf("%w: packet message of %d bytes, shorter than its nfgenmsg", ErrSyntax, len(b))
	}
	if b[1] != unix.NFNETLINK_V0 {
		return p, fmt.Errorf("%w: nfnetlink version %d", ErrSyntax, b[1])
	}
	p.Family = b[0]
	p.Group = binary.BigEndian.Uint16(b[2:4])
	b = b[4:]
	var seen uint32 // attributes seen, by type (all known ones are below 32)
	for len(b) > 0 {
		if len(b) < unix.SizeofNlAttr {
			return p, fmt.Errorf("%w: %d bytes left, shorter than an attribute header", ErrSyntax, len(b))
		}
		l := int(binary.NativeEndian.Uint16(b[0:2]))
		typ := binary.NativeEndian.Uint16(b[2:4]) &^ (unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)
		if l < unix.SizeofNlAttr || l > len(b) {
			return p, fmt.Errorf("%w: attribute %d of length %d, %d bytes left", ErrSyntax, typ, l, len(b))
		}
		v := b[unix.SizeofNlAttr:l]
		next := nlmsgAlign(l)
		if next > len(b) {
			next = len(b)
		}
		b = b[next:]
		if typ < 32 {
			if seen&(1<<typ) != 0 {
				return p, fmt.Errorf("%w: attribute %d twice", ErrSyntax, typ)
			}
			seen |= 1 << typ
		}
		var err error
		switch typ {
		case attrPacketHdr:
			if err = size(typ, v, 4); err == nil {
				p.HWProtocol, p.Hook = binary.BigEndian.Uint16(v[0:2]), v[2]
			}
		case attrMark:
			p.Mark, err = be32(typ, v)
		case attrInDev:
			p.InDev, err = be32(typ, v)
		case attrOutDev:
			p.OutDev, err = be32(typ, v)
		case attrUID:
			p.UID, err = be32(typ, v)
			p.HasUID = err == nil
		case attrGID:
			p.GID, err = be32(typ, v)
		case attrTimestamp:
			err = size(typ, v, 16)
		case attrPrefix:
			p.Prefix, err = prefix(v)
		case attrPayload:
			p.Payload = bytes.Clone(v)
		default:
			// Hardware addresses and headers, sequence numbers, conntrack, VLAN: not used,
			// and a newer kernel may add more.
		}
		if err != nil {
			return p, err
		}
	}
	if seen&(1<<attrPacketHdr) == 0 {
		return p, fmt.Errorf("%w: no packet header attribute", ErrSyntax)
	}
	return p, nil
}

func size(typ uint16, v []byte, n int) error {
	if len(v) != n {
		return fmt.Errorf("%w: attribute %d of %d bytes, want %d", ErrSyntax, typ, len(v), n)
	}
	return nil
}

func be32(typ uint16, v []byte) (uint32, error) {
	if err := size(typ, v, 4); err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint32(v), nil
}

// prefix reads NFULA_PREFIX: the rule's prefix and its NUL.
func prefix(v []byte) (string, error) {
	if len(v) == 0 || len(v) > MaxPrefix || v[len(v)-1] != 0 || bytes.IndexByte(v, 0) != len(v)-1 {
		return "", fmt.Errorf("%w: a prefix of %d bytes that is not one NUL-terminated string of at most %d", ErrSyntax, len(v), MaxPrefix)
	}
	return string(v[:len(v)-1]), nil
}

// ParseIPv4 reads the IPv4 header of a logged packet's payload, and the ports (or ICMP type
// and code) after it when the payload holds them. A payload cut within the transport header
// is no error; one cut within the IP header is, as is anything but a well-formed IPv4 header.
func ParseIPv4(b []byte) (IPv4, error) {
	var h IPv4
	if len(b) < 20 {
		return h, fmt.Errorf("%w: IPv4 packet of %d bytes, shorter than its header", ErrSyntax, len(b))
	}
	if v := b[0] >> 4; v != 4 {
		return h, fmt.Errorf("%w: IP version %d, want 4", ErrSyntax, v)
	}
	ihl := int(b[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(b[2:4]))
	if ihl < 20 || ihl > len(b) {
		return h, fmt.Errorf("%w: IPv4 header of %d bytes in a payload of %d", ErrSyntax, ihl, len(b))
	}
	if total != 0 && total < ihl { // 0: a large GSO packet, whose length is the skb's
		return h, fmt.Errorf("%w: IPv4 total length %d, shorter than its header (%d)", ErrSyntax, total, ihl)
	}
	h.Proto = b[9]
	h.Src = netip.AddrFrom4([4]byte(b[12:16]))
	h.Dst = netip.AddrFrom4([4]byte(b[16:20]))
	if binary.BigEndian.Uint16(b[6:8])&0x1fff != 0 {
		return h, nil // a later fragment: no transport header
	}
	l4 := b[ihl:]
	if total != 0 && total-ihl < len(l4) {
		l4 = l4[:total-ihl]
	}
	switch h.Proto {
	case unix.IPPROTO_TCP, unix.IPPROTO_UDP, unix.IPPROTO_UDPLITE, unix.IPPROTO_SCTP, unix.IPPROTO_DCCP:
		if len(l4) >= 4 {
			h.SrcPort, h.DstPort, h.HasPorts = binary.BigEndian.Uint16(l4[0:2]), binary.BigEndian.Uint16(l4[2:4]), true
		}
	case unix.IPPROTO_ICMP:
		if len(l4) >= 2 {
			h.ICMPType, h.ICMPCode, h.HasICMP = l4[0], l4[1], true
		}
	}
	return h, nil
}
