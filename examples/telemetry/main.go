// Command telemetry is Rampart's example of a connected application: it reads the temperature
// sensor on $TEMP_SENSOR_I2C and the light sensor on $ADC_CONTROLLER through the applibs API and
// publishes each reading as JSON over MQTT v5 to rampart/devices/DEVICE/telemetry, at an
// interval. It authenticates to the broker with TLS client authentication, using its own
// per-app device certificate (DeviceAuthentication), which the agent obtains at attestation
// and which the tenant CA issued; the broker trusts the tenant's CA bundle. It verifies the
// broker against the CA file named by -ca (shipped in the image package). When the connection
// fails or drops, it connects again with exponential backoff, reading its certificate again
// each time (certificates are renewed daily).
//
// CmdArgs:
//
//	-broker HOST:PORT     the MQTT broker (default broker.example.com:8883; the manifest's
//	                      AllowedConnections must name HOST)
//	-ca FILE              PEM CA that verifies the broker (default /etc/broker-ca.pem)
//	-interval DURATION    between readings (default 10s)
//	-topic-prefix PREFIX  topics are PREFIX/DEVICE/telemetry (default rampart/devices)
//	-backoff-max DURATION the longest wait between connection attempts (default 1m)
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	"github.com/rampart-iot/rampart/applibs"
)

// tempSensorAddress is TEMP_SENSOR_ADDRESS of the emulated board's hardware definition: the
// 7-bit I2C address of its TMP102-like sensor.
const tempSensorAddress = 0x48

// lightChannel is ADC_LIGHT_SENSOR_CHANNEL.
const lightChannel = 0

// maxCAFile bounds the CA file read.
const maxCAFile = 64 << 10

type config struct {
	broker, caFile, prefix string
	interval, backoffMax   time.Duration
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "telemetry:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	var cfg config
	fs := flag.NewFlagSet("telemetry", flag.ContinueOnError)
	fs.StringVar(&cfg.broker, "broker", "broker.example.com:8883", "the MQTT broker, HOST:PORT")
	fs.StringVar(&cfg.caFile, "ca", "/etc/broker-ca.pem", "PEM CA certificates that verify the broker")
	fs.DurationVar(&cfg.interval, "interval", 10*time.Second, "time between readings")
	fs.StringVar(&cfg.prefix, "topic-prefix", "rampart/devices", "topics are PREFIX/DEVICE/telemetry")
	fs.DurationVar(&cfg.backoffMax, "backoff-max", time.Minute, "the longest wait between connection attempts")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if _, _, err := net.SplitHostPort(cfg.broker); err != nil {
		return fmt.Errorf("-broker %q: %w", cfg.broker, err)
	}
	if cfg.interval < 10*time.Millisecond || cfg.backoffMax < time.Second {
		return fmt.Errorf("-interval %s, -backoff-max %s: want at least 10ms and 1s", cfg.interval, cfg.backoffMax)
	}
	if cfg.prefix == "" || strings.ContainsAny(cfg.prefix, "#+") {
		return fmt.Errorf("-topic-prefix %q: want a topic without wildcards", cfg.prefix)
	}
	roots, err := loadCA(cfg.caFile)
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
	seq := 0 // numbers the readings across connections
	for {
		started := time.Now()
		err := session(ctx, c, cfg, roots, &seq)
		if ctx.Err() != nil {
			say(c, "telemetry: stopping")
			return nil
		}
		if time.Since(started) > 2*cfg.backoffMax {
			backoff = time.Second // it ran well for a while: start again from the shortest wait
		}
		wait := backoff/2 + rand.N(backoff/2+1) // jitter: apps of a fleet do not reconnect in lockstep
		say(c, fmt.Sprintf("telemetry: %v; connecting again in %s", err, wait.Round(time.Millisecond)))
		select {
		case <-ctx.Done():
			say(c, "telemetry: stopping")
			return nil
		case <-time.After(wait):
		}
		backoff = min(2*backoff, cfg.backoffMax)
	}
}

// session connects to the broker and publishes a reading every interval until the connection
// fails or ctx ends.
func session(ctx context.Context, c *applibs.Client, cfg config, roots *x509.CertPool, seq *int) error {
	cert, id, err := deviceCertificate(c)
	if err != nil {
		return err
	}
	host, _, _ := net.SplitHostPort(cfg.broker)
	d := tls.Dialer{
		NetDialer: &net.Dialer{Timeout: 10 * time.Second},
		Config:    &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: roots, ServerName: host, MinVersion: tls.VersionTLS12},
	}
	dialCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	conn, err := d.DialContext(dialCtx, "tcp", cfg.broker)
	cancel()
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", cfg.broker, err)
	}
	lost := make(chan error, 2)
	mc := paho.NewClient(paho.ClientConfig{
		Conn:          packets.NewThreadSafeConn(conn),
		OnClientError: func(err error) { report(lost, err) },
		OnServerDisconnect: func(d *paho.Disconnect) {
			report(lost, fmt.Errorf("the broker disconnected (reason %d)", d.ReasonCode))
		},
	})
	ca, err := mc.Connect(ctx, &paho.Connect{ClientID: "telemetry-" + id.device, KeepAlive: 30, CleanStart: true})
	if err != nil {
		conn.Close()
		if ca != nil {
			return fmt.Errorf("MQTT connect to %s: reason %d: %w", cfg.broker, ca.ReasonCode, err)
		}
		return fmt.Errorf("MQTT connect to %s: %w", cfg.broker, err)
	}
	defer func() {
		_ = mc.Disconnect(&paho.Disconnect{ReasonCode: 0})
		select {
		case <-mc.Done():
		case <-time.After(5 * time.Second):
		}
		conn.Close()
	}()
	topic := cfg.prefix + "/" + id.device + "/telemetry"
	say(c, fmt.Sprintf("telemetry: connected to %s as device %s; publishing to %s every %s", cfg.broker, id.device, topic, cfg.interval))

	tick := time.NewTicker(cfg.interval)
	defer tick.Stop()
	for {
		*seq++
		payload, err := json.Marshal(read(c, id, *seq))
		if err != nil {
			return err
		}
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err = mc.Publish(pctx, &paho.Publish{Topic: topic, QoS: 1, Payload: payload,
			Properties: &paho.PublishProperties{ContentType: "application/json"}})
		cancel()
		if err != nil {
			return fmt.Errorf("publishing: %w", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-lost:
			return fmt.Errorf("connection lost: %w", err)
		case <-tick.C:
		}
	}
}

