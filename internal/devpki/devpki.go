// Package devpki makes the throwaway TLS material of development mode: a local CA and a server
// certificate it signs for the loopback names, kept in the data directory and reused while
// valid. Nothing it makes is fit for production, and every certificate says so in its subject.
package devpki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/rampart-iot/rampart/internal/atomicfile"
)

// Lifetimes of the development certificates.
const (
	CALifetime     = 365 * 24 * time.Hour
	ServerLifetime = 30 * 24 * time.Hour
	// RenewBefore is how long before expiry a certificate is replaced.
	RenewBefore = 24 * time.Hour
)

// Files names the PEM files Ensure keeps.
type Files struct {
	CACert     string // give this to clients (RAMPART_CACERT)
	CAKey      string
	ServerCert string
	ServerKey  string
}

// FilesIn returns the file names under dir.
func FilesIn(dir string) Files {
	return Files{
		CACert:     filepath.Join(dir, "dev-ca.pem"),
		CAKey:      filepath.Join(dir, "dev-ca-key.pem"),
		ServerCert: filepath.Join(dir, "server.pem"),
		ServerKey:  filepath.Join(dir, "server-key.pem"),
	}
}

// Ensure makes sure dir holds a development CA and a server certificate for hosts (names and
// IP addresses) that stay valid for at least RenewBefore, creating or replacing what is missing,
// expiring, or does not cover hosts.
func Ensure(dir string, hosts []string, now time.Time, rnd io.Reader) (Files, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Files{}, fmt.Errorf("development TLS: %w", err)
	}
	f := FilesIn(dir)
	ca, caKey, err := loadPair(f.CACert, f.CAKey)
	if err != nil || now.Add(RenewBefore).After(ca.NotAfter) || !ca.IsCA {
		if ca, caKey, err = newCA(now, rnd); err != nil {
			return Files{}, err
		}
		if err := writePair(f.CACert, f.CAKey, ca, caKey); err != nil {
			return Files{}, err
		}
	}
	srv, _, err := loadPair(f.ServerCert, f.ServerKey)
	if err == nil && srv.CheckSignatureFrom(ca) == nil && !now.Add(RenewBefore).After(srv.NotAfter) && covers(srv, hosts) {
		return f, nil
	}
	srv, srvKey, err := newServer(ca, caKey, hosts, now, rnd)
	if err != nil {
		return Files{}, err
	}
	return f, writePair(f.ServerCert, f.ServerKey, srv, srvKey)
}

func covers(c *x509.Certificate, hosts []string) bool {
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			if !slices.ContainsFunc(c.IPAddresses, ip.Equal) {
				return false
			}
		} else if !slices.Contains(c.DNSNames, h) {
			return false
		}
	}
	return true
}

func serial(rnd io.Reader) (*big.Int, error) {
	return rand.Int(rnd, new(big.Int).Lsh(big.NewInt(1), 127))
}

func newCA(now time.Time, rnd io.Reader) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rnd)
	if err != nil {
		return nil, nil, fmt.Errorf("development CA key: %w", err)
	}
	sn, err := serial(rnd)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: "Rampart development CA (not for production)", Organization: []string{"Rampart dev mode"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(CALifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rnd, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("development CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

func newServer(ca *x509.Certificate, caKey *ecdsa.PrivateKey, hosts []string, now time.Time, rnd io.Reader) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rnd)
	if err != nil {
		return nil, nil, fmt.Errorf("development server key: %w", err)
	}
	sn, err := serial(rnd)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: "Rampart development server (not for production)"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(ServerLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rnd, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("development server certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

func writePair(certPath, keyPath string, cert *x509.Certificate, key *ecdsa.PrivateKey) error {
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return err
	}
	return atomicfile.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o644)
}

func loadPair(certPath, keyPath string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	pair, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return nil, nil, err
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, nil, errors.New("not an ECDSA key")
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	return cert, key, err
}
