package updatemeta

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/rampart-iot/rampart/imagepkg"
	"github.com/rampart-iot/rampart/internal/store"
	"github.com/rampart-iot/rampart/internal/tufrepo"
)

// holders are root-key holders who keep their keys to themselves.
func holders(t *testing.T, n int) []*ecdsa.PrivateKey {
	t.Helper()
	var out []*ecdsa.PrivateKey
	for range n {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		must(t, err)
		out = append(out, k)
	}
	return out
}

func publics(keys []*ecdsa.PrivateKey) []crypto.PublicKey {
	var out []crypto.PublicKey
	for _, k := range keys {
		out = append(out, &k.PublicKey)
	}
	return out
}

// signAll is each key's detached signature over every prepared root.
func signAll(t *testing.T, roots []PreparedRoot, keys ...*ecdsa.PrivateKey) []RootSignature {
	t.Helper()
	var out []RootSignature
	for _, r := range roots {
		for _, k := range keys {
			id, sig, err := tufrepo.SignRoot(r.Root, k)
			must(t, err)
			out = append(out, RootSignature{Repository: r.Repository, KeyID: id, Signature: sig})
		}
	}
	return out
}

func (f *fixture) prepare(keys []*ecdsa.PrivateKey, threshold int) []PreparedRoot {
	f.t.Helper()
	var roots []PreparedRoot
	must(f.t, f.st.Update(f.ctx, func(tx store.Tx) (err error) {
		roots, err = f.svc.PrepareRotation(f.ctx, tx, tenant, publics(keys), threshold)
		return
	}))
	return roots
}

func (f *fixture) complete(roots []PreparedRoot, sigs []RootSignature) (Rotation, error) {
	var rot Rotation
	err := f.st.Update(f.ctx, func(tx store.Tx) (err error) {
		rot, err = f.svc.CompleteRotation(f.ctx, tx, tenant, roots, sigs)
		return
	})
	return rot, err
}