// report passes the first errors on without blocking the MQTT client's goroutines.
func report(lost chan<- error, err error) {
	select {
	case lost <- err:
	default:
	}
}

// Reading is one message.
type Reading struct {
	Seq          int       `json:"seq"`
	Time         time.Time `json:"time"`
	DeviceID     string    `json:"deviceId"`
	ComponentID  string    `json:"componentId"`
	TemperatureC *float64  `json:"temperatureC,omitempty"`
	// Light is the light sensor's voltage in millivolts (LightRaw the sample).
	LightMillivolts *float64 `json:"lightMillivolts,omitempty"`
	LightRaw        *uint32  `json:"lightRaw,omitempty"`
	// Errors names the sensors that could not be read this time.
	Errors []string `json:"errors,omitempty"`
}

func read(c *applibs.Client, id identity, seq int) Reading {
	r := Reading{Seq: seq, Time: time.Now().UTC().Truncate(time.Millisecond), DeviceID: id.device, ComponentID: id.component}
	// TMP102: register 0 holds the temperature, 12 bits left-aligned, 1/16 degree per bit.
	if b, err := c.I2C("$TEMP_SENSOR_I2C").WriteThenRead(tempSensorAddress, []byte{0}, 2); err != nil {
		r.Errors = append(r.Errors, "temperature: "+err.Error())
	} else if len(b) == 2 {
		t := float64(int16(uint16(b[0])<<8|uint16(b[1]))>>4) / 16
		r.TemperatureC = &t
	}
	if s, err := c.ADC("$ADC_CONTROLLER").Poll(lightChannel); err != nil {
		r.Errors = append(r.Errors, "light: "+err.Error())
	} else if s.Bits > 0 && s.Bits < 32 {
		mv := float64(s.Value) * float64(s.ReferenceMillivolts) / float64(uint32(1)<<s.Bits-1)
		r.LightMillivolts, r.LightRaw = &mv, &s.Value
	}
	return r
}

// identity is who the app's certificate names.
type identity struct{ tenant, device, component string }

// deviceCertificate gets the app's certificate and key from the agent (DeviceAuthentication)
// and reads the identity in its SPIFFE URI: spiffe://TENANT/device/DEVICE/app/COMPONENT.
func deviceCertificate(c *applibs.Client) (tls.Certificate, identity, error) {
	pemCert, err := c.DeviceAuth()
	if err != nil {
		return tls.Certificate{}, identity{}, fmt.Errorf("the app's certificate: %w", err)
	}
	// The leaf, then the tenant CA and root, so that the broker can build the chain.
	cert, err := tls.X509KeyPair([]byte(pemCert.Certificate+"\n"+pemCert.Chain), []byte(pemCert.PrivateKey))
	if err != nil {
		return tls.Certificate{}, identity{}, fmt.Errorf("the app's certificate: %w", err)
	}
	if len(cert.Leaf.URIs) != 1 {
		return tls.Certificate{}, identity{}, errors.New("the app's certificate does not name one SPIFFE URI")
	}
	id, err := parseIdentity(cert.Leaf.URIs[0])
	if err != nil {
		return tls.Certificate{}, identity{}, fmt.Errorf("the app's certificate: %w", err)
	}
	return cert, id, nil
}

// parseIdentity reads spiffe://TENANT/device/DEVICE/app/COMPONENT. The device ID goes into a
// topic, so it must be a plain name: no topic separators or wildcards.
func parseIdentity(u *url.URL) (identity, error) {
	parts := strings.Split(strings.TrimPrefix(u.EscapedPath(), "/"), "/")
	if u.Scheme != "spiffe" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" ||
		len(parts) != 4 || parts[0] != "device" || parts[2] != "app" || !plain(parts[1]) || !plain(parts[3]) {
		return identity{}, fmt.Errorf("%s does not name an app of a device (spiffe://TENANT/device/DEVICE/app/COMPONENT)", u.Redacted())
	}
	return identity{tenant: u.Host, device: parts[1], component: parts[3]}, nil
}

// plain reports whether s is 1 to 128 letters, digits and '-'.
func plain(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
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
