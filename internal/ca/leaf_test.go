package ca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"math/big"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

const component = "5b1fb8a4-0c3a-4a5e-9a8e-2b6f7c1d9e00"

// TestIssueChainVerifies checks issued chains with crypto/x509 and with openssl.
func TestIssueChainVerifies(t *testing.T) {
	f := sqliteFixture(t)
	tid := f.tenant.ID
	f.ensure(tid)
	other := f.newTenant("Fabrikam")
	f.ensure(other.ID)

	agent := f.issue(tid, LeafRequest{})
	app := f.issue(tid, LeafRequest{Component: component})
	bundle, err := f.a.Bundle(f.ctx, tid)
	if err != nil {
		t.Fatal(err)
	}
	if len(agent.Chain) != 2 || !agent.Chain[1].Equal(bundle[len(bundle)-1]) || !agent.Chain[0].Equal(bundle[0]) {
		t.Fatalf("chain is not [tenant CA, root]")
	}
	for name, iss := range map[string]*Issued{"agent": agent, "app": app} {
		roots := x509.NewCertPool()
		roots.AddCert(iss.Chain[1])
		inter := x509.NewCertPool()
		inter.AddCert(iss.Chain[0])
		if _, err := iss.Leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: f.clk.Now(),
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("%s: crypto/x509: %v", name, err)
		}
		if _, err := iss.Leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: f.clk.Now(),
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
			t.Errorf("%s: verified for serverAuth", name)
		}

		bundlePEM := writePEM(t, "bundle.pem", bundle...)
		interPEM := writePEM(t, "intermediates.pem", iss.Chain[0])
		leafPEM := writePEM(t, "leaf.pem", iss.Leaf)
		if out, err := opensslVerify(t, f.clk.Now(), "-CAfile", bundlePEM, "-untrusted", interPEM, "-purpose", "sslclient", leafPEM); err != nil {
			t.Errorf("%s: openssl verify: %v\n%s", name, err, out)
		}
		// Anchored on the tenant CAs alone, as a relying party that accepts only this tenant.
		tenantPEM := writePEM(t, "tenant.pem", bundle[:len(bundle)-1]...)
		if out, err := opensslVerify(t, f.clk.Now(), "-partial_chain", "-CAfile", tenantPEM, "-purpose", "sslclient", leafPEM); err != nil {
			t.Errorf("%s: openssl verify -partial_chain: %v\n%s", name, err, out)
		}
		otherBundle, err := f.a.Bundle(f.ctx, other.ID)
		if err != nil {
			t.Fatal(err)
		}
		otherPEM := writePEM(t, "other.pem", otherBundle[:len(otherBundle)-1]...)
		if out, err := opensslVerify(t, f.clk.Now(), "-partial_chain", "-CAfile", otherPEM, "-purpose", "sslclient", leafPEM); err == nil {
			t.Errorf("%s: openssl accepted the leaf against another tenant's CAs\n%s", name, out)
		} else {
			t.Logf("%s: another tenant: %s", name, out)
		}
		if out, err := opensslVerify(t, f.clk.Now().Add(2*day), "-CAfile", bundlePEM, "-untrusted", interPEM, leafPEM); err == nil {
			t.Errorf("%s: openssl accepted an expired leaf\n%s", name, out)
		} else {
			t.Logf("%s: expired: %s", name, out)
		}
	}
}

