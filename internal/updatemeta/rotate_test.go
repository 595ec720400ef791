package updatemeta

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/rampart-iot/rampart/internal/store"
	"github.com/rampart-iot/rampart/internal/tufclient"
	"github.com/rampart-iot/rampart/internal/tufrepo"
)

func (f *fixture) rotate(opt RotateOptions) (Rotation, error) {
	var rot Rotation
	err := f.st.Update(f.ctx, func(tx store.Tx) error {
		var err error
		rot, err = f.svc.RotateRoot(f.ctx, tx, tenant, opt)
		return err
	})
	return rot, err
}

// state loads a repository as stored.
func (f *fixture) state(repo string) *tufrepo.State {
	f.t.Helper()
	s, err := load(f.ctx, f.st, tenant, repo)
	must(f.t, err)
	return s
}

// TestRotateRootDevicesFollowAndRefuseTheOldKey: a device that trusted root 1 follows the
// rotation to root 2, and from then on refuses a root 3 an attacker holding only the old root
// key signs (with its own online key), while the same rotation signed by the new key passes.
func TestRotateRootDevicesFollowAndRefuseTheOldKey(t *testing.T) {
	f := newFixture(t)
	f.group("g1")
	a := f.image(store.ImageApplication, "1.0.0")
	must(t, f.deploy("g1", a))
	dev := f.device("g1", "g1", f.clock.now)
	if _, err := dev.Refresh(f.ctx); err != nil {
		t.Fatal(err)
	}
	oldRoot := f.rootKey()
	oldOnline := f.onlineKey(DirectorRepository("g1"))

	rot, err := f.rotate(RotateOptions{OnlineKeys: true})
	must(t, err)
	if fmt.Sprint(rot.Repositories) != fmt.Sprint([]string{store.TUFImages, DirectorRepository("g1")}) ||
		fmt.Sprint(rot.RootVersions) != "[2 2]" || rot.NewKeysPEM != nil || len(rot.OldKeyIDs) != 1 || len(rot.NewKeyIDs) != 1 || rot.OldKeyIDs[0] == rot.NewKeyIDs[0] {
		t.Fatalf("rotation %+v", rot)
	}
	newRoot := f.rootKey()
	if newRoot.Equal(oldRoot) || f.onlineKey(DirectorRepository("g1")).Equal(oldOnline) {
		t.Fatal("the root or online key did not change")
	}
	// The device follows: root 2, then targets signed by the new online key.
	b := f.image(store.ImageApplication, "1.0.0")
	must(t, f.deploy("g1", b))
	got, err := dev.Refresh(f.ctx)
	must(t, err)
	if fmt.Sprint(ids(got)) != fmt.Sprint([]string{b.ID}) {
		t.Fatalf("after the rotation the device got %v", ids(got))
	}
	// A new device that starts from root 1 walks the chain too.
	if _, err := f.device("g1", "g1", f.clock.now).Refresh(f.ctx); err != nil {
		t.Fatalf("a device starting from root 1: %v", err)
	}

	// An attacker who kept the old root key serves a root 3 signed by it alone.
	cur := f.state(DirectorRepository("g1"))
	f.serveOverride(DirectorRepository("g1"), "3.root.json", nextRoot(t, cur, oldRoot))
	_, err = dev.Refresh(f.ctx)
	if r := tufclient.ReasonOf(err); r != tufclient.ReasonSignature && r != tufclient.ReasonWrongRepository {
		t.Fatalf("a root 3 signed by the old root key only: %v (reason %q)", err, r)
	}
	// The control: the same root signed by the current root key is accepted.
	f.serveOverride(DirectorRepository("g1"), "3.root.json", nextRoot(t, cur, newRoot))
	if _, err := dev.Refresh(f.ctx); err != nil {
		t.Fatalf("root 3 signed by the new root key was refused: %v", err)
	}
}

// nextRoot is the newest root of s with its version bumped, signed by key alone.
func nextRoot(t *testing.T, s *tufrepo.State, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	r, err := metadata.Root().FromBytes(s.Roots[len(s.Roots)-1])
	must(t, err)
	r.Signed.Version++
	r.ClearSignatures()
	signer, err := signature.LoadECDSASigner(key, crypto.SHA256)
	must(t, err)
	_, err = r.Sign(signer)
	must(t, err)
	b, err := r.ToBytes(false)
	must(t, err)
	return b
}

// serveOverride makes the fixture's devices get body for name in repo instead of the store's.
func (f *fixture) serveOverride(repo, name string, body []byte) {
	if f.override == nil {
		f.override = map[string][]byte{}
	}
	f.override[repo+"/"+name] = body
}

