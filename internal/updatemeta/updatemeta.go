// Package updatemeta keeps the service's signed update metadata current: each tenant's image
// repository (every image it released) and each device group's director repository (exactly
// the group's current deployment, after its update policy), both made by internal/tufrepo. It
// publishes inside the caller's store transaction, so metadata and the change it describes
// commit together; it renews metadata before it expires; and it serves the stored files to
// devices by TUF file name.
//
// Keys: each tenant has n root keys and a threshold k (the root role of all its repositories,
// 1 <= k <= n <= MaxRootKeys), each of which can be taken offline (ExportRoot) and brought back
// (ImportRoot); RotateRoot replaces them (also with the keys offline, given for one request).
// While fewer than k are online, no new repository can be made and roots are not renewed. Each
// repository has one online key that signs its targets, snapshot and timestamp roles. Keys are ECDSA P-256, kept in the store sealed under the
// service's key-encryption key (internal/keyseal). Because every repository has its own online
// keys, a device that trusts its group's director refuses another group's.
//
// Trust: it trusts the store, the sealer and its callers, who authorize.
package updatemeta

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/rampart-iot/rampart/imagepkg"
	"github.com/rampart-iot/rampart/internal/keyseal"
	"github.com/rampart-iot/rampart/internal/store"
	"github.com/rampart-iot/rampart/internal/tufrepo"
)

// Key purposes in the store.
const (
	KeyRoot         = "tuf-root"    // a tenant's root key
	KeyOnlinePrefix = "tuf-online:" // + repository: a repository's online key
)

// Errors.
var (
	// ErrRootOffline means fewer than a threshold of the tenant's root keys are online (the
	// others were exported); import them to make repositories and renew roots.
	ErrRootOffline = errors.New("too few of the tenant's update-metadata root keys are online")
	// ErrNoFile means a device asked for metadata that does not exist.
	ErrNoFile = errors.New("no such metadata file")
	// ErrBadKey means a key to import is not an ECDSA P-256 private key in PKCS #8 PEM.
	ErrBadKey = errors.New("not an ECDSA P-256 private key in PKCS #8 PEM")
)

// Config configures a Service.
type Config struct {
	Sealer    *keyseal.Sealer
	Lifetimes tufrepo.Lifetimes // zero fields take tufrepo's defaults
	Now       func() time.Time  // default time.Now
	Rand      io.Reader         // default crypto/rand
}

// Service publishes, renews and serves update metadata. It is safe for concurrent use.
type Service struct {
	sealer    *keyseal.Sealer
	lifetimes tufrepo.Lifetimes
	now       func() time.Time
	rand      io.Reader
}

// New returns a Service.
func New(cfg Config) *Service {
	s := &Service{sealer: cfg.Sealer, lifetimes: cfg.Lifetimes, now: cfg.Now, rand: cfg.Rand}
	if s.now == nil {
		s.now = time.Now
	}
	if s.rand == nil {
		s.rand = rand.Reader
	}
	return s
}

// DirectorRepository is the store's name of a group's director repository.
func DirectorRepository(groupID string) string { return store.TUFDirectorPrefix + groupID }

// PublishImages publishes the tenant's image repository listing every image it has, within tx.
func (s *Service) PublishImages(ctx context.Context, tx store.Tx, tenantID string) error {
	targets, err := imageTargets(ctx, tx, tenantID)
	if err != nil {
		return err
	}
	return s.publish(ctx, tx, tenantID, store.TUFImages, targets)
}

// imageTargets lists every image of the tenant.
func imageTargets(ctx context.Context, tx store.Tx, tenantID string) ([]tufrepo.Target, error) {
	var targets []tufrepo.Target
	opt := store.ListOptions{Limit: 1000}
	for {
		page, err := tx.ListImages(ctx, tenantID, store.ImageFilter{}, opt)
		if err != nil {
			return nil, fmt.Errorf("listing the tenant's images: %w", err)
		}
		for _, img := range page.Items {
			targets = append(targets, target(img))
		}
		if page.Next == "" {
			return targets, nil
		}
		opt.After = page.Next
	}
}

