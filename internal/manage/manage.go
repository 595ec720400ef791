// Package manage is the security service's management plane. It applies changes to tenants,
// users, roles, tokens, products, device groups and devices, and records every write attempt in
// the audit log. Every interface (the REST API now, the web console later) calls it, so roles and
// tenant isolation are enforced in exactly one place: each method authorizes its Principal first.
//
// Trust: manage trusts the Principal it is given (the caller authenticated it with
// Authenticate) and nothing else in a request; every name, ID and record is checked here.
// A caller that has no role in a tenant is told the tenant does not exist, so tenants never
// leak to outsiders.
package manage

import (
	"context"
	"crypto"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/authz"
	"github.com/rampart-iot/rampart/internal/ca"
	"github.com/rampart-iot/rampart/internal/ids"
	"github.com/rampart-iot/rampart/internal/problem"
	"github.com/rampart-iot/rampart/internal/store"
	"github.com/rampart-iot/rampart/internal/updatemeta"
	"github.com/rampart-iot/rampart/internal/webhook"
)

// Policy holds the service-wide rules that are not roles.
type Policy struct {
	// AllowSoftwareRootOfTrust lets tenants claim devices whose enrollment record comes from
	// the development-only software root of trust. Off in production by default.
	AllowSoftwareRootOfTrust bool
	// AllowLoopbackHTTPWebhooks accepts http:// webhook URLs to loopback hosts (dev mode).
	AllowLoopbackHTTPWebhooks bool
}

// Config configures a Manager. Store and CA are required; the rest have defaults.
type Config struct {
	Store store.Store
	CA    *ca.Authority
	// Blobs, ImageSigner and SpoolDir serve image uploads; without them uploads are refused.
	Blobs       Blobs
	ImageSigner ImageSigner
	SpoolDir    string // where uploads are spooled while they are checked (default os.TempDir())
	Policy      Policy
	// Metadata publishes signed update metadata in the same transaction as the images and
	// deployments it describes; nil for none.
	Metadata Publisher
	// Notify hears of committed changes that connected devices must act on; nil for none.
	Notify Notifier
	Now    func() time.Time // default time.Now
	Rand   io.Reader        // default crypto/rand
	Logger *slog.Logger     // default discards

	// WebhookSecrets seals webhook secrets at rest; nil stores them as they are.
	WebhookSecrets *webhook.Sealer
}

// Manager is the management plane. It is safe for concurrent use.
type Manager struct {
	store    store.Store
	ca       *ca.Authority
	blobs    Blobs
	signer   ImageSigner
	spoolDir string
	policy   Policy
	notify   Notifier
	meta     Publisher
	hookSeal *webhook.Sealer
	now      func() time.Time
	rand     io.Reader
	ids      *ids.Generator
	log      *slog.Logger
}

// New returns a Manager.
func New(cfg Config) *Manager {
	m := &Manager{store: cfg.Store, ca: cfg.CA, blobs: cfg.Blobs, signer: cfg.ImageSigner, spoolDir: cfg.SpoolDir, policy: cfg.Policy, notify: cfg.Notify, meta: cfg.Metadata, now: cfg.Now, rand: cfg.Rand, log: cfg.Logger}
	if m.now == nil {
		m.now = time.Now
	}
	if m.rand == nil {
		m.rand = rand.Reader
	}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	m.ids = &ids.Generator{Now: m.now, Rand: m.rand}
	m.hookSeal = cfg.WebhookSecrets
	return m
}

// Notifier hears of committed changes that connected devices must act on: it wakes them over
// their push channel. It must not block.
type Notifier interface {
	// DeploymentCreated says a group has a new current deployment.
	DeploymentCreated(tenantID, groupID, deploymentID string)
	// DeviceMoved says a device changed group.
	DeviceMoved(tenantID, deviceID string)
	// WakeDevice asks one device to check in now.
	WakeDevice(tenantID, deviceID string)
}

// Publisher publishes signed update metadata within a store transaction (internal/updatemeta).
type Publisher interface {
	// PublishImages re-publishes the tenant's image repository.
	PublishImages(ctx context.Context, tx store.Tx, tenantID string) error
	// PublishDirector re-publishes the group's director repository.
	PublishDirector(ctx context.Context, tx store.Tx, tenantID, groupID string) error
	// ExportRoot takes one of the tenant's root keys (keyID; "" the only online one) offline and
	// returns it (PKCS #8 PEM).
	ExportRoot(ctx context.Context, tx store.Tx, tenantID, keyID string) ([]byte, error)
	// ImportRoot brings one of the tenant's exported root keys back online.
	ImportRoot(ctx context.Context, tx store.Tx, tenantID string, keyPEM []byte) error
	// RotateRoot replaces the tenant's root keys (and threshold) in every repository.
	RotateRoot(ctx context.Context, tx store.Tx, tenantID string, opt updatemeta.RotateOptions) (updatemeta.Rotation, error)
	// PrepareRotation returns every repository's next root, unsigned, for detached signatures.
	PrepareRotation(ctx context.Context, tx store.Tx, tenantID string, newKeys []crypto.PublicKey, threshold int) ([]updatemeta.PreparedRoot, error)
	// CompleteRotation publishes prepared roots with their detached signatures.
	CompleteRotation(ctx context.Context, tx store.Tx, tenantID string, roots []updatemeta.PreparedRoot, sigs []updatemeta.RootSignature) (updatemeta.Rotation, error)
	// RootStatus reports the tenant's root keys and threshold and when each repository's root
	// expires.
	RootStatus(ctx context.Context, tx store.Tx, tenantID string) (updatemeta.RootStatus, error)
}

