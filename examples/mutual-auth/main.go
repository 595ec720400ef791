// Command mutual-auth is Rampart's example of an HTTPS client that authenticates with its own
// per-app device certificate (DeviceAuthentication, issued by the tenant CA at attestation):
// it GETs the URL named by -url over mutual TLS, verifying the server against the CA file named
// by -ca (shipped in the image package), and logs the verified server's name and its answer.
// It asks again every -interval; a failure is retried with exponential backoff.
//
// CmdArgs:
//
//	-url URL            the HTTPS URL to GET (default https://api.example.com/hello; the
//	                    manifest's AllowedConnections must name its host)
//	-ca FILE            PEM CA that verifies the server (default /etc/server-ca.pem)
//	-interval DURATION  between requests (default 1m)
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/rampart-iot/rampart/applibs"
)

// Bounds.
const (
	maxCAFile = 64 << 10 // the CA file read
	maxAnswer = 64 << 10 // the server's answer read
	maxLogged = 512      // the part of the answer logged
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "mutual-auth:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("mutual-auth", flag.ContinueOnError)
	rawURL := fs.String("url", "https://api.example.com/hello", "the HTTPS URL to GET")
	caFile := fs.String("ca", "/etc/server-ca.pem", "PEM CA certificates that verify the server")
	interval := fs.Duration("interval", time.Minute, "time between requests")
	if err := fs.Parse(args); err != nil {
		return err
	}
	u, err := url.Parse(*rawURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("-url %q: want an https:// URL with a host", *rawURL)
	}
	if *interval < 10*time.Millisecond {
		return fmt.Errorf("-interval %s: want at least 10ms", *interval)
	}
	roots, err := loadCA(*caFile)
	if err != nil {
		return err
	}
	c, err := applibs.Dial()
	if err != nil {
		return err
	}
	// The app is PID 1 of its sandbox: without a handler, SIGTERM would not reach it.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	backoff := time.Second
	for {
		wait := *interval
		if err := request(ctx, c, u.String(), roots); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			wait = backoff/2 + rand.N(backoff/2+1)
			backoff = min(2*backoff, 5*time.Minute)
			say(c, fmt.Sprintf("mutual-auth: %v; trying again in %s", err, wait.Round(time.Millisecond)))
		} else {
			backoff = time.Second
		}
		select {
		case <-ctx.Done():
			say(c, "mutual-auth: stopping")
			return nil
		case <-time.After(wait):
		}
	}
}

// request makes one GET with the app's certificate and logs the answer. The certificate is
// read from the agent each time: it is renewed daily.
func request(ctx context.Context, c *applibs.Client, target string, roots *x509.CertPool) error {
	pemCert, err := c.DeviceAuth()
	if err != nil {
		return fmt.Errorf("the app's certificate: %w", err)
	}
	// The leaf, then the tenant CA and root, so that the server can build the chain.
	cert, err := tls.X509KeyPair([]byte(pemCert.Certificate+"\n"+pemCert.Chain), []byte(pemCert.PrivateKey))
	if err != nil {
		return fmt.Errorf("the app's certificate: %w", err)
	}
	tr := &http.Transport{
		TLSClientConfig:        &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    10 * time.Second,
		ResponseHeaderTimeout:  10 * time.Second,
		MaxResponseHeaderBytes: 16 << 10,
	}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return fmt.Errorf("reading the answer: %w", err)
	}
	server := "?"
	if resp.TLS != nil && len(resp.TLS.PeerCertificates) > 0 {
		leaf := resp.TLS.PeerCertificates[0]
		server = leaf.Subject.CommonName
		if len(leaf.DNSNames) > 0 {
			server = strings.Join(leaf.DNSNames, ",")
		}
	}
	answer := strings.TrimSpace(string(body))
	if len(answer) > maxLogged {
		answer = answer[:maxLogged] + "..."
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("GET %s: server %s (verified) answered %s: %q", target, server, resp.Status, answer)
	}
	say(c, fmt.Sprintf("mutual-auth: GET %s: server %s (verified) answered %s: %q", target, server, resp.Status, answer))
	return nil
}

func loadCA(file string) (*x509.CertPool, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("-ca: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxCAFile+1))
	if err != nil {
		return nil, fmt.Errorf("-ca: %w", err)
	}
	if len(b) > maxCAFile {
		return nil, fmt.Errorf("-ca %s: larger than %d bytes", file, maxCAFile)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("-ca %s: no PEM certificate in it", file)
	}
	return pool, nil
}

// say writes msg to the app's log on the device (Log_Debug), or to stderr, which the agent
// also keeps, if the API fails.
func say(c *applibs.Client, msg string) {
	if err := c.Log(msg); err != nil {
		fmt.Fprintln(os.Stderr, msg)
	}
}
