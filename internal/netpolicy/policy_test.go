package netpolicy

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/rampart-iot/rampart/manifest"
)

func TestNewPolicy(t *testing.T) {
	p := NewPolicy(manifest.Capabilities{
		AllowedConnections:    []string{"Example.COM", "10.0.0.2", "*.Wild.example", "_sample._tcp.local", "10.0.0.1", "a.b"},
		AllowedTcpServerPorts: []int{443, 80, 443},
		AllowedUdpServerPorts: []int{5353},
	})
	want := Policy{
		Addrs:       []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")},
		Names:       []string{"a.b", "example.com"},
		Wildcards:   []string{"wild.example"},
		Unsupported: []string{"_sample._tcp.local"},
		TCPPorts:    []uint16{80, 443},
		UDPPorts:    []uint16{5353},
	}
	if fmt.Sprint(p) != fmt.Sprint(want) {
		t.Errorf("got  %+v\nwant %+v", p, want)
	}
	for name, ok := range map[string]bool{
		"example.com": true, "a.b": true, "x.wild.example": true, "x.y.wild.example": true,
		"wild.example": false, "xwild.example": false, "example.org": false, "b": false,
		"_sample._tcp.local": false, "10.0.0.1": false,
	} {
		if p.allows(name) != ok {
			t.Errorf("allows(%q) = %v, want %v", name, !ok, ok)
		}
	}
	if Grants(manifest.Capabilities{MutableStorage: &manifest.MutableStorage{SizeKB: 8}}) {
		t.Error("Grants without network capabilities")
	}
	for _, c := range []manifest.Capabilities{
		{AllowedConnections: []string{"a.b"}}, {AllowedTcpServerPorts: []int{1}}, {AllowedUdpServerPorts: []int{1}},
	} {
		if !Grants(c) {
			t.Errorf("Grants(%+v) = false", c)
		}
	}
}

func TestAllocate(t *testing.T) {
	pool := netip.MustParsePrefix("100.64.0.0/29") // four /31s
	used := map[slot]string{}
	var got []slot
	for _, app := range []string{"a", "b", "c", "d"} {
		s, err := allocate(pool, app, used)
		if err != nil {
			t.Fatal(err)
		}
		if again, _ := allocate(pool, app, map[slot]string{}); len(used) == 0 && again != s {
			t.Errorf("allocation of %s is not deterministic", app)
		}
		used[s] = app
		got = append(got, s)
	}
	slices.Sort(got)
	if !slices.Equal(got, []slot{0, 1, 2, 3}) {
		t.Errorf("slots %v: want each of the four once", got)
	}
	if _, err := allocate(pool, "e", used); err == nil || !strings.Contains(err.Error(), "full") {
		t.Errorf("a full pool: %v", err)
	}
	// The same name gets the same slot in an empty pool, every time.
	big := DefaultPool
	s1, _ := allocate(big, "1689d8b2-c835-2e27-27ad-e894d6d15fa9", map[slot]string{})
	s2, _ := allocate(big, "1689d8b2-c835-2e27-27ad-e894d6d15fa9", map[slot]string{})
	if s1 != s2 {
		t.Error("not deterministic")
	}
	host, app := slot(3).addrs(netip.MustParsePrefix("100.64.0.0/10"))
	if host != netip.MustParseAddr("100.64.0.6") || app != netip.MustParseAddr("100.64.0.7") {
		t.Errorf("slot 3: %s %s", host, app)
	}
	last := slot(slots(big) - 1)
	if h, a := last.addrs(big); h != netip.MustParseAddr("100.127.255.254") || a != netip.MustParseAddr("100.127.255.255") {
		t.Errorf("last slot: %s %s", h, a)
	}
	if n := len(last.link()); n > 15 {
		t.Errorf("link name %q is %d bytes; the kernel allows 15", last.link(), n)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	_, err := New(Config{Pool: netip.MustParsePrefix("10.0.0.0/31"), Refresh: -1})
	if err == nil || !strings.Contains(err.Error(), "/30") || !strings.Contains(err.Error(), "negative") {
		t.Errorf("got %v; want both problems named", err)
	}
	if _, err := New(Config{Pool: netip.MustParsePrefix("fd00::/64")}); err == nil {
		t.Error("an IPv6 pool was accepted")
	}
}

func testAnswerer() (*answerer, *[]string) {
	a, looked, _ := testAnswererDenied()
	return a, looked
}

// testAnswererDenied is testAnswerer, which also records the names it refuses.
func testAnswererDenied() (*answerer, *[]string, *[]string) {
	var looked, denied []string
	p := NewPolicy(manifest.Capabilities{AllowedConnections: []string{"ok.test", "*.wild.test", "down.test"}})
	return &answerer{
		allows: p.allows,
		lookup: func(_ context.Context, name string) ([]netip.Addr, error) {
			looked = append(looked, name)
			switch name {
			case "down.test":
				return nil, errors.New("offline")
			case "ok.test":
				var out []netip.Addr
				for i := range 40 {
					out = append(out, netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}))
				}
				return out, nil
			}
			return []netip.Addr{netip.MustParseAddr("192.0.2.200")}, nil
		},
		ttl:    60,
		denied: func(name string) { denied = append(denied, name) },
	}, &looked, &denied
}

