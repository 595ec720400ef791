package examples_test

import (
	"context"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// reading is what the telemetry app publishes (examples/telemetry's Reading).
type reading struct {
	Seq             int       `json:"seq"`
	Time            time.Time `json:"time"`
	DeviceID        string    `json:"deviceId"`
	ComponentID     string    `json:"componentId"`
	TemperatureC    *float64  `json:"temperatureC"`
	LightMillivolts *float64  `json:"lightMillivolts"`
	LightRaw        *uint32   `json:"lightRaw"`
	Errors          []string  `json:"errors"`
}

// TestTelemetry: the telemetry app, packed with its committed manifest (the tenant's ID in
// DeviceAuthentication, a 200 ms interval) and the broker's CA as /etc/broker-ca.pem, runs in
// its sandbox behind the agent's network policy and publishes its sensor readings over MQTT v5
// to a real Mosquitto that requires a client certificate from the tenant's trust bundle. A
// subscriber with the device's own certificate receives them with plausible values. A client
// certificate from another CA is refused by the broker. When the broker restarts, the app
// connects again and publishes on.
func TestTelemetry(t *testing.T) {
	needRoot(t)
	mosquittoPath(t)
	cid := componentID(t, "telemetry")
	tn := newTenant(t, cid)
	w := newWorld(t, map[string]netip.Addr{"broker.example.com": serverIP})
	brokerCA := newCA(t, "Example broker CA")
	certPEM, keyPEM, _ := brokerCA.issue(t, "broker.example.com", true, []string{"broker.example.com"})
	// Mosquitto (OpenSSL) anchors only on self-signed roots, so its cafile is the whole trust
	// bundle, service root included (docs/EXAMPLES.md says what that means).
	b := startBroker(t, w, tn.bundle, certPEM, keyPEM)
	topic := "rampart/devices/" + tn.dev.ID + "/telemetry"
	ctx := t.Context()

	readings := make(chan reading, 64)
	subscribe := func() {
		t.Helper()
		sub, err := b.mqttConnect(ctx, tn.agentCertificate(t), poolOf(brokerCA.cert), func(p *paho.Publish) {
			var r reading
			if p.Topic != topic || json.Unmarshal(p.Payload, &r) != nil {
				t.Errorf("unexpected message on %s: %q", p.Topic, p.Payload)
				return
			}
			select {
			case readings <- r:
			default:
			}
		})
		if err != nil {
			t.Fatalf("the subscriber, with the device's certificate: %v\nbroker:\n%s", err, b.out)
		}
		if _, err := sub.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: topic, QoS: 1}}}); err != nil {
			t.Fatalf("subscribing to %s: %v", topic, err)
		}
		t.Cleanup(func() { _ = sub.Disconnect(&paho.Disconnect{}) })
	}
	subscribe()

	args := []string{"-broker", "broker.example.com:8883", "-ca", "/etc/broker-ca.pem", "-interval", "200ms"}
	pkg := packageDir(t, "telemetry", tn.srv.TenantID, args, map[string][]byte{"etc/broker-ca.pem": brokerCA.pem})
	d := newDevice(t, tn.certs(), w.policy, pack(t, pkg))

	next := func() reading {
		t.Helper()
		select {
		case r := <-readings:
			return r
		case <-time.After(60 * time.Second): // bounds a hang only
			t.Fatalf("no reading on %s; the app's log:\n%s\nbroker:\n%s", topic, d.sup.Log(cid), b.out)
			return reading{}
		}
	}
	plausible := func(r reading) {
		t.Helper()
		if r.DeviceID != tn.dev.ID || r.ComponentID != cid || len(r.Errors) > 0 || r.Time.IsZero() {
			t.Fatalf("reading %+v: want device %s, component %s, no errors", r, tn.dev.ID, cid)
		}
		if r.TemperatureC == nil || *r.TemperatureC < 20 || *r.TemperatureC > 25 {
			t.Fatalf("reading %+v: the emulated sensor reads 20 to 25 °C", r)
		}
		if r.LightMillivolts == nil || r.LightRaw == nil || *r.LightMillivolts < 0 || *r.LightMillivolts > 2500 || *r.LightRaw > 4095 {
			t.Fatalf("reading %+v: the light sensor is 12 bits of 2500 mV", r)
		}
	}
	first := next()
	plausible(first)
	second := next()
	plausible(second)
	if second.Seq <= first.Seq {
		t.Errorf("sequence numbers %d then %d", first.Seq, second.Seq)
	}
	if !d.logHas(cid, "telemetry: connected to broker.example.com:8883 as device "+tn.dev.ID+"; publishing to "+topic) {
		t.Errorf("the app's log:\n%s", d.sup.Log(cid))
	}

	// The broker is not open: a certificate from a CA the tenant bundle does not hold, even
	// naming this device, is refused.
	if strings.Contains(b.out.String(), "certificate verify failed") {
		t.Fatalf("the broker refused a certificate already:\n%s", b.out)
	}
	other := newCA(t, "Not the tenant CA")
	_, _, foreign := other.issue(t, tn.dev.ID, false, nil)
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	c, err := b.mqttConnect(cctx, foreign, poolOf(brokerCA.cert), func(*paho.Publish) {})
	if err == nil {
		_ = c.Disconnect(&paho.Disconnect{})
		t.Fatal("the broker accepted a client certificate from another CA")
	}
	// Why: the broker's own log says its certificate check failed (the client sees an alert or
	// a reset, whichever wins the race).
	d.waitFor(t, cid, "the broker logs the failed certificate check", func() bool {
		return strings.Contains(b.out.String(), "certificate verify failed")
	})

	// The broker goes away and comes back: the app connects again (with backoff) and
	// publishes on.
	b.stop()
	b.start(t)
	subscribe()
	d.waitFor(t, cid, "the app reconnects", func() bool {
		return strings.Count(string(d.sup.Log(cid)), "telemetry: connected to") >= 2
	})
	if !d.logHas(cid, "connecting again in") {
		t.Errorf("the app's log shows no backoff:\n%s", d.sup.Log(cid))
	}
	after := next()
	for after.Seq <= second.Seq { // drain what was queued before the restart
		after = next()
	}
	plausible(after)
}
