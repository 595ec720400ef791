package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func writeCert(t *testing.T, dir, cn string) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{cn}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	cf, kf := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(cf, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kf, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cf, kf
}

func servedCN(t *testing.T, r *certReloader) string {
	t.Helper()
	c, err := r.getCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return leaf.Subject.CommonName
}

func TestTLSCertificateReloads(t *testing.T) {
	dir := t.TempDir()
	cf, kf := writeCert(t, dir, "old.example")
	r, err := newCertReloader(cf, kf)
	if err != nil {
		t.Fatal(err)
	}
	if cn := servedCN(t, r); cn != "old.example" {
		t.Fatalf("serving %q", cn)
	}
	reload := make(chan struct{})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go reloadOnSignal(ctx, reload, r, slog.New(slog.DiscardHandler))

	writeCert(t, dir, "new.example") // a renewed certificate, same files
	reload <- struct{}{}
	deadline := time.Now().Add(10 * time.Second)
	for servedCN(t, r) != "new.example" {
		if time.Now().After(deadline) {
			t.Fatal("the renewed certificate was not served after a reload")
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Broken files: the reload fails and the service keeps its certificate.
	if err := os.WriteFile(cf, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.reload(); err == nil {
		t.Fatal("reloading a broken certificate passed")
	}
	if cn := servedCN(t, r); cn != "new.example" {
		t.Fatalf("after a failed reload serving %q", cn)
	}
	if _, err := newCertReloader(cf, kf); err == nil {
		t.Fatal("starting with a broken certificate passed")
	}
}
