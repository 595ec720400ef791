package ca

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rampart-iot/rampart/internal/store"
)

// The Authority keeps, per tenant (and for the roots, under ""), a snapshot of the CA records
// read from the store with their certificates parsed and, once first needed, their keys
// unsealed. Issue and VerifyDevice read the snapshot without touching the store; it is
// replaced when RefreshInterval has passed, when this Authority changes the tenant's CAs, and
// when Issue finds no active CA in it.

// tenantCache holds one tenant's snapshot. mu serializes loads and invalidations, so a load
// that started before a change can never overwrite the invalidation that follows it.
type tenantCache struct {
	mu   sync.Mutex
	snap atomic.Pointer[snapshot]
}

// snapshot is a tenant's CAs as read at one time. It is never modified after it is built.
type snapshot struct {
	loaded  time.Time
	recs    []store.CACertificate // oldest first
	entries []*caEntry            // parallel to recs
	pool    *x509.CertPool        // the tenant CAs not revoked, for VerifyDevice; nil if none
}

// caEntry is a parsed CA certificate and, lazily, its unsealed key. Entries are shared by
// successive snapshots while the certificate and sealed key are unchanged, so a key is
// unsealed once per process, not once per refresh.
type caEntry struct {
	id     string
	der    []byte
	sealed []byte
	cert   *x509.Certificate
	issuer *x509.Certificate // the root that signed a tenant CA; the certificate itself for a root

	once sync.Once
	key  *ecdsa.PrivateKey
	err  error

	pemOnce sync.Once
	pem     []byte
}

// chainPEM returns the entry's certificate, then its issuer's, in PEM: the chain sent with
// every device certificate it signs.
func (e *caEntry) chainPEM() []byte {
	e.pemOnce.Do(func() {
		e.pem = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.cert.Raw})
		e.pem = append(e.pem, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: e.issuer.Raw})...)
	})
	return e.pem
}

// signer returns the entry's unsealed private key.
func (e *caEntry) signer(a *Authority) (*ecdsa.PrivateKey, error) {
	e.once.Do(func() {
		if e.sealed == nil {
			e.err = fmt.Errorf("CA %s has no private key in the store", e.id)
			return
		}
		e.key, e.err = a.unseal(e.id, e.sealed, e.cert)
	})
	return e.key, e.err
}

func (s *snapshot) fresh(now time.Time) bool {
	return s != nil && !now.Before(s.loaded) && now.Sub(s.loaded) < RefreshInterval
}

// active returns the entry of the CA that signs at now, or nil.
func (s *snapshot) active(now time.Time) *caEntry {
	if i := activeIndex(s.recs, now); i >= 0 {
		return s.entries[i]
	}
	return nil
}

func (a *Authority) cacheFor(tenantID string) *tenantCache {
	if tc, ok := a.caches.Load(tenantID); ok {
		return tc.(*tenantCache)
	}
	tc, _ := a.caches.LoadOrStore(tenantID, new(tenantCache))
	return tc.(*tenantCache)
}

// invalidate marks a tenant's snapshot stale after this Authority changed its CAs: the next
// use reads the store again, keeping the unchanged entries and their unsealed keys.
func (a *Authority) invalidate(tenantID string) {
	tc := a.cacheFor(tenantID)
	tc.mu.Lock()
	if cur := tc.snap.Load(); cur != nil {
		stale := *cur
		stale.loaded = time.Time{}
		tc.snap.Store(&stale)
	}
	tc.mu.Unlock()
}

// snapshot returns the tenant's CAs ("" for the roots), from memory if they were read less
// than RefreshInterval ago, unless force is set.
func (a *Authority) snapshot(ctx context.Context, tenantID string, force bool) (*snapshot, error) {
	tc := a.cacheFor(tenantID)
	now := a.clock()
	seen := tc.snap.Load()
	if !force && seen.fresh(now) {
		return seen, nil
	}
	tc.mu.Lock()
	defer tc.mu.Unlock()
	// Another goroutine may have loaded while this one waited.
	if cur := tc.snap.Load(); cur.fresh(now) && (!force || cur != seen) {
		return cur, nil
	}
	s, err := a.load(ctx, tenantID, now, tc.snap.Load())
	if err != nil {
		return nil, err
	}
	tc.snap.Store(s)
	return s, nil
}

// load reads a tenant's CAs from the store and parses them, reusing the entries of prev
// whose certificate and sealed key are unchanged.
func (a *Authority) load(ctx context.Context, tenantID string, now time.Time, prev *snapshot) (*snapshot, error) {
	recs, err := a.store.ListCACertificates(ctx, tenantID)
	if err != nil {
		return nil, fmt.Errorf("reading the CAs of %s: %w", tenantName(tenantID), err)
	}
	old := map[string]*caEntry{}
	if prev != nil {
		for _, e := range prev.entries {
			old[e.id] = e
		}
	}
	s := &snapshot{loaded: now, recs: recs, entries: make([]*caEntry, len(recs))}
	var roots *snapshot
	for i, r := range recs {
		if e := old[r.ID]; e != nil && bytes.Equal(e.der, r.CertDER) && bytes.Equal(e.sealed, r.KeyCiphertext) {
			s.entries[i] = e
			continue
		}
		cert, err := x509.ParseCertificate(r.CertDER)
		if err != nil {
			return nil, fmt.Errorf("CA %s: %w: %w", r.ID, ErrCorrupt, err)
		}
		e := &caEntry{id: r.ID, der: r.CertDER, sealed: r.KeyCiphertext, cert: cert}
		if tenantID == "" {
			if err := cert.CheckSignatureFrom(cert); err != nil {
				return nil, fmt.Errorf("root CA %s is not a self-signed CA: %w: %w", r.ID, ErrCorrupt, err)
			}
			e.issuer = cert
		} else {
			if roots == nil {
				if roots, err = a.snapshot(ctx, "", false); err != nil {
					return nil, err
				}
			}
			e.issuer = issuerOf(cert, roots)
			if e.issuer == nil { // perhaps a root made by another replica since the roots were read
				if roots, err = a.snapshot(ctx, "", true); err != nil {
					return nil, err
				}
				e.issuer = issuerOf(cert, roots)
			}
			if e.issuer == nil {
				return nil, fmt.Errorf("CA %s of tenant %s is not signed by a service root: %w", r.ID, tenantID, ErrCorrupt)
			}
		}
		s.entries[i] = e
	}
	if tenantID != "" {
		for i, r := range recs {
			if r.RevokedAt.IsZero() {
				if s.pool == nil {
					s.pool = x509.NewCertPool()
				}
				s.pool.AddCert(s.entries[i].cert)
			}
		}
	}
	return s, nil
}

// issuerOf returns the root that signed cert, or nil.
func issuerOf(cert *x509.Certificate, roots *snapshot) *x509.Certificate {
	for _, e := range roots.entries {
		if bytes.Equal(cert.RawIssuer, e.cert.RawSubject) && cert.CheckSignatureFrom(e.cert) == nil {
			return e.cert
		}
	}
	return nil
}

func tenantName(tenantID string) string {
	if tenantID == "" {
		return "the service root"
	}
	return "tenant " + tenantID
}