func TestRotateRootOffline(t *testing.T) {
	f := newFixture(t)
	f.group("g1")
	a := f.image(store.ImageApplication, "1.0.0")
	must(t, f.deploy("g1", a))
	dev := f.device("g1", "g1", f.clock.now)
	_, err := dev.Refresh(f.ctx)
	must(t, err)
	var exported []byte
	must(t, f.st.Update(f.ctx, func(tx store.Tx) (err error) { exported, err = f.svc.ExportRoot(f.ctx, tx, tenant, ""); return }))

	// Offline, the old key must be given, and it must be the root key.
	if _, err := f.rotate(RotateOptions{}); !errors.Is(err, ErrBelowThreshold) || !errors.Is(err, store.ErrConflict) {
		t.Fatalf("rotating an offline root without its key: %v", err)
	}
	if _, err := f.rotate(RotateOptions{RootKeysPEM: [][]byte{pemKey(t)}}); !errors.Is(err, ErrNotRootKey) {
		t.Fatalf("rotating with another key: %v", err)
	}
	rot, err := f.rotate(RotateOptions{RootKeysPEM: [][]byte{exported}, Offline: true})
	must(t, err)
	if len(rot.NewKeysPEM) != 1 {
		t.Fatal("an offline rotation returned no key")
	}
	keys, err := f.st.ListSigningKeys(f.ctx, tenant, KeyRoot)
	must(t, err)
	if len(keys) != 2 {
		t.Fatalf("root keys after an offline rotation: %+v", keys)
	}
	for _, k := range keys {
		// Neither private half is kept; the old key is revoked, the new one is not.
		if k.KeyCiphertext != nil || k.RevokedAt.IsZero() != (k.ID == rot.NewKeyIDs[0]) || (k.ID != rot.NewKeyIDs[0] && k.ID != rot.OldKeyIDs[0]) {
			t.Fatalf("root keys after an offline rotation: %+v (rotation %+v)", keys, rot)
		}
	}
	_, err = dev.Refresh(f.ctx)
	must(t, err)
	// The old key is revoked: it cannot come back. The new one can.
	if err := f.st.Update(f.ctx, func(tx store.Tx) error { return f.svc.ImportRoot(f.ctx, tx, tenant, exported) }); err == nil {
		t.Fatal("the rotated-out root key was imported again")
	}
	// Rotating again offline needs the new key, not the old one.
	if _, err := f.rotate(RotateOptions{RootKeysPEM: [][]byte{exported}}); !errors.Is(err, ErrNotRootKey) {
		t.Fatalf("rotating with the rotated-out key: %v", err)
	}
	rot2, err := f.rotate(RotateOptions{RootKeysPEM: rot.NewKeysPEM})
	must(t, err)
	if fmt.Sprint(rot2.RootVersions) != "[3 3]" {
		t.Fatalf("second rotation: %+v", rot2)
	}
	// The new key is online now: a new group's first deployment works and chains from it.
	f.group("g2")
	must(t, f.deploy("g2", a))
	_, err = dev.Refresh(f.ctx)
	must(t, err)
	if _, err := f.device("g2", "g2", f.clock.now).Refresh(f.ctx); err != nil {
		t.Fatal(err)
	}
}

// rootKey is the tenant's current root key, opened from the store.
func (f *fixture) rootKey() *ecdsa.PrivateKey {
	f.t.Helper()
	var k *ecdsa.PrivateKey
	must(f.t, f.st.Update(f.ctx, func(tx store.Tx) (err error) { k, err = f.svc.key(f.ctx, tx, tenant, KeyRoot, false); return }))
	return k
}

func (f *fixture) onlineKey(repo string) *ecdsa.PrivateKey {
	f.t.Helper()
	var k *ecdsa.PrivateKey
	must(f.t, f.st.Update(f.ctx, func(tx store.Tx) (err error) {
		k, err = f.svc.key(f.ctx, tx, tenant, KeyOnlinePrefix+repo, false)
		return
	}))
	return k
}

