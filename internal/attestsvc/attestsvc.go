// Package attestsvc is the device-facing side of remote attestation. It issues single-use
// nonces (with a credential-activation challenge until a device has answered one), gathers
// what the verifier needs (the device record, the consumed nonce, the tenant's OS releases and
// the device's group, the last two kept per tenant for as long as the tenant's policy
// generation is unchanged), asks the verifier to decide, asks the CA to sign when it passes,
// and records every outcome.
// It also authenticates devices on mutual TLS.
//
// Trust: every request is hostile and arrives unauthenticated; the evidence itself is the
// authentication. It trusts the store, the verifier's decision and the CA.
package attestsvc

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/enrollment"
	"github.com/rampart-iot/rampart/internal/attest"
	"github.com/rampart-iot/rampart/internal/ca"
	"github.com/rampart-iot/rampart/internal/eventlog"
	"github.com/rampart-iot/rampart/internal/groupcommit"
	"github.com/rampart-iot/rampart/internal/ids"
	"github.com/rampart-iot/rampart/internal/problem"
	"github.com/rampart-iot/rampart/internal/store"
)

// Defaults.
const (
	NonceTTL            = time.Minute
	DefaultCertLifetime = 24 * time.Hour
)

// Policy holds the service's attestation rules.
type Policy struct {
	AllowSoftwareRootOfTrust bool
	// EKRoots verifies EK certificates (nil: not checked).
	EKRoots *x509.CertPool
	// RequireEKCertificate refuses TPM devices without one.
	RequireEKCertificate bool
	// PCRs the quote must cover (default: eventlog.DefaultPCR).
	PCRs []int
	// FirmwarePCRs the quote must also cover when a device sends its firmware event log
	// (default: attest.FirmwarePCRs). Nonces name them, so devices know to send the log.
	FirmwarePCRs []int
}

// Config configures a Service.
type Config struct {
	Store store.Store
	// NonceKey authenticates nonces (32 bytes, shared by every replica; the server derives it
	// from the CA key-encryption key). Empty: a random key, so nonces work on one replica only.
	NonceKey []byte
	CA       *ca.Authority
	Policy   Policy
	Now      func() time.Time
	Rand     io.Reader
	Logger   *slog.Logger
	Registry prometheus.Registerer
}

// Service runs attestation.
type Service struct {
	st       store.Store
	nonceKey []byte
	commit   *groupcommit.Committer
	ca       *ca.Authority
	policy   Policy
	now      func() time.Time
	rand     io.Reader
	log      *slog.Logger
	ids      *ids.Generator
	verifier *attest.Verifier
	results  *prometheus.CounterVec
	aks      akCache
	policies policyCache
}

// akCache keeps parsed attestation keys, so the hot path does not parse a TPMT_PUBLIC on every
// attestation. Entries are keyed by device and checked against the stored bytes.
type akCache struct {
	mu sync.Mutex
	m  map[string]cachedAK
}

type cachedAK struct {
	raw []byte
	ak  *enrollment.AKPublic
}

// maxCachedAKs bounds the cache; when full it starts over.
const maxCachedAKs = 1 << 16

func (c *akCache) get(dev store.Device) *enrollment.AKPublic {
	c.mu.Lock()
	e, ok := c.m[dev.ID]
	c.mu.Unlock()
	if ok && bytes.Equal(e.raw, dev.AKPublic) {
		return e.ak
	}
	ak, err := enrollment.ParseAKPublic(dev.AKPublic)
	if err != nil {
		return nil // the verifier parses again and reports the failure
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxCachedAKs {
		c.m = map[string]cachedAK{}
	}
	c.m[dev.ID] = cachedAK{raw: dev.AKPublic, ak: ak}
	c.mu.Unlock()
	return ak
}

// New returns a Service.
func New(cfg Config) (*Service, error) {
	s := &Service{st: cfg.Store, ca: cfg.CA, policy: cfg.Policy, now: cfg.Now, rand: cfg.Rand, log: cfg.Logger,
		nonceKey: cfg.NonceKey, commit: groupcommit.New(cfg.Store, 0)}
	if s.now == nil {
		s.now = time.Now
	}
	if s.rand == nil {
		s.rand = rand.Reader
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if len(s.policy.PCRs) == 0 {
		s.policy.PCRs = []int{eventlog.DefaultPCR}
	}
	if len(s.policy.FirmwarePCRs) == 0 {
		s.policy.FirmwarePCRs = attest.FirmwarePCRs
	}
	s.ids = &ids.Generator{Now: s.now, Rand: s.rand}
	if len(s.nonceKey) == 0 {
		s.nonceKey = make([]byte, 32)
		if _, err := io.ReadFull(s.rand, s.nonceKey); err != nil {
			return nil, err
		}
	}
	s.verifier = &attest.Verifier{Now: s.now}
	s.results = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rampart_attestations_total",
		Help: "Attestations by result and failure reason.",
	}, []string{"result", "reason"})
	if cfg.Registry != nil {
		if err := cfg.Registry.Register(s.results); err != nil {
			return nil, err
		}
	}
	return s, nil
}

