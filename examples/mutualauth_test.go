package examples_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestMutualAuth: the mutual-auth app, packed with its committed manifest and the server's CA
// as /etc/server-ca.pem, runs in its sandbox behind the agent's network policy and GETs
// https://api.example.com/hello from an HTTPS server that requires a client certificate from
// the tenant's trust bundle. The server sees the app's identity (the SPIFFE URI naming the
// device and the app's component), and the app logs the verified server's answer. A client
// certificate from another CA is refused by the same server.
func TestMutualAuth(t *testing.T) {
	needRoot(t)
	cid := componentID(t, "mutual-auth")
	tn := newTenant(t, cid)
	w := newWorld(t, map[string]netip.Addr{"api.example.com": serverIP})
	serverCA := newCA(t, "Example server CA")
	_, _, serverPair := serverCA.issue(t, "api.example.com", true, []string{"api.example.com"})

	var mu sync.Mutex
	var seen []string // the URI SANs of verified clients
	var ln net.Listener
	must(t, w.inInet(func() (err error) {
		ln, err = net.Listen("tcp4", netip.AddrPortFrom(serverIP, 443).String())
		return err
	}))
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.PeerCertificates[0].URIs) != 1 {
			http.Error(rw, "no verified client certificate naming one URI", http.StatusForbidden)
			return
		}
		id := r.TLS.PeerCertificates[0].URIs[0].String()
		mu.Lock()
		seen = append(seen, id)
		mu.Unlock()
		fmt.Fprintf(rw, "hello %s\n", id)
	}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{serverPair}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: poolOf(tn.tenantCAs(t)...)}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake below
	srv.StartTLS()
	t.Cleanup(srv.Close)

	pkg := packageDir(t, "mutual-auth", tn.srv.TenantID, nil, map[string][]byte{"etc/server-ca.pem": serverCA.pem})
	d := newDevice(t, tn.certs(), w.policy, pack(t, pkg))
	want := "spiffe://" + tn.srv.TenantID + "/device/" + tn.dev.ID + "/app/" + cid
	d.waitFor(t, cid, "the server has seen the app", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen) > 0
	})
	mu.Lock()
	if seen[0] != want {
		t.Errorf("the server saw %s; want the app's identity %s", seen[0], want)
	}
	mu.Unlock()
	answer := fmt.Sprintf("mutual-auth: GET https://api.example.com/hello: server api.example.com (verified) answered 200 OK: %q", "hello "+want)
	d.waitFor(t, cid, "the app logs the server's answer", func() bool { return d.logHas(cid, answer) })

	// The control: the server is not open. A certificate from a CA the tenant bundle does not
	// hold, naming the same identity, is refused.
	other := newCA(t, "Not the tenant CA")
	_, _, foreign := other.issue(t, tn.dev.ID, false, nil)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) { return w.dialInet(ctx, addr) },
		TLSClientConfig: &tls.Config{RootCAs: poolOf(serverCA.cert), ServerName: "api.example.com",
			// Sent whatever CAs the server asks for (Go would otherwise send none).
			GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &foreign, nil }},
	}}
	resp, err := hc.Get("https://" + netip.AddrPortFrom(serverIP, 443).String() + "/hello")
	if err == nil {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		t.Fatalf("a client certificate from another CA was accepted: %s %s", resp.Status, b)
	}
	if !strings.Contains(err.Error(), "certificate") {
		t.Errorf("refused, but not for its certificate: %v", err)
	}
}