func TestLeafContents(t *testing.T) {
	f := sqliteFixture(t)
	tid := f.tenant.ID
	f.ensure(tid)
	key := newKey(t)
	dev := newDeviceID()
	measurements := []byte(`{"os_release":"1.0","measurements":{"agent":"ab12"}}`)
	for _, tc := range []struct {
		name      string
		req       LeafRequest
		uri       string
		devOnly   bool
		component string
	}{
		{"agent", LeafRequest{}, "spiffe://" + tid + "/device/" + dev, false, ""},
		{"app, uppercase component", LeafRequest{Component: strings.ToUpper(component)}, "spiffe://" + tid + "/device/" + dev + "/app/" + component, false, component},
		{"software root of trust", LeafRequest{SoftwareRootOfTrust: true, Measurements: measurements}, "spiffe://" + tid + "/device/" + dev, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.req.PublicKey, tc.req.DeviceID = &key.PublicKey, dev
			iss := f.issue(tid, tc.req)
			c := iss.Leaf
			if c.Subject.CommonName != dev {
				t.Errorf("CN %q, want the device ID", c.Subject.CommonName)
			}
			if len(c.URIs) != 1 || c.URIs[0].String() != tc.uri || len(c.DNSNames)+len(c.IPAddresses)+len(c.EmailAddresses) > 0 {
				t.Errorf("SANs %v %v %v %v, want only %s", c.URIs, c.DNSNames, c.IPAddresses, c.EmailAddresses, tc.uri)
			}
			if ou := c.Subject.OrganizationalUnit; tc.devOnly != slices.Equal(ou, []string{DevelopmentOnlyOU}) || !tc.devOnly && len(ou) > 0 {
				t.Errorf("OU %v", ou)
			}
			if DevelopmentOnly(c) != tc.devOnly {
				t.Errorf("DevelopmentOnly = %v", !tc.devOnly)
			}
			m, err := Measurements(c)
			if err != nil || !bytes.Equal(m, tc.req.Measurements) {
				t.Errorf("Measurements = %q, %v; want %q", m, err, tc.req.Measurements)
			}
			for _, e := range c.Extensions {
				if (e.Id.Equal(OIDMeasurements) || e.Id.Equal(OIDDevelopmentOnly)) && e.Critical {
					t.Errorf("extension %v is critical", e.Id)
				}
			}
			if c.KeyUsage != x509.KeyUsageDigitalSignature || !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
				t.Errorf("key usage %v, extended %v", c.KeyUsage, c.ExtKeyUsage)
			}
			if !c.BasicConstraintsValid || c.IsCA {
				t.Error("not marked CA:false")
			}
			if !bytes.Equal(c.AuthorityKeyId, iss.Chain[0].SubjectKeyId) {
				t.Error("authority key ID is not the CA's")
			}
			if !key.PublicKey.Equal(c.PublicKey) {
				t.Error("certifies another key")
			}
			if n := c.SerialNumber; n.Sign() <= 0 || n.BitLen() > 128 || n.BitLen() < 64 {
				t.Errorf("serial %v", n)
			}
			now := f.clk.Now()
			if !c.NotBefore.Equal(now.Add(-ClockSkew)) || !c.NotAfter.Equal(now.Add(DefaultLeafLifetime)) {
				t.Errorf("validity %v..%v", c.NotBefore, c.NotAfter)
			}
			id, err := f.a.VerifyDevice(f.ctx, []*x509.Certificate{c})
			if err != nil {
				t.Fatal(err)
			}
			want := Identity{TenantID: tid, DeviceID: dev, Component: tc.component, NotAfter: c.NotAfter, SoftwareRootOfTrust: tc.devOnly}
			if id != want {
				t.Errorf("identity %+v, want %+v", id, want)
			}
		})
	}
	a := f.issue(tid, LeafRequest{})
	b := f.issue(tid, LeafRequest{})
	if a.Leaf.SerialNumber.Cmp(b.Leaf.SerialNumber) == 0 {
		t.Error("two leaves share a serial number")
	}
}