// PublishDirector publishes the group's director repository, within tx: its current
// deployment's images after the group's update policy (No3rdPartyAppUpdates: no applications),
// and, when the deployment names no OS image, the newest OS image published to a feed the
// group follows (Retail for every group, RetailEval for groups that follow it). A group with
// neither gets no repository until it has one.
//
// While the group has an active rollout, it also publishes the held director
// (HeldDirectorRepository): the same for the rollout's previous deployment, which devices not
// yet released are served. Both share the group's root and online key, so a device trusts
// either without switching roots, and both are published together from the same versions,
// each role one version above what either had: a device that moves from one to the other
// always sees its versions go forward, and never a file it would take for a rollback.
func (s *Service) PublishDirector(ctx context.Context, tx store.Tx, tenantID, groupID string) error {
	g, err := tx.GetDeviceGroup(ctx, tenantID, groupID)
	if err != nil {
		return err
	}
	var current *store.Deployment
	d, err := tx.CurrentDeployment(ctx, tenantID, groupID)
	switch {
	case err == nil:
		current = &d
	case !errors.Is(err, store.ErrNotFound):
		return err
	}
	targets, err := directorTargets(ctx, tx, g, current)
	if err != nil {
		return err
	}
	var held []tufrepo.Target
	ro, err := tx.ActiveRollout(ctx, tenantID, groupID)
	switch {
	case err == nil:
		prev, err := tx.GetDeployment(ctx, tenantID, ro.PreviousDeploymentID)
		if err != nil {
			return fmt.Errorf("the previous deployment of rollout %s: %w", ro.DeploymentID, err)
		}
		if held, err = directorTargets(ctx, tx, g, &prev); err != nil {
			return err
		}
	case !errors.Is(err, store.ErrNotFound):
		return err
	}
	repo := DirectorRepository(groupID)
	if len(targets) == 0 && held == nil {
		if _, err := tx.GetTUFMetadata(ctx, tenantID, repo, store.TUFRoot, 1); errors.Is(err, store.ErrNotFound) {
			return nil // nothing to say yet
		}
	}
	online, err := s.online(ctx, tx, tenantID, repo)
	if err != nil {
		return err
	}
	old, err := s.loadOrInit(ctx, tx, tenantID, repo, online)
	if err != nil {
		return err
	}
	heldRepo := HeldDirectorRepository(groupID)
	oldHeld, err := load(ctx, tx, tenantID, heldRepo)
	if err != nil {
		return err
	}
	base, err := catchUp(online, old.state, oldHeld, targets, s.now())
	if err != nil {
		return fmt.Errorf("publishing repository %s: %w", repo, err)
	}
	next, err := online.Publish(base, targets, s.now())
	if err != nil {
		return fmt.Errorf("publishing repository %s: %w", repo, err)
	}
	if err := save(ctx, tx, tenantID, repo, old.stored, next, s.now()); err != nil {
		return err
	}
	if held == nil {
		return nil
	}
	nextHeld, err := online.Publish(base, held, s.now())
	if err != nil {
		return fmt.Errorf("publishing repository %s: %w", heldRepo, err)
	}
	return save(ctx, tx, tenantID, heldRepo, oldHeld, nextHeld, s.now())
}

// HeldDirectorRepository is the store's name of the director a group's devices not yet
// released by its active rollout are served: the rollout's previous deployment.
func HeldDirectorRepository(groupID string) string { return DirectorRepository(groupID) + heldSuffix }

const heldSuffix = "/held"

// catchUp returns s, published again as often as needed so that no role of it has a lower
// version than the same role of other (nil: none). The states in between are never stored, so
// what they list does not matter: targets.
func catchUp(online *tufrepo.Online, s, other *tufrepo.State, targets []tufrepo.Target, now time.Time) (*tufrepo.State, error) {
	if other == nil {
		return s, nil
	}
	os, err := other.Status()
	if err != nil {
		return nil, err
	}
	for range 1 << 20 {
		st, err := s.Status()
		if err != nil {
			return nil, err
		}
		if st.Targets.Version >= os.Targets.Version && st.Snapshot.Version >= os.Snapshot.Version && st.Timestamp.Version >= os.Timestamp.Version {
			return s, nil
		}
		if s, err = online.Publish(s, targets, now); err != nil {
			return nil, err
		}
	}
	return nil, errors.New("versions do not catch up")
}

