// Package pgpush carries push events between replicas of the service that share a PostgreSQL
// database, with LISTEN/NOTIFY, so that a deployment created through one replica wakes the
// devices whose push channels another replica holds. A Relay is the manage.Notifier of a
// replica: it delivers each event to its own push.Hub at once and sends it to the others with
// pg_notify on the database; its listener (Run) hands the other replicas' events to its Hub.
//
// Delivery stays what push promises, best effort: manage notifies after the transaction
// committed, so a replica that stops between the commit and the NOTIFY loses the event, and
// the devices catch up at their next check-in. The listener reconnects with backoff when its
// connection drops; as notifications sent while it was away are lost, it then wakes every
// device it holds once (push.Hub.WakeAll), and they check in.
//
// The channel is named after the database schema (current_schema()), so that services in
// different schemas of one database do not hear each other.
//
// Trust: the database and the other replicas are trusted; a notification is still parsed
// strictly and bounded (Decode), as it arrives over the network.
package pgpush

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rampart-iot/rampart/internal/push"
)

// Kinds of message.
const (
	KindDeployment = "deployment" // a group has a new current deployment
	KindMoved      = "moved"      // a device changed group
	KindWake       = "wake"       // a device should check in now
)

// MaxPayload bounds a notification's payload (PostgreSQL's own limit is 8000 bytes).
const MaxPayload = 2048

// Message is one event as it travels between replicas (JSON in the NOTIFY payload).
type Message struct {
	Origin       string `json:"o"` // the sending Relay, so it ignores its own
	Kind         string `json:"k"`
	TenantID     string `json:"t"`
	GroupID      string `json:"g,omitempty"`
	DeploymentID string `json:"d,omitempty"`
	DeviceID     string `json:"v,omitempty"`
}

// Decode parses a payload strictly: at most MaxPayload bytes, one JSON object with only the
// known fields, a known kind and the fields that kind needs.
func Decode(payload string) (Message, error) {
	var m Message
	if len(payload) > MaxPayload {
		return m, fmt.Errorf("push notification of %d bytes; the limit is %d", len(payload), MaxPayload)
	}
	dec := json.NewDecoder(strings.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return Message{}, fmt.Errorf("push notification: %w", err)
	}
	if dec.More() {
		return Message{}, errors.New("push notification: data after the object")
	}
	switch {
	case m.Origin == "" || m.TenantID == "":
		return Message{}, errors.New("push notification: no origin or tenant")
	case m.Kind == KindDeployment && m.GroupID == "":
		return Message{}, errors.New("push notification: a deployment without a group")
	case m.Kind == KindMoved && m.DeviceID == "":
		return Message{}, errors.New("push notification: a move without a device")
	case m.Kind == KindWake && m.DeviceID == "":
		return Message{}, errors.New("push notification: a wake without a device")
	case m.Kind != KindDeployment && m.Kind != KindMoved && m.Kind != KindWake:
		return Message{}, fmt.Errorf("push notification: unknown kind %q", m.Kind)
	}
	return m, nil
}

// Config configures a Relay.
type Config struct {
	// ConnConfig connects to the database (pgx). Run opens one connection for LISTEN, and
	// notifications are sent on another, opened on demand.
	ConnConfig *pgx.ConnConfig
	Hub        *push.Hub
	Logger     *slog.Logger // default discards
	// MinBackoff and MaxBackoff bound the wait before reconnecting (defaults 250 ms and 30 s);
	// the wait doubles after each failed attempt.
	MinBackoff, MaxBackoff time.Duration
	Rand                   io.Reader // names the Relay; default crypto/rand
}

// Relay implements manage.Notifier across replicas. It is safe for concurrent use.
type Relay struct {
	cfg    Config
	origin string
	log    *slog.Logger

	mu      sync.Mutex
	sender  *pgx.Conn // nil until first needed, or after it failed
	channel string    // known once a connection asked the schema
}