func query(t *testing.T, h dnsmessage.Header, qs ...dnsmessage.Question) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, h)
	must(t, b.StartQuestions())
	for _, q := range qs {
		must(t, b.Question(q))
	}
	out, err := b.Finish()
	must(t, err)
	return out
}

func q(name string, typ dnsmessage.Type) dnsmessage.Question {
	return dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: typ, Class: dnsmessage.ClassINET}
}

func TestAnswer(t *testing.T) {
	a, looked, denied := testAnswererDenied()
	ctx := context.Background()
	h := dnsmessage.Header{ID: 9, RecursionDesired: true}
	for _, tc := range []struct {
		name    string
		msg     []byte
		rcode   dnsmessage.RCode
		answers int
	}{
		{"allowed A, capped", query(t, h, q("OK.test.", dnsmessage.TypeA)), dnsmessage.RCodeSuccess, maxAnswers},
		{"allowed AAAA", query(t, h, q("ok.test.", dnsmessage.TypeAAAA)), dnsmessage.RCodeSuccess, 0},
		{"wildcard", query(t, h, q("x.wild.test.", dnsmessage.TypeA)), dnsmessage.RCodeSuccess, 1},
		{"wildcard apex", query(t, h, q("wild.test.", dnsmessage.TypeA)), dnsmessage.RCodeNameError, 0},
		{"not allowed", query(t, h, q("evil.test.", dnsmessage.TypeA)), dnsmessage.RCodeNameError, 0},
		{"lookup fails", query(t, h, q("down.test.", dnsmessage.TypeA)), dnsmessage.RCodeServerFailure, 0},
		{"two questions", query(t, h, q("ok.test.", dnsmessage.TypeA), q("ok.test.", dnsmessage.TypeA)), dnsmessage.RCodeFormatError, 0},
		{"no question", query(t, h), dnsmessage.RCodeFormatError, 0},
		{"opcode", query(t, dnsmessage.Header{ID: 9, OpCode: 2}, q("ok.test.", dnsmessage.TypeA)), dnsmessage.RCodeNotImplemented, 0},
		{"class", query(t, h, dnsmessage.Question{Name: dnsmessage.MustNewName("ok.test."), Type: dnsmessage.TypeA, Class: dnsmessage.ClassCHAOS}), dnsmessage.RCodeRefused, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := a.answer(ctx, tc.msg)
			if len(out) > 512 {
				t.Errorf("answer is %d bytes", len(out))
			}
			var m dnsmessage.Message
			must(t, m.Unpack(out))
			if m.ID != 9 || !m.Response || m.RCode != tc.rcode || len(m.Answers) != tc.answers {
				t.Errorf("got %v with %d answers; want %v with %d", m.RCode, len(m.Answers), tc.rcode, tc.answers)
			}
		})
	}
	if slices.Contains(*looked, "evil.test") || slices.Contains(*looked, "wild.test") {
		t.Errorf("looked up a name that is not allowed: %v", *looked)
	}
	// The names refused because they are not allowed are told, once per query; a wrong class
	// or a malformed query is not a refused name.
	if !slices.Equal(*denied, []string{"wild.test", "evil.test"}) {
		t.Errorf("refused names told: %v; want wild.test, evil.test", *denied)
	}
	// Not a query, or garbage: no reply at all.
	resp := query(t, dnsmessage.Header{ID: 9, Response: true}, q("ok.test.", dnsmessage.TypeA))
	for _, msg := range [][]byte{resp, nil, {1, 2, 3}, query(t, h, q("ok.test.", dnsmessage.TypeA))[:14]} {
		if out := a.answer(ctx, msg); out != nil {
			t.Errorf("replied to %x", msg)
		}
	}
}

// FuzzAnswer: whatever the application sends, the answerer does not panic, replies with a
// well-formed message of at most 512 bytes carrying the query's ID, and looks up only allowed
// names.
func FuzzAnswer(f *testing.F) {
	h := dnsmessage.Header{ID: 1}
	for _, name := range []string{"ok.test.", "x.wild.test.", "evil.test."} {
		b := dnsmessage.NewBuilder(nil, h)
		_ = b.StartQuestions()
		_ = b.Question(q(name, dnsmessage.TypeA))
		msg, _ := b.Finish()
		f.Add(msg)
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		a, looked := testAnswerer()
		out := a.answer(context.Background(), msg)
		for _, n := range *looked {
			if !a.allows(n) {
				t.Fatalf("looked up %q", n)
			}
		}
		if out == nil {
			return
		}
		if len(out) > 512 {
			t.Fatalf("answer is %d bytes", len(out))
		}
		var m dnsmessage.Message
		if err := m.Unpack(out); err != nil {
			t.Fatalf("malformed answer: %v", err)
		}
		var p dnsmessage.Parser
		qh, _ := p.Start(msg)
		if m.ID != qh.ID || !m.Response {
			t.Fatalf("answer header %+v", m.Header)
		}
	})
}
