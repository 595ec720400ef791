package examples_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/internal/applibs"
	"github.com/rampart-iot/rampart/internal/attestclient"
	"github.com/rampart-iot/rampart/internal/server/servertest"
)

// tenant is a real security service (dev mode, SQLite) with one device that attested on the
// software root of trust and was issued certificates for the given app components, as the
// agent's attestation loop asks for them (agent.Config.ComponentsFunc).
type tenant struct {
	srv    *servertest.Server
	dev    *servertest.Device
	bundle []byte // the tenant's public trust bundle, what relying parties trust
}

func newTenant(t *testing.T, components ...string) *tenant {
	t.Helper()
	srv := servertest.Start(t)
	admin := srv.Client(t, srv.AdminToken)
	dev := srv.AttestedDevice(t, admin, srv.TenantID, "")
	dev.Attest.Components = components
	if _, err := dev.Attest.Attest(t.Context()); err != nil {
		t.Fatalf("attesting for the apps' certificates: %v", err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: dev.RootCAs}}, Timeout: 30 * time.Second}
	resp, err := hc.Get(srv.URL + "/v1/tenants/" + srv.TenantID + "/trust-bundle")
	must(t, err)
	defer resp.Body.Close()
	bundle, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	must(t, err)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("trust bundle: %s: %s", resp.Status, bundle)
	}
	return &tenant{srv: srv, dev: dev, bundle: bundle}
}

// certs is what the agent gives the apps: the attestation store's files.
func (tn *tenant) certs() applibs.Certificates { return applibs.CertDir(tn.dev.Dir) }

// tenantCAs is the trust bundle without the service roots: the tenant's own CAs. Anchoring on
// them accepts this tenant's devices only; the roots would also accept every other tenant's
// devices on the same service.
func (tn *tenant) tenantCAs(t *testing.T) []*x509.Certificate {
	t.Helper()
	var cas []*x509.Certificate
	for rest := tn.bundle; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		must(t, err)
		if !bytes.Equal(c.RawIssuer, c.RawSubject) {
			cas = append(cas, c)
		}
	}
	if len(cas) == 0 {
		t.Fatalf("no tenant CA in the trust bundle:\n%s", tn.bundle)
	}
	return cas
}

// agentCertificate is the device's own (the agent's) certificate, another identity from the
// same tenant CA.
func (tn *tenant) agentCertificate(t *testing.T) tls.Certificate {
	t.Helper()
	base := filepath.Join(tn.dev.Dir, attestclient.CertsLink)
	c, err := tls.LoadX509KeyPair(filepath.Join(base, attestclient.AgentCert), filepath.Join(base, attestclient.AgentKey))
	must(t, err)
	return c
}

// testCA is a CA of the test's own: it signs the servers' certificates (which the apps verify
// with the CA file shipped in their package), and, as a CA the tenant does not trust, the
// certificate the brokers must refuse.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	must(t, err)
	cert, err := x509.ParseCertificate(der)
	must(t, err)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue signs a leaf: a server's (dns names and ips) or a client's (cn).
func (ca *testCA) issue(t *testing.T, cn string, server bool, dns []string, ips ...net.IP) (certPEM, keyPEM []byte, pair tls.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	eku := x509.ExtKeyUsageClientAuth
	if server {
		eku = x509.ExtKeyUsageServerAuth
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	must(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn}, DNSNames: dns, IPAddresses: ips,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{eku},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	must(t, err)
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	must(t, err)
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
	pair, err = tls.X509KeyPair(certPEM, keyPEM)
	must(t, err)
	return certPEM, keyPEM, pair
}

// writeFile writes data to a new file in dir and returns its path.
func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	must(t, os.WriteFile(p, data, 0o600))
	return p
}

func poolOf(certs ...*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}
