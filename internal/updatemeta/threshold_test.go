package updatemeta

import (
	"crypto"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/rampart-iot/rampart/internal/store"
	"github.com/rampart-iot/rampart/internal/tufclient"
	"github.com/rampart-iot/rampart/internal/tufrepo"
)

// rootRole is the root role of a repository's newest stored root: its key IDs and threshold,
// and the key IDs that signed it.
func (f *fixture) rootRole(repo string) (keys []string, threshold int, signedBy []string) {
	f.t.Helper()
	s := f.state(repo)
	r, err := metadata.Root().FromBytes(s.Roots[len(s.Roots)-1])
	must(f.t, err)
	role := r.Signed.Roles[tufrepo.RoleRoot]
	for _, sig := range r.Signatures {
		signedBy = append(signedBy, sig.KeyID)
	}
	return role.KeyIDs, role.Threshold, signedBy
}

// rootKeyRecords are the tenant's unrevoked root keys as stored.
func (f *fixture) rootKeyRecords() []store.SigningKey {
	f.t.Helper()
	keys, err := f.st.ListSigningKeys(f.ctx, tenant, KeyRoot)
	must(f.t, err)
	var out []store.SigningKey
	for _, k := range keys {
		if k.RevokedAt.IsZero() {
			out = append(out, k)
		}
	}
	return out
}

// nextRootSignedBy is the newest root of s with its version bumped, signed by keys.
func nextRootSignedBy(t *testing.T, s *tufrepo.State, keys ...*ecdsa.PrivateKey) []byte {
	t.Helper()
	r, err := metadata.Root().FromBytes(s.Roots[len(s.Roots)-1])
	must(t, err)
	r.Signed.Version++
	r.ClearSignatures()
	for _, k := range keys {
		signer, err := signature.LoadECDSASigner(k, crypto.SHA256)
		must(t, err)
		_, err = r.Sign(signer)
		must(t, err)
	}
	b, err := r.ToBytes(false)
	must(t, err)
	return b
}

// tufIDs are the TUF key IDs of keys.
func tufIDs(t *testing.T, keys ...*ecdsa.PrivateKey) []string {
	t.Helper()
	var out []string
	for _, k := range keys {
		id, err := tufrepo.KeyID(&k.PublicKey)
		must(t, err)
		out = append(out, id)
	}
	return out
}

func parsed(t *testing.T, pems [][]byte) []*ecdsa.PrivateKey {
	t.Helper()
	var out []*ecdsa.PrivateKey
	for _, b := range pems {
		k, err := parseKey(b)
		must(t, err)
		out = append(out, k)
	}
	return out
}