// directorTargets lists a deployment's images (nil: none) after the group's update policy,
// and the group's feed OS image when the deployment names no OS image.
func directorTargets(ctx context.Context, tx store.Tx, g store.DeviceGroup, d *store.Deployment) ([]tufrepo.Target, error) {
	targets := []tufrepo.Target{}
	hasOS := false
	if d != nil {
		for _, id := range d.ImageIDs {
			img, err := tx.GetImage(ctx, g.TenantID, id)
			if err != nil {
				return nil, fmt.Errorf("deployment %s: %w", d.ID, err)
			}
			hasOS = hasOS || img.Kind == store.ImageOS
			if g.UpdatePolicy == store.No3rdPartyAppUpdates && img.Kind == store.ImageApplication {
				continue
			}
			targets = append(targets, target(img))
		}
	}
	if !hasOS {
		img, ok, err := feedOS(ctx, tx, g.TenantID, g.OSFeed)
		if err != nil {
			return nil, err
		}
		if ok {
			targets = append(targets, target(img))
		}
	}
	return targets, nil
}

// feedOS is the OS image of the newest release published to a feed a group following
// groupFeed takes, if any.
func feedOS(ctx context.Context, tx store.Tx, tenantID string, groupFeed store.OSFeed) (store.Image, bool, error) {
	var best *store.OSRelease
	var bestV imagepkg.Version
	opt := store.ListOptions{Limit: store.MaxLimit}
	for {
		page, err := tx.ListOSReleases(ctx, tenantID, opt)
		if err != nil {
			return store.Image{}, false, err
		}
		for _, r := range page.Items {
			if r.ImageID == "" || r.Feed == store.FeedManual || !r.For(groupFeed) {
				continue
			}
			v, err := imagepkg.ParseVersion(r.Version)
			if err != nil {
				continue
			}
			if best == nil || v.Compare(bestV) > 0 {
				best, bestV = &r, v
			}
		}
		if page.Next == "" {
			break
		}
		opt.After = page.Next
	}
	if best == nil {
		return store.Image{}, false, nil
	}
	img, err := tx.GetImage(ctx, tenantID, best.ImageID)
	if err != nil {
		return store.Image{}, false, fmt.Errorf("OS release %s: %w", best.Version, err)
	}
	return img, true, nil
}

func target(img store.Image) tufrepo.Target {
	t := tufrepo.Target{ComponentID: img.ComponentID, ImageID: img.ID, Kind: imagepkg.Kind(img.Kind),
		Version: img.Version, Length: img.PackageSize, SHA256: img.PackageSHA256, Development: img.Development}
	if img.Kind == store.ImageOS {
		var md struct {
			Measurements    map[string]string `json:"measurements"`
			SecurityVersion uint64            `json:"security_version"`
		}
		if json.Unmarshal(img.Metadata, &md) == nil {
			t.Measurement, t.SecurityVersion = md.Measurements[imagepkg.MeasurementOSBundle], md.SecurityVersion
		}
	}
	return t
}

// publish makes the repository if it has none, then publishes targets.
func (s *Service) publish(ctx context.Context, tx store.Tx, tenantID, repository string, targets []tufrepo.Target) error {
	online, err := s.online(ctx, tx, tenantID, repository)
	if err != nil {
		return err
	}
	cur, err := s.loadOrInit(ctx, tx, tenantID, repository, online)
	if err != nil {
		return err
	}
	next, err := online.Publish(cur.state, targets, s.now())
	if err != nil {
		return fmt.Errorf("publishing repository %s: %w", repository, err)
	}
	return save(ctx, tx, tenantID, repository, cur.stored, next, s.now())
}

// loaded is a repository's state: as stored (nil if none), and that or a new one.
type loaded struct{ stored, state *tufrepo.State }

// loadOrInit loads a repository, or makes a new one (not yet stored) if it has none.
func (s *Service) loadOrInit(ctx context.Context, tx store.Tx, tenantID, repository string, online *tufrepo.Online) (loaded, error) {
	old, err := load(ctx, tx, tenantID, repository)
	if err != nil || old != nil {
		return loaded{old, old}, err
	}
	set, err := s.roots(ctx, tx, tenantID, nil, true)
	if err != nil {
		return loaded{}, err
	}
	signers, err := set.signOnline()
	if err != nil {
		return loaded{}, err
	}
	cur, err := s.initState(online, set, signers, repository)
	if err != nil {
		return loaded{}, err
	}
	return loaded{nil, cur}, nil
}

// initState makes a repository's first state: the tenant's root keys, signed by signers, and
// its online key.
func (s *Service) initState(online *tufrepo.Online, set *rootSet, signers []crypto.Signer, repository string) (*tufrepo.State, error) {
	one := tufrepo.RoleKeys{Keys: []crypto.PublicKey{online.Targets[0].Public()}, Threshold: 1}
	roles := tufrepo.Roles{Root: set.role(), Targets: one, Snapshot: one, Timestamp: one}
	cur, err := online.Init(roles, signers, s.now())
	if err != nil {
		return nil, fmt.Errorf("making repository %s: %w", repository, err)
	}
	return cur, nil
}

