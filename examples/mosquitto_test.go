package examples_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
)

// brokerPort is the MQTT over TLS port; the broker listens on serverIP in "inet".
const brokerPort = 8883

// broker is a real Mosquitto, run by the test in "inet", with one TLS listener that requires
// a client certificate verified by the tenant's trust bundle and takes the certificate's CN
// (the device ID) as the user name; its ACL lets a device use only rampart/devices/ITS-ID/#.
type broker struct {
	conf string
	addr string
	w    *world
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan error
}

// mosquittoPath finds the broker; .ci/run installs it.
func mosquittoPath(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/mosquitto"); err == nil {
		return "/usr/sbin/mosquitto"
	}
	t.Fatal("mosquitto is not installed (apt-get install mosquitto; .ci/run installs it): the telemetry example is tested against a real broker")
	return ""
}

// startBroker writes the broker's configuration and starts it.
func startBroker(t *testing.T, w *world, trustBundle, certPEM, keyPEM []byte) *broker {
	t.Helper()
	dir := t.TempDir()
	acl := writeFile(t, dir, "acl", []byte("pattern readwrite rampart/devices/%u/#\n"))
	conf := fmt.Sprintf(`# The telemetry example's broker (examples/mosquitto_test.go).
per_listener_settings false
persistence false
user root
log_dest stdout
log_type all
listener %d %s
protocol mqtt
cafile %s
certfile %s
keyfile %s
tls_version tlsv1.2
require_certificate true
use_identity_as_username true
allow_anonymous false
acl_file %s
`, brokerPort, serverIP, writeFile(t, dir, "tenant-bundle.pem", trustBundle), writeFile(t, dir, "server.crt", certPEM),
		writeFile(t, dir, "server.key", keyPEM), acl)
	b := &broker{conf: writeFile(t, dir, "mosquitto.conf", []byte(conf)), w: w,
		addr: netip.AddrPortFrom(serverIP, brokerPort).String()}
	b.start(t)
	t.Cleanup(b.stop)
	return b
}

// start runs mosquitto in "inet" and waits until it accepts connections.
func (b *broker) start(t *testing.T) {
	t.Helper()
	b.out = &syncBuffer{}
	b.cmd = exec.Command(mosquittoPath(t), "-c", b.conf)
	b.cmd.Stdout, b.cmd.Stderr = b.out, b.out
	must(t, b.w.inInet(b.cmd.Start)) // the child is made on a thread in "inet"
	b.done = make(chan error, 1)
	go func() { b.done <- b.cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		c, err := b.w.dialInet(ctx, b.addr)
		cancel()
		if err == nil {
			c.Close()
			return
		}
		select {
		case err := <-b.done:
			t.Fatalf("mosquitto exited: %v\n%s", err, b.out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("mosquitto does not accept connections: %v\n%s", err, b.out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop ends mosquitto, if it runs.
func (b *broker) stop() {
	if b.cmd == nil {
		return
	}
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.done:
	case <-time.After(10 * time.Second):
		_ = b.cmd.Process.Kill()
		<-b.done
	}
	b.cmd = nil
}

// mqttConnect connects to the broker from "inet" over TLS with cert (verifying the broker
// with roots) and returns a connected MQTT v5 client whose received messages go to onMessage.
func (b *broker) mqttConnect(ctx context.Context, cert tls.Certificate, roots *x509.CertPool, onMessage func(*paho.Publish)) (*paho.Client, error) {
	raw, err := b.w.dialInet(ctx, b.addr)
	if err != nil {
		return nil, err
	}
	conn := tls.Client(raw, &tls.Config{RootCAs: roots, ServerName: "broker.example.com",
		// Send the certificate whatever CAs the broker names (Go would otherwise send none).
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }})
	if err := conn.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("TLS: %w", err)
	}
	c := paho.NewClient(paho.ClientConfig{
		Conn: packets.NewThreadSafeConn(conn),
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(p paho.PublishReceived) (bool, error) {
			onMessage(p.Packet)
			return true, nil
		}},
	})
	ca, err := c.Connect(ctx, &paho.Connect{ClientID: "", KeepAlive: 30, CleanStart: true})
	if err != nil {
		conn.Close()
		if ca != nil {
			return nil, fmt.Errorf("MQTT connect: reason %d: %w", ca.ReasonCode, err)
		}
		return nil, fmt.Errorf("MQTT connect: %w", err)
	}
	return c, nil
}

// syncBuffer is a strings.Builder safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
