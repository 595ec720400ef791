package updatemeta

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/rampart-iot/rampart/imagepkg"
	"github.com/rampart-iot/rampart/internal/store"
	"github.com/rampart-iot/rampart/internal/tufrepo"
)

// A tenant's root role is n root keys (1 <= n <= MaxRootKeys) and a threshold k (1 <= k <= n):
// the root of every repository of the tenant lists the same keys and threshold, and a root is
// valid with signatures by k of them. The store holds the keys (KeyRoot, every unrevoked one is
// current; each online, sealed, or offline, public half only); the threshold is read from the
// tenant's newest root metadata, which is the one place devices read it from too.

// MaxRootKeys bounds a tenant's root keys (and the keys given to one request).
const MaxRootKeys = 8

// ErrBelowThreshold means fewer distinct current root keys were given or online than the
// tenant's root threshold: nothing was signed or changed.
var ErrBelowThreshold = errors.New("fewer root keys than the root threshold")

// ErrNotRootKey means a key given to sign with is not one of the tenant's current root keys
// (another key, or a rotated-out one).
var ErrNotRootKey = errors.New("not one of the tenant's current root keys")

// rootSet is a tenant's current root keys, and the private halves at hand for one request.
type rootSet struct {
	recs      []store.SigningKey           // unrevoked root keys, oldest first
	pubs      []crypto.PublicKey           // their public halves, in the same order
	threshold int                          // the root role's threshold
	signers   map[string]*ecdsa.PrivateKey // by key ID: the online keys and the keys given
	given     int                          // how many of signers were given, not online
}

// roots loads the tenant's current root keys, opens the online ones and adds the given ones
// (PKCS #8 PEM), each of which must be a current root key (ErrBadKey otherwise); a key given
// twice, or given and online, counts once. A tenant without a root key gets one (online) when
// create is set.
func (s *Service) roots(ctx context.Context, tx store.Tx, tenantID string, given [][]byte, create bool) (*rootSet, error) {
	if len(given) > MaxRootKeys*2 {
		return nil, fmt.Errorf("%w: %d keys given; at most %d", ErrBadKey, len(given), MaxRootKeys*2)
	}
	keys, err := tx.ListSigningKeys(ctx, tenantID, KeyRoot)
	if err != nil {
		return nil, err
	}
	set := &rootSet{signers: map[string]*ecdsa.PrivateKey{}}
	for _, k := range keys {
		if k.RevokedAt.IsZero() {
			set.recs = append(set.recs, k)
		}
	}
	if len(set.recs) == 0 {
		if !create {
			return nil, fmt.Errorf("tenant %s has no root key: %w", tenantID, store.ErrNotFound)
		}
		if _, err := s.key(ctx, tx, tenantID, KeyRoot, true); err != nil {
			return nil, err
		}
		if set.recs, err = tx.ListSigningKeys(ctx, tenantID, KeyRoot); err != nil {
			return nil, err
		}
	}
	if len(set.recs) > MaxRootKeys {
		return nil, fmt.Errorf("tenant %s has %d current root keys; at most %d", tenantID, len(set.recs), MaxRootKeys)
	}
	for _, rec := range set.recs {
		pub, err := x509.ParsePKIXPublicKey(rec.PublicDER)
		if err != nil {
			return nil, fmt.Errorf("root key %s: %w", rec.ID, err)
		}
		set.pubs = append(set.pubs, pub)
		if rec.KeyCiphertext != nil {
			k, err := s.sealer.Open(rec.ID, rec.KeyCiphertext)
			if err != nil {
				return nil, err
			}
			set.signers[rec.ID] = k
		}
	}
	for i, b := range given {
		k, err := parseKey(b)
		if err != nil {
			return nil, fmt.Errorf("root key %d given: %w", i+1, err)
		}
		id, err := imagepkg.KeyID(&k.PublicKey)
		if err != nil {
			return nil, err
		}
		if !set.current(id) {
			return nil, fmt.Errorf("key %s is %w (%s)", id, ErrNotRootKey, strings.Join(set.ids(), ", "))
		}
		if _, ok := set.signers[id]; !ok {
			set.signers[id] = k
			set.given++
		}
	}
	if set.threshold, err = s.rootThreshold(ctx, tx, tenantID); err != nil {
		return nil, err
	}
	if set.threshold > len(set.recs) {
		return nil, fmt.Errorf("tenant %s: the root threshold %d is above its %d root keys", tenantID, set.threshold, len(set.recs))
	}
	return set, nil
}

