package ca

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net/url"
	"strings"
	"testing"
	"time"
)

// signAs signs a device-like certificate for key with the tenant's active CA, bypassing
// Issue's checks: what a bug or a compromised CA could produce.
func (f *fixture) signAs(tenantID string, tmpl *x509.Certificate, pub *ecdsa.PublicKey) *x509.Certificate {
	f.t.Helper()
	s, err := f.a.snapshot(f.ctx, tenantID, false)
	if err != nil {
		f.t.Fatal(err)
	}
	e := s.active(f.clk.Now())
	key, err := e.signer(f.a)
	if err != nil {
		f.t.Fatal(err)
	}
	return sign(f.t, tmpl, e.cert, pub, key)
}

func sign(t testing.TB, tmpl, parent *x509.Certificate, pub *ecdsa.PublicKey, key *ecdsa.PrivateKey) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// deviceTemplate is a template shaped like Issue's certificates.
func deviceTemplate(now time.Time, uri, cn string) *x509.Certificate {
	var u []*url.URL
	if uri != "" {
		parsed, err := url.Parse(uri)
		if err != nil {
			panic(err)
		}
		u = []*url.URL{parsed}
	}
	return &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: now.Add(-time.Minute), NotAfter: now.Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, BasicConstraintsValid: true, URIs: u}
}

func TestVerifyDeviceRejects(t *testing.T) {
	f := sqliteFixture(t)
	tid := f.tenant.ID
	f.ensure(tid)
	other := f.newTenant("Fabrikam")
	f.ensure(other.ID)
	now := f.clk.Now()
	key := newKey(t)
	dev := newDeviceID()
	uri := SPIFFEID(tid, dev, "")
	good := f.issue(tid, LeafRequest{PublicKey: &key.PublicKey, DeviceID: dev})
	if _, err := f.a.VerifyDevice(f.ctx, []*x509.Certificate{good.Leaf}); err != nil {
		t.Fatal(err)
	}
	// The chain the device sends along is ignored, whatever it holds.
	if _, err := f.a.VerifyDevice(f.ctx, append([]*x509.Certificate{good.Leaf}, good.Chain...)); err != nil {
		t.Fatal(err)
	}

	// Another tenant's own device is that tenant's, never this one's.
	theirs := f.issue(other.ID, LeafRequest{})
	if id, err := f.a.VerifyDevice(f.ctx, []*x509.Certificate{theirs.Leaf}); err != nil || id.TenantID != other.ID {
		t.Fatalf("another tenant's device: %+v, %v", id, err)
	}

	// Another tenant's CA signing a certificate that names this tenant.
	forged := f.signAs(other.ID, deviceTemplate(now, uri, dev), &key.PublicKey)
	// A self-signed look-alike: same SAN, CN, and issuer name and key ID as the real CA.
	lookAlikeCAKey := newKey(t)
	lookAlikeCA := *good.Chain[0]
	lookAlikeCA.PublicKey = &lookAlikeCAKey.PublicKey
	lookAlike := sign(t, deviceTemplate(now, uri, dev), &lookAlikeCA, &key.PublicKey, lookAlikeCAKey)
	selfSigned := sign(t, deviceTemplate(now, uri, dev), deviceTemplate(now, uri, dev), &key.PublicKey, key)
	proof, err := f.a.ProofOfPossession(f.ctx, tid, "", "CODE-1")
	if err != nil {
		t.Fatal(err)
	}
	serverOnly := deviceTemplate(now, uri, dev)
	serverOnly.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	withDNS := deviceTemplate(now, uri, dev)
	withDNS.DNSNames = []string{"device.example"}

	for _, tc := range []struct {
		name  string
		certs []*x509.Certificate
		want  string
	}{
		{"nothing", nil, "no certificate"},
		{"too many", []*x509.Certificate{good.Leaf, good.Leaf, good.Leaf, good.Leaf, good.Leaf}, "more than"},
		{"another tenant's CA", []*x509.Certificate{forged}, "unknown authority"},
		{"another tenant's CA with its chain", []*x509.Certificate{forged, theirs.Chain[0], theirs.Chain[1]}, "unknown authority"},
		{"look-alike CA", []*x509.Certificate{lookAlike}, ""},
		{"self-signed", []*x509.Certificate{selfSigned}, ""},
		{"proof of possession", []*x509.Certificate{proof}, "exactly one URI"},
		{"server auth only", []*x509.Certificate{f.signAs(tid, serverOnly, &key.PublicKey)}, "usage"},
		{"DNS SAN too", []*x509.Certificate{f.signAs(tid, withDNS, &key.PublicKey)}, "exactly one URI"},
		{"CN is not the device", []*x509.Certificate{f.signAs(tid, deviceTemplate(now, uri, newDeviceID()), &key.PublicKey)}, "not the device ID"},
		{"no SAN", []*x509.Certificate{f.signAs(tid, deviceTemplate(now, "", dev), &key.PublicKey)}, "exactly one URI"},
		{"malformed SAN", []*x509.Certificate{f.signAs(tid, deviceTemplate(now, "spiffe://"+tid+"/devices/"+dev, dev), &key.PublicKey)}, "malformed device URI"},
		{"unknown tenant", []*x509.Certificate{f.signAs(tid, deviceTemplate(now, SPIFFEID("nobody", dev, ""), dev), &key.PublicKey)}, "no certificate authority"},
	} {
		_, err := f.a.VerifyDevice(f.ctx, tc.certs)
		if !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrUntrusted mentioning %q", tc.name, err, tc.want)
		}
	}

	// The tenant CA's name constraint stops the forgery even for a relying party that anchors
	// on the shared root.
	roots := x509.NewCertPool()
	roots.AddCert(theirs.Chain[1])
	inter := x509.NewCertPool()
	inter.AddCert(theirs.Chain[0])
	if _, err := forged.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil || !strings.Contains(err.Error(), "constraint") {
		t.Errorf("root-anchored crypto/x509 on the forgery: %v, want a name-constraint violation", err)
	}
	out, err := opensslVerify(t, now, "-CAfile", writePEM(t, "root.pem", theirs.Chain[1]),
		"-untrusted", writePEM(t, "inter.pem", theirs.Chain[0]), writePEM(t, "forged.pem", forged))
	if err == nil || !strings.Contains(out, "subtree violation") {
		t.Errorf("root-anchored openssl on the forgery: %v\n%s", err, out)
	}

	// Not yet valid, then expired.
	f.clk.Advance(time.Hour)
	later := f.issue(tid, LeafRequest{PublicKey: &key.PublicKey, DeviceID: dev})
	f.clk.Set(later.Leaf.NotBefore.Add(-time.Second))
	if _, err := f.a.VerifyDevice(f.ctx, []*x509.Certificate{later.Leaf}); !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), "not yet valid") {
		t.Errorf("not yet valid: %v", err)
	}
	f.clk.Set(later.Leaf.NotAfter)
	if _, err := f.a.VerifyDevice(f.ctx, []*x509.Certificate{later.Leaf}); err != nil {
		t.Errorf("at NotAfter (inclusive): %v", err)
	}
	f.clk.Set(later.Leaf.NotAfter.Add(time.Second))
	if _, err := f.a.VerifyDevice(f.ctx, []*x509.Certificate{later.Leaf}); !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), "expired") {
		t.Errorf("expired: %v", err)
	}

	// Revoked CA.
	f.clk.Set(now.Add(2 * time.Hour))
	fresh := f.issue(tid, LeafRequest{PublicKey: &key.PublicKey, DeviceID: dev})
	if err := f.a.Revoke(f.ctx, tid, f.list(tid)[0].ID); err != nil {
		t.Fatal(err)
	}
	f.ensure(tid)
	if _, err := f.a.VerifyDevice(f.ctx, []*x509.Certificate{fresh.Leaf}); !errors.Is(err, ErrUntrusted) {
		t.Errorf("leaf of a revoked CA: %v", err)
	}
	if _, err := f.a.VerifyDevice(f.ctx, []*x509.Certificate{f.issue(tid, LeafRequest{}).Leaf}); err != nil {
		t.Errorf("leaf of the new CA: %v", err)
	}
}