// TestRotateRootThreshold: 1-of-1 → 2-of-3 (offline) → 3-of-3 (offline). Each rotation is
// signed by a threshold of the old and of the new keys; a device that trusted root 1 walks to
// root 2 and 3. Fewer keys than the threshold, a key given twice (counted once) and a key that
// is not a current root key are refused and change nothing. The janitor renews only with a
// threshold online, and a device refuses a root signed below the threshold.
func TestRotateRootThreshold(t *testing.T) {
	f := newFixture(t)
	f.group("g1")
	a := f.image(store.ImageApplication, "1.0.0")
	must(t, f.deploy("g1", a))
	dev := f.device("g1", "g1", f.clock.now)
	_, err := dev.Refresh(f.ctx)
	must(t, err)
	dir := DirectorRepository("g1")
	if keys, k, _ := f.rootRole(dir); len(keys) != 1 || k != 1 {
		t.Fatalf("root 1: keys %v threshold %d", keys, k)
	}

	// 1-of-1 → 2-of-3, the new keys offline at once; the one old key is online.
	oldRoot := f.rootKey()
	rot, err := f.rotate(RotateOptions{NewKeys: 3, Threshold: 2, Offline: true})
	must(t, err)
	if len(rot.NewKeyIDs) != 3 || len(rot.NewKeysPEM) != 3 || rot.Threshold != 2 || rot.OldThreshold != 1 || fmt.Sprint(rot.RootVersions) != "[2 2]" {
		t.Fatalf("rotation to 2-of-3: %+v", rot)
	}
	oldTUF := tufIDs(t, oldRoot)
	newTUF := tufIDs(t, parsed(t, rot.NewKeysPEM)...)
	for _, repo := range []string{store.TUFImages, dir} {
		keys, k, signedBy := f.rootRole(repo)
		if fmt.Sprint(sorted(keys)) != fmt.Sprint(sorted(newTUF)) || k != 2 {
			t.Fatalf("%s root 2 lists %v threshold %d; want %v threshold 2", repo, keys, k, newTUF)
		}
		// Signed by the old key (threshold 1 of root 1) and every new key.
		if fmt.Sprint(sorted(signedBy)) != fmt.Sprint(sorted(append(oldTUF, newTUF...))) {
			t.Fatalf("%s root 2 signed by %v", repo, signedBy)
		}
	}
	recs := f.rootKeyRecords()
	if len(recs) != 3 {
		t.Fatalf("current root keys: %+v", recs)
	}
	for _, r := range recs {
		if r.KeyCiphertext != nil {
			t.Fatalf("root key %s is online after an offline rotation", r.ID)
		}
	}
	st, err := f.svc.RootStatus(f.ctx, f.st, tenant)
	must(t, err)
	if len(st.Keys) != 3 || st.Threshold != 2 || st.Online || st.Keys[0].Online {
		t.Fatalf("status after the rotation: %+v", st)
	}
	for _, k := range st.Keys {
		if !strings.Contains(fmt.Sprint(rot.NewKeyIDs), k.ID) || !strings.Contains(fmt.Sprint(newTUF), k.TUFKeyID) {
			t.Fatalf("status lists key %+v; the rotation made %v (TUF %v)", k, rot.NewKeyIDs, newTUF)
		}
	}
	_, err = dev.Refresh(f.ctx)
	must(t, err)
	keys2 := parsed(t, rot.NewKeysPEM)

	// Below the threshold: nothing is signed and nothing changes.
	for name, given := range map[string][][]byte{
		"no key":              nil,
		"one key":             {rot.NewKeysPEM[0]},
		"one key given twice": {rot.NewKeysPEM[1], rot.NewKeysPEM[1]},
	} {
		_, err := f.rotate(RotateOptions{RootKeysPEM: given, NewKeys: 3, Threshold: 3})
		if !errors.Is(err, ErrBelowThreshold) || !errors.Is(err, store.ErrConflict) {
			t.Fatalf("%s: %v", name, err)
		}
		want := fmt.Sprintf("%d of the tenant's 3 root keys given or online (0 online, %d given), 2 needed", min(len(given), 1), min(len(given), 1))
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: %q does not say %q", name, err, want)
		}
	}
	// A key that is not a current root key: another key, or the rotated-out one.
	for name, other := range map[string][]byte{"another key": pemKey(t), "a malformed key": []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")} {
		_, err := f.rotate(RotateOptions{RootKeysPEM: [][]byte{rot.NewKeysPEM[0], other, rot.NewKeysPEM[1]}, NewKeys: 3, Threshold: 3})
		if !errors.Is(err, ErrNotRootKey) && !errors.Is(err, ErrBadKey) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	for _, bad := range []RotateOptions{{NewKeys: MaxRootKeys + 1}, {NewKeys: 2, Threshold: 3}, {NewKeys: -1}, {Threshold: 2}} {
		bad.RootKeysPEM = rot.NewKeysPEM
		if _, err := f.rotate(bad); !errors.Is(err, ErrBadThreshold) {
			t.Fatalf("rotation %d of %d: %v", bad.Threshold, bad.NewKeys, err)
		}
	}
	if got := f.rootKeyRecords(); fmt.Sprint(recIDs(got)) != fmt.Sprint(recIDs(recs)) {
		t.Fatalf("a refused rotation changed the root keys: %v", recIDs(got))
	}
	if _, k, _ := f.rootRole(dir); k != 2 || len(f.state(dir).Roots) != 2 {
		t.Fatal("a refused rotation changed the roots")
	}

	// 2-of-3 → 3-of-3 with two of the three keys (in any order).
	rot3, err := f.rotate(RotateOptions{RootKeysPEM: [][]byte{rot.NewKeysPEM[2], rot.NewKeysPEM[0]}, NewKeys: 3, Threshold: 3, Offline: true})
	must(t, err)
	if fmt.Sprint(rot3.RootVersions) != "[3 3]" || rot3.OldThreshold != 2 || rot3.Threshold != 3 {
		t.Fatalf("rotation to 3-of-3: %+v", rot3)
	}
	if _, _, signedBy := f.rootRole(dir); len(signedBy) != 5 {
		t.Fatalf("root 3 signed by %v; want 2 old and 3 new keys", signedBy)
	}
	_, err = dev.Refresh(f.ctx)
	must(t, err)
	// A device that only ever trusted root 1 walks 1 → 2 → 3.
	if _, err := f.device("g1", "g1", f.clock.now).Refresh(f.ctx); err != nil {
		t.Fatalf("a device starting from root 1: %v", err)
	}
	keys3 := parsed(t, rot3.NewKeysPEM)

	// A root 4 signed by two of the three keys (and by all the old ones) is refused by the
	// device; by all three it is accepted: the threshold is what stopped it.
	cur := f.state(dir)
	f.serveOverride(dir, "4.root.json", nextRootSignedBy(t, cur, append([]*ecdsa.PrivateKey{keys3[0], keys3[1]}, keys2...)...))
	_, err = dev.Refresh(f.ctx)
	if r := tufclient.ReasonOf(err); r != tufclient.ReasonSignature {
		t.Fatalf("a root 4 signed by 2 of 3 keys, threshold 3: %v (reason %q)", err, r)
	}
	f.serveOverride(dir, "4.root.json", nextRootSignedBy(t, cur, keys3...))
	if _, err := f.device("g1", "g1", f.clock.now).Refresh(f.ctx); err != nil {
		t.Fatalf("a root 4 signed by all 3 keys: %v", err)
	}
	delete(f.override, dir+"/4.root.json")

	// The janitor renews roots only with a threshold of keys online: two of three are not.
	importKey := func(b []byte) {
		t.Helper()
		must(t, f.st.Update(f.ctx, func(tx store.Tx) error { return f.svc.ImportRoot(f.ctx, tx, tenant, b) }))
	}
	importKey(rot3.NewKeysPEM[0])
	importKey(rot3.NewKeysPEM[1])
	f.group("g2")
	if err := f.deploy("g2", a); !errors.Is(err, ErrRootOffline) {
		t.Fatalf("a new repository with 2 of 3 keys online: %v", err)
	}
	f.clock.add(tufrepo.DefaultRootLifetime - tufrepo.DefaultRootLifetime/RootRenewFraction + time.Hour)
	n, offline, err := f.svc.RenewRoots(f.ctx, f.st, 100)
	if err != nil || n != 0 || len(offline) != 2 {
		t.Fatalf("RenewRoots with 2 of 3 keys online: %d %+v %v", n, offline, err)
	}
	importKey(rot3.NewKeysPEM[2])
	if st, err := f.svc.RootStatus(f.ctx, f.st, tenant); err != nil || !st.Online || st.Threshold != 3 {
		t.Fatalf("status with every key online: %+v %v", st, err)
	}
	n, offline, err = f.svc.RenewRoots(f.ctx, f.st, 100)
	if err != nil || n != 2 || len(offline) != 0 {
		t.Fatalf("RenewRoots with 3 of 3 keys online: %d %+v %v", n, offline, err)
	}
	if keys, k, signedBy := f.rootRole(dir); len(keys) != 3 || k != 3 || len(signedBy) != 3 {
		t.Fatalf("renewed root: keys %v threshold %d signed by %v", keys, k, signedBy)
	}
	if _, err := f.svc.RenewAll(f.ctx, f.st, 100); err != nil {
		t.Fatal(err)
	}
	_, err = dev.Refresh(f.ctx)
	must(t, err)
	// A new group's repository starts with the tenant's keys and threshold.
	must(t, f.deploy("g2", a))
	if keys, k, signedBy := f.rootRole(DirectorRepository("g2")); len(keys) != 3 || k != 3 || len(signedBy) != 3 {
		t.Fatalf("a new repository's root: keys %v threshold %d signed by %v", keys, k, signedBy)
	}
	if _, err := f.device("g2", "g2", f.clock.now).Refresh(f.ctx); err != nil {
		t.Fatal(err)
	}
}