var deviceIDPattern = regexp.MustCompile(`^[0-9a-f]{64}$`)

// failure is what a device is told when attestation fails.
func failure(reason, message string) error {
	return &problem.Error{Code: v1.CodeAttestationFailed, Message: "attestation failed: " + message,
		Extra: map[string]any{"reason": reason}}
}

// Nonce issues a nonce to a claimed device.
func (s *Service) Nonce(ctx context.Context, req v1.AttestationNonceRequest) (v1.AttestationNonce, error) {
	if !deviceIDPattern.MatchString(req.DeviceID) {
		return v1.AttestationNonce{}, problem.Invalid(v1.ErrorDetail{Field: "device_id", Message: "must be 64 lowercase hexadecimal characters"})
	}
	dev, err := s.st.GetDeviceByID(ctx, req.DeviceID)
	if errors.Is(err, store.ErrNotFound) {
		return v1.AttestationNonce{}, failure(attest.ReasonDeviceUnknown, "device "+req.DeviceID+" is not claimed by any tenant")
	}
	if err != nil {
		return v1.AttestationNonce{}, err
	}
	now := s.now().UTC().Truncate(time.Millisecond)
	t := ticket{expires: now.Add(NonceTTL)}
	out := v1.AttestationNonce{ExpiresAt: t.expires, PCRs: s.policy.PCRs, FirmwarePCRs: s.policy.FirmwarePCRs}
	if dev.AKActivated.IsZero() {
		secret := make([]byte, attest.ActivationSecretSize)
		if _, err := io.ReadFull(s.rand, secret); err != nil {
			return v1.AttestationNonce{}, err
		}
		idObject, encSecret, err := attest.MakeActivation(s.rand, dev.EKPublic, dev.AKPublic, secret)
		if err != nil {
			return v1.AttestationNonce{}, fmt.Errorf("credential challenge for device %s: %w", dev.ID, err)
		}
		sh := sha256.Sum256(secret)
		t.activationHash = sh[:]
		out.Activation = &v1.CredentialChallenge{IDObject: idObject, EncryptedSecret: encSecret}
	}
	if out.Nonce, err = makeTicket(s.nonceKey, s.rand, dev.ID, t); err != nil {
		return v1.AttestationNonce{}, err
	}
	return out, nil
}