// TestDetachedRotation: root keys that never reach the service. 1-of-1 (online) → 2-of-3 whose
// holders sign where their keys are → 3-of-3 signed by two old holders and three new ones. A
// device follows both. Below a threshold, a foreign key, a forged or misplaced signature, and
// stale prepared roots are refused and change nothing; a key's second signature counts once.
func TestDetachedRotation(t *testing.T) {
	f := newFixture(t)
	f.group("g1")
	a := f.image(store.ImageApplication, "1.0.0")
	must(t, f.deploy("g1", a))
	dev := f.device("g1", "g1", f.clock.now)
	_, err := dev.Refresh(f.ctx)
	must(t, err)
	dir := DirectorRepository("g1")

	if _, err := f.svc.PrepareRotation(f.ctx, f.st, tenant, publics(holders(t, 2)), 3); !errors.Is(err, ErrBadThreshold) {
		t.Fatalf("threshold 3 of 2: %v", err)
	}
	first := holders(t, 3)
	roots := f.prepare(first, 2)
	if len(roots) != 2 || roots[0].Repository != store.TUFImages || roots[1].Repository != dir {
		t.Fatalf("prepared %+v", roots)
	}
	// The tenant's one root key is online: the service signs for it; one new key is not enough.
	if _, err := f.complete(roots, signAll(t, roots, first[0])); !errors.Is(err, ErrBelowThreshold) ||
		!strings.Contains(err.Error(), "signed by 1 of the current 1 root keys (1 needed) and 1 of its 3 new keys (2 needed)") {
		t.Fatalf("one new signature: %v", err)
	}
	rot, err := f.complete(roots, signAll(t, roots, first[0], first[2]))
	must(t, err)
	if fmt.Sprint(rot.RootVersions) != "[2 2]" || rot.Threshold != 2 || len(rot.NewKeyIDs) != 3 {
		t.Fatalf("rotation %+v", rot)
	}
	if keys, k, signedBy := f.rootRole(dir); fmt.Sprint(sorted(keys)) != fmt.Sprint(sorted(tufIDs(t, first...))) || k != 2 || len(signedBy) != 3 {
		t.Fatalf("root 2: keys %v threshold %d signed by %v", keys, k, signedBy)
	}
	st, err := f.svc.RootStatus(f.ctx, f.st, tenant)
	must(t, err)
	if len(st.Keys) != 3 || st.Online || st.Threshold != 2 {
		t.Fatalf("status %+v", st)
	}
	_, err = dev.Refresh(f.ctx)
	must(t, err)
	// The roots just published cannot be published again.
	if _, err := f.complete(roots, signAll(t, roots, first...)); !errors.Is(err, ErrPrepared) {
		t.Fatalf("stale prepared roots: %v", err)
	}

	second := holders(t, 3)
	roots = f.prepare(second, 3)
	newSigs := signAll(t, roots, second...)
	stranger := holders(t, 1)[0]
	forged := signAll(t, roots, first[0])
	forged[0].Signature[len(forged[0].Signature)/2] ^= 1
	misplaced := signAll(t, roots[:1], first[1])
	misplaced[0].Repository = dir
	for name, tc := range map[string]struct {
		sigs []RootSignature
		want error
	}{
		"one old key":           {append(signAll(t, roots, first[1]), newSigs...), ErrBelowThreshold},
		"one old key twice":     {append(append(signAll(t, roots, first[1]), signAll(t, roots, first[1])...), newSigs...), ErrBelowThreshold},
		"two of three new keys": {append(signAll(t, roots, first[0], first[1]), newSigs[1:]...), ErrBelowThreshold},
		"a stranger's key":      {append(signAll(t, roots, first[0], first[1], stranger), newSigs...), ErrNotRootKey},
		"a forged signature":    {append(append(forged, signAll(t, roots, first[1])...), newSigs...), ErrBadSignature},
		"another root's":        {append(append(misplaced, signAll(t, roots, first[0], first[2])...), newSigs...), ErrBadSignature},
	} {
		if _, err := f.complete(roots, tc.sigs); !errors.Is(err, tc.want) {
			t.Fatalf("%s: %v, want %v", name, err, tc.want)
		}
	}
	if len(f.state(dir).Roots) != 2 || len(f.rootKeyRecords()) != 3 {
		t.Fatal("a refused rotation changed something")
	}
	// A root made to last longer than the service would make it: every holder signed it, still refused.
	long := bytes.Replace(roots[0].Root, []byte(`"expires":"`+fmt.Sprint(f.clock.now().Year()+1)), []byte(`"expires":"`+fmt.Sprint(f.clock.now().Year()+9)), 1)
	if bytes.Equal(long, roots[0].Root) {
		t.Fatalf("no expiry to change in %s", roots[0].Root)
	}
	longRoots := []PreparedRoot{{Repository: roots[0].Repository, Root: long}, roots[1]}
	if _, err := f.complete(longRoots, signAll(t, longRoots, first[0], first[1], second[0], second[1], second[2])); !errors.Is(err, ErrPrepared) {
		t.Fatalf("a root expiring in 9 years: %v", err)
	}
	if _, err := f.complete(roots[:1], append(signAll(t, roots[:1], first[0], first[1]), newSigs...)); !errors.Is(err, ErrPrepared) {
		t.Fatalf("one repository left out: %v", err)
	}
	rot, err = f.complete(roots, append(signAll(t, roots, first[2], first[1]), newSigs...))
	must(t, err)
	if fmt.Sprint(rot.RootVersions) != "[3 3]" || rot.Threshold != 3 || rot.OldThreshold != 2 {
		t.Fatalf("rotation %+v", rot)
	}
	_, err = dev.Refresh(f.ctx)
	must(t, err)
	if _, err := f.device("g1", "g1", f.clock.now).Refresh(f.ctx); err != nil {
		t.Fatalf("a device starting from root 1: %v", err)
	}
	// The same keys renew the root: nothing is revoked or added.
	before := recIDs(f.rootKeyRecords())
	roots = f.prepare(second, 3)
	rot, err = f.complete(roots, signAll(t, roots, second...))
	must(t, err)
	if fmt.Sprint(rot.RootVersions) != "[4 4]" || fmt.Sprint(recIDs(f.rootKeyRecords())) != fmt.Sprint(before) {
		t.Fatalf("renewal %+v: keys %v, were %v", rot, recIDs(f.rootKeyRecords()), before)
	}
	// The next deployment still reaches the device: online keys were kept.
	b := f.image(store.ImageApplication, "2.0.0")
	must(t, f.deploy("g1", b))
	got, err := dev.Refresh(f.ctx)
	must(t, err)
	if fmt.Sprint(ids(got)) != fmt.Sprint([]string{b.ID}) {
		t.Fatalf("after the rotations the device got %v", ids(got))
	}
}

