package devpki

import (
	"crypto/x509"
	"os"
	"testing"
	"time"
)

func verify(t *testing.T, f Files, host string, at time.Time) error {
	t.Helper()
	caPEM, err := os.ReadFile(f.CACert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	srv, _, err := loadPair(f.ServerCert, f.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	_, err = srv.Verify(x509.VerifyOptions{Roots: pool, DNSName: host, CurrentTime: at})
	return err
}

func TestEnsureMakesVerifiableCertsAndReusesThem(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	f, err := Ensure(dir, []string{"localhost", "127.0.0.1", "::1"}, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"localhost", "127.0.0.1", "::1"} {
		if err := verify(t, f, h, now); err != nil {
			t.Errorf("%s: %v", h, err)
		}
	}
	if err := verify(t, f, "example.com", now); err == nil {
		t.Error("certificate verified for a host it was not made for")
	}
	if st, _ := os.Stat(f.ServerKey); st.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v", st.Mode())
	}
	before, _ := os.ReadFile(f.ServerCert)
	if _, err := Ensure(dir, []string{"localhost"}, now.Add(time.Hour), nil); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(f.ServerCert)
	if string(before) != string(after) {
		t.Error("a valid certificate was replaced")
	}
}

func TestEnsureRenewsExpiringAndUncovering(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	f, err := Ensure(dir, []string{"localhost"}, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	ca1, _ := os.ReadFile(f.CACert)
	srv1, _ := os.ReadFile(f.ServerCert)

	// A new host: new server certificate, same CA.
	if _, err := Ensure(dir, []string{"localhost", "10.0.0.7"}, now, nil); err != nil {
		t.Fatal(err)
	}
	ca2, _ := os.ReadFile(f.CACert)
	srv2, _ := os.ReadFile(f.ServerCert)
	if string(ca1) != string(ca2) || string(srv1) == string(srv2) {
		t.Fatal("expected a new server certificate under the same CA")
	}
	if err := verify(t, f, "10.0.0.7", now); err != nil {
		t.Fatal(err)
	}

	// Near the server certificate's expiry: renewed.
	later := now.Add(ServerLifetime - time.Hour)
	if _, err := Ensure(dir, []string{"localhost"}, later, nil); err != nil {
		t.Fatal(err)
	}
	if err := verify(t, f, "localhost", later.Add(2*time.Hour)); err != nil {
		t.Fatalf("renewed certificate does not verify: %v", err)
	}

	// A corrupt key: both regenerated.
	if err := os.WriteFile(f.CAKey, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Ensure(dir, []string{"localhost"}, now, nil); err != nil {
		t.Fatal(err)
	}
	if err := verify(t, f, "localhost", now); err != nil {
		t.Fatal(err)
	}
}
