package netpolicy

import (
	"context"
	"net/netip"
	"strings"

	"golang.org/x/net/dns/dnsmessage"
)

// maxAnswers bounds the A records in one answer, which keeps every answer well under the 512
// bytes a DNS message over UDP may have without EDNS.
const maxAnswers = 16

// answerer answers the DNS queries of one application. It is the only DNS server the
// application can reach: its ruleset redirects every query, to any address, to it.
type answerer struct {
	// allows reports whether the application may resolve a name (lower case, no final dot).
	allows func(name string) bool
	// lookup returns the addresses of an allowed name, which it has made reachable.
	lookup func(ctx context.Context, name string) ([]netip.Addr, error)
	// ttl is the time to live of every answer, in seconds.
	ttl uint32
	// denied, if set, is told of each name refused (NXDOMAIN because it is not allowed).
	denied func(name string)
}

// answer returns the reply to one query, or nil when there is nothing to reply to (the
// message is not a query or cannot be read up to its question). The message is hostile: it
// comes from the application.
//
// Replies: an A query for an allowed name gets that name's addresses (SERVFAIL if it has none
// now); any other type of query for an allowed name gets no records (NOERROR); a name the
// application may not resolve gets NXDOMAIN, so the application learns nothing from the
// outside world about it; more than one question gets FORMERR, an opcode other than QUERY
// NOTIMP, a class other than IN REFUSED. Each name refused because the application may not
// resolve it is told to denied.
func (a *answerer) answer(ctx context.Context, msg []byte) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil || h.Response {
		return nil
	}
	qs, err := p.AllQuestions()
	if err != nil {
		return nil
	}
	rh := dnsmessage.Header{ID: h.ID, Response: true, OpCode: h.OpCode, RecursionDesired: h.RecursionDesired, RecursionAvailable: true}
	var q *dnsmessage.Question
	switch {
	case h.OpCode != 0:
		rh.RCode = dnsmessage.RCodeNotImplemented
	case len(qs) != 1:
		rh.RCode = dnsmessage.RCodeFormatError
	default:
		q = &qs[0]
	}
	var addrs []netip.Addr
	if q != nil {
		name := strings.TrimSuffix(strings.ToLower(q.Name.String()), ".")
		switch {
		case q.Class != dnsmessage.ClassINET:
			rh.RCode = dnsmessage.RCodeRefused
		case !a.allows(name):
			rh.RCode = dnsmessage.RCodeNameError
			rh.Authoritative = true
			if a.denied != nil && name != "" {
				a.denied(name)
			}
		case q.Type == dnsmessage.TypeA:
			addrs, err = a.lookup(ctx, name)
			if err != nil || len(addrs) == 0 {
				rh.RCode = dnsmessage.RCodeServerFailure
				addrs = nil
			}
		}
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	if q != nil {
		_ = b.StartQuestions()
		_ = b.Question(*q)
	}
	if len(addrs) > 0 {
		_ = b.StartAnswers()
		for i, ad := range addrs {
			if i == maxAnswers {
				break
			}
			rh := dnsmessage.ResourceHeader{Name: q.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: a.ttl}
			_ = b.AResource(rh, dnsmessage.AResource{A: ad.As4()})
		}
	}
	out, err := b.Finish()
	if err != nil {
		return nil
	}
	return out
}
