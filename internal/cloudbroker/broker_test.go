package cloudbroker

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestMain lets this test binary serve as the broker (and, for the confinement test, as a
// broker that probes its confinement instead of serving).
func TestMain(m *testing.M) {
	if len(os.Args) > 0 && os.Args[0] == keyHolderArgv0 {
		runKeyHolder()
	}
	if len(os.Args) > 0 && os.Args[0] == probeArgv0 {
		os.Args[0] = argv0
		initWith(probeBody)
	}
	Init()
	if dir := os.Getenv(monitorEnv); dir != "" {
		os.Exit(runTestMonitor(dir))
	}
	os.Exit(m.Run())
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the broker's privilege drop needs root (setuid to its own uid); run the tests as root")
	}
}

// testPKI is a CA, a server certificate for 127.0.0.1 and a client certificate.
type testPKI struct {
	caPEM  []byte
	pool   *x509.CertPool
	server tls.Certificate
	client func(cn string, notAfter time.Time) tls.Certificate
}

func newPKI(t testing.TB) *testPKI {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	p := &testPKI{caPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	issue := func(tmpl *x509.Certificate) tls.Certificate {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		leaf, _ := x509.ParseCertificate(der)
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k, Leaf: leaf}
	}
	p.server = issue(&x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "service"},
		IPAddresses: ipLoopback(), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	serial := int64(10)
	var mu sync.Mutex
	p.client = func(cn string, notAfter time.Time) tls.Certificate {
		mu.Lock()
		serial++
		s := serial
		mu.Unlock()
		return issue(&x509.Certificate{SerialNumber: big.NewInt(s), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	}
	return p
}

// service is a TLS server that says which client certificate it saw, and streams events.
func newService(t *testing.T, p *testPKI) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cn := "none"
		if len(r.TLS.PeerCertificates) > 0 {
			cn = r.TLS.PeerCertificates[0].Subject.CommonName
		}
		switch r.URL.Path {
		case "/whoami":
			fmt.Fprintf(w, "%s %s %s", cn, r.Method, r.Header.Get("X-Test"))
		case "/tls":
			fmt.Fprintf(w, "%s %s", cn, tls.VersionName(r.TLS.Version))
		case "/events":
			w.Header().Set("Content-Type", "text/event-stream")
			for i := range 3 {
				fmt.Fprintf(w, "data: %d\n\n", i)
				w.(http.Flusher).Flush()
				if i == 0 {
					// The first event must reach the client before the stream ends.
					select {
					case <-r.Context().Done():
						return
					case <-time.After(200 * time.Millisecond):
					}
				}
			}
		default:
			http.NotFound(w, r)
		}
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the probes' bare connections
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{p.server}, ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: p.pool}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

type logBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func get(t *testing.T, rt http.RoundTripper, url string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("X-Test", "passed")
	resp, err := (&http.Client{Transport: rt, Timeout: 20 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestBrokerForwardsWithTheAgentsIdentity(t *testing.T) {
	needRoot(t)
	p := newPKI(t)
	srv := newService(t, p)
	var mu sync.Mutex
	id := p.client("device-1", time.Now().Add(time.Hour))
	logs := &logBuf{}
	b, err := Start(t.Context(), Config{Server: srv.URL, RootPEM: p.caPEM, SocketDir: t.TempDir(),
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
		Identity: func() (tls.Certificate, error) {
			mu.Lock()
			defer mu.Unlock()
			return id, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	if code, body := get(t, b.Transport(), srv.URL+"/whoami"); code != 200 || body != "device-1 GET passed" {
		t.Fatalf("with identity: %d %q", code, body)
	}
	// The handshake's one signature was the monitor's: the broker has no key.
	if got := b.Signatures(); got != (SignStats{Signed: 1}) {
		t.Fatalf("signatures %+v, want the handshake's one", got)
	}
	if code, body := get(t, b.TransportWithoutIdentity(), srv.URL+"/whoami"); code != 200 || body != "none GET passed" {
		t.Fatalf("without identity: %d %q", code, body)
	}
	// A renewed certificate is used once the monitor gives it.
	mu.Lock()
	id = p.client("device-1-renewed", time.Now().Add(time.Hour))
	mu.Unlock()
	if err := b.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, body := get(t, b.Transport(), srv.URL+"/whoami"); body != "device-1-renewed GET passed" {
		t.Fatalf("after refresh: %q", body)
	}
	// Another host is refused: the broker reaches the service only.
	if code, _ := get(t, b.Transport(), "https://example.com/whoami"); code != http.StatusMisdirectedRequest {
		t.Fatalf("another host: HTTP %d, want 421", code)
	}
	// Server-sent events pass one by one.
	req, _ := http.NewRequest("GET", srv.URL+"/events", nil)
	resp, err := (&http.Client{Transport: b.Transport()}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	resp.Body.Close()
	if err != nil || line != "data: 0\n" {
		t.Fatalf("first event: %q %v", line, err)
	}

	// The broker runs as its own uid, and a killed broker comes back with the identity.
	if !strings.Contains(logs.String(), fmt.Sprintf("uid=%d", DefaultUID)) {
		t.Fatalf("the broker did not report its uid %d:\n%s", DefaultUID, logs.String())
	}
	pid := b.PID()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequest("GET", srv.URL+"/whoami", nil)
		resp, err := (&http.Client{Transport: b.Transport(), Timeout: 5 * time.Second}).Do(req)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(body) == "device-1-renewed GET " && b.PID() != pid {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the broker did not come back with the identity: %v\n%s", err, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestBrokerReportsAnUnreachableService(t *testing.T) {
	needRoot(t)
	p := newPKI(t)
	srv := newService(t, p)
	url := srv.URL
	srv.Close()
	b, err := Start(t.Context(), Config{Server: url, RootPEM: p.caPEM, SocketDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	code, body := get(t, b.Transport(), url+"/whoami")
	if code != http.StatusBadGateway || !strings.Contains(body, "could not reach the Rampart service") {
		t.Fatalf("unreachable service: %d %q", code, body)
	}
}

func TestIdentityDocument(t *testing.T) {
	p := newPKI(t)
	a := p.client("a", time.Now().Add(time.Hour))
	doc, err := encodeIdentity(a.Certificate)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(doc, []byte(`"key"`)) {
		t.Fatalf("the document names a key: %s", doc)
	}
	got, err := decodeIdentity(doc)
	if err != nil || got.Leaf.Subject.CommonName != "a" || got.PrivateKey != nil {
		t.Fatalf("round trip: %v", err)
	}
	// A document with a key in it (the old handover) is refused: the key stays in the monitor.
	key, _ := x509.MarshalPKCS8PrivateKey(a.PrivateKey)
	withKey, _ := json.Marshal(map[string]any{"chain": a.Certificate, "key": key})
	for _, d := range [][]byte{withKey, []byte(`{"chain":[],"key":null}`), bytes.Replace(doc, []byte(`{`), []byte(`{"key":"",`), 1)} {
		if _, err := decodeIdentity(d); err == nil || !strings.Contains(err.Error(), "carries a private key") {
			t.Errorf("a document with a key: %v", err)
		}
	}
	// A certificate for a key the monitor's signer does not serve is refused.
	k384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(9), NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k384.PublicKey, k384)
	d384, _ := encodeIdentity([][]byte{der})
	if _, err := decodeIdentity(d384); err == nil || !strings.Contains(err.Error(), "P-256") {
		t.Errorf("a P-384 certificate: %v", err)
	}
	for _, in := range []string{``, `{}`, `{"chain":[]}`, `{"chain":["AA=="]}`, `{"x":1}`, string(doc) + `{}`,
		`{"chain":["AA==","AA==","AA==","AA==","AA==","AA==","AA==","AA==","AA=="]}`} {
		if _, err := decodeIdentity([]byte(in)); err == nil {
			t.Errorf("%q: accepted", in)
		}
	}
	if _, err := encodeIdentity(nil); err == nil {
		t.Error("encoded an empty chain")
	}
}

func FuzzDecodeIdentity(f *testing.F) {
	p := newPKI(f)
	a := p.client("a", time.Now().Add(time.Hour))
	doc, _ := encodeIdentity(a.Certificate)
	f.Add(doc)
	key, _ := x509.MarshalPKCS8PrivateKey(a.PrivateKey)
	withKey, _ := json.Marshal(map[string]any{"chain": a.Certificate, "key": key})
	f.Add(withKey)
	f.Add([]byte(`{"chain":["AA=="],"key":"AA=="}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := decodeIdentity(b)
		if err == nil && (c.Leaf == nil || c.PrivateKey != nil || len(c.Certificate) == 0) {
			t.Fatal("accepted an identity without a leaf, or with a key")
		}
	})
}

func TestUIDFor(t *testing.T) {
	for spec, want := range map[string][2]uint32{"": {DefaultUID, DefaultUID}, "4242": {4242, 4242}, "4242:4343": {4242, 4343}} {
		if spec == "" {
			if _, err := os.Stat("/etc/passwd"); err == nil {
				if data, _ := os.ReadFile("/etc/passwd"); strings.Contains(string(data), DefaultUser+":") {
					continue // the account exists here: its ids win
				}
			}
		}
		u, g, err := UIDFor(spec)
		if err != nil || u != want[0] || g != want[1] {
			t.Errorf("UIDFor(%q) = %d, %d, %v; want %v", spec, u, g, err, want)
		}
	}
	for _, spec := range []string{"0", "0:0", "root", "x:y", "-1"} {
		if _, _, err := UIDFor(spec); err == nil {
			t.Errorf("UIDFor(%q) accepted", spec)
		}
	}
}

func ipLoopback() []net.IP { return []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback} }
