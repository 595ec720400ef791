package ca

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rampart-iot/rampart/internal/store"
)

// usable reports whether a CA is neither revoked nor expired at now.
func usable(r store.CACertificate, now time.Time) bool {
	return r.RevokedAt.IsZero() && now.Before(r.NotAfter)
}

// activeIndex returns the index of the CA that signs at now: of the usable CAs whose
// ActiveFrom has come, the one that came last. It returns -1 if there is none.
func activeIndex(recs []store.CACertificate, now time.Time) int {
	best := -1
	for i, r := range recs {
		if !usable(r, now) || r.ActiveFrom.After(now) {
			continue
		}
		if best < 0 || !r.ActiveFrom.Before(recs[best].ActiveFrom) {
			best = i
		}
	}
	return best
}

// status returns the status of recs[i] at now, given the index of the active CA.
func status(recs []store.CACertificate, i, active int, now time.Time) Status {
	switch r := recs[i]; {
	case !r.RevokedAt.IsZero():
		return StatusRevoked
	case !now.Before(r.NotAfter):
		return StatusExpired
	case i == active:
		return StatusActive
	default:
		return StatusInactive
	}
}

// newestUsable returns the index of the usable CA that expires last, or -1.
func newestUsable(recs []store.CACertificate, now time.Time) int {
	best := -1
	for i, r := range recs {
		if usable(r, now) && (best < 0 || !r.NotAfter.Before(recs[best].NotAfter)) {
			best = i
		}
	}
	return best
}

// rotation is what EnsureTenant must do to a tenant's CAs at some time.
type rotation struct {
	activate   int  // index of a waiting successor to activate now, or -1
	create     bool // make a new CA
	activeFrom time.Time
}

func (r rotation) none() bool { return r.activate < 0 && !r.create }

// plan decides how a tenant's CAs rotate at now:
//   - with no usable CA (none yet, or all revoked or expired), make one that is active at once;
//   - with no active CA but a waiting successor (its predecessor was revoked), activate it now;
//   - when the CA that expires last is within RotateBefore of expiry, make its successor,
//     active ActivateAfter from now (or when its predecessor expires, if that is sooner).
func plan(recs []store.CACertificate, now time.Time) rotation {
	r := rotation{activate: -1}
	newest := newestUsable(recs, now)
	if newest < 0 {
		return rotation{activate: -1, create: true, activeFrom: now}
	}
	if activeIndex(recs, now) < 0 {
		r.activate = newest
	}
	if end := recs[newest].NotAfter; !now.Before(end.Add(-RotateBefore)) {
		r.create = true
		r.activeFrom = now.Add(ActivateAfter)
		if end.Before(r.activeFrom) {
			r.activeFrom = end
		}
	}
	return r
}

// EnsureTenant brings the tenant's CAs up to date: it makes the tenant's first CA, active at
// once, if it has none that can sign; activates a waiting successor if the active CA was
// revoked; and makes the successor of a CA within RotateBefore of expiry, active
// ActivateAfter later. It is idempotent and safe to call from many goroutines and replicas at
// once (the decision and the write share one store transaction), and cheap when there is
// nothing to do. tenantName names the tenant in the CA's subject; "" reads it from the store.
//
// Making a CA needs the service root's key: if it is offline, EnsureTenant returns an error
// wrapping ErrRootOffline and the tenant keeps its current CA. Without a root fit to sign a
// two-year CA it returns ErrNoRoot (see EnsureRoot).
func (a *Authority) EnsureTenant(ctx context.Context, tenantID, tenantName string) error {
	if err := checkTenantID(tenantID); err != nil {
		return err
	}
	now := a.clock().Truncate(time.Second)
	if s, err := a.snapshot(ctx, tenantID, false); err == nil {
		if err := a.quickCheck(ctx, s, now); err != errUnsure {
			if err != nil {
				return fmt.Errorf("tenant %s CA: %w", tenantID, err)
			}
			return nil
		}
	}
	changed := false
	err := a.store.Update(ctx, func(tx store.Tx) error {
		recs, err := tx.ListCACertificates(ctx, tenantID)
		if err != nil {
			return err
		}
		p := plan(recs, now)
		if p.activate >= 0 {
			r := recs[p.activate]
			r.ActiveFrom = now
			if err := tx.UpdateCACertificate(ctx, r); err != nil {
				return err
			}
			changed = true
		}
		if !p.create {
			return nil
		}
		if tenantName == "" {
			t, err := tx.GetTenant(ctx, tenantID)
			if err != nil {
				return fmt.Errorf("naming the CA: %w", err)
			}
			tenantName = t.Name
		}
		rec, err := a.newTenantCA(ctx, tx, tenantID, tenantName, now, p.activeFrom)
		if err != nil {
			return err
		}
		if err := tx.CreateCACertificate(ctx, rec); err != nil {
			return err
		}
		changed = true
		return nil
	})
	if changed {
		a.invalidate(tenantID)
	}
	if err != nil {
		return fmt.Errorf("tenant %s CA: %w", tenantID, err)
	}
	return nil
}

