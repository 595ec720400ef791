package webhook_test

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/internal/store"
	"github.com/rampart-iot/rampart/internal/store/storetest"
	"github.com/rampart-iot/rampart/internal/webhook"
)

// rawServer is a TCP listener on loopback that reads a request's head and answers with the
// given bytes as they are, so a test can send what no well-behaved HTTP server would (with
// atOnce, without reading anything first: the client may be waiting for a TLS answer). It
// counts the connections it accepted.
func rawServer(t *testing.T, answer string, atOnce bool) (addr string, conns *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	conns = new(atomic.Int32)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				r := bufio.NewReader(c)
				for !atOnce {
					line, err := r.ReadString('\n')
					if err != nil || line == "\r\n" {
						break
					}
				}
				_, _ = c.Write([]byte(answer))
			}()
		}
	}()
	return ln.Addr().String(), conns
}

// attempt sends one delivery to url with the worker's own client (real dials) and returns it
// as recorded.
func attempt(t *testing.T, url string, cfg webhook.Config) store.WebhookDelivery {
	t.Helper()
	clk := newClock()
	s := storetest.OpenSQLite(t)
	h, o := setup(t, s, url, clk)
	enqueue(t, s, o, clk, 1)
	cfg.Store, cfg.Now, cfg.Rand, cfg.Timeout = s, clk.Now, zeros{}, 5*time.Second
	w, err := webhook.NewWorker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := w.RunOnce(t.Context()); n != 1 || err != nil {
		t.Fatalf("RunOnce: %d, %v", n, err)
	}
	return deliveries(t, s, h)[0]
}

// TestLastErrorKeepsNoResponse: whatever a receiver answers, a failed attempt's last_error is
// only the status with its standard text or the class of the failure; nothing the receiver
// sent (body, reason phrase, a malformed answer, a non-TLS answer to TLS) is kept.
func TestLastErrorKeepsNoResponse(t *testing.T) {
	const leak = "INTERNAL-SECRET-42"
	statusAddr, _ := rawServer(t, "HTTP/1.1 500 "+leak+"\r\nContent-Length: 18\r\nConnection: close\r\n\r\n"+leak, false)
	garbageAddr, _ := rawServer(t, leak+" not http\r\n\r\n", false)
	plainAddr, _ := rawServer(t, "HTTP/1.0 400 "+leak+"\r\n\r\n"+leak, true)
	untrusted := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, leak, http.StatusTeapot)
	}))
	t.Cleanup(untrusted.Close)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()

	loopback := webhook.Config{AllowLoopbackHTTP: true}
	for _, c := range []struct {
		name, url string
		status    int
		want      string
	}{
		{"status with a body and a reason phrase", "http://" + statusAddr + "/", 500, "HTTP 500 Internal Server Error"},
		{"not HTTP", "http://" + garbageAddr + "/", 0, "request failed (no valid HTTP answer)"},
		{"plain HTTP to https", "https://" + plainAddr + "/", 0, "TLS: the receiver does not speak TLS"},
		{"untrusted certificate", untrusted.URL + "/", 0, "TLS: certificate not trusted"},
		{"nothing listening", "http://" + closedAddr + "/", 0, "connection refused"},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := attempt(t, c.url, loopback)
			if d.State != store.DeliveryPending || d.Attempts != 1 || d.LastStatus != c.status || d.LastError != c.want {
				t.Errorf("delivery: status %d, error %q, state %s; want %d, %q, pending", d.LastStatus, d.LastError, d.State, c.status, c.want)
			}
			if strings.Contains(d.LastError, leak) {
				t.Errorf("last error holds the receiver's answer: %q", d.LastError)
			}
		})
	}
}

// TestDenyPrivateNetworks: with DenyPrivateNetworks the worker's client refuses a receiver on
// loopback at dial time (it never connects); without it, the same receiver is delivered to, as
// self-hosted receivers on private networks need.
func TestDenyPrivateNetworks(t *testing.T) {
	var got atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		got.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)

	d := attempt(t, srv.URL+"/hook", webhook.Config{AllowLoopbackHTTP: true})
	if d.State != store.DeliveryDelivered || got.Load() != 1 {
		t.Fatalf("setting off: %+v, received %d", d, got.Load())
	}

	raw, conns := rawServer(t, "HTTP/1.1 204 No Content\r\n\r\n", false)
	for _, url := range []string{srv.URL + "/hook", "http://" + raw + "/", "http://localhost:" + strings.Split(raw, ":")[1] + "/"} {
		d = attempt(t, url, webhook.Config{AllowLoopbackHTTP: true, DenyPrivateNetworks: true})
		want := "refused: a private or other non-public address (webhooks.deny_private_networks)"
		if d.State != store.DeliveryPending || d.LastError != want {
			t.Errorf("%s with the setting on: state %s, error %q, want pending, %q", url, d.State, d.LastError, want)
		}
	}
	if got.Load() != 1 || conns.Load() != 0 {
		t.Errorf("connections made despite the setting: %d requests, %d raw connections", got.Load()-1, conns.Load())
	}
}

// TestClientRefusesPrivate: with denyPrivate the client refuses every non-public range at dial
// time (before connecting, so unroutable addresses fail at once), link-local and metadata too.
func TestClientRefusesPrivate(t *testing.T) {
	c := webhook.NewClient(2*time.Second, nil, true)
	for _, host := range []string{"127.0.0.1", "127.9.9.9", "[::1]", "10.1.2.3", "172.16.0.1", "172.31.255.254", "192.168.1.1",
		"100.64.0.1", "100.127.255.254", "[fd12:3456::1]", "[fc00::1]", "0.0.0.1", "198.18.0.1", "240.0.0.1",
		"[::ffff:10.0.0.1]", "[64:ff9b::a00:1]", "[2002:a00:1::1]", "[fec0::1]", "169.254.169.254", "[fe80::1]", "[fd00:ec2::254]"} {
		resp, err := c.Post("https://"+host+":9/", "application/json", strings.NewReader("{}"))
		if err == nil {
			resp.Body.Close()
			t.Errorf("%s: connected", host)
			continue
		}
		if !errors.Is(err, webhook.ErrRefusedAddress) {
			t.Errorf("%s: %v, want ErrRefusedAddress", host, err)
		}
	}
}
