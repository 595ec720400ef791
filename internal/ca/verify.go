package ca

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Identity is who a verified device certificate names.
type Identity struct {
	TenantID  string
	DeviceID  string
	Component string // "" for the agent's certificate, else the app's component ID
	NotAfter  time.Time
	// SoftwareRootOfTrust is set when the certificate is marked development only: no
	// hardware protected the device's keys or measurements.
	SoftwareRootOfTrust bool
}

// VerifyDevice checks a device's certificate chain for mutual TLS. certs[0] is the leaf (the
// rest, if any, are ignored: the tenant's CAs are the trust anchors). The leaf's one URI SAN
// names the tenant, device and component; the leaf must chain to a CA of that same tenant,
// neither revoked nor expired, be valid now, allow clientAuth, and carry the device ID as its
// subject CN. Failures wrap ErrUntrusted; a store failure is returned as it is.
func (a *Authority) VerifyDevice(ctx context.Context, certs []*x509.Certificate) (Identity, error) {
	if len(certs) == 0 || certs[0] == nil {
		return Identity{}, fmt.Errorf("%w: no certificate", ErrUntrusted)
	}
	if len(certs) > MaxChainLen {
		return Identity{}, fmt.Errorf("%w: %d certificates, more than %d", ErrUntrusted, len(certs), MaxChainLen)
	}
	leaf := certs[0]
	if len(leaf.URIs) != 1 || len(leaf.DNSNames) > 0 || len(leaf.IPAddresses) > 0 || len(leaf.EmailAddresses) > 0 {
		return Identity{}, fmt.Errorf("%w: a device certificate names exactly one URI and nothing else", ErrUntrusted)
	}
	id, err := ParseSPIFFEID(leaf.URIs[0])
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %w", ErrUntrusted, err)
	}
	if leaf.Subject.CommonName != id.DeviceID {
		return Identity{}, fmt.Errorf("%w: subject CN %q is not the device ID %s", ErrUntrusted, leaf.Subject.CommonName, id.DeviceID)
	}
	s, err := a.snapshot(ctx, id.TenantID, false)
	if err != nil {
		return Identity{}, err
	}
	if s.pool == nil {
		return Identity{}, fmt.Errorf("%w: tenant %s has no certificate authority", ErrUntrusted, id.TenantID)
	}
	_, err = leaf.Verify(x509.VerifyOptions{
		Roots:       s.pool,
		CurrentTime: a.clock(),
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %s: %w", ErrUntrusted, leaf.URIs[0], err)
	}
	id.NotAfter = leaf.NotAfter
	id.SoftwareRootOfTrust = DevelopmentOnly(leaf)
	return id, nil
}

// ParseSPIFFEID parses the URI of a device certificate, as SPIFFEID makes it, into the
// tenant, device and component it names. It accepts only that exact form: lowercase, no
// port, user, query, fragment or escapes.
func ParseSPIFFEID(u *url.URL) (Identity, error) {
	bad := func(why string) (Identity, error) {
		return Identity{}, fmt.Errorf("malformed device URI %q: %s", u.String(), why)
	}
	if u.Scheme != "spiffe" || u.Opaque != "" || u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.RawFragment != "" {
		return bad("want spiffe://TENANT/device/DEVICE[/app/COMPONENT]")
	}
	if checkTenantID(u.Host) != nil {
		return bad("the trust domain is not a tenant ID")
	}
	if u.RawPath != "" {
		return bad("escaped path")
	}
	parts := strings.Split(u.Path, "/")
	var id Identity
	switch {
	case len(parts) == 3 && parts[0] == "" && parts[1] == "device":
	case len(parts) == 5 && parts[0] == "" && parts[1] == "device" && parts[3] == "app":
		if !isUUID(parts[4]) {
			return bad("the component is not a lowercase UUID")
		}
		id.Component = parts[4]
	default:
		return bad("want spiffe://TENANT/device/DEVICE[/app/COMPONENT]")
	}
	if !isDeviceID(parts[2]) {
		return bad("the device ID is not 64 lowercase hex digits")
	}
	id.TenantID, id.DeviceID = u.Host, parts[2]
	if SPIFFEID(id.TenantID, id.DeviceID, id.Component) != u.String() {
		return bad("not in canonical form")
	}
	return id, nil
}