// errUnsure is quickCheck's answer when only a store transaction can tell.
var errUnsure = errors.New("unsure")

// quickCheck decides EnsureTenant from memory when it can, so that calling it on every
// attestation costs no store write: nil when there is nothing to do; ErrNoRoot or
// ErrRootOffline when only a successor is due, the current CA still signs, and no root can
// make the successor; errUnsure otherwise.
func (a *Authority) quickCheck(ctx context.Context, s *snapshot, now time.Time) error {
	p := plan(s.recs, now)
	if p.none() {
		return nil
	}
	if p.activate >= 0 || activeIndex(s.recs, now) < 0 {
		return errUnsure
	}
	roots, err := a.snapshot(ctx, "", false)
	if err != nil {
		return errUnsure
	}
	switch ri := signingRoot(roots.recs, now.Add(TenantLifetime)); {
	case ri < 0:
		return ErrNoRoot
	case roots.recs[ri].KeyCiphertext == nil:
		return fmt.Errorf("root CA %s: %w", roots.recs[ri].ID, ErrRootOffline)
	}
	return errUnsure
}

// newTenantCA makes a tenant CA signed by the newest root that outlives it.
func (a *Authority) newTenantCA(ctx context.Context, tx store.Tx, tenantID, tenantName string, now, activeFrom time.Time) (store.CACertificate, error) {
	notAfter := now.Add(TenantLifetime)
	roots, err := tx.ListCACertificates(ctx, "")
	if err != nil {
		return store.CACertificate{}, fmt.Errorf("reading the service roots: %w", err)
	}
	ri := signingRoot(roots, notAfter)
	if ri < 0 {
		return store.CACertificate{}, ErrNoRoot
	}
	root := roots[ri]
	if root.KeyCiphertext == nil {
		return store.CACertificate{}, fmt.Errorf("root CA %s: %w", root.ID, ErrRootOffline)
	}
	rootCert, err := x509.ParseCertificate(root.CertDER)
	if err != nil {
		return store.CACertificate{}, fmt.Errorf("root CA %s: %w: %w", root.ID, ErrCorrupt, err)
	}
	rootKey, err := a.unseal(root.ID, root.KeyCiphertext, rootCert)
	if err != nil {
		return store.CACertificate{}, err
	}
	id, err := a.ids.New()
	if err != nil {
		return store.CACertificate{}, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), a.rand)
	if err != nil {
		return store.CACertificate{}, fmt.Errorf("generating a CA key: %w", err)
	}
	serial, err := a.serial()
	if err != nil {
		return store.CACertificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			Organization:       []string{"Rampart"},
			OrganizationalUnit: []string{"tenant " + tenantID},
			CommonName:         truncateRunes("Rampart CA "+tenantName, 64),
			SerialNumber:       id,
		},
		NotBefore:             now.Add(-ClockSkew),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		// A tenant CA vouches only for its own tenant's SPIFFE IDs, even to a relying party
		// that anchors on the shared root.
		PermittedURIDomains:         []string{tenantID},
		PermittedDNSDomainsCritical: true,
	}
	der, err := x509.CreateCertificate(a.rand, tmpl, rootCert, &key.PublicKey, rootKey)
	if err != nil {
		return store.CACertificate{}, fmt.Errorf("signing the tenant CA: %w", err)
	}
	sealed, err := a.seal(id, key)
	if err != nil {
		return store.CACertificate{}, err
	}
	return store.CACertificate{ID: id, TenantID: tenantID, CertDER: der, KeyCiphertext: sealed,
		NotBefore: tmpl.NotBefore, NotAfter: notAfter, ActiveFrom: activeFrom, CreatedAt: a.clock()}, nil
}

// signingRoot returns the index of the root, not revoked, that expires last, if it lasts
// until notAfter; otherwise -1.
func signingRoot(roots []store.CACertificate, notAfter time.Time) int {
	best := -1
	for i, r := range roots {
		if r.RevokedAt.IsZero() && (best < 0 || !r.NotAfter.Before(roots[best].NotAfter)) {
			best = i
		}
	}
	if best < 0 || roots[best].NotAfter.Before(notAfter) {
		return -1
	}
	return best
}

