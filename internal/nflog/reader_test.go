package nflog

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

var capture = flag.String("capture", "", "write the datagrams TestReaderReadsRealPackets reads to this file (testdata/packets.txt)")

const testGroup = 7

// inNS runs f on a thread in ns, which is never given back to the scheduler.
func inNS(ns netns.NsHandle, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := netns.Set(ns); err != nil {
			errc <- err
			return
		}
		errc <- f()
	}()
	return <-errc
}

// testNS makes a fresh network namespace with lo up and a table whose output chain logs, to
// testGroup with prefix "test", every IPv4 packet that is not to port 53, then drops UDP to
// port 9 and rejects TCP to port 9.
func testNS(t *testing.T) netns.NsHandle {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: makes a network namespace and binds a log group")
	}
	errc := make(chan error, 1)
	var ns netns.NsHandle
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		var err error
		ns, err = netns.New()
		errc <- err
	}()
	if err := <-errc; err != nil {
		t.Skipf("needs network namespaces: %v", err)
	}
	t.Cleanup(func() { ns.Close() })
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.LinkSetUp(lo); err != nil {
		t.Fatal(err)
	}
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		t.Fatal(err)
	}
	tab := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: "nflogtest"})
	out := c.AddChain(&nftables.Chain{Name: "out", Table: tab, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityFilter})
	c.AddRule(&nftables.Rule{Table: tab, Chain: out, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
		&expr.Log{Key: 1<<unix.NFTA_LOG_GROUP | 1<<unix.NFTA_LOG_PREFIX, Group: testGroup, Data: []byte("test")},
	}})
	for _, p := range []byte{unix.IPPROTO_UDP, unix.IPPROTO_TCP} {
		verdict := expr.Any(&expr.Verdict{Kind: expr.VerdictDrop})
		if p == unix.IPPROTO_TCP {
			verdict = &expr.Reject{Type: unix.NFT_REJECT_TCP_RST}
		}
		c.AddRule(&nftables.Rule{Table: tab, Chain: out, Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(9)},
			verdict,
		}})
	}
	if err := c.Flush(); err != nil {
		t.Skipf("needs nftables: %v", err)
	}
	return ns
}

// TestReaderReadsRealPackets logs a UDP datagram and a TCP SYN in a namespace of its own and
// reads them: family, hook, prefix, interface, and the addresses and ports of the packets.
// With -capture FILE it writes the datagrams it read, for TestParseCaptured.
func TestReaderReadsRealPackets(t *testing.T) {
	ns := testNS(t)
	var r *Reader
	if err := inNS(ns, func() (err error) {
		r, err = Open(Config{Group: testGroup})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var captured []string
	r.datagram = func(b []byte) { captured = append(captured, hex.EncodeToString(b)) }

	var udpErr, tcpErr error
	if err := inNS(ns, func() error {
		c, err := net.Dial("udp4", "127.0.0.1:9")
		if err != nil {
			return err
		}
		_, udpErr = c.Write([]byte("hello"))
		c.Close()
		_, tcpErr = net.DialTimeout("tcp4", "127.0.0.1:9", 5*time.Second)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(udpErr, unix.EPERM) || !errors.Is(tcpErr, unix.ECONNREFUSED) {
		t.Fatalf("udp: %v, tcp: %v; want EPERM (dropped) and ECONNREFUSED (rejected): the rules did not apply", udpErr, tcpErr)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second) // bounds a hang only
	defer cancel()
	want := map[uint8]uint16{unix.IPPROTO_UDP: 9, unix.IPPROTO_TCP: 9}
	for len(want) > 0 {
		p, err := r.Next(ctx)
		if err != nil {
			t.Fatalf("still waiting for %v: %v", want, err)
		}
		h, err := ParseIPv4(p.Payload)
		if err != nil {
			t.Fatalf("packet %+v: %v", p, err)
		}
		if p.Family != unix.NFPROTO_IPV4 || p.Group != testGroup || p.Hook != unix.NF_INET_LOCAL_OUT || p.Prefix != "test" ||
			p.HWProtocol != unix.ETH_P_IP || p.OutDev != 1 || p.InDev != 0 ||
			h.Src.String() != "127.0.0.1" || h.Dst.String() != "127.0.0.1" || !h.HasPorts {
			t.Errorf("packet %+v, header %+v: want IPv4 127.0.0.1 to 127.0.0.1 logged with prefix test on output via lo", p, h)
		}
		if port, ok := want[h.Proto]; ok && h.DstPort == port {
			delete(want, h.Proto)
		}
	}
	if *capture != "" {
		var b strings.Builder
		b.WriteString("# nflog datagrams read by TestReaderReadsRealPackets (a UDP datagram and a TCP SYN to 127.0.0.1:9, group 7, prefix \"test\")\n")
		for _, c := range captured {
			fmt.Fprintln(&b, c)
		}
		if err := os.WriteFile(*capture, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestOpenRefusesABoundGroup: a group has one reader per namespace.
func TestOpenRefusesABoundGroup(t *testing.T) {
	ns := testNS(t)
	err := inNS(ns, func() error {
		r, err := Open(Config{Group: testGroup})
		if err != nil {
			return err
		}
		defer r.Close()
		if r2, err := Open(Config{Group: testGroup}); err == nil {
			r2.Close()
			return errors.New("a second reader bound the same group")
		} else if !errors.Is(err, unix.EPERM) {
			return fmt.Errorf("a second reader: %v, want EPERM", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestNextEndsWithItsContextAndClose(t *testing.T) {
	ns := testNS(t)
	var r *Reader
	if err := inNS(ns, func() (err error) {
		r, err = Open(Config{Group: testGroup})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := r.Next(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Next with an ended context: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := r.Next(t.Context())
		done <- err
	}()
	time.Sleep(50 * time.Millisecond) // let Next block; it returns the same either way
	r.Close()
	if err := <-done; !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Next after Close: %v", err)
	}
}