// Renew renews, within tx, the online metadata of one repository that nears expiry. It
// reports whether anything changed.
func (s *Service) Renew(ctx context.Context, tx store.Tx, tenantID, repository string) (bool, error) {
	old, err := load(ctx, tx, tenantID, repository)
	if err != nil || old == nil {
		return false, err
	}
	online, err := s.online(ctx, tx, tenantID, repository)
	if err != nil {
		return false, err
	}
	next, changed, err := online.Renew(old, s.now())
	if err != nil || !changed {
		return false, err
	}
	return true, save(ctx, tx, tenantID, repository, old, next, s.now())
}

// RenewAll renews every repository whose online metadata has less than half its lifetime left,
// each in its own transaction, at most limit of them per role; it returns how many changed.
// The service runs it periodically; replicas may race, and a lost race is harmless (the store
// refuses a version twice).
func (s *Service) RenewAll(ctx context.Context, st store.Store, limit int) (int, error) {
	lt := s.lifetimesWithDefaults()
	now := s.now()
	seen := map[[2]string]bool{}
	n := 0
	var errs []error
	for _, r := range []struct {
		role     string
		lifetime time.Duration
	}{{store.TUFTimestamp, lt.Timestamp}, {store.TUFSnapshot, lt.Snapshot}, {store.TUFTargets, lt.Targets}} {
		due, err := st.ListTUFExpiring(ctx, r.role, now.Add(r.lifetime/2), limit)
		if err != nil {
			return n, err
		}
		for _, m := range due {
			k := [2]string{m.TenantID, m.Repository}
			if seen[k] {
				continue
			}
			seen[k] = true
			var changed bool
			err := st.Update(ctx, func(tx store.Tx) error {
				var err error
				changed, err = s.Renew(ctx, tx, m.TenantID, m.Repository)
				return err
			})
			switch {
			case errors.Is(err, store.ErrConflict): // another replica renewed it first
			case err != nil:
				errs = append(errs, fmt.Errorf("renewing %s of tenant %s: %w", m.Repository, m.TenantID, err))
			case changed:
				n++
			}
		}
	}
	return n, errors.Join(errs...)
}

func (s *Service) lifetimesWithDefaults() tufrepo.Lifetimes {
	lt := s.lifetimes
	for _, f := range []struct {
		d   *time.Duration
		def time.Duration
	}{{&lt.Root, tufrepo.DefaultRootLifetime}, {&lt.Targets, tufrepo.DefaultTargetsLifetime},
		{&lt.Snapshot, tufrepo.DefaultSnapshotLifetime}, {&lt.Timestamp, tufrepo.DefaultTimestampLifetime}} {
		if *f.d <= 0 {
			*f.d = f.def
		}
	}
	return lt
}

// File returns the metadata file a device asks for by name ("root.json", "N.root.json",
// "timestamp.json", "N.snapshot.json", "N.targets.json") from a repository.
func File(ctx context.Context, tx store.Tx, tenantID, repository, name string) ([]byte, error) {
	role, version, ok := parseName(name)
	if !ok {
		return nil, fmt.Errorf("%w: %q is not a metadata file name", ErrNoFile, name)
	}
	m, err := tx.GetTUFMetadata(ctx, tenantID, repository, role, version)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrNoFile, name)
	}
	if err != nil {
		return nil, err
	}
	return m.Body, nil
}

// parseName maps a file name to a role and version (0: the newest).
func parseName(name string) (role string, version int64, ok bool) {
	switch name {
	case tufrepo.RootFile:
		return store.TUFRoot, 0, true
	case tufrepo.TimestampFile:
		return store.TUFTimestamp, 0, true
	}
	vs, rest, ok := strings.Cut(name, ".")
	if !ok || vs == "" || vs[0] == '0' || len(vs) > 18 {
		return "", 0, false
	}
	v, err := strconv.ParseInt(vs, 10, 64)
	if err != nil || v < 1 {
		return "", 0, false
	}
	switch rest {
	case "root.json":
		return store.TUFRoot, v, true
	case "snapshot.json":
		return store.TUFSnapshot, v, true
	case "targets.json":
		return store.TUFTargets, v, true
	}
	return "", 0, false
}