// Revoke marks a tenant CA revoked and deletes its sealed key: it never signs again and leaves
// the bundle at once in this Authority (within RefreshInterval in other replicas). Revoking
// twice keeps the first time. Revoking the active CA leaves the tenant without one until
// EnsureTenant runs, which activates a waiting successor or makes a new CA.
func (a *Authority) Revoke(ctx context.Context, tenantID, caID string) error {
	if tenantID == "" {
		return fmt.Errorf("%w: the service root cannot be revoked", ErrInvalid)
	}
	if err := checkTenantID(tenantID); err != nil {
		return err
	}
	now := a.clock()
	err := a.store.Update(ctx, func(tx store.Tx) error {
		recs, err := tx.ListCACertificates(ctx, tenantID)
		if err != nil {
			return err
		}
		for _, r := range recs {
			if r.ID != caID {
				continue
			}
			if !r.RevokedAt.IsZero() {
				return nil
			}
			r.RevokedAt = now
			r.KeyCiphertext = nil
			return tx.UpdateCACertificate(ctx, r)
		}
		return fmt.Errorf("CA %s of tenant %s: %w", caID, tenantID, store.ErrNotFound)
	})
	a.invalidate(tenantID)
	return err
}

// List describes every CA of a tenant ("" for the service roots), oldest first, read afresh
// from the store.
func (a *Authority) List(ctx context.Context, tenantID string) ([]Info, error) {
	if tenantID != "" {
		if err := checkTenantID(tenantID); err != nil {
			return nil, err
		}
	}
	s, err := a.snapshot(ctx, tenantID, true)
	if err != nil {
		return nil, err
	}
	now := a.clock()
	active := activeIndex(s.recs, now)
	out := make([]Info, len(s.recs))
	for i, r := range s.recs {
		sum := sha1.Sum(r.CertDER)
		out[i] = Info{ID: r.ID, Cert: s.entries[i].cert, Status: status(s.recs, i, active, now),
			ThumbprintSHA1: strings.ToUpper(hex.EncodeToString(sum[:])),
			NotBefore:      r.NotBefore, NotAfter: r.NotAfter, ActiveFrom: r.ActiveFrom, RevokedAt: r.RevokedAt,
			KeyOffline: r.KeyCiphertext == nil}
	}
	return out, nil
}

// Bundle returns what relying parties must trust now to accept the tenant's device
// certificates (`ca-certificate download-chain`): the tenant's CAs that are neither expired
// nor revoked, the active one and a waiting successor alike, oldest first, then the roots
// that signed them. A relying party that must accept only this tenant's devices anchors on the
// tenant CAs (OpenSSL's -partial_chain, or the tenant CAs as roots in Go), or checks the
// SPIFFE trust domain. For tenantID "" it returns the usable service roots.
func (a *Authority) Bundle(ctx context.Context, tenantID string) ([]*x509.Certificate, error) {
	if tenantID != "" {
		if err := checkTenantID(tenantID); err != nil {
			return nil, err
		}
	}
	s, err := a.snapshot(ctx, tenantID, false)
	if err != nil {
		return nil, err
	}
	now := a.clock()
	var cas, roots []*x509.Certificate
	for i, r := range s.recs {
		if !usable(r, now) {
			continue
		}
		e := s.entries[i]
		cas = append(cas, e.cert)
		if tenantID != "" && !containsCert(roots, e.issuer) {
			roots = append(roots, e.issuer)
		}
	}
	if len(cas) == 0 {
		if tenantID == "" {
			return nil, ErrNoRoot
		}
		return nil, fmt.Errorf("tenant %s: %w", tenantID, ErrNoCA)
	}
	return append(cas, roots...), nil
}

func containsCert(certs []*x509.Certificate, c *x509.Certificate) bool {
	for _, x := range certs {
		if x.Equal(c) {
			return true
		}
	}
	return false
}

// checkTenantID checks that a tenant ID can be a SPIFFE trust domain name.
func checkTenantID(id string) error {
	if id == "" || len(id) > 255 {
		return fmt.Errorf("%w: tenant ID must be 1 to 255 characters", ErrInvalid)
	}
	for _, c := range []byte(id) {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_') {
			return fmt.Errorf("%w: tenant ID %q: only lowercase letters, digits, '.', '-' and '_' may appear in a SPIFFE trust domain", ErrInvalid, id)
		}
	}
	return nil
}

func truncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n])
}
