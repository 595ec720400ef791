// Package imagesign holds each tenant's image-signing key and countersigns the image packages a
// tenant uploads once the service has validated them. It signs and never decides: the caller
// has checked the package (format, signatures, manifest, payload) before asking. Keys are
// ECDSA P-256, made on first use, kept in the store sealed under the service's key-encryption
// key (internal/keyseal), and cached in memory once opened.
//
// Trust: it trusts the store and its caller.
package imagesign

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/rampart-iot/rampart/imagepkg"
	"github.com/rampart-iot/rampart/internal/keyseal"
	"github.com/rampart-iot/rampart/internal/store"
)

// Signer holds the tenants' image-signing keys. It is safe for concurrent use.
type Signer struct {
	st     store.Store
	sealer *keyseal.Sealer
	now    func() time.Time
	rand   io.Reader
	keys   sync.Map // tenant ID -> *ecdsa.PrivateKey
}

// New returns a Signer; now and rnd default to time.Now and crypto/rand.
func New(st store.Store, sealer *keyseal.Sealer, now func() time.Time, rnd io.Reader) *Signer {
	if now == nil {
		now = time.Now
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	return &Signer{st: st, sealer: sealer, now: now, rand: rnd}
}

// Countersign adds the tenant's signature to pkg.
func (s *Signer) Countersign(ctx context.Context, tenantID string, pkg *imagepkg.Package) error {
	k, err := s.key(ctx, tenantID)
	if err != nil {
		return err
	}
	return pkg.Sign(k)
}

// PublicKeys returns the tenant's image-signing public keys that are not revoked, making the
// first key if the tenant has none yet.
func (s *Signer) PublicKeys(ctx context.Context, tenantID string) ([]crypto.PublicKey, error) {
	if _, err := s.key(ctx, tenantID); err != nil {
		return nil, err
	}
	keys, err := s.st.ListSigningKeys(ctx, tenantID, store.KeyImageSigning)
	if err != nil {
		return nil, err
	}
	var out []crypto.PublicKey
	for _, k := range keys {
		if !k.RevokedAt.IsZero() {
			continue
		}
		pub, err := x509.ParsePKIXPublicKey(k.PublicDER)
		if err != nil {
			return nil, fmt.Errorf("image-signing key %s: %w", k.ID, err)
		}
		out = append(out, pub)
	}
	return out, nil
}

// key returns the tenant's current signing key: the newest that is not revoked and whose
// private half is in the store, made if there is none.
func (s *Signer) key(ctx context.Context, tenantID string) (*ecdsa.PrivateKey, error) {
	if k, ok := s.keys.Load(tenantID); ok {
		return k.(*ecdsa.PrivateKey), nil
	}
	var key *ecdsa.PrivateKey
	err := s.st.Update(ctx, func(tx store.Tx) error {
		keys, err := tx.ListSigningKeys(ctx, tenantID, store.KeyImageSigning)
		if err != nil {
			return err
		}
		for i := len(keys) - 1; i >= 0; i-- {
			k := keys[i]
			if !k.RevokedAt.IsZero() || k.KeyCiphertext == nil {
				continue
			}
			key, err = s.sealer.Open(k.ID, k.KeyCiphertext)
			if err != nil {
				return fmt.Errorf("tenant %s image-signing key: %w", tenantID, err)
			}
			return nil
		}
		if len(keys) > 0 && key == nil {
			return errors.New("the tenant's image-signing keys are all revoked or offline")
		}
		key, err = ecdsa.GenerateKey(elliptic.P256(), s.rand)
		if err != nil {
			return err
		}
		der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
		if err != nil {
			return err
		}
		id, err := imagepkg.KeyID(&key.PublicKey)
		if err != nil {
			return err
		}
		sealed, err := s.sealer.Seal(id, key)
		if err != nil {
			return err
		}
		return tx.CreateSigningKey(ctx, store.SigningKey{ID: id, TenantID: tenantID, Purpose: store.KeyImageSigning,
			PublicDER: der, KeyCiphertext: sealed, CreatedAt: s.now().UTC().Truncate(time.Microsecond)})
	})
	if err != nil {
		return nil, err
	}
	s.keys.Store(tenantID, key)
	return key, nil
}
