package webhook

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
)

// CheckURL checks a webhook URL: absolute, https, with a host and without user information or
// a fragment, at most MaxURLLength bytes. With allowLoopbackHTTP (the server's -dev mode or
// webhooks.allow_http_loopback), http is accepted too, but only to a loopback host
// (localhost, 127.0.0.0/8, ::1). It returns the URL as parsed.
func CheckURL(raw string, allowLoopbackHTTP bool) (*url.URL, error) {
	if len(raw) > MaxURLLength {
		return nil, fmt.Errorf("url: is %d bytes long; the limit is %d", len(raw), MaxURLLength)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("url: %q is not a URL", clip(raw, 128))
	}
	if !u.IsAbs() || u.Opaque != "" {
		return nil, fmt.Errorf("url: %q is not an absolute http(s) URL", clip(raw, 128))
	}
	host := u.Hostname()
	switch {
	case host == "":
		return nil, fmt.Errorf("url: %q has no host", clip(raw, 128))
	case u.User != nil:
		return nil, fmt.Errorf("url: must not carry a user name or password")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return nil, fmt.Errorf("url: must not have a fragment")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !allowLoopbackHTTP {
			return nil, fmt.Errorf("url: must use https (http is allowed only to a loopback host, in -dev mode or with webhooks.allow_http_loopback)")
		}
		if !isLoopbackHost(host) {
			return nil, fmt.Errorf("url: http is allowed only to a loopback host (localhost, 127.0.0.1, ::1), not %q", clip(host, 64))
		}
	default:
		return nil, fmt.Errorf("url: the scheme must be https, not %q", clip(u.Scheme, 16))
	}
	if ip, err := netip.ParseAddr(host); err == nil && refused(ip) {
		return nil, fmt.Errorf("url: %s is a link-local address (such as a cloud metadata service); webhooks may not reach it", ip)
	}
	return u, nil
}

func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// metadataV6 is the IPv6 address of AWS's instance metadata service (fd00:ec2::254), which is
// not link-local.
var metadataV6 = netip.MustParseAddr("fd00:ec2::254")

// refused reports whether a webhook may never connect to ip: link-local addresses
// (169.254.0.0/16, fe80::/10, where cloud metadata services live), AWS's IPv6 metadata address,
// and the unspecified address.
func refused(ip netip.Addr) bool {
	ip = ip.Unmap()
	return ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsUnspecified() || ip == metadataV6
}

// nonPublic lists the address ranges that are not on the public Internet, besides those
// refused always and loopback (IANA's special-purpose registries): with
// webhooks.deny_private_networks a webhook may not connect to them.
var nonPublic = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8",       // "this network"
		"10.0.0.0/8",      // RFC 1918
		"100.64.0.0/10",   // shared address space (carrier-grade NAT)
		"172.16.0.0/12",   // RFC 1918
		"192.0.0.0/24",    // IETF protocol assignments
		"192.0.2.0/24",    // documentation
		"192.88.99.0/24",  // 6to4 relay anycast
		"192.168.0.0/16",  // RFC 1918
		"198.18.0.0/15",   // benchmarking
		"198.51.100.0/24", // documentation
		"203.0.113.0/24",  // documentation
		"224.0.0.0/4",     // multicast
		"240.0.0.0/4",     // reserved, and the broadcast address
		"::/96",           // IPv4-compatible (deprecated)
		"64:ff9b::/96",    // NAT64: would reach IPv4 addresses through a translator
		"64:ff9b:1::/48",  // local-use NAT64
		"100::/64",        // discard
		"2001::/23",       // IETF protocol assignments (Teredo among them)
		"2001:db8::/32",   // documentation
		"2002::/16",       // 6to4: embeds an IPv4 address
		"fc00::/7",        // unique-local
		"fec0::/10",       // site-local (deprecated)
		"ff00::/8",        // multicast
	} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

// private reports whether ip is loopback or another address off the public Internet
// (nonPublic), which webhooks.deny_private_networks refuses.
func private(ip netip.Addr) bool {
	ip = ip.Unmap()
	if ip.IsLoopback() || ip.IsPrivate() {
		return true
	}
	for _, p := range nonPublic {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// ErrRefusedAddress means a webhook's host resolved to an address it may not reach.
var ErrRefusedAddress = errors.New("refused address")

// errPrivateAddress means a webhook's host resolved to a private or other non-public address,
// which webhooks.deny_private_networks refuses. It is an ErrRefusedAddress.
var errPrivateAddress = fmt.Errorf("private address: %w", ErrRefusedAddress)

// dialControl returns the dialer's Control hook: it runs after name resolution, on the address
// about to be connected, so a name that resolves (or is rebound) to a refused address is
// refused too. With denyPrivate, loopback and other non-public addresses are refused as well.
func dialControl(denyPrivate bool) func(network, address string, _ syscall.RawConn) error {
	return func(network, address string, _ syscall.RawConn) error {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return fmt.Errorf("webhook dial %s: %w", address, err)
		}
		ip, err := netip.ParseAddr(host)
		if err != nil {
			return fmt.Errorf("webhook dial %s: not an IP address: %w", address, ErrRefusedAddress)
		}
		if refused(ip) {
			return fmt.Errorf("webhook dial %s: a link-local or metadata address: %w", address, ErrRefusedAddress)
		}
		if denyPrivate && private(ip) {
			return fmt.Errorf("webhook dial %s: a non-public address (webhooks.deny_private_networks): %w", address, errPrivateAddress)
		}
		return nil
	}
}
