package nflog

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// captured returns testdata/packets.txt: datagrams read from the kernel on this project's
// machine (Linux 6.18) by TestReaderReadsRealPackets -capture.
func captured(t testing.TB) [][]byte {
	f, err := os.Open("testdata/packets.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out [][]byte
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		b, err := hex.DecodeString(line)
		if err != nil {
			t.Fatalf("bad line %q: %v", line, err)
		}
		out = append(out, b)
	}
	return out
}

func TestParseCaptured(t *testing.T) {
	dgs := captured(t)
	if len(dgs) != 2 {
		t.Fatalf("%d captured datagrams, want 2", len(dgs))
	}
	want := []struct {
		proto  uint8
		sport  uint16
		length int
	}{{unix.IPPROTO_UDP, 45631, 33}, {unix.IPPROTO_TCP, 43446, 60}}
	for i, dg := range dgs {
		ps, err := Parse(dg)
		if err != nil || len(ps) != 1 {
			t.Fatalf("datagram %d: %d packets, %v; want 1", i, len(ps), err)
		}
		p := ps[0]
		if p.Family != unix.NFPROTO_IPV4 || p.Group != testGroup || p.HWProtocol != unix.ETH_P_IP || p.Hook != unix.NF_INET_LOCAL_OUT ||
			p.Prefix != "test" || p.InDev != 0 || p.OutDev != 1 || !p.HasUID || p.UID != 0 || p.GID != 0 || len(p.Payload) != want[i].length {
			t.Errorf("datagram %d: %+v", i, p)
		}
		h, err := ParseIPv4(p.Payload)
		lo := netip.MustParseAddr("127.0.0.1")
		if err != nil || h.Proto != want[i].proto || h.Src != lo || h.Dst != lo || !h.HasPorts || h.SrcPort != want[i].sport || h.DstPort != 9 || h.HasICMP {
			t.Errorf("datagram %d: header %+v, %v", i, h, err)
		}
	}
}

// TestParseBatch: the kernel's batches (NLM_F_MULTI messages ended by NLMSG_DONE) give every
// packet in them.
func TestParseBatch(t *testing.T) {
	dgs := captured(t)
	var b []byte
	for _, dg := range dgs {
		b = append(b, dg...)
	}
	done := make([]byte, unix.NLMSG_HDRLEN+4)
	binary.NativeEndian.PutUint32(done, uint32(len(done)))
	binary.NativeEndian.PutUint16(done[4:], unix.NLMSG_DONE)
	ps, err := Parse(append(b, done...))
	if err != nil || len(ps) != 2 {
		t.Fatalf("%d packets, %v; want 2", len(ps), err)
	}
	if _, err := Parse(append(append(b, done...), dgs[0]...)); !errors.Is(err, ErrSyntax) {
		t.Errorf("a message after NLMSG_DONE: %v, want ErrSyntax", err)
	}
}

// TestParseRejects: each damage to a real message is refused with ErrSyntax.
func TestParseRejects(t *testing.T) {
	orig := captured(t)[0]
	// Offsets in the captured UDP datagram: the netlink header (16), nfgenmsg (4), then
	// attributes: packet header at 20, prefix at 28, outdev at 40, uid at 48, gid at 56,
	// payload at 64.
	damage := map[string]func(b []byte) []byte{
		"empty":                    func(b []byte) []byte { return b[:0] },
		"short header":             func(b []byte) []byte { return b[:10] },
		"length past the end":      func(b []byte) []byte { binary.NativeEndian.PutUint32(b, uint32(len(b)+1)); return b },
		"length below the header":  func(b []byte) []byte { binary.NativeEndian.PutUint32(b, 8); return b },
		"another message type":     func(b []byte) []byte { binary.NativeEndian.PutUint16(b[4:], 0x0301); return b },
		"nfnetlink version 1":      func(b []byte) []byte { b[17] = 1; return b },
		"attribute past the end":   func(b []byte) []byte { binary.NativeEndian.PutUint16(b[64:], 200); return b },
		"attribute below a header": func(b []byte) []byte { binary.NativeEndian.PutUint16(b[40:], 2); return b },
		"packet header of 5 bytes": func(b []byte) []byte { binary.NativeEndian.PutUint16(b[20:], 9); return b },
		"no packet header":         func(b []byte) []byte { binary.NativeEndian.PutUint16(b[22:], 30); return b },
		"interface of 3 bytes":     func(b []byte) []byte { binary.NativeEndian.PutUint16(b[40:], 7); return b },
		"prefix without its NUL":   func(b []byte) []byte { b[36] = 'x'; return b },
		"prefix with a NUL inside": func(b []byte) []byte { b[33] = 0; return b },
		"an attribute twice":       func(b []byte) []byte { binary.NativeEndian.PutUint16(b[58:], attrUID); return b },
	}
	for name, f := range damage {
		t.Run(name, func(t *testing.T) {
			b := f(append([]byte(nil), orig...))
			if _, err := Parse(b); !errors.Is(err, ErrSyntax) {
				t.Errorf("Parse: %v, want ErrSyntax", err)
			}
		})
	}
}

