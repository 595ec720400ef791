// Command floor is the least a two-process Go device agent can be, measured beside
// rampart-agent's idle memory: the first process re-executes itself as the second and serves
// HTTP on a Unix socket; the second makes one mutual-TLS HTTPS request to the service (with a
// device's certificate) and idles with its connection kept alive. Built as the device agent
// is (CGO_ENABLED=0, -trimpath, -ldflags='-s -w', the same Go), its idle proportional set
// size is what any agent of this shape costs before it does anything of its own.
//
// Usage: floor SOCKET SERVER_URL CA_FILE CERT_FILE KEY_FILE CHAIN_FILE
//
// It prints "ready PID" (the second process's) once the request has been answered 200 OK.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"
)

const childArg0 = "floor-child"

func main() {
	if len(os.Args) != 7 {
		fmt.Fprintln(os.Stderr, "usage: floor SOCKET SERVER_URL CA_FILE CERT_FILE KEY_FILE CHAIN_FILE")
		os.Exit(2)
	}
	var err error
	if os.Args[0] == childArg0 {
		err = child(os.Args[2], os.Args[3], os.Args[4], os.Args[5], os.Args[6])
	} else {
		err = parent(os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
}

// parent serves the socket, starts the child and waits for SIGTERM.
func parent(sock string) error {
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return err
	}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, "{}\n")
	})}
	go func() { _ = srv.Serve(ln) }()
	cmd := &exec.Cmd{Path: "/proc/self/exe", Args: append([]string{childArg0}, os.Args[1:]...), Stdout: os.Stdout, Stderr: os.Stderr,
		SysProcAttr: &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}}
	if err := cmd.Start(); err != nil {
		return err
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, os.Interrupt)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case <-term:
		_ = cmd.Process.Kill()
		<-exited
		return nil
	case err := <-exited:
		return fmt.Errorf("the child exited: %v", err)
	}
}

// child makes one mutual-TLS request, reports, and idles.
func child(server, caFile, certFile, keyFile, chainFile string) error {
	ca, err := os.ReadFile(caFile)
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(ca) {
		return fmt.Errorf("%s holds no certificate", caFile)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return err
	}
	chain, err := os.ReadFile(chainFile)
	if err != nil {
		return err
	}
	for rest := chain; ; {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			break
		}
		cert.Certificate = append(cert.Certificate, blk.Bytes)
	}
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		IdleConnTimeout: 90 * time.Second,
	}}
	resp, err := hc.Get(server + "/v1/device/self")
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /v1/device/self: %s", resp.Status)
	}
	fmt.Printf("ready %d\n", os.Getpid())
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, os.Interrupt)
	<-term
	return nil
}
