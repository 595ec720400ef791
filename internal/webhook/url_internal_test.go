package webhook

import (
	"net/netip"
	"testing"
)

// TestPrivate: the ranges webhooks.deny_private_networks refuses, and public addresses it lets
// through (these are not dialled: the table is the definition).
func TestPrivate(t *testing.T) {
	for _, c := range []struct {
		addr    string
		private bool
	}{
		{"127.0.0.1", true}, {"::1", true}, {"10.0.0.1", true}, {"172.16.5.4", true}, {"192.168.0.1", true},
		{"100.64.0.1", true}, {"fd00::1", true}, {"fc00::1", true}, {"::ffff:192.168.1.1", true}, {"224.0.0.1", true},
		{"255.255.255.255", true}, {"198.19.0.1", true}, {"192.0.2.1", true}, {"2001:db8::1", true}, {"64:ff9b::7f00:1", true},
		{"8.8.8.8", false}, {"1.1.1.1", false}, {"172.32.0.1", false}, {"100.128.0.1", false}, {"192.169.0.1", false},
		{"2606:4700:4700::1111", false}, {"2a00:1450:4001::1", false}, {"::ffff:8.8.8.8", false},
	} {
		if got := private(netip.MustParseAddr(c.addr)); got != c.private {
			t.Errorf("private(%s) = %v, want %v", c.addr, got, c.private)
		}
	}
}
