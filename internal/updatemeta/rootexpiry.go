package updatemeta

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/rampart-iot/rampart/internal/store"
)

// A root nearing expiry would strand the fleet: a device refuses every metadata file once the
// newest root it can reach has expired. The service re-signs a root that has less than
// RootRenewFraction of its lifetime left, with the same keys and a fresh expiry, when the
// tenant's root key is online. When the key is offline it cannot, and says so (RenewRoots
// returns those roots; the server logs them and RootStatus shows them) until someone runs
// `rampart keys rotate-root --root-key FILE`.

// RootRenewFraction is the share of a root's lifetime left when it is renewed (a year's root:
// about three months before it expires).
const RootRenewFraction = 4

// RootDue is a repository root that expires within the renewal window and could not be
// renewed because the tenant's root key is offline.
type RootDue struct {
	TenantID   string
	Repository string
	Version    int64
	Expires    time.Time
}

// RenewRoots re-signs, each in its own transaction, every repository root with less than
// 1/RootRenewFraction of the root lifetime left (at most limit), when the tenant's root key is
// online: root version N+1 lists the same keys and is signed by the same root key, so devices
// follow it as they follow a rotation. It returns how many it renewed, and the roots it could
// not renew because their key is offline, soonest first.
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
			key, err := s.key(ctx, tx, m.TenantID, KeyRoot, false)
			if err != nil {
				return err
			}
			_, err = s.rotateRepository(ctx, tx, m.TenantID, m.Repository, key, key, s.now())
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
	// KeyID is the current root key's ID, "" if the tenant has no repository yet; Online says
	// whether the service holds its private half.
	KeyID  string
	Online bool
	// RenewBefore is how long before its expiry a root is renewed (online) or reported
	// (offline).
	RenewBefore  time.Duration
	Repositories []RepositoryRoot
}

// RepositoryRoot is one repository's newest root.
type RepositoryRoot struct {
	Repository string
	Version    int64
	Expires    time.Time
}

// RootStatus reports the tenant's root key and every repository's newest root, soonest expiry
// first.
func (s *Service) RootStatus(ctx context.Context, tx store.Tx, tenantID string) (RootStatus, error) {
	out := RootStatus{RenewBefore: s.lifetimesWithDefaults().Root / RootRenewFraction, Repositories: []RepositoryRoot{}}
	keys, err := tx.ListSigningKeys(ctx, tenantID, KeyRoot)
	if err != nil {
		return RootStatus{}, err
	}
	for i := len(keys) - 1; i >= 0; i-- {
		if keys[i].RevokedAt.IsZero() {
			out.KeyID, out.Online = keys[i].ID, keys[i].KeyCiphertext != nil
			break
		}
	}
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