func TestLeafLifetime(t *testing.T) {
	f := sqliteFixture(t)
	tid := f.tenant.ID
	f.ensure(tid)
	now := f.clk.Now()
	for _, tc := range []struct {
		lifetime time.Duration
		ok       bool
		notAfter time.Time
	}{
		{0, true, now.Add(DefaultLeafLifetime)},
		{MinLeafLifetime, true, now.Add(MinLeafLifetime)},
		{MinLeafLifetime - time.Second, false, time.Time{}},
		{MaxLeafLifetime, true, now.Add(MaxLeafLifetime)},
		{MaxLeafLifetime + time.Second, false, time.Time{}},
		{-time.Hour, false, time.Time{}},
		{90 * time.Minute, true, now.Add(90 * time.Minute)},
	} {
		iss, err := f.a.Issue(f.ctx, tid, LeafRequest{PublicKey: &newKey(t).PublicKey, DeviceID: newDeviceID(), Lifetime: tc.lifetime})
		if !tc.ok {
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("lifetime %v: %v, want ErrInvalid", tc.lifetime, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("lifetime %v: %v", tc.lifetime, err)
			continue
		}
		if !iss.Leaf.NotAfter.Equal(tc.notAfter) {
			t.Errorf("lifetime %v: NotAfter %v, want %v", tc.lifetime, iss.Leaf.NotAfter, tc.notAfter)
		}
	}

	// A leaf never outlives its CA. (EnsureTenant is not called, so the CA is left to age.)
	caCert := f.list(tid)[0].Cert
	f.clk.Set(caCert.NotAfter.Add(-time.Hour))
	iss := f.issue(tid, LeafRequest{Lifetime: MaxLeafLifetime})
	if !iss.Leaf.NotAfter.Equal(caCert.NotAfter) {
		t.Errorf("NotAfter %v, want the CA's %v", iss.Leaf.NotAfter, caCert.NotAfter)
	}
}

func TestIssueRejectsMalformedRequests(t *testing.T) {
	f := sqliteFixture(t)
	tid := f.tenant.ID
	f.ensure(tid)
	p256 := &newKey(t).PublicKey
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	//lint:ignore SA1019 an invalid key can only be made from raw coordinates
	offCurve := &ecdsa.PublicKey{Curve: elliptic.P256(), X: big.NewInt(1), Y: big.NewInt(1)}
	dev := newDeviceID()
	for _, tc := range []struct {
		name string
		req  LeafRequest
	}{
		{"no key", LeafRequest{DeviceID: dev}},
		{"P-384", LeafRequest{PublicKey: &p384.PublicKey, DeviceID: dev}},
		{"RSA", LeafRequest{PublicKey: &rsaKey.PublicKey, DeviceID: dev}},
		{"Ed25519", LeafRequest{PublicKey: edPub, DeviceID: dev}},
		{"ECDSA by value", LeafRequest{PublicKey: *p256, DeviceID: dev}},
		{"point off the curve", LeafRequest{PublicKey: offCurve, DeviceID: dev}},
		{"no device", LeafRequest{PublicKey: p256}},
		{"uppercase device", LeafRequest{PublicKey: p256, DeviceID: strings.ToUpper(dev)}},
		{"short device", LeafRequest{PublicKey: p256, DeviceID: dev[:63]}},
		{"device with a slash", LeafRequest{PublicKey: p256, DeviceID: dev[:62] + "/x"}},
		{"component not a UUID", LeafRequest{PublicKey: p256, DeviceID: dev, Component: "app"}},
		{"component with a slash", LeafRequest{PublicKey: p256, DeviceID: dev, Component: component[:35] + "/"}},
		{"measurements too big", LeafRequest{PublicKey: p256, DeviceID: dev, Measurements: make([]byte, MaxMeasurementsSize+1)}},
	} {
		if _, err := f.a.Issue(f.ctx, tid, tc.req); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", tc.name, err)
		}
	}
	ok := LeafRequest{PublicKey: p256, DeviceID: dev}
	for _, bad := range []string{"", "Tenant", "a/b", "a:1", strings.Repeat("a", 256)} {
		if _, err := f.a.Issue(f.ctx, bad, ok); !errors.Is(err, ErrInvalid) {
			t.Errorf("tenant %q: %v, want ErrInvalid", bad, err)
		}
	}
	if _, err := f.a.Issue(f.ctx, f.newTenant("Empty").ID, ok); !errors.Is(err, ErrNoCA) {
		t.Errorf("tenant without a CA: %v, want ErrNoCA", err)
	}
}

