// Command netapp is the application the agent's network end-to-end test runs in its sandbox:
// it tries what its flags name from inside the sandbox's network, then serves the outcomes as
// JSON over HTTP on its server port (declared in its manifest), and answers "undeclared" on a
// second port it also listens on (not declared). It runs until SIGTERM.
//
//	-dial HOST:PORT    a TCP connection; the outcome is the line the server greets with
//	-dns SERVER=NAME   an A query for NAME sent to SERVER (UDP); the outcome is the reply's
//	                   code and addresses
//	-raw               a raw IPv4 socket (SOCK_RAW, ICMP)
//	-serve PORT        where the outcomes are served (GET /)
//	-listen PORT       the second port, not declared
//
// Each flag but -serve and -listen may be given more than once; outcomes are keyed by the
// flag and its value ("dial allowed.test:9000").
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// Outcome is the result of one attempt.
type Outcome struct {
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

const timeout = 3 * time.Second

func main() {
	var dials, queries list
	flag.Var(&dials, "dial", "HOST:PORT to connect to")
	flag.Var(&queries, "dns", "SERVER=NAME to query")
	raw := flag.Bool("raw", false, "try a raw socket")
	serve := flag.Int("serve", 0, "the declared server port")
	listen := flag.Int("listen", 0, "an undeclared port")
	flag.Parse()

	// Listen first, so that the undeclared port is open while the test looks.
	if *listen != 0 {
		l, err := net.Listen("tcp4", fmt.Sprintf(":%d", *listen))
		if err != nil {
			fmt.Println("listen:", err)
			os.Exit(1)
		}
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				fmt.Fprintln(c, "undeclared")
				c.Close()
			}
		}()
	}
	out := map[string]Outcome{}
	for _, d := range dials {
		out["dial "+d] = dial(d)
	}
	for _, q := range queries {
		out["dns "+q] = query(q)
	}
	if *raw {
		out["raw"] = rawSocket()
	}
	for k, v := range out {
		fmt.Printf("%s: %+v\n", k, v)
	}
	body, _ := json.Marshal(out)
	l, err := net.Listen("tcp4", fmt.Sprintf(":%d", *serve))
	if err != nil {
		fmt.Println("serve:", err)
		os.Exit(1)
	}
	go http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}))
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	<-term
}

// dial connects (resolving a name through the sandbox's DNS, which is the agent's answerer)
// and reads the server's greeting.
func dial(hostport string) Outcome {
	c, err := net.DialTimeout("tcp", hostport, timeout)
	if err != nil {
		return Outcome{Detail: err.Error()}
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return Outcome{Detail: "connected, then: " + err.Error()}
	}
	return Outcome{OK: true, Detail: strings.TrimSpace(line)}
}

// query sends one A query to a DNS server of the app's choosing.
func query(spec string) Outcome {
	server, name, _ := strings.Cut(spec, "=")
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 4242, RecursionDesired: true})
	_ = b.StartQuestions()
	n, err := dnsmessage.NewName(name + ".")
	if err != nil {
		return Outcome{Detail: err.Error()}
	}
	_ = b.Question(dnsmessage.Question{Name: n, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
	q, _ := b.Finish()
	c, err := net.Dial("udp4", server)
	if err != nil {
		return Outcome{Detail: err.Error()}
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write(q); err != nil {
		return Outcome{Detail: err.Error()}
	}
	buf := make([]byte, 1500)
	m, err := c.Read(buf)
	if err != nil {
		return Outcome{Detail: err.Error()}
	}
	var msg dnsmessage.Message
	if err := msg.Unpack(buf[:m]); err != nil {
		return Outcome{Detail: err.Error()}
	}
	var addrs []string
	for _, a := range msg.Answers {
		if r, ok := a.Body.(*dnsmessage.AResource); ok {
			addrs = append(addrs, netip.AddrFrom4(r.A).String())
		}
	}
	return Outcome{OK: true, Detail: strings.TrimSpace(msg.RCode.String() + " " + strings.Join(addrs, " "))}
}

// rawSocket opens a raw ICMP socket, which would let the app write any packet it likes.
func rawSocket() Outcome {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, syscall.IPPROTO_ICMP)
	if err != nil {
		return Outcome{Detail: err.Error()}
	}
	syscall.Close(fd)
	return Outcome{OK: true, Detail: "opened"}
}