// TestCompleteRotationRefusesDoctoredRoots: prepared roots changed after PrepareRotation and
// signed by every holder (who sign what they are given) are refused, naming what differs, and
// change nothing: an extra role, key or field, another spec_version or threshold, an expiry
// inside the renewal window (2 s, or a day past the window) or past a root lifetime. The root
// as prepared, completed later than the margin allows, is refused too; completed in time it is
// published and a device follows it.
func TestCompleteRotationRefusesDoctoredRoots(t *testing.T) {
	f := newFixture(t)
	f.group("g1")
	a := f.image(store.ImageApplication, "1.0.0")
	must(t, f.deploy("g1", a))
	dev := f.device("g1", "g1", f.clock.now)
	_, err := dev.Refresh(f.ctx)
	must(t, err)
	dir := DirectorRepository("g1")

	keys := holders(t, 2)
	extra := holders(t, 1)[0]
	ek, err := metadata.KeyFromPublicKey(&extra.PublicKey)
	must(t, err)
	eid, err := ek.ID()
	must(t, err)
	window := tufrepo.DefaultRootLifetime / RootRenewFraction
	roots := f.prepare(keys, 2)
	for _, tc := range []struct {
		name, want string
		change     func(*metadata.RootType)
	}{
		{"expiring in 2 s", "expires", func(r *metadata.RootType) { r.Expires = f.clock.now().Add(2 * time.Second) }},
		{"expiring a day after the renewal window", "expires", func(r *metadata.RootType) { r.Expires = f.clock.now().Add(window + 24*time.Hour) }},
		{"expiring after a root lifetime", "expires", func(r *metadata.RootType) { r.Expires = r.Expires.Add(time.Hour) }},
		{"an extra role", "roles.x-role", func(r *metadata.RootType) {
			r.Keys[eid] = ek
			r.Roles["x-role"] = &metadata.Role{KeyIDs: []string{eid}, Threshold: 1}
		}},
		{"an extra key", "keys." + eid, func(r *metadata.RootType) { r.Keys[eid] = ek }},
		{"an extra field", "x-note", func(r *metadata.RootType) { r.UnrecognizedFields = map[string]any{"x-note": "anything"} }},
		{"another spec_version", "spec_version", func(r *metadata.RootType) { r.SpecVersion = "9.0.0" }},
		{"an extra field in a role", "roles.root", func(r *metadata.RootType) {
			r.Roles["root"].UnrecognizedFields = map[string]any{"x-note": "anything"}
		}},
	} {
		doctored := make([]PreparedRoot, len(roots))
		for i := range roots {
			m, err := metadata.Root().FromBytes(roots[i].Root)
			must(t, err)
			tc.change(&m.Signed)
			b, err := m.ToBytes(false)
			must(t, err)
			doctored[i] = PreparedRoot{Repository: roots[i].Repository, Root: b}
		}
		_, err := f.complete(doctored, signAll(t, doctored, keys...))
		if !errors.Is(err, ErrPrepared) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrPrepared naming %s", tc.name, err, tc.want)
		}
	}
	// A threshold of 1 instead of 2: the new keys' holders could not tell from a count alone.
	one := make([]PreparedRoot, len(roots))
	for i := range roots {
		m, err := metadata.Root().FromBytes(roots[i].Root)
		must(t, err)
		m.Signed.Roles["root"].Threshold = 1
		m.Signed.SpecVersion = "9.0.0"
		b, err := m.ToBytes(false)
		must(t, err)
		one[i] = PreparedRoot{Repository: roots[i].Repository, Root: b}
	}
	if _, err := f.complete(one, signAll(t, one, keys...)); !errors.Is(err, ErrPrepared) || !strings.Contains(err.Error(), "spec_version") {
		t.Errorf("threshold 1 and another spec_version: %v", err)
	}
	if len(f.state(dir).Roots) != 1 || len(f.rootKeyRecords()) != 1 {
		t.Fatal("a refused rotation changed something")
	}
	// As prepared, but completed when less than the window and the margin is left: refused.
	late := tufrepo.DefaultRootLifetime - window - tufrepo.DefaultRootLifetime/RootCompleteMargin
	f.clock.add(late)
	if _, err := f.complete(roots, signAll(t, roots, keys...)); !errors.Is(err, ErrPrepared) || !strings.Contains(err.Error(), "renewal window") {
		t.Errorf("completed %s after preparing: %v", late, err)
	}
	f.clock.add(-time.Hour)
	_, err = f.complete(roots, signAll(t, roots, keys...))
	must(t, err)
	_, err = dev.Refresh(f.ctx)
	must(t, err)
}

