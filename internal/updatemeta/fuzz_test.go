package updatemeta

import (
	"bytes"
	"errors"
	"testing"

	"github.com/rampart-iot/rampart/imagepkg"
	"github.com/rampart-iot/rampart/internal/store"
)

// FuzzRootKeysGiven gives arbitrary bytes as two of the root keys a rotation signs with, to a
// tenant whose root is 2-of-3 with every key offline. It checks that parsing never panics, that
// anything refused is refused as a bad key or not a current root key, that a given key counts
// only if it is a current root key and only once, and that the threshold is met exactly when
// two distinct current keys were given.
func FuzzRootKeysGiven(f *testing.F) {
	fx := newFixture(f)
	fx.image(store.ImageApplication, "1.0.0")
	var pems [][]byte
	if err := fx.st.Update(fx.ctx, func(tx store.Tx) error {
		rot, err := fx.svc.RotateRoot(fx.ctx, tx, tenant, RotateOptions{NewKeys: 3, Threshold: 2, Offline: true})
		pems = rot.NewKeysPEM
		return err
	}); err != nil {
		f.Fatal(err)
	}
	current := map[string]bool{}
	for _, b := range pems {
		k, err := parseKey(b)
		if err != nil {
			f.Fatal(err)
		}
		id, _ := imagepkg.KeyID(&k.PublicKey)
		current[id] = true
	}
	f.Add(pems[0], pems[1])
	f.Add(pems[0], pems[0])
	f.Add(pems[2], append(append([]byte{}, pems[1]...), "junk"...))
	f.Add(append([]byte("\n\n"), pems[0]...), bytes.ReplaceAll(pems[1], []byte("\n"), []byte("\r\n")))
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), []byte{})
	f.Add(append(append([]byte{}, pems[0]...), pems[1]...), pems[2])
	f.Add(bytes.Replace(pems[0], []byte("PRIVATE KEY-----\n"), []byte("PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\n"), 1), pems[1])
	f.Fuzz(func(t *testing.T, a, b []byte) {
		set, err := fx.svc.roots(t.Context(), fx.st, tenant, [][]byte{a, b}, false)
		if err != nil {
			if !errors.Is(err, ErrBadKey) && !errors.Is(err, ErrNotRootKey) {
				t.Fatalf("refused as neither a bad key nor a foreign one: %v", err)
			}
			return
		}
		ids := map[string]bool{}
		for _, in := range [][]byte{a, b} {
			k, err := parseKey(in)
			if err != nil {
				t.Fatalf("accepted a key parseKey refuses: %v", err)
			}
			id, _ := imagepkg.KeyID(&k.PublicKey)
			if !current[id] {
				t.Fatalf("accepted key %s, which is not a current root key", id)
			}
			ids[id] = true
		}
		if len(set.signers) != len(ids) || set.given != len(ids) {
			t.Fatalf("%d distinct keys given, %d signers (%d given)", len(ids), len(set.signers), set.given)
		}
		_, err = set.sign()
		if (err == nil) != (len(ids) == 2) {
			t.Fatalf("%d distinct current keys given, threshold 2: %v", len(ids), err)
		}
	})
}

// TestParseKeyIsStrict: one PEM block of an ECDSA P-256 PKCS #8 key, white space around it
// and nothing else.
func TestParseKeyIsStrict(t *testing.T) {
	k := pemKey(t)
	for name, tc := range map[string]struct {
		in []byte
		ok bool
	}{
		"as exported":        {k, true},
		"white space around": {append(append([]byte("\n \t"), k...), "\n\n"...), true},
		"junk after":         {append(append([]byte{}, k...), "junk"...), false},
		"junk before":        {append([]byte("junk\n"), k...), false},
		"two keys":           {append(append([]byte{}, k...), pemKey(t)...), false},
		"a header":           {bytes.Replace(k, []byte("KEY-----\n"), []byte("KEY-----\nProc-Type: 4,ENCRYPTED\n\n"), 1), false},
		"another type":       {bytes.ReplaceAll(k, []byte("PRIVATE KEY"), []byte("EC PRIVATE KEY")), false},
		"too large":          {append(append([]byte{}, k...), bytes.Repeat([]byte{' '}, MaxKeyPEM)...), false},
		"empty":              {nil, false},
	} {
		_, err := parseKey(tc.in)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrBadKey)) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