func (r *rootSet) current(id string) bool {
	for _, rec := range r.recs {
		if rec.ID == id {
			return true
		}
	}
	return false
}

func (r *rootSet) ids() []string {
	out := make([]string, len(r.recs))
	for i, rec := range r.recs {
		out[i] = rec.ID
	}
	return out
}

// online counts the root keys the service holds.
func (r *rootSet) online() int {
	n := 0
	for _, rec := range r.recs {
		if rec.KeyCiphertext != nil {
			n++
		}
	}
	return n
}

// role is the root role these keys make.
func (r *rootSet) role() tufrepo.RoleKeys {
	return tufrepo.RoleKeys{Keys: r.pubs, Threshold: r.threshold}
}

// sign returns the signers at hand when they meet the threshold, in key order; else an error
// wrapping ErrBelowThreshold and store.ErrConflict that says how many were at hand and needed.
func (r *rootSet) sign() ([]crypto.Signer, error) {
	var out []crypto.Signer
	for _, rec := range r.recs {
		if k, ok := r.signers[rec.ID]; ok {
			out = append(out, k)
		}
	}
	if len(out) < r.threshold {
		return nil, fmt.Errorf("%w: %d of the tenant's %d root keys given or online (%d online, %d given), %d needed; the others are offline: pass them with --root-key: %w",
			ErrBelowThreshold, len(out), len(r.recs), r.online(), r.given, r.threshold, store.ErrConflict)
	}
	return out, nil
}

// signOnline returns the online signers when they meet the threshold; else an error wrapping
// ErrRootOffline.
func (r *rootSet) signOnline() ([]crypto.Signer, error) {
	var out []crypto.Signer
	for _, rec := range r.recs {
		if rec.KeyCiphertext != nil {
			out = append(out, r.signers[rec.ID])
		}
	}
	if len(out) < r.threshold {
		return nil, fmt.Errorf("%w: %d of the tenant's %d root keys are online, %d needed: import them with 'rampart keys import-root': %w",
			ErrRootOffline, len(out), len(r.recs), r.threshold, store.ErrConflict)
	}
	return out, nil
}

// rootThreshold is the root threshold of the tenant's newest root (the image repository's, else
// the first repository's); 1 for a tenant without a repository.
func (s *Service) rootThreshold(ctx context.Context, tx store.Tx, tenantID string) (int, error) {
	repos := []string{store.TUFImages}
	m, err := tx.GetTUFMetadata(ctx, tenantID, store.TUFImages, store.TUFRoot, 0)
	if errors.Is(err, store.ErrNotFound) {
		if repos, err = s.repositories(ctx, tx, tenantID); err != nil {
			return 0, err
		}
		if len(repos) == 0 {
			return 1, nil
		}
		m, err = tx.GetTUFMetadata(ctx, tenantID, repos[0], store.TUFRoot, 0)
	}
	if err != nil {
		return 0, fmt.Errorf("the root of %s: %w", repos[0], err)
	}
	var root struct {
		Signed struct {
			Roles map[string]struct {
				Threshold int `json:"threshold"`
			} `json:"roles"`
		} `json:"signed"`
	}
	if err := json.Unmarshal(m.Body, &root); err != nil {
		return 0, fmt.Errorf("the root of %s: %w", repos[0], err)
	}
	k := root.Signed.Roles[tufrepo.RoleRoot].Threshold
	if k < 1 || k > MaxRootKeys {
		return 0, fmt.Errorf("the root of %s has root threshold %d", repos[0], k)
	}
	return k, nil
}
