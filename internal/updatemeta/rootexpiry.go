package updatemeta

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/rampart-iot/rampart/internal/store"
	"github.com/rampart-iot/rampart/internal/tufrepo"
)

// A root nearing expiry would strand the fleet: a device refuses every metadata file once the
// newest root it can reach has expired. The service re-signs a root that has less than
// RootRenewFraction of its lifetime left, with the same keys and a fresh expiry, when a
// threshold of the tenant's root keys is online. When fewer are online it cannot, and says so
// (RenewRoots returns those roots; the server logs them and RootStatus shows them) until someone
// runs `rampart keys rotate-root --root-key FILE ...` with a threshold of the keys.

// RootRenewFraction is the share of a root's lifetime left when it is renewed (a year's root:
// about three months before it expires).
const RootRenewFraction = tufrepo.RootRenewFraction

// RootDue is a repository root that expires within the renewal window and could not be
// renewed because fewer than a threshold of the tenant's root keys are online.
type RootDue struct {
	TenantID   string
	Repository string
	Version    int64
	Expires    time.Time
}

// RenewRoots re-signs, each in its own transaction, every repository root with less than
// 1/RootRenewFraction of the root lifetime left (at most limit), when a threshold of the tenant's
// root keys is online: root version N+1 lists the same keys and threshold and is signed by the
// online root keys, so devices follow it as they follow a rotation. It returns how many it
// renewed, and the roots it could not renew because too few of their keys are online, soonest
// first.
func (s *Service) RenewRoots(ctx context.Context, st store.Store, limit int) (int, []RootDue, error) {
	lt := s.lifetimesWithDefaults()
	now := s.now()
	due, err := st.ListTUFExpiring(ctx, store.TUFRoot, now.Add(lt.Root/RootRenewFraction), limit)
	if err != nil {
		return 0, nil, err
	}
	n := 0
	var offline []RootDue
	var errs []error
	for _, m := range due {
		err := st.Update(ctx, func(tx store.Tx) error {
			set, err := s.roots(ctx, tx, m.TenantID, nil, false)
			if err != nil {
				return err
			}
			signers, err := set.signOnline()
			if err != nil {
				return err
			}
			_, err = s.rotateRepository(ctx, tx, m.TenantID, m.Repository, set.role(), signers, signers, s.now())
			return err
		})
		switch {
		case err == nil:
			n++
		case errors.Is(err, ErrRootOffline):
			offline = append(offline, RootDue{TenantID: m.TenantID, Repository: m.Repository, Version: m.Version, Expires: m.ExpiresAt})
		case errors.Is(err, store.ErrConflict): // another replica renewed it first
		default:
			errs = append(errs, fmt.Errorf("renewing the root of %s of tenant %s: %w", m.Repository, m.TenantID, err))
		}
	}
	return n, offline, errors.Join(errs...)
}

// RootStatus is the state of a tenant's update-metadata root.
type RootStatus struct {
	// Keys are the current root keys, oldest first (none before the tenant's first
	// repository), and Threshold how many of them must sign a root.
	Keys      []RootKey
	Threshold int
	// Online says whether a threshold of the keys is online: only then does the service renew
	// roots and make new repositories.
	Online bool
	// RenewBefore is how long before its expiry a root is renewed (online) or reported
	// (offline).
	RenewBefore  time.Duration
	Repositories []RepositoryRoot
}

// RootKey is one current root key: its ID in the service (SHA-256 of the DER public key), its
// ID in TUF metadata (root.json's keyids), and whether the service holds its private half.
type RootKey struct {
	ID, TUFKeyID string
	Online       bool
}

// RepositoryRoot is one repository's newest root.
type RepositoryRoot struct {
	Repository string
	Version    int64
	Expires    time.Time
}

// RootStatus reports the tenant's root keys and threshold and every repository's newest root,
// soonest expiry first.
func (s *Service) RootStatus(ctx context.Context, tx store.Tx, tenantID string) (RootStatus, error) {
	out := RootStatus{RenewBefore: s.lifetimesWithDefaults().Root / RootRenewFraction, Keys: []RootKey{}, Repositories: []RepositoryRoot{}}
	keys, err := tx.ListSigningKeys(ctx, tenantID, KeyRoot)
	if err != nil {
		return RootStatus{}, err
	}
	online := 0
	for _, k := range keys {
		if k.RevokedAt.IsZero() {
			pub, err := x509.ParsePKIXPublicKey(k.PublicDER)
			if err != nil {
				return RootStatus{}, fmt.Errorf("root key %s: %w", k.ID, err)
			}
			tufID, err := tufrepo.KeyID(pub)
			if err != nil {
				return RootStatus{}, fmt.Errorf("root key %s: %w", k.ID, err)
			}
			out.Keys = append(out.Keys, RootKey{ID: k.ID, TUFKeyID: tufID, Online: k.KeyCiphertext != nil})
			if k.KeyCiphertext != nil {
				online++
			}
		}
	}
	if out.Threshold, err = s.rootThreshold(ctx, tx, tenantID); err != nil {
		return RootStatus{}, err
	}
	out.Online = len(out.Keys) > 0 && online >= out.Threshold
	repos, err := s.repositories(ctx, tx, tenantID)
	if err != nil {
		return RootStatus{}, err
	}
	for _, repo := range repos {
		m, err := tx.GetTUFMetadata(ctx, tenantID, repo, store.TUFRoot, 0)
		if err != nil {
			return RootStatus{}, fmt.Errorf("the root of %s: %w", repo, err)
		}
		out.Repositories = append(out.Repositories, RepositoryRoot{Repository: repo, Version: m.Version, Expires: m.ExpiresAt})
	}
	sort.SliceStable(out.Repositories, func(i, j int) bool {
		return out.Repositories[i].Expires.Before(out.Repositories[j].Expires)
	})
	return out, nil
}
