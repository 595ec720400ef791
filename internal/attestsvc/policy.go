package attestsvc

import (
	"sync"

	"github.com/rampart-iot/rampart/internal/attest"
	"github.com/rampart-iot/rampart/internal/store"
)

// policyCache keeps, per tenant, the OS releases and device groups attestation reads, as of a
// policy generation (store.AttestationTx.PolicyGeneration). The generation is read with the
// device on every attestation, and every release or group write raises it in its own
// transaction, so a copy is used only while nothing it holds has changed: a release added,
// published, withdrawn or deleted, or a group changed, takes effect at the next attestation
// on every replica.
//
// A copy is filled from reads made after its generation was read, so it is never older than
// its generation says; if a write slipped in between, the generation has moved on and the
// next attestation reads again.
type policyCache struct {
	mu sync.Mutex
	m  map[string]*policy
}

// maxCachedTenants bounds the cache; when full it starts over.
const maxCachedTenants = 1 << 12

// get returns the tenant's policy as of generation gen: the cached one if it is of gen, else
// an empty one that, once filled, replaces it (unless a newer one did first).
func (c *policyCache) get(tenantID string, gen int64) *policy {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p, ok := c.m[tenantID]; ok && p.gen == gen {
		return p
	}
	p := &policy{gen: gen}
	if old, ok := c.m[tenantID]; ok && old.gen > gen {
		return p // read before a newer copy was made: used once, not kept
	}
	if c.m == nil || len(c.m) >= maxCachedTenants {
		c.m = map[string]*policy{}
	}
	c.m[tenantID] = p
	return p
}

// policy is one tenant's releases and groups as of one generation, filled as attestations
// read them.
type policy struct {
	gen int64

	mu     sync.Mutex
	all    []store.OSRelease // nil until read
	read   bool
	byFeed map[store.OSFeed]feedReleases
	groups map[string]store.DeviceGroup
}

// feedReleases are the releases for the devices of groups that follow one feed, and the
// withdrawn releases, acceptable only to devices that already passed with them.
type feedReleases struct {
	releases  []attest.Release
	withdrawn map[string]attest.Release
}

// hasReleases reports whether the tenant's releases were read.
func (p *policy) hasReleases() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.read
}

// setReleases keeps the tenant's releases, unless another attestation kept them first.
func (p *policy) setReleases(all []store.OSRelease) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.read {
		p.all, p.read = all, true
	}
}

// forFeed returns the releases for groups that follow feed, and the withdrawn ones, computed
// once per feed after setReleases. The results are shared and must not be changed.
func (p *policy) forFeed(feed store.OSFeed) ([]attest.Release, map[string]attest.Release) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if f, ok := p.byFeed[feed]; ok {
		return f.releases, f.withdrawn
	}
	var f feedReleases
	for _, r := range p.all {
		a := attest.Release{ID: r.ID, Version: r.Version, Measurements: r.Measurements, SecurityVersion: r.SecurityVersion}
		if r.For(feed) {
			f.releases = append(f.releases, a)
		} else if r.Feed == store.FeedWithdrawn {
			if f.withdrawn == nil {
				f.withdrawn = map[string]attest.Release{}
			}
			f.withdrawn[r.ID] = a
		}
	}
	if p.byFeed == nil {
		p.byFeed = map[store.OSFeed]feedReleases{}
	}
	p.byFeed[feed] = f
	return f.releases, f.withdrawn
}

func (p *policy) group(id string) (store.DeviceGroup, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	g, ok := p.groups[id]
	return g, ok
}

func (p *policy) setGroup(g store.DeviceGroup) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.groups == nil {
		p.groups = map[string]store.DeviceGroup{}
	}
	p.groups[g.ID] = g
}