// TestIssueWorksFromMemory: Issue reads the store only to refresh its copy of the CAs.
func TestIssueWorksFromMemory(t *testing.T) {
	f := sqliteFixture(t)
	f.ensure(f.tenant.ID)
	cs := &countingStore{Store: f.st}
	a, err := New(Config{Store: cs, KEK: f.kek, Now: f.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	key := &newKey(t).PublicKey
	for range 200 { // as attestation does: EnsureTenant, then Issue
		if err := a.EnsureTenant(f.ctx, f.tenant.ID, ""); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Issue(f.ctx, f.tenant.ID, LeafRequest{PublicKey: key, DeviceID: newDeviceID()}); err != nil {
			t.Fatal(err)
		}
	}
	if n := cs.lists.Load(); n != 2 { // the tenant's CAs and the roots, once
		t.Errorf("200 attestations read the CA list %d times, want 2", n)
	}
	if n := cs.updates.Load(); n != 0 {
		t.Errorf("200 attestations ran %d store transactions, want 0", n)
	}
	f.clk.Advance(RefreshInterval)
	for range 200 {
		if _, err := a.Issue(f.ctx, f.tenant.ID, LeafRequest{PublicKey: key, DeviceID: newDeviceID()}); err != nil {
			t.Fatal(err)
		}
	}
	if n := cs.lists.Load(); n != 3 { // the tenant's, after RefreshInterval
		t.Errorf("after a refresh: %d reads, want 3", n)
	}
}

// TestLeafEncodingMatchesCreateCertificate holds Issue's direct DER encoding to what
// crypto/x509 makes of the same template, byte for byte.
func TestLeafEncodingMatchesCreateCertificate(t *testing.T) {
	caKey := newKey(t)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "Rampart CA Größe", OrganizationalUnit: []string{"tenant x"}, SerialNumber: "id"},
		NotBefore: t0, NotAfter: t0.Add(100 * 365 * day), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	leafKey := newKey(t)
	spki, err := x509.MarshalPKIXPublicKey(&leafKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	big1 := bytes.Repeat([]byte("m"), 200)
	for i, tc := range []struct {
		serial       *big.Int
		notBefore    time.Time
		lifetime     time.Duration
		devOnly      bool
		component    string
		measurements []byte
	}{
		{big.NewInt(1), t0, day, false, "", nil},
		{new(big.Int).Lsh(big.NewInt(1), 127), t0, day, true, component, []byte("{}")},
		{new(big.Int).SetBytes(bytes.Repeat([]byte{0x7f}, 16)), t0, 7 * day, false, component, big1},
		{big.NewInt(0x80), time.Date(2049, 12, 31, 23, 0, 0, 0, time.UTC), 2 * time.Hour, true, "", make([]byte, MaxMeasurementsSize)},
		{big.NewInt(0xff00), time.Date(2080, 1, 1, 0, 0, 0, 0, time.UTC), 5 * time.Minute, false, "", bytes.Repeat([]byte("x"), 70000)},
	} {
		dev := newDeviceID()
		u := SPIFFEID("tenant-1", dev, tc.component)
		fields := leafFields{serial: tc.serial, issuer: caCert.RawSubject, notBefore: tc.notBefore, notAfter: tc.notBefore.Add(tc.lifetime),
			deviceID: dev, devOnly: tc.devOnly, spki: spki, akid: caCert.SubjectKeyId, uri: u, measurements: tc.measurements}
		ours, err := leafTBS(fields)
		if err != nil {
			t.Fatal(err)
		}
		parsedURI, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{SerialNumber: tc.serial, Subject: pkix.Name{CommonName: dev}, NotBefore: fields.notBefore, NotAfter: fields.notAfter,
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
			BasicConstraintsValid: true, URIs: []*url.URL{parsedURI}}
		if tc.devOnly {
			tmpl.Subject.OrganizationalUnit = []string{DevelopmentOnlyOU}
		}
		if len(tc.measurements) > 0 {
			v, _ := asn1.Marshal(tc.measurements)
			tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, pkix.Extension{Id: OIDMeasurements, Value: v})
		}
		if tc.devOnly {
			tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, pkix.Extension{Id: OIDDevelopmentOnly, Value: asn1.NullBytes})
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &leafKey.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		theirs, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ours, theirs.RawTBSCertificate) {
			t.Errorf("case %d: TBSCertificate differs from crypto/x509's\nours   %x\ntheirs %x", i, ours[:min(len(ours), 400)], theirs.RawTBSCertificate[:min(len(theirs.RawTBSCertificate), 400)])
			continue
		}
		// And the signed certificate parses and verifies.
		signed, err := signLeaf(rand.Reader, caKey, fields)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(signed)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if err := c.CheckSignatureFrom(caCert); err != nil {
			t.Errorf("case %d: %v", i, err)
		}
	}
}