func TestParseIPv4(t *testing.T) {
	ps, err := Parse(captured(t)[1])
	if err != nil {
		t.Fatal(err)
	}
	syn := ps[0].Payload
	mod := func(f func(b []byte)) []byte { b := append([]byte(nil), syn...); f(b); return b }
	icmp := mod(func(b []byte) { b[9] = unix.IPPROTO_ICMP; b[20], b[21] = 8, 0 })
	if h, err := ParseIPv4(icmp); err != nil || !h.HasICMP || h.ICMPType != 8 || h.HasPorts {
		t.Errorf("ICMP echo: %+v, %v", h, err)
	}
	frag := mod(func(b []byte) { b[7] = 1 })
	if h, err := ParseIPv4(frag); err != nil || h.HasPorts || h.Proto != unix.IPPROTO_TCP {
		t.Errorf("a later fragment: %+v, %v; want no ports", h, err)
	}
	if h, err := ParseIPv4(syn[:22]); err != nil || h.HasPorts {
		t.Errorf("cut in the TCP header: %+v, %v; want no ports, no error", h, err)
	}
	if h, err := ParseIPv4(mod(func(b []byte) { binary.BigEndian.PutUint16(b[2:], 22) })); err != nil || h.HasPorts {
		t.Errorf("total length 22: %+v, %v; want no ports, no error", h, err)
	}
	if h, err := ParseIPv4(mod(func(b []byte) { b[9] = 47 })); err != nil || h.HasPorts || h.Proto != 47 {
		t.Errorf("GRE: %+v, %v; want no ports", h, err)
	}
	for name, b := range map[string][]byte{
		"short":               syn[:19],
		"IPv6":                mod(func(b []byte) { b[0] = 0x60 }),
		"header of 16 bytes":  mod(func(b []byte) { b[0] = 0x44 }),
		"header past the end": mod(func(b []byte) { b[0] = 0x4f })[:40],
		"total length 10":     mod(func(b []byte) { binary.BigEndian.PutUint16(b[2:], 10) }),
	} {
		if _, err := ParseIPv4(b); !errors.Is(err, ErrSyntax) {
			t.Errorf("%s: %v, want ErrSyntax", name, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, dg := range captured(f) {
		f.Add(dg)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ps, err := Parse(b)
		if err != nil && !errors.Is(err, ErrSyntax) {
			t.Fatalf("an error that is not ErrSyntax: %v", err)
		}
		for _, p := range ps {
			if len(p.Payload) > len(b) || len(p.Prefix) >= MaxPrefix {
				t.Fatalf("a packet larger than its message: %+v", p)
			}
			h, err := ParseIPv4(p.Payload)
			if err != nil && !errors.Is(err, ErrSyntax) {
				t.Fatalf("an error that is not ErrSyntax: %v", err)
			}
			if err == nil && (!h.Src.Is4() || !h.Dst.Is4() || h.HasPorts && h.HasICMP) {
				t.Fatalf("header %+v", h)
			}
		}
	})
}