// Attest verifies a device's evidence and, if it passes, issues its certificates.
func (s *Service) Attest(ctx context.Context, req v1.AttestationRequest) (v1.AttestationResult, error) {
	if !deviceIDPattern.MatchString(req.DeviceID) {
		return v1.AttestationResult{}, problem.Invalid(v1.ErrorDetail{Field: "device_id", Message: "must be 64 lowercase hexadecimal characters"})
	}
	if len(req.Nonce) != TicketSize {
		return v1.AttestationResult{}, problem.Invalid(v1.ErrorDetail{Field: "nonce", Message: fmt.Sprintf("must be the %d-byte nonce the service issued", TicketSize)})
	}
	dev, gen, err := s.st.GetDeviceByIDWithGeneration(ctx, req.DeviceID)
	if errors.Is(err, store.ErrNotFound) {
		s.count(attest.ReasonDeviceUnknown)
		return v1.AttestationResult{}, failure(attest.ReasonDeviceUnknown, "device "+req.DeviceID+" is not claimed by any tenant")
	}
	if err != nil {
		return v1.AttestationResult{}, err
	}
	t, err := openTicket(s.nonceKey, dev.ID, req.Nonce)
	if err != nil {
		return v1.AttestationResult{}, s.refuse(ctx, dev, &attest.Failure{Reason: attest.ReasonNonceUnknown, Message: err.Error()}, nil)
	}
	used := nonceRecord(dev, req.Nonce, t.expires)
	pol := s.policies.get(dev.TenantID, gen)
	group, err := s.group(ctx, dev, pol)
	if err != nil {
		return v1.AttestationResult{}, err
	}
	releases, err := s.releases(ctx, dev, group, pol)
	if err != nil {
		return v1.AttestationResult{}, err
	}
	keys := make([]attest.Key, len(req.Keys))
	for i, k := range req.Keys {
		keys[i] = attest.Key{Component: k.Component, PublicKey: k.PublicKey}
	}
	res, fl := s.verifier.Verify(
		attest.Device{ID: dev.ID, RootOfTrust: dev.RootOfTrust, EKPublic: dev.EKPublic, EKCertificate: dev.EKCertificate,
			AKPublic: dev.AKPublic, AK: s.aks.get(dev), Disabled: dev.Disabled, SecurityCounter: dev.SecurityCounter},
		attest.Challenge{Nonce: req.Nonce, ExpiresAt: t.expires, ActivationHash: t.activationHash},
		attest.Evidence{ActivationSecret: req.ActivationSecret, QuoteAttest: req.Quote.Attest, QuoteSignature: req.Quote.Signature,
			EventLog: req.EventLog, Keys: keys, FirmwareEventLog: req.FirmwareEventLog, PCRValues: req.PCRValues},
		attest.Policy{AllowSoftwareRootOfTrust: s.policy.AllowSoftwareRootOfTrust, PCRs: s.policy.PCRs, FirmwarePCRs: s.policy.FirmwarePCRs, Releases: releases,
			EKRoots: s.policy.EKRoots, RequireEKCertificate: s.policy.RequireEKCertificate},
	)
	if fl != nil {
		return v1.AttestationResult{}, s.refuse(ctx, dev, fl, used)
	}
	return s.issue(ctx, dev, group, res, used)
}

// group returns the device's group, from the tenant's policy as of the generation read with the
// device, or else from the store: its feed chooses the releases and its lifetime the
// certificates'. A device in no group gets the zero group (Retail, default lifetime).
func (s *Service) group(ctx context.Context, dev store.Device, pol *policy) (store.DeviceGroup, error) {
	if dev.DeviceGroupID == "" {
		return store.DeviceGroup{OSFeed: store.OSFeedRetail}, nil
	}
	if g, ok := pol.group(dev.DeviceGroupID); ok {
		return g, nil
	}
	g, err := s.st.GetDeviceGroup(ctx, dev.TenantID, dev.DeviceGroupID)
	if err != nil {
		return store.DeviceGroup{}, fmt.Errorf("reading the device's group: %w", err)
	}
	pol.setGroup(g)
	return g, nil
}

// nonceRecord is what marks a nonce used.
func nonceRecord(dev store.Device, nonce []byte, expires time.Time) *store.Nonce {
	h := sha256.Sum256(nonce)
	return &store.Nonce{Hash: h[:], DeviceID: dev.ID, TenantID: dev.TenantID, CreatedAt: expires.Add(-NonceTTL), ExpiresAt: expires}
}

// errReplayed means a nonce had already been used.
var errReplayed = errors.New("the nonce was already used")

// useNonce marks a nonce used, inside the transaction that records its outcome.
func useNonce(ctx context.Context, tx store.Tx, n *store.Nonce) error {
	if n == nil {
		return nil
	}
	if err := tx.CreateNonce(ctx, *n); errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("%w: %w", errReplayed, err) // still a store check: the transaction goes on
	} else if err != nil {
		return err
	}
	return nil
}

