package updatemeta

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/rampart-iot/rampart/imagepkg"
	"github.com/rampart-iot/rampart/internal/store"
	"github.com/rampart-iot/rampart/internal/tufrepo"
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

// FuzzParseRootSignature: a detached signature as a request or signature file carries it is
// accepted only with a bounded repository name, a 64-digit lower-case hex key ID and an even
// number of lower-case hex digits within the bound, and then decodes to exactly those bytes.
func FuzzParseRootSignature(f *testing.F) {
	f.Add("images", strings.Repeat("ab", 32), "3045022100ff")
	f.Add("director/g1", strings.Repeat("AB", 32), "30")
	f.Add("", strings.Repeat("0", 64), "")
	f.Add("images", strings.Repeat("a", 63), "3")
	f.Add(strings.Repeat("x", 201), strings.Repeat("a", 64), strings.Repeat("ff", 81))
	f.Fuzz(func(t *testing.T, repo, keyID, sigHex string) {
		sig, err := ParseRootSignature(repo, keyID, sigHex)
		if err != nil {
			if !errors.Is(err, ErrBadSignature) {
				t.Fatalf("refused without ErrBadSignature: %v", err)
			}
			return
		}
		if repo == "" || len(repo) > 200 || len(keyID) != 64 || keyID != strings.ToLower(keyID) || len(sigHex) > MaxSignatureHex ||
			hex.EncodeToString(sig.Signature) != sigHex || sig.KeyID != keyID || sig.Repository != repo {
			t.Fatalf("accepted %q %q %q as %+v", repo, keyID, sigHex, sig)
		}
	})
}

// FuzzParsePublicKey: a new root key's public half is accepted only as one PUBLIC KEY block of
// an ECDSA P-256 key, which then encodes back to the same DER.
func FuzzParsePublicKey(f *testing.F) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		f.Fatal(err)
	}
	good := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	f.Add(good)
	f.Add(append(append([]byte{}, good...), good...))
	f.Add(append([]byte("junk"), good...))
	f.Add(bytes.ReplaceAll(good, []byte("PUBLIC KEY"), []byte("RSA PUBLIC KEY")))
	priv, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: priv}))
	f.Fuzz(func(t *testing.T, b []byte) {
		pub, err := ParsePublicKey(b)
		if err != nil {
			if !errors.Is(err, ErrBadKey) {
				t.Fatalf("refused without ErrBadKey: %v", err)
			}
			return
		}
		blk, _ := pem.Decode(bytes.TrimSpace(b))
		out, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil || blk == nil || len(b) > MaxPublicKeyPEM {
			t.Fatalf("accepted %q: %v", b, err)
		}
		back, err := x509.ParsePKIXPublicKey(out)
		if err != nil || !back.(*ecdsa.PublicKey).Equal(pub) {
			t.Fatalf("accepted key does not round-trip: %v", err)
		}
	})
}

// FuzzCompleteRotation serves arbitrary bytes as the prepared root of a tenant's image
// repository, signed by the holder of the one new key it is prepared for (the old key is
// online), through what CompleteRotation does with it before it stores anything (checkPrepared,
// attachSignatures, AcceptRoot; the store is left out because every write would make the fuzzer
// crawl). It checks that nothing panics, that a refusal is one of the documented errors, and that
// whatever is accepted is root version 2 that a device holding root 1 accepts (a threshold of
// root 1's and of its own keys) and lists exactly the new key.
func FuzzCompleteRotation(f *testing.F) {
	fx := newFixture(f)
	fx.image(store.ImageApplication, "1.0.0")
	holder, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	holderID, err := tufrepo.KeyID(&holder.PublicKey)
	if err != nil {
		f.Fatal(err)
	}
	var roots []PreparedRoot
	var cur *tufrepo.State
	var online *tufrepo.Online
	var set *rootSet
	if err := fx.st.Update(fx.ctx, func(tx store.Tx) (err error) {
		if roots, err = fx.svc.PrepareRotation(fx.ctx, tx, tenant, []crypto.PublicKey{&holder.PublicKey}, 1); err != nil {
			return err
		}
		if cur, err = load(fx.ctx, tx, tenant, store.TUFImages); err != nil {
			return err
		}
		if online, err = fx.svc.online(fx.ctx, tx, tenant, store.TUFImages); err != nil {
			return err
		}
		set, err = fx.svc.roots(fx.ctx, tx, tenant, nil, false)
		return err
	}); err != nil {
		f.Fatal(err)
	}
	onlineRoot := map[string]crypto.Signer{}
	for _, k := range set.signers {
		id, _ := tufrepo.KeyID(&k.PublicKey)
		onlineRoot[id] = k
	}
	f.Add(roots[0].Root)
	f.Add(bytes.Replace(roots[0].Root, []byte(`"version":2`), []byte(`"version":3`), 1))
	f.Add(bytes.Replace(roots[0].Root, []byte(`"threshold":1`), []byte(`"threshold":2`), 1))
	f.Add([]byte(`{"signed":{"_type":"root"},"signatures":[]}`))
	f.Fuzz(func(t *testing.T, root []byte) {
		var sigs []RootSignature
		if id, sig, err := tufrepo.SignRoot(root, holder); err == nil {
			sigs = append(sigs, RootSignature{Repository: store.TUFImages, KeyID: id, Signature: sig})
		}
		published, err := func() ([]byte, error) {
			old, err := metadata.Root().FromBytes(cur.Roots[len(cur.Roots)-1])
			if err != nil {
				return nil, err
			}
			next, err := fx.svc.checkPrepared(store.TUFImages, root, old, online.Targets[0].Public())
			if err != nil {
				return nil, err
			}
			if err := fx.svc.checkRebuilt(store.TUFImages, next, cur, online); err != nil {
				return nil, err
			}
			if _, _, err := attachSignatures(store.TUFImages, next, old, sigs, onlineRoot); err != nil {
				return nil, err
			}
			b, err := next.ToBytes(false)
			if err != nil {
				return nil, err
			}
			st, err := online.AcceptRoot(cur, b, fx.clock.now())
			if err != nil {
				return nil, err
			}
			return st.Roots[len(st.Roots)-1], nil
		}()
		if err != nil {
			for _, want := range []error{ErrPrepared, ErrBadKey, ErrBadThreshold, ErrBelowThreshold, ErrNotRootKey, ErrBadSignature, tufrepo.ErrKeys, tufrepo.ErrThreshold} {
				if errors.Is(err, want) {
					return
				}
			}
			t.Fatalf("refused with an undocumented error: %v", err)
		}
		r1, err := metadata.Root().FromBytes(cur.Roots[0])
		if err != nil {
			t.Fatal(err)
		}
		r2, err := metadata.Root().FromBytes(published)
		if err != nil {
			t.Fatal(err)
		}
		if r2.Signed.Version != 2 || r1.VerifyDelegate(tufrepo.RoleRoot, r2) != nil || r2.VerifyDelegate(tufrepo.RoleRoot, r2) != nil ||
			!slices.Equal(r2.Signed.Roles[tufrepo.RoleRoot].KeyIDs, []string{holderID}) {
			t.Fatalf("accepted a root a device would not take: %s", published)
		}
	})
}
