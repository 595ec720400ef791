package netpolicy

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// lookup answers the DNS answerer: the addresses of an allowed name, resolving it (and adding
// its addresses to the allowed set) unless it was resolved less than a Refresh ago.
func (a *appNet) lookup(ctx context.Context, name string) ([]netip.Addr, error) {
	now := a.m.cfg.Now()
	a.mu.Lock()
	ns, known := a.names[name]
	if known && ns.learned {
		ns.asked = now
	}
	fresh := known && !ns.resolved.IsZero() && now.Sub(ns.resolved) < a.m.cfg.Refresh
	a.mu.Unlock()
	if !fresh {
		if !known {
			a.mu.Lock()
			a.learn(name, now)
			a.mu.Unlock()
		}
		a.resolve(ctx, name)
		a.mu.Lock()
		err := a.sync()
		a.mu.Unlock()
		if err != nil {
			a.m.log.Warn("updating allowed addresses", "app", a.name, "err", err)
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	ns, ok := a.names[name]
	if !ok {
		return nil, nil
	}
	// The addresses seen in the last resolution first; older ones still allowed after.
	var out []netip.Addr
	for ad, seen := range ns.addrs {
		if seen.Equal(ns.resolved) {
			out = append(out, ad)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out, nil
}

// learn records a name allowed by a wildcard, forgetting the least recently asked one beyond
// MaxNames. a.mu is held.
func (a *appNet) learn(name string, now time.Time) {
	var learned []string
	for n, s := range a.names {
		if s.learned {
			learned = append(learned, n)
		}
	}
	if len(learned) >= a.m.cfg.MaxNames {
		slices.SortFunc(learned, func(x, y string) int { return a.names[x].asked.Compare(a.names[y].asked) })
		for _, n := range learned[:len(learned)-a.m.cfg.MaxNames+1] {
			delete(a.names, n)
		}
	}
	a.names[name] = &nameState{learned: true, asked: now, addrs: map[netip.Addr]time.Time{}}
}

// lookupsInFlight bounds the resolutions one application's refresh runs at once: all of them
// take at most about LookupTimeout × ceil(names / lookupsInFlight).
const lookupsInFlight = 16

// resolveAll resolves names, several at a time.
func (a *appNet) resolveAll(ctx context.Context, names []string) {
	sem := make(chan struct{}, lookupsInFlight)
	var wg sync.WaitGroup
	for _, n := range names {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if ctx.Err() == nil {
				a.resolve(ctx, n)
			}
		}()
	}
	wg.Wait()
}

// resolve resolves one name and records its addresses (at most maxAnswers of them). It does
// not touch the ruleset.
func (a *appNet) resolve(ctx context.Context, name string) {
	ctx, cancel := context.WithTimeout(ctx, a.m.cfg.LookupTimeout)
	defer cancel()
	addrs, err := a.m.cfg.Resolver.LookupNetIP(ctx, "ip4", name)
	now := a.m.cfg.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	ns, ok := a.names[name]
	if !ok {
		return // forgotten meanwhile
	}
	if err != nil {
		a.m.log.Warn("resolving an allowed name", "app", a.name, "name", name, "err", err)
		return
	}
	ns.resolved = now
	for _, ad := range addrs[:min(len(addrs), maxAnswers)] {
		ad = ad.Unmap()
		if ad.Is4() {
			ns.addrs[ad] = now
		}
	}
}

// wanted is what the allowed set should hold now: the manifest's addresses and every resolved
// address seen within the last two Refresh periods. It forgets older ones. a.mu is held.
func (a *appNet) wanted() []netip.Addr {
	limit := a.m.cfg.Now().Add(-2 * a.m.cfg.Refresh)
	out := slices.Clone(a.pol.Addrs)
	for _, ns := range a.names {
		for ad, seen := range ns.addrs {
			if seen.Before(limit) {
				delete(ns.addrs, ad)
				continue
			}
			out = append(out, ad)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

// sync brings the allowed set to wanted(). a.mu is held.
func (a *appNet) sync() error {
	if a.down {
		return nil // the namespace's descriptor is closed, its number maybe reused
	}
	want := a.wanted()
	var add, del []netip.Addr
	for _, ad := range want {
		if _, ok := slices.BinarySearchFunc(a.inSet, ad, netip.Addr.Compare); !ok {
			add = append(add, ad)
		}
	}
	for _, ad := range a.inSet {
		if _, ok := slices.BinarySearchFunc(want, ad, netip.Addr.Compare); !ok {
			del = append(del, ad)
		}
	}
	if len(add) == 0 && len(del) == 0 {
		return nil
	}
	if err := updateAllowed(a.nft, add, del); err != nil {
		return err
	}
	a.inSet = want
	return nil
}

// refreshLoop resolves every name again each Refresh until ctx ends.
func (a *appNet) refreshLoop(ctx context.Context) {
	defer close(a.done)
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.m.cfg.After(a.m.cfg.Refresh):
		}
		a.refresh(ctx)
	}
}

// refresh resolves every name again and updates the allowed set.
func (a *appNet) refresh(ctx context.Context) {
	a.mu.Lock()
	names := make([]string, 0, len(a.names))
	for n := range a.names {
		names = append(names, n)
	}
	a.mu.Unlock()
	slices.Sort(names)
	a.resolveAll(ctx, names)
	a.mu.Lock()
	defer a.mu.Unlock()
	if ctx.Err() != nil {
		return
	}
	if err := a.sync(); err != nil {
		a.m.log.Warn("updating allowed addresses", "app", a.name, "err", err)
	}
}