// TestExportOneOfSeveralRootKeys: with several root keys online, export names the one.
func TestExportOneOfSeveralRootKeys(t *testing.T) {
	f := newFixture(t)
	f.image(store.ImageApplication, "1.0.0")
	rot, err := f.rotate(RotateOptions{NewKeys: 2, Threshold: 1})
	must(t, err)
	export := func(id string) ([]byte, error) {
		var b []byte
		err := f.st.Update(f.ctx, func(tx store.Tx) (err error) { b, err = f.svc.ExportRoot(f.ctx, tx, tenant, id); return })
		return b, err
	}
	if _, err := export(""); !errors.Is(err, ErrBadKey) || !strings.Contains(err.Error(), "name the one") {
		t.Fatalf("export without a key ID, 2 online: %v", err)
	}
	if _, err := export(rot.OldKeyIDs[0]); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("export of the rotated-out key: %v", err)
	}
	b, err := export(rot.NewKeyIDs[1])
	must(t, err)
	if k := parsed(t, [][]byte{b}); len(k) != 1 {
		t.Fatal("no key")
	}
	if _, err := export(rot.NewKeyIDs[1]); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("export of an offline key: %v", err)
	}
	// One of two online is still a threshold of 1: renewal and new repositories go on.
	st, err := f.svc.RootStatus(f.ctx, f.st, tenant)
	must(t, err)
	if !st.Online || len(st.Keys) != 2 || st.Keys[0].Online == st.Keys[1].Online {
		t.Fatalf("status: %+v", st)
	}
	// The remaining online key is exported without naming it.
	if _, err := export(""); err != nil {
		t.Fatal(err)
	}
	if st, _ := f.svc.RootStatus(f.ctx, f.st, tenant); st.Online {
		t.Fatalf("status with both keys offline: %+v", st)
	}
}

func sorted(s []string) []string {
	out := append([]string{}, s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func recIDs(ks []store.SigningKey) []string {
	out := []string{}
	for _, k := range ks {
		out = append(out, k.ID)
	}
	return out
}