// issue certifies every key of a passed attestation and records the pass.
func (s *Service) issue(ctx context.Context, dev store.Device, group store.DeviceGroup, res *attest.Result, used *store.Nonce) (v1.AttestationResult, error) {
	now := s.now().UTC().Truncate(time.Microsecond)
	lifetime := DefaultCertLifetime
	if group.CertLifetime > 0 {
		lifetime = group.CertLifetime
	}
	if err := s.ca.EnsureTenant(ctx, dev.TenantID, ""); err != nil {
		// With the root key offline the tenant cannot get its next CA, but its current one
		// still signs: warn and go on. Anything else is a failure of the service.
		if !errors.Is(err, ca.ErrRootOffline) && !errors.Is(err, ca.ErrNoRoot) {
			return v1.AttestationResult{}, fmt.Errorf("tenant CA: %w", err)
		}
		s.log.Warn("the tenant's next CA cannot be made while the service root key is offline", "tenant", dev.TenantID, "error", err)
	}
	record := map[string]any{"os_release": res.Release.Version, "measurements": res.Measurements}
	if res.Firmware != nil {
		record["firmware"] = res.Firmware
	}
	measurements, _ := json.Marshal(record)
	out := v1.AttestationResult{ServerTime: now, OSRelease: res.Release.Version}
	var agentSerial string
	var agentExpires time.Time
	for _, k := range res.Keys {
		pub, err := x509.ParsePKIXPublicKey(k.PublicKey)
		if err != nil {
			return v1.AttestationResult{}, err // the verifier parsed it already
		}
		sg, err := s.ca.Sign(ctx, dev.TenantID, ca.LeafRequest{PublicKey: pub, DeviceID: dev.ID, Component: k.Component,
			Lifetime: lifetime, Measurements: measurements, SoftwareRootOfTrust: dev.RootOfTrust == "software"})
		if err != nil {
			return v1.AttestationResult{}, fmt.Errorf("issuing a certificate for %q: %w", k.Component, err)
		}
		out.Certificates = append(out.Certificates, v1.IssuedCertificate{Component: k.Component,
			Certificate: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: sg.DER})),
			Chain:       string(sg.ChainPEM), NotAfter: sg.NotAfter})
		if k.Component == "" {
			agentSerial, agentExpires = hex.EncodeToString(sg.Serial.Bytes()), sg.NotAfter
		}
	}
	out.RenewAfter = now.Add(agentExpires.Sub(now) / 2)
	id, err := s.ids.New()
	if err != nil {
		return v1.AttestationResult{}, err
	}
	// The certificates were made before the nonce is marked used, and are handed out only if
	// marking it succeeds: a replay gets nothing.
	err = s.commit.Do(ctx, func(tx store.Tx) error {
		if err := useNonce(ctx, tx, used); err != nil {
			return err
		}
		if res.Activated {
			if err := tx.SetDeviceAKActivated(ctx, dev.ID, now); err != nil {
				return err
			}
		}
		return tx.RecordAttestation(ctx, store.Attestation{ID: id, TenantID: dev.TenantID, DeviceID: dev.ID, Time: now,
			Result: store.AttestationPass, OSReleaseID: res.Release.ID, Measurements: string(measurements),
			CertificateSerial: agentSerial, CertificateExpires: agentExpires.UTC().Truncate(time.Microsecond)})
	})
	if errors.Is(err, errReplayed) {
		return v1.AttestationResult{}, s.refuse(ctx, dev, &attest.Failure{Reason: attest.ReasonNonceUnknown, Message: errReplayed.Error()}, nil)
	}
	if err != nil {
		return v1.AttestationResult{}, err
	}
	s.count("")
	return out, nil
}

// refuse records a failed attestation, marking its nonce used if it has one, and returns the
// error the device is told.
func (s *Service) refuse(ctx context.Context, dev store.Device, fl *attest.Failure, used *store.Nonce) error {
	id, err := s.ids.New()
	if err != nil {
		return err
	}
	rec := store.Attestation{ID: id, TenantID: dev.TenantID, DeviceID: dev.ID, Time: s.now().UTC().Truncate(time.Microsecond),
		Result: store.AttestationFail, Reason: fl.Reason, Message: fl.Message}
	err = s.commit.Do(context.WithoutCancel(ctx), func(tx store.Tx) error {
		if err := useNonce(ctx, tx, used); err != nil && !errors.Is(err, errReplayed) {
			return err
		} else if err != nil {
			rec.Reason, rec.Message = attest.ReasonNonceUnknown, errReplayed.Error()
			fl = &attest.Failure{Reason: rec.Reason, Message: rec.Message}
		}
		return tx.RecordAttestation(ctx, rec)
	})
	if err != nil {
		return err
	}
	s.count(fl.Reason)
	s.log.Warn("attestation failed", "device", dev.ID, "tenant", dev.TenantID, "reason", fl.Reason, "message", fl.Message)
	return failure(fl.Reason, fl.Message)
}