// load reads a repository's State from the store; nil if it has none.
func load(ctx context.Context, tx store.Tx, tenantID, repository string) (*tufrepo.State, error) {
	st := &tufrepo.State{}
	for v := int64(1); ; v++ {
		m, err := tx.GetTUFMetadata(ctx, tenantID, repository, store.TUFRoot, v)
		if errors.Is(err, store.ErrNotFound) {
			break
		}
		if err != nil {
			return nil, err
		}
		st.Roots = append(st.Roots, m.Body)
	}
	if len(st.Roots) == 0 {
		return nil, nil
	}
	for _, r := range []struct {
		role string
		dst  *[]byte
	}{{store.TUFTargets, &st.Targets}, {store.TUFSnapshot, &st.Snapshot}, {store.TUFTimestamp, &st.Timestamp}} {
		m, err := tx.GetTUFMetadata(ctx, tenantID, repository, r.role, 0)
		if err != nil {
			return nil, fmt.Errorf("repository %s: %w", repository, err)
		}
		*r.dst = m.Body
	}
	return st, nil
}

// save stores every role version of next that old did not have.
func save(ctx context.Context, tx store.Tx, tenantID, repository string, old, next *tufrepo.State, now time.Time) error {
	ns, err := next.Status()
	if err != nil {
		return err
	}
	var os tufrepo.Status
	oldRoots := 0
	if old != nil {
		if os, err = old.Status(); err != nil {
			return err
		}
		oldRoots = len(old.Roots)
	}
	at := now.UTC().Truncate(time.Microsecond)
	put := func(role string, st tufrepo.RoleStatus, body []byte) error {
		return tx.PutTUFMetadata(ctx, store.TUFMetadata{TenantID: tenantID, Repository: repository, Role: role,
			Version: st.Version, Body: body, ExpiresAt: st.Expires, CreatedAt: at})
	}
	for i := oldRoots; i < len(next.Roots); i++ {
		st := tufrepo.RoleStatus{Version: int64(i + 1)}
		if i == len(next.Roots)-1 {
			st.Expires = ns.Root.Expires
		}
		if err := put(store.TUFRoot, st, next.Roots[i]); err != nil {
			return err
		}
	}
	for _, r := range []struct {
		role     string
		old, new tufrepo.RoleStatus
		body     []byte
	}{{store.TUFTargets, os.Targets, ns.Targets, next.Targets}, {store.TUFSnapshot, os.Snapshot, ns.Snapshot, next.Snapshot},
		{store.TUFTimestamp, os.Timestamp, ns.Timestamp, next.Timestamp}} {
		if r.new.Version > r.old.Version {
			if err := put(r.role, r.new, r.body); err != nil {
				return err
			}
		}
	}
	return nil
}

// online returns the repository's online signer, made on first use.
func (s *Service) online(ctx context.Context, tx store.Tx, tenantID, repository string) (*tufrepo.Online, error) {
	// A group's held director shares its director's online key (and root).
	k, err := s.key(ctx, tx, tenantID, KeyOnlinePrefix+strings.TrimSuffix(repository, heldSuffix), true)
	if err != nil {
		return nil, err
	}
	signers := []crypto.Signer{k}
	return &tufrepo.Online{Targets: signers, Snapshot: signers, Timestamp: signers, Lifetimes: s.lifetimes}, nil
}

// key returns the newest unrevoked key of a purpose, making one if there is none and create
// is set.
func (s *Service) key(ctx context.Context, tx store.Tx, tenantID, purpose string, create bool) (*ecdsa.PrivateKey, error) {
	keys, err := tx.ListSigningKeys(ctx, tenantID, purpose)
	if err != nil {
		return nil, err
	}
	for i := len(keys) - 1; i >= 0; i-- {
		k := keys[i]
		if !k.RevokedAt.IsZero() {
			continue
		}
		if k.KeyCiphertext == nil {
			return nil, fmt.Errorf("%w (key %s): import it with 'rampart keys import-root': %w", ErrRootOffline, k.ID, store.ErrConflict)
		}
		return s.sealer.Open(k.ID, k.KeyCiphertext)
	}
	if !create {
		return nil, fmt.Errorf("tenant %s has no %s key: %w", tenantID, purpose, store.ErrNotFound)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), s.rand)
	if err != nil {
		return nil, err
	}
	if err := s.storeKey(ctx, tx, tenantID, purpose, key); err != nil {
		return nil, err
	}
	return key, nil
}