// New returns a Relay; call Run to listen.
func New(cfg Config) (*Relay, error) {
	if cfg.ConnConfig == nil || cfg.Hub == nil {
		return nil, errors.New("pgpush: ConnConfig and Hub are required")
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 250 * time.Millisecond
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(30*time.Second, cfg.MinBackoff)
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	var b [12]byte
	if _, err := io.ReadFull(cfg.Rand, b[:]); err != nil {
		return nil, err
	}
	r := &Relay{cfg: cfg, origin: hex.EncodeToString(b[:]), log: cfg.Logger}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	return r, nil
}

// DeploymentCreated wakes the group's devices on this replica and the others.
func (r *Relay) DeploymentCreated(tenantID, groupID, deploymentID string) {
	r.cfg.Hub.DeploymentCreated(tenantID, groupID, deploymentID)
	r.send(Message{Kind: KindDeployment, TenantID: tenantID, GroupID: groupID, DeploymentID: deploymentID})
}

// DeviceMoved ends the device's channel, on whichever replica holds it.
func (r *Relay) DeviceMoved(tenantID, deviceID string) {
	r.cfg.Hub.DeviceMoved(tenantID, deviceID)
	r.send(Message{Kind: KindMoved, TenantID: tenantID, DeviceID: deviceID})
}

// WakeDevice asks the device to check in, on whichever replica holds its channel.
func (r *Relay) WakeDevice(tenantID, deviceID string) {
	r.cfg.Hub.WakeDevice(tenantID, deviceID)
	r.send(Message{Kind: KindWake, TenantID: tenantID, DeviceID: deviceID})
}

// sendTimeout bounds one NOTIFY, which runs in the request that committed the change.
const sendTimeout = 5 * time.Second

// send notifies the other replicas; a failure is logged (the devices catch up by polling).
func (r *Relay) send(m Message) {
	m.Origin = r.origin
	b, err := json.Marshal(m)
	if err == nil && len(b) > MaxPayload {
		err = fmt.Errorf("payload of %d bytes", len(b))
	}
	if err != nil {
		r.log.Error("push notification", "error", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), sendTimeout)
	defer cancel()
	r.mu.Lock()
	defer r.mu.Unlock()
	for attempt := 0; attempt < 2; attempt++ { // a dropped connection is opened again once
		if r.sender == nil {
			c, channel, err := r.connect(ctx)
			if err != nil {
				r.log.Warn("push notification: cannot reach the database; other replicas' devices catch up at their next check-in", "error", err)
				return
			}
			r.sender, r.channel = c, channel
		}
		if _, err = r.sender.Exec(ctx, "SELECT pg_notify($1, $2)", r.channel, string(b)); err == nil {
			return
		}
		_ = r.sender.Close(context.Background())
		r.sender = nil
	}
	r.log.Warn("push notification not sent; other replicas' devices catch up at their next check-in", "error", err)
}

// connect opens a connection and names the schema's channel.
func (r *Relay) connect(ctx context.Context) (*pgx.Conn, string, error) {
	c, err := pgx.ConnectConfig(ctx, r.cfg.ConnConfig)
	if err != nil {
		return nil, "", err
	}
	var schema *string
	if err := c.QueryRow(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
		_ = c.Close(context.Background())
		return nil, "", err
	}
	s := ""
	if schema != nil {
		s = *schema
	}
	return c, Channel(s), nil
}

// Channel is the notification channel of a schema.
func Channel(schema string) string {
	sum := sha256.Sum256([]byte(schema))
	return "rampart_push_" + hex.EncodeToString(sum[:8])
}

// Run listens until ctx ends, reconnecting with backoff; it returns nil when ctx ends.
func (r *Relay) Run(ctx context.Context) error {
	defer func() {
		r.mu.Lock()
		if r.sender != nil {
			_ = r.sender.Close(context.Background())
			r.sender = nil
		}
		r.mu.Unlock()
	}()
	wait := r.cfg.MinBackoff
	listened := false
	for {
		err := r.listen(ctx, func() {
			wait = r.cfg.MinBackoff
			if listened { // events sent while the listener was away are lost: wake everyone
				n := r.cfg.Hub.WakeAll()
				r.log.Info("push listener reconnected; woke every device once", "devices", n)
			}
			listened = true
		})
		if ctx.Err() != nil {
			return nil
		}
		r.log.Warn("push listener lost the database; reconnecting", "error", err, "in", wait)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(wait*2, r.cfg.MaxBackoff)
	}
}

// listen holds one LISTEN connection until it fails or ctx ends; ready is called once it
// listens.
func (r *Relay) listen(ctx context.Context, ready func()) error {
	c, channel, err := r.connect(ctx)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		return err
	}
	ready()
	for {
		n, err := c.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		m, err := Decode(n.Payload)
		if err != nil {
			r.log.Warn("ignoring a push notification", "error", err)
			continue
		}
		if m.Origin == r.origin {
			continue // delivered locally when it was sent
		}
		switch m.Kind {
		case KindDeployment:
			r.cfg.Hub.DeploymentCreated(m.TenantID, m.GroupID, m.DeploymentID)
		case KindMoved:
			r.cfg.Hub.DeviceMoved(m.TenantID, m.DeviceID)
		case KindWake:
			r.cfg.Hub.WakeDevice(m.TenantID, m.DeviceID)
		}
	}
}

// ParseDSN parses the store's PostgreSQL DSN for a Relay, leaving out the store's own
// parameters (pool_max_conns).
func ParseDSN(dsn string) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse postgres DSN: %w", err)
	}
	delete(cfg.RuntimeParams, "pool_max_conns")
	return cfg, nil
}