func (s *Service) count(reason string) {
	result := store.AttestationPass
	if reason != "" {
		result = store.AttestationFail
	}
	s.results.WithLabelValues(result, reason).Inc()
}

// releases lists the OS releases the device may run: those registered by hand, those
// published to Retail, and, for a device whose group follows RetailEval, those published to
// RetailEval. A release made from an OS image and not yet published is for no device. A
// withdrawn release is for the devices that already passed an attestation with it (they run
// it and cannot go back; refusing them would cut them off from the next release), so a trial
// boot of it fails and rolls back.
//
// The tenant's release list comes from pol, as of the generation read with the device, or is
// read from the store and kept there. What is returned may be shared: it is not to be changed.
func (s *Service) releases(ctx context.Context, dev store.Device, group store.DeviceGroup, pol *policy) ([]attest.Release, error) {
	if !pol.hasReleases() {
		all, err := s.listReleases(ctx, dev.TenantID)
		if err != nil {
			return nil, err
		}
		pol.setReleases(all)
	}
	out, withdrawn := pol.forFeed(group.OSFeed)
	if len(withdrawn) == 0 {
		return out, nil
	}
	out = slices.Clone(out)
	withdrawn = maps.Clone(withdrawn)
	// The device's attestation history, newest first, as far as maxWithdrawnHistory records.
	hopt := store.ListOptions{Limit: store.MaxLimit}
	for seen := 0; seen < maxWithdrawnHistory && len(withdrawn) > 0; {
		page, err := s.st.ListAttestations(ctx, dev.TenantID, dev.ID, hopt)
		if err != nil {
			return nil, err
		}
		for _, a := range page.Items {
			if r, ok := withdrawn[a.OSReleaseID]; ok && a.Result == store.AttestationPass {
				out = append(out, r)
				delete(withdrawn, a.OSReleaseID)
			}
		}
		seen += len(page.Items)
		if page.Next == "" {
			break
		}
		hopt.After = page.Next
	}
	return out, nil
}

// listReleases reads every OS release of the tenant.
func (s *Service) listReleases(ctx context.Context, tenantID string) ([]store.OSRelease, error) {
	var all []store.OSRelease
	opt := store.ListOptions{Limit: store.MaxLimit}
	for {
		page, err := s.st.ListOSReleases(ctx, tenantID, opt)
		if err != nil {
			return nil, err
		}
		all = append(all, page.Items...)
		if page.Next == "" {
			return all, nil
		}
		opt.After = page.Next
	}
}

// maxWithdrawnHistory bounds how many of a device's past attestations are read to learn
// whether it already runs a withdrawn release.
const maxWithdrawnHistory = 5000

// DeviceIdentity is a device authenticated by its certificate on mutual TLS.
type DeviceIdentity struct {
	ca.Identity
	Device store.Device
}

// Authenticate checks a client certificate chain (mutual TLS): it must chain to its tenant's
// CA, be valid now, and belong to a claimed device that is not disabled.
func (s *Service) Authenticate(ctx context.Context, certs []*x509.Certificate) (*DeviceIdentity, error) {
	if len(certs) == 0 {
		return nil, problem.New(v1.CodeUnauthenticated, "this endpoint needs the device's client certificate (mutual TLS)")
	}
	id, err := s.ca.VerifyDevice(ctx, certs)
	if err != nil {
		return nil, &problem.Error{Code: v1.CodeUnauthenticated, Message: "client certificate refused: " + err.Error(), Err: err}
	}
	dev, err := s.st.GetDevice(ctx, id.TenantID, id.DeviceID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, problem.New(v1.CodeUnauthenticated, "client certificate refused: device %s is not claimed by its tenant", id.DeviceID)
	}
	if err != nil {
		return nil, err
	}
	if dev.Disabled {
		return nil, problem.New(v1.CodeUnauthenticated, "client certificate refused: device %s is disabled", id.DeviceID)
	}
	return &DeviceIdentity{Identity: id, Device: dev}, nil
}

// Cleanup deletes expired nonces; the server calls it periodically.
func (s *Service) Cleanup(ctx context.Context) (int, error) {
	return s.st.DeleteExpiredNonces(ctx, s.now())
}