func TestSPKIEncoding(t *testing.T) {
	for range 20 {
		k := newKey(t)
		r := LeafRequest{PublicKey: &k.PublicKey, DeviceID: newDeviceID()}
		ours, _, _, err := r.check()
		if err != nil {
			t.Fatal(err)
		}
		theirs, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ours, theirs) {
			t.Fatalf("SubjectPublicKeyInfo\nours   %x\ntheirs %x", ours, theirs)
		}
	}
}

func BenchmarkIssue(b *testing.B) {
	f := newFixture(b, openSQLiteB(b))
	f.ensure(f.tenant.ID)
	req := LeafRequest{PublicKey: &newKey(b).PublicKey, DeviceID: newDeviceID(), Component: component,
		Measurements: []byte(`{"os_release":"1.0","measurements":{"agent":"ab12","os-bundle":"cd34","policy":"ef56"}}`)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.a.Issue(f.ctx, f.tenant.ID, req); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkIssueParallel(b *testing.B) {
	f := newFixture(b, openSQLiteB(b))
	f.ensure(f.tenant.ID)
	req := LeafRequest{PublicKey: &newKey(b).PublicKey, DeviceID: newDeviceID()}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := f.a.Issue(f.ctx, f.tenant.ID, req); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkCreateCertificate is the same certificate made with x509.CreateCertificate and
// parsed, for comparison with BenchmarkIssue.
func BenchmarkCreateCertificate(b *testing.B) {
	caKey := newKey(b)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "CA"}, NotBefore: t0, NotAfter: t0.Add(TenantLifetime),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	caCert, _ := x509.ParseCertificate(caDER)
	u, _ := url.Parse(SPIFFEID("tenant", newDeviceID(), ""))
	pub := &newKey(b).PublicKey
	b.ReportAllocs()
	for b.Loop() {
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "dev"}, NotBefore: t0, NotAfter: t0.Add(day),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
			BasicConstraintsValid: true, URIs: []*url.URL{u}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, pub, caKey)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := x509.ParseCertificate(der); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSignP256 is one bare ECDSA P-256 signature: the floor under BenchmarkIssue.
func BenchmarkSignP256(b *testing.B) {
	key := newKey(b)
	digest := make([]byte, 32)
	for b.Loop() {
		if _, err := ecdsa.SignASN1(rand.Reader, key, digest); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSignMatchesIssue checks that Sign's unparsed certificate is what Issue parses: its serial,
// expiry and chain, and that the chain's PEM holds the chain.
func TestSignMatchesIssue(t *testing.T) {
	f := sqliteFixture(t)
	tid := f.tenant.ID
	f.ensure(tid)
	key := newKey(t)
	sg, err := f.a.Sign(f.ctx, tid, LeafRequest{PublicKey: &key.PublicKey, DeviceID: newDeviceID(), Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(sg.DER)
	if err != nil {
		t.Fatal(err)
	}
	if leaf.SerialNumber.Cmp(sg.Serial) != 0 || !leaf.NotAfter.Equal(sg.NotAfter) || !leaf.NotAfter.Equal(f.clk.Now().Add(time.Hour).Truncate(time.Second)) {
		t.Errorf("serial %v, NotAfter %v; the certificate has %v, %v", sg.Serial, sg.NotAfter, leaf.SerialNumber, leaf.NotAfter)
	}
	if err := leaf.CheckSignatureFrom(sg.Chain[0]); err != nil {
		t.Errorf("not signed by the chain's CA: %v", err)
	}
	rest := sg.ChainPEM
	for i, c := range sg.Chain {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil || b.Type != "CERTIFICATE" || !bytes.Equal(b.Bytes, c.Raw) {
			t.Fatalf("ChainPEM block %d is not chain certificate %d", i, i)
		}
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		t.Errorf("ChainPEM has more than the chain: %q", rest)
	}
}