func (s *Service) storeKey(ctx context.Context, tx store.Tx, tenantID, purpose string, key *ecdsa.PrivateKey) error {
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
	return tx.CreateSigningKey(ctx, store.SigningKey{ID: id, TenantID: tenantID, Purpose: purpose,
		PublicDER: der, KeyCiphertext: sealed, CreatedAt: s.now().UTC().Truncate(time.Microsecond)})
}

// ExportRoot takes one of the tenant's root keys offline: it returns the private key (PKCS #8
// PEM) and removes it from the store, keeping the public half. keyID names the key; "" means
// the only online one (an error when several are online). Keep the file safe; until a threshold
// of root keys is online again, no new repository (a new group's first deployment) can be made
// and the service cannot renew roots.
func (s *Service) ExportRoot(ctx context.Context, tx store.Tx, tenantID, keyID string) ([]byte, error) {
	set, err := s.roots(ctx, tx, tenantID, nil, true)
	if err != nil {
		return nil, err
	}
	var online []string
	for _, rec := range set.recs {
		if rec.KeyCiphertext != nil {
			online = append(online, rec.ID)
		}
	}
	switch {
	case keyID == "" && len(online) == 0:
		return nil, fmt.Errorf("%w: every root key is offline already: %w", ErrRootOffline, store.ErrConflict)
	case keyID == "" && len(online) > 1:
		return nil, fmt.Errorf("%w: %d root keys are online (%s): name the one to export: %w", ErrBadKey, len(online), strings.Join(online, ", "), store.ErrConflict)
	case keyID == "":
		keyID = online[0]
	case !set.current(keyID):
		return nil, fmt.Errorf("key %s is not one of the tenant's current root keys (%s): %w", keyID, strings.Join(set.ids(), ", "), store.ErrNotFound)
	}
	key, ok := set.signers[keyID]
	if !ok {
		return nil, fmt.Errorf("root key %s is offline already: %w", keyID, store.ErrConflict)
	}
	if err := tx.UpdateSigningKey(ctx, store.SigningKey{ID: keyID, TenantID: tenantID}); err != nil {
		return nil, err
	}
	return encodeKey(key)
}

// encodeKey is a private key in PKCS #8 PEM.
func encodeKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ImportRoot brings an exported root key back: it must be the private half of one of the
// tenant's offline root keys.
func (s *Service) ImportRoot(ctx context.Context, tx store.Tx, tenantID string, keyPEM []byte) error {
	key, err := parseKey(keyPEM)
	if err != nil {
		return err
	}
	id, err := imagepkg.KeyID(&key.PublicKey)
	if err != nil {
		return err
	}
	keys, err := tx.ListSigningKeys(ctx, tenantID, KeyRoot)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if k.ID != id {
			continue
		}
		if !k.RevokedAt.IsZero() {
			return fmt.Errorf("root key %s was revoked (rotated out): %w", id, store.ErrConflict)
		}
		if k.KeyCiphertext != nil {
			return fmt.Errorf("root key %s is already online: %w", id, store.ErrConflict)
		}
		sealed, err := s.sealer.Seal(id, key)
		if err != nil {
			return err
		}
		return tx.UpdateSigningKey(ctx, store.SigningKey{ID: id, TenantID: tenantID, KeyCiphertext: sealed})
	}
	return fmt.Errorf("key %s is not one of the tenant's root keys: %w", id, store.ErrNotFound)
}

// DirectorFor is the director repository a device of a group is served, and the deployment it
// lists: the held director and the rollout's previous deployment while the group's active
// rollout has not released the device (devices that joined the group after the rollout began
// are held too), otherwise the group's director and "" (its current deployment).
func DirectorFor(ctx context.Context, tx store.Tx, tenantID, groupID, deviceID string) (repository, deploymentID string, err error) {
	repo := DirectorRepository(groupID)
	r, err := tx.ActiveRollout(ctx, tenantID, groupID)
	if errors.Is(err, store.ErrNotFound) {
		return repo, "", nil
	}
	if err != nil {
		return "", "", err
	}
	d, err := tx.GetRolloutDevice(ctx, tenantID, r.DeploymentID, deviceID)
	switch {
	case err == nil && !d.ReleasedAt.IsZero():
		return repo, "", nil
	case err == nil || errors.Is(err, store.ErrNotFound):
		return HeldDirectorRepository(groupID), r.PreviousDeploymentID, nil
	}
	return "", "", err
}
