// Command app probes the network from inside a sandbox for netpolicy's tests. It prints one
// JSON line of results, then serves TCP on the ports it is given until SIGTERM.
//
// Usage: app ALLOWED_NAME:PORT DENIED_NAME:PORT DENIED_IP:PORT FOREIGN_DNS:53 LISTEN_PORT...
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func dial(addr string) string {
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return "error: " + err.Error()
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if n == 0 {
		return fmt.Sprintf("error: read: %v", err)
	}
	return string(buf[:n-1])
}

func main() {
	a := os.Args[1:]
	res := map[string]string{}
	res["allowedByName"] = dial(a[0])
	res["deniedByName"] = dial(a[1])
	res["deniedByIP"] = dial(a[2])
	// A DNS server of its own choosing.
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "udp", a[3])
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	host, _, _ := net.SplitHostPort(a[1])
	if addrs, err := r.LookupHost(ctx, host); err != nil {
		res["ownDNS"] = "error: " + err.Error()
	} else {
		res["ownDNS"] = fmt.Sprint(addrs)
	}
	cancel()
	// A raw socket, to send anything anywhere.
	if fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, syscall.IPPROTO_UDP); err != nil {
		res["raw"] = "error: " + err.Error()
	} else {
		syscall.Close(fd)
		res["raw"] = "opened"
	}
	for _, p := range a[4:] {
		l, err := net.Listen("tcp", ":"+p)
		if err != nil {
			res["listen"+p] = "error: " + err.Error()
			continue
		}
		res["listen"+p] = "ok"
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				fmt.Fprintf(c, "app:%s\n", p)
				c.Close()
			}
		}()
	}
	b, _ := json.Marshal(res)
	fmt.Printf("%s\n", b)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	<-sig
}