func TestParseSPIFFEID(t *testing.T) {
	dev := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		uri  string
		want Identity // zero: must fail
	}{
		{"spiffe://t1/device/" + dev, Identity{TenantID: "t1", DeviceID: dev}},
		{"spiffe://t1/device/" + dev + "/app/" + component, Identity{TenantID: "t1", DeviceID: dev, Component: component}},
		// (url.Parse lowercases the scheme, so "SPIFFE://" cannot be told apart.)
		{"spiffe://T1/device/" + dev, Identity{}},
		{"spiffe://t1:443/device/" + dev, Identity{}},
		{"spiffe://u@t1/device/" + dev, Identity{}},
		{"spiffe://t1/device/" + dev + "?x=1", Identity{}},
		{"spiffe://t1/device/" + dev + "?", Identity{}},
		{"spiffe://t1/device/" + dev + "#f", Identity{}},
		{"spiffe://t1/device/" + dev + "/", Identity{}},
		{"spiffe://t1//device/" + dev, Identity{}},
		{"spiffe://t1/device/" + strings.ToUpper(dev), Identity{}},
		{"spiffe://t1/device/" + dev[:62] + "%61%62", Identity{}},
		{"spiffe://t1/device/" + dev + "/app/" + strings.ToUpper(component), Identity{}},
		{"spiffe://t1/device/" + dev + "/app/", Identity{}},
		{"spiffe://t1/device/" + dev + "/app/" + component + "/x", Identity{}},
		{"spiffe://t1/device/" + dev + "/apps/" + component, Identity{}},
		{"spiffe:///device/" + dev, Identity{}},
		{"https://t1/device/" + dev, Identity{}},
		{"spiffe:t1/device/" + dev, Identity{}},
	} {
		u, err := url.Parse(tc.uri)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ParseSPIFFEID(u)
		if tc.want == (Identity{}) {
			if err == nil {
				t.Errorf("%s: accepted as %+v", tc.uri, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: %+v, %v; want %+v", tc.uri, got, err, tc.want)
		}
	}
}

func FuzzParseSPIFFEID(f *testing.F) {
	dev := strings.Repeat("0f", 32)
	f.Add("spiffe://t1/device/" + dev)
	f.Add("spiffe://t1/device/" + dev + "/app/" + component)
	f.Add("spiffe://t1/device/" + dev + "/app/%2e")
	f.Fuzz(func(t *testing.T, s string) {
		u, err := url.Parse(s)
		if err != nil {
			return
		}
		id, err := ParseSPIFFEID(u)
		if err != nil {
			return
		}
		if got := SPIFFEID(id.TenantID, id.DeviceID, id.Component); got != u.String() {
			t.Fatalf("%q parsed as %+v, which prints as %q", s, id, got)
		}
		if checkTenantID(id.TenantID) != nil || !isDeviceID(id.DeviceID) || id.Component != "" && !isUUID(id.Component) {
			t.Fatalf("%q parsed as %+v", s, id)
		}
	})
}