// TestNewRootKeysMustBeFree: a new root key must be free to become the tenant's root key.
// Tenant B lists tenant A's root key beside one of its own that meets B's threshold alone: the
// key's holder never signed for B, and B is refused (422, ErrKeyTaken) without naming A. A key B
// recorded first (A's holder's public half, handed around before A used it) makes A's rotation
// fail the same way, no longer with an unexplained conflict (the store's key IDs are global; not
// fixed here). A revoked root key of the tenant, a repository's online key and the tenant's
// image-signing key are refused as such by PrepareRotation and, in roots prepared before the
// key was taken, by CompleteRotation. Nothing changes on a refusal.
func TestNewRootKeysMustBeFree(t *testing.T) {
	f := newFixture(t)
	f.image(store.ImageApplication, "1.0.0")
	const b = "tenant-b"
	must(t, f.st.CreateTenant(f.ctx, store.Tenant{ID: b, Name: "B", CreatedAt: f.clock.now()}))
	sum := sha256.Sum256([]byte("b"))
	must(t, f.st.Update(f.ctx, func(tx store.Tx) error {
		if err := tx.CreateImage(f.ctx, store.Image{ID: uuid(99, 1), TenantID: b, ComponentID: uuid(99, 2), Kind: store.ImageApplication,
			Name: "img", Version: "1.0.0", PayloadSHA256: hex.EncodeToString(sum[:]), PayloadSize: 10,
			PackageSHA256: hex.EncodeToString(sum[:]), PackageSize: 100, UploadedBy: "u", CreatedAt: f.clock.now()}); err != nil {
			return err
		}
		return f.svc.PublishImages(f.ctx, tx, b)
	}))
	prepareB := func(keys ...*ecdsa.PrivateKey) (roots []PreparedRoot, err error) {
		err = f.st.Update(f.ctx, func(tx store.Tx) (err error) {
			roots, err = f.svc.PrepareRotation(f.ctx, tx, b, publics(keys), 1)
			return
		})
		return
	}
	completeB := func(roots []PreparedRoot, keys ...*ecdsa.PrivateKey) error {
		return f.st.Update(f.ctx, func(tx store.Tx) error {
			_, err := f.svc.CompleteRotation(f.ctx, tx, b, roots, signAll(t, roots, keys...))
			return err
		})
	}
	refusedAsElsewhere := func(name string, err error) {
		t.Helper()
		if !errors.Is(err, ErrKeyTaken) || errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), "in use elsewhere") || strings.Contains(err.Error(), b) || strings.Contains(err.Error(), tenant) {
			t.Errorf("%s: %v, want ErrKeyTaken saying the key is in use elsewhere, naming no tenant", name, err)
		}
	}

	// A's key, in use by A, listed by B.
	alice := holders(t, 1)[0]
	rootsA := f.prepare([]*ecdsa.PrivateKey{alice}, 1)
	_, err := f.complete(rootsA, signAll(t, rootsA, alice))
	must(t, err)
	bOwn := holders(t, 1)[0]
	rootsB, err := prepareB(bOwn, alice)
	must(t, err)
	refusedAsElsewhere("B lists A's root key", completeB(rootsB, bOwn))

	// B records a key A's holder made before A uses it; A's rotation to it is then refused, clearly.
	carol := holders(t, 1)[0]
	rootsB, err = prepareB(bOwn, carol)
	must(t, err)
	must(t, completeB(rootsB, bOwn))
	rootsA = f.prepare([]*ecdsa.PrivateKey{carol}, 1)
	before := len(f.state(store.TUFImages).Roots)
	_, err = f.complete(rootsA, signAll(t, rootsA, alice, carol))
	refusedAsElsewhere("A rotates to a key B recorded first", err)
	if len(f.state(store.TUFImages).Roots) != before {
		t.Fatal("a refused rotation published a root")
	}

	// This tenant's own keys for other purposes, and its revoked root key (the one online at first).
	var onlinePub crypto.PublicKey
	must(t, f.st.Update(f.ctx, func(tx store.Tx) error {
		o, err := f.svc.online(f.ctx, tx, tenant, store.TUFImages)
		if err == nil {
			onlinePub = o.Targets[0].Public()
		}
		return err
	}))
	imageKey := holders(t, 1)[0]
	der, err := x509.MarshalPKIXPublicKey(&imageKey.PublicKey)
	must(t, err)
	imageID, err := imagepkg.KeyID(&imageKey.PublicKey)
	must(t, err)
	must(t, f.st.CreateSigningKey(f.ctx, store.SigningKey{ID: imageID, TenantID: tenant, Purpose: store.KeyImageSigning, PublicDER: der, CreatedAt: f.clock.now()}))
	all, err := f.st.ListSigningKeys(f.ctx, tenant, KeyRoot)
	must(t, err)
	var revokedPub crypto.PublicKey
	for _, k := range all {
		if !k.RevokedAt.IsZero() {
			if revokedPub, err = x509.ParsePKIXPublicKey(k.PublicDER); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	if revokedPub == nil {
		t.Fatal("no revoked root key")
	}
	fresh := holders(t, 1)[0]
	for _, tc := range []struct {
		name, want string
		key        crypto.PublicKey
	}{
		{"a revoked root key", "revoked root key of this tenant", revokedPub},
		{"the online key", "online key of images", onlinePub},
		{"the image-signing key", "image-signing key", &imageKey.PublicKey},
	} {
		keys := []crypto.PublicKey{&fresh.PublicKey, tc.key}
		if _, err := f.svc.PrepareRotation(f.ctx, f.st, tenant, keys, 1); !errors.Is(err, ErrKeyTaken) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("prepare with %s: %v", tc.name, err)
		}
	}
	// Prepared before the online key was among them: a root listing the online key as a root key
	// is made here by hand, as only CompleteRotation's own check stands between it and publishing.
	var roots []PreparedRoot
	must(t, f.st.Update(f.ctx, func(tx store.Tx) error {
		for _, repo := range []string{store.TUFImages} {
			cur, err := load(f.ctx, tx, tenant, repo)
			if err != nil {
				return err
			}
			o, err := f.svc.online(f.ctx, tx, tenant, repo)
			if err != nil {
				return err
			}
			one := tufrepo.RoleKeys{Keys: []crypto.PublicKey{onlinePub}, Threshold: 1}
			root, err := o.NextRoot(cur, tufrepo.Roles{Root: tufrepo.RoleKeys{Keys: []crypto.PublicKey{&fresh.PublicKey, onlinePub}, Threshold: 1},
				Targets: one, Snapshot: one, Timestamp: one}, f.clock.now())
			if err != nil {
				return err
			}
			roots = append(roots, PreparedRoot{Repository: repo, Root: root})
		}
		return nil
	}))
	if _, err := f.complete(roots, signAll(t, roots, alice, fresh)); !errors.Is(err, ErrKeyTaken) || !strings.Contains(err.Error(), "online key of images") {
		t.Errorf("complete with the online key as a root key: %v", err)
	}
	if len(f.state(store.TUFImages).Roots) != before {
		t.Fatal("a refused rotation published a root")
	}
}