// Store returns the manager's store, for read paths that need no authorization (health checks).
func (m *Manager) Store() store.Store { return m.store }

// timestamp is the current time at the store's precision.
func (m *Manager) timestamp() time.Time { return m.now().UTC().Truncate(time.Microsecond) }

func (m *Manager) newID() (string, error) { return m.ids.New() }

// op names one write for authorization and the audit log.
type op struct {
	tenantID     string // "" for service-level writes
	action       authz.Action
	resourceType string
	resourceID   string
}

// note is what a write tells the audit log beyond its op.
type note struct {
	resourceID string
	message    string
	details    map[string]any
}

func (n *note) detail(k string, v any) {
	if n.details == nil {
		n.details = map[string]any{}
	}
	n.details[k] = v
}

// tenantNotFound is what a caller learns about a tenant it cannot see.
func tenantNotFound(id string) error {
	return problem.New(v1.CodeNotFound, "tenant %q not found", id)
}

// authorize returns the caller's role in a tenant, or an error: not found if the caller may not
// see the tenant at all, forbidden if the role does not allow the action.
func (m *Manager) authorize(ctx context.Context, p *authz.Principal, tenantID string, a authz.Action) (store.Role, error) {
	if p == nil {
		return "", problem.New(v1.CodeUnauthenticated, "authentication required")
	}
	if tenantID == "" || !p.InScope(tenantID) {
		return "", tenantNotFound(tenantID)
	}
	ra, err := m.store.GetRole(ctx, tenantID, p.UserID)
	if errors.Is(err, store.ErrNotFound) {
		return "", tenantNotFound(tenantID)
	}
	if err != nil {
		return "", err
	}
	if !authz.Allowed(ra.Role, a) {
		return ra.Role, problem.Forbidden(ra.Role, string(a))
	}
	return ra.Role, nil
}

// read authorizes a read.
func (m *Manager) read(ctx context.Context, p *authz.Principal, tenantID string, a authz.Action) error {
	_, err := m.authorize(ctx, p, tenantID, a)
	return err
}

// write authorizes p for o, then runs fn in one transaction together with the audit entry
// that records its success. If authorization (for a member of the tenant), fn or the commit
// fails, a failure entry is recorded instead and nothing fn wrote is kept.
func (m *Manager) write(ctx context.Context, p *authz.Principal, o op, fn func(tx store.Tx, n *note) error) error {
	role, err := m.authorize(ctx, p, o.tenantID, o.action)
	if err != nil {
		if role != "" { // a member without the right role: worth recording
			m.auditFailure(ctx, p, o, &note{}, err)
		}
		return err
	}
	return m.writeAuthorized(ctx, p, o, fn)
}

// writeAuthorized is write for callers that have already authorized p.
func (m *Manager) writeAuthorized(ctx context.Context, p *authz.Principal, o op, fn func(tx store.Tx, n *note) error) error {
	n := &note{resourceID: o.resourceID}
	err := m.store.Update(ctx, func(tx store.Tx) error {
		if err := fn(tx, n); err != nil {
			return err
		}
		_, err := tx.AppendAudit(ctx, m.auditEntry(p, o, n, nil))
		return err
	})
	if err != nil {
		m.auditFailure(ctx, p, o, n, err)
	}
	return err
}

// auditEntry builds an audit entry; err nil means success.
func (m *Manager) auditEntry(p *authz.Principal, o op, n *note, err error) store.AuditEntry {
	e := store.AuditEntry{
		TenantID:     o.tenantID,
		Time:         m.timestamp(),
		Action:       string(o.action),
		ResourceType: o.resourceType,
		ResourceID:   n.resourceID,
		Result:       store.AuditSuccess,
		Message:      n.message,
	}
	if p != nil {
		e.ActorID, e.ActorName = p.UserID, p.UserName
	} else {
		e.ActorName = "system"
	}
	if err != nil {
		_, body, _ := problem.Describe(err)
		e.Result, e.ErrorCode, e.Message = store.AuditFailure, body.Code, body.Message
	}
	if len(n.details) > 0 {
		if b, jerr := json.Marshal(n.details); jerr == nil {
			e.Details = string(b)
		}
	}
	return e
}

// auditFailure records a failed write outside the failed transaction.
func (m *Manager) auditFailure(ctx context.Context, p *authz.Principal, o op, n *note, err error) {
	if _, aerr := m.store.AppendAudit(context.WithoutCancel(ctx), m.auditEntry(p, o, n, err)); aerr != nil {
		m.log.Error("cannot record a failed write in the audit log", "action", o.action, "tenant", o.tenantID, "error", aerr)
	}
}