// TestRotateRootDuringARollout: the held director is rotated with the group's, to the same
// root, so held and released devices follow, and a held device released after the rotation
// moves to the group's director without trouble.
func TestRotateRootDuringARollout(t *testing.T) {
	f := newFixture(t)
	f.group("g1")
	a, b := f.image(store.ImageApplication, "1.0.0"), f.image(store.ImageApplication, "2.0.0")
	fl := &rolloutFleet{f: f, group: "g1", devices: map[string]*tufclient.Client{}}
	var prev, next store.Deployment
	fl.write(func(tx store.Tx) (err error) { prev, err = fl.deployment(tx, a); return err })
	fl.add("d1")
	fl.add("d2")
	ro := store.Rollout{TenantID: tenant, DeviceGroupID: "g1", Policy: []byte(`{"batches":[{"count":1},{"count":1}]}`),
		State: store.RolloutRunning, CreatedAt: f.clock.now(), BatchStartedAt: f.clock.now(), UpdatedAt: f.clock.now()}
	fl.write(func(tx store.Tx) (err error) {
		if next, err = fl.deployment(tx, b); err != nil {
			return err
		}
		ro.DeploymentID, ro.PreviousDeploymentID = next.ID, prev.ID
		if err := tx.CreateRollout(f.ctx, ro, []store.RolloutDevice{{DeviceID: "d1"}, {DeviceID: "d2", Batch: 1}}); err != nil {
			return err
		}
		return tx.ReleaseRolloutDevices(f.ctx, tenant, next.ID, []string{"d1"}, f.clock.now())
	})
	fl.expect("batch 1", map[string]store.Image{"d1": b, "d2": a})

	rot, err := f.rotate(RotateOptions{OnlineKeys: true})
	must(t, err)
	if fmt.Sprint(rot.Repositories) != fmt.Sprint([]string{store.TUFImages, DirectorRepository("g1"), HeldDirectorRepository("g1")}) {
		t.Fatalf("rotated %v", rot.Repositories)
	}
	r1, err := File(f.ctx, f.st, tenant, DirectorRepository("g1"), "2.root.json")
	must(t, err)
	r2, err := File(f.ctx, f.st, tenant, HeldDirectorRepository("g1"), "2.root.json")
	must(t, err)
	if string(r1) != string(r2) {
		t.Fatal("the group's director and its held director have different roots 2")
	}
	fl.expect("rotated", map[string]store.Image{"d1": b, "d2": a})
	fl.write(func(tx store.Tx) error {
		return tx.ReleaseRolloutDevices(f.ctx, tenant, next.ID, []string{"d2"}, f.clock.now())
	})
	fl.expect("batch 2", map[string]store.Image{"d1": b, "d2": b})
}

// writes records the signing keys a transaction creates and updates.
type writes struct {
	store.Tx
	created, updated []store.SigningKey
}

func (w *writes) CreateSigningKey(ctx context.Context, k store.SigningKey) error {
	w.created = append(w.created, k)
	return w.Tx.CreateSigningKey(ctx, k)
}

func (w *writes) UpdateSigningKey(ctx context.Context, k store.SigningKey) error {
	w.updated = append(w.updated, k)
	return w.Tx.UpdateSigningKey(ctx, k)
}

// TestRotateRootOfflineNeverWritesPrivateKeys: new root keys that go offline at once are
// recorded with their public halves only: no write of the transaction carries a private key
// (it would survive in the write-ahead log and in backups even if cleared later in it). Online
// new keys are stored sealed, as before.
func TestRotateRootOfflineNeverWritesPrivateKeys(t *testing.T) {
	f := newFixture(t)
	f.image(store.ImageApplication, "1.0.0")
	var given [][]byte // the offline keys of the first rotation sign the second
	for _, offline := range []bool{true, false} {
		w := &writes{}
		var rot Rotation
		must(t, f.st.Update(f.ctx, func(tx store.Tx) (err error) {
			w.Tx = tx
			rot, err = f.svc.RotateRoot(f.ctx, w, tenant, RotateOptions{RootKeysPEM: given, NewKeys: 2, Threshold: 2, Offline: offline})
			return
		}))
		if len(w.created) != 2 {
			t.Fatalf("offline %v: created %d keys", offline, len(w.created))
		}
		for _, k := range w.created {
			if offline != (k.KeyCiphertext == nil) || len(k.PublicDER) == 0 || !slices.Contains(rot.NewKeyIDs, k.ID) {
				t.Errorf("offline %v: key %s written with %d bytes of sealed private key", offline, k.ID, len(k.KeyCiphertext))
			}
		}
		for _, k := range w.updated {
			if slices.Contains(rot.NewKeyIDs, k.ID) {
				t.Errorf("offline %v: new key %s updated in the same transaction", offline, k.ID)
			}
		}
		given = rot.NewKeysPEM
	}
	st, err := f.svc.RootStatus(f.ctx, f.st, tenant)
	must(t, err)
	if !st.Online || len(st.Keys) != 2 {
		t.Fatalf("after an online rotation: %+v", st)
	}
}
