package cli

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/tufrepo"
	"github.com/rampart-iot/rampart/internal/updatemeta"
)

// signFixture is a directory with root-key holders' files and prepared roots made without a
// service.
type signFixture struct {
	t   testing.TB
	dir string
}

func (f signFixture) key(name string) (*ecdsa.PrivateKey, string, string) {
	f.t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		f.t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		f.t.Fatal(err)
	}
	keyFile, pubFile := filepath.Join(f.dir, name+".pem"), filepath.Join(f.dir, name+".pub")
	f.write(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	f.write(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))
	return k, keyFile, pubFile
}

func (f signFixture) write(name string, b []byte) {
	f.t.Helper()
	if err := os.WriteFile(name, b, 0o600); err != nil {
		f.t.Fatal(err)
	}
}

// root is an unsigned root version 2 listing rootKeys with threshold and online for the
// online roles; change (if not nil) changes it before it is written.
func (f signFixture) root(rootKeys []*ecdsa.PrivateKey, threshold int, online *ecdsa.PrivateKey, change func(*metadata.RootType)) []byte {
	f.t.Helper()
	m := metadata.Root(time.Date(2027, 11, 24, 12, 0, 0, 0, time.UTC))
	m.Signed.Version = 2
	add := func(k *ecdsa.PrivateKey, role string) {
		key, err := metadata.KeyFromPublicKey(&k.PublicKey)
		if err != nil {
			f.t.Fatal(err)
		}
		if err := m.Signed.AddKey(key, role); err != nil {
			f.t.Fatal(err)
		}
	}
	for _, k := range rootKeys {
		add(k, tufrepo.RoleRoot)
	}
	m.Signed.Roles[tufrepo.RoleRoot].Threshold = threshold
	for _, role := range []string{tufrepo.RoleTargets, tufrepo.RoleSnapshot, tufrepo.RoleTimestamp} {
		add(online, role)
	}
	if change != nil {
		change(&m.Signed)
	}
	b, err := m.ToBytes(false)
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

func (f signFixture) prepared(name string, roots ...[]byte) string {
	f.t.Helper()
	p := v1.UpdateRootPrepared{TenantID: "t"}
	for i, r := range roots {
		repo := "images"
		if i > 0 {
			repo = "director/g" + string(rune('0'+i))
		}
		p.Roots = append(p.Roots, v1.PreparedRoot{Repository: repo, Root: r})
	}
	b, err := json.Marshal(p)
	if err != nil {
		f.t.Fatal(err)
	}
	out := filepath.Join(f.dir, name)
	f.write(out, b)
	return out
}

func tufID(t *testing.T, k *ecdsa.PrivateKey) string {
	t.Helper()
	id, err := tufrepo.KeyID(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestRootSignShowsAndChecksWhatItSigns: root-sign prints, for every repository, every root
// key's TUF key ID, the threshold, the online key's ID, the version and the expiry, and signs
// only when the roots list exactly the keys given with --expect-public-key and the threshold
// given with --expect-threshold. Roots that disagree on the root keys or threshold, or lack a
// top-level role (which once crashed it), are refused, and no signature file is written.
func TestRootSignShowsAndChecksWhatItSigns(t *testing.T) {
	f := signFixture{t: t, dir: t.TempDir()}
	r := newRunner(t, nil)
	k1, key1, pub1 := f.key("h1")
	k2, _, pub2 := f.key("h2")
	k3, _, pub3 := f.key("h3")
	stranger, _, strangerPub := f.key("stranger")
	online, _, _ := f.key("online")
	good := f.root([]*ecdsa.PrivateKey{k1, k2, k3}, 2, online, nil)
	unsigned := f.prepared("good.json", good, good)
	expect := []string{"--expect-public-key", pub1, "--expect-public-key", pub2, "--expect-public-key", pub3, "--expect-threshold", "2"}
	sign := func(unsigned, out string, extra ...string) []string {
		return append([]string{"keys", "root-sign", "--unsigned", unsigned, "--key", key1, "--out", filepath.Join(f.dir, out)}, extra...)
	}

	o := r.ok(t, sign(unsigned, "sig.json", expect...)...)
	if !strings.Contains(o, "images") || !strings.Contains(o, "director/g1") {
		t.Errorf("root-sign printed %q, want both repositories", o)
	}
	for _, want := range []string{"2 of 3", "2027-11-24T12:00:00Z", tufID(t, k1), tufID(t, k2), tufID(t, k3), tufID(t, online)} {
		if strings.Count(o, want) < 2 {
			t.Errorf("root-sign printed %q, want %s for each of the two repositories", o, want)
		}
	}
	if strings.Contains(o, "warning") {
		t.Errorf("checked, still warned: %q", o)
	}
	b, err := os.ReadFile(filepath.Join(f.dir, "sig.json"))
	if err != nil {
		t.Fatal(err)
	}
	var sigs v1.RootSignatures
	if err := json.Unmarshal(b, &sigs); err != nil || len(sigs.Signatures) != 2 || sigs.Signatures[0].KeyID != tufID(t, k1) {
		t.Fatalf("signatures %s: %v", b, err)
	}
	if o := r.ok(t, sign(unsigned, "unchecked.json")...); !strings.Contains(o, "warning: not checked") {
		t.Errorf("unchecked signing printed %q", o)
	}

	noRoot := f.root([]*ecdsa.PrivateKey{k1, k2, k3}, 2, online, func(r *metadata.RootType) { delete(r.Roles, tufrepo.RoleRoot) })
	noTimestamp := f.root([]*ecdsa.PrivateKey{k1, k2, k3}, 2, online, func(r *metadata.RootType) { delete(r.Roles, tufrepo.RoleTimestamp) })
	for _, tc := range []struct {
		name, want string
		args       []string
	}{
		{"a key missing", "not the 2 given", sign(unsigned, "s1.json", "--expect-public-key", pub1, "--expect-public-key", pub2)},
		{"a stranger's key expected", "not the 3 given", sign(unsigned, "s2.json", "--expect-public-key", pub1, "--expect-public-key", pub2, "--expect-public-key", strangerPub)},
		{"another threshold", "not --expect-threshold 3", sign(unsigned, "s3.json", "--expect-threshold", "3")},
		{"a stranger's key listed", "not the 3 given", sign(f.prepared("stranger.json", f.root([]*ecdsa.PrivateKey{k1, k2, stranger}, 2, online, nil)), "s4.json", expect...)},
		{"threshold 1 in one repository", "different root keys or thresholds", sign(f.prepared("t1.json", good, f.root([]*ecdsa.PrivateKey{k1, k2, k3}, 1, online, nil)), "s5.json")},
		{"other keys in one repository", "different root keys or thresholds", sign(f.prepared("k.json", good, f.root([]*ecdsa.PrivateKey{k1, k2, stranger}, 2, online, nil)), "s6.json")},
		{"no root role", "no usable root role", sign(f.prepared("noroot.json", noRoot), "s7.json")},
		{"no timestamp role", "no usable timestamp role", sign(f.prepared("nots.json", good, noTimestamp), "s8.json")},
	} {
		if line := r.fails(t, tc.want, tc.args...); line == "" {
			t.Errorf("%s: not refused as wanted", tc.name)
		}
	}
	for _, out := range []string{"s1.json", "s2.json", "s3.json", "s4.json", "s5.json", "s6.json", "s7.json", "s8.json"} {
		if _, err := os.Stat(filepath.Join(f.dir, out)); err == nil {
			t.Errorf("a refused root-sign wrote %s", out)
		}
	}
}

// TestDetachedRotationFitsAtMaxRoots: at updatemeta.MaxRotationRoots roots in the worst case
// (8 new root keys besides the online key in every root, group repository names, a version of
// 13 digits, 8 old and 8 new signatures of the longest DER per root), the completion request
// fits the route's limit with at least a tenth to spare, and the prepared file and one holder's
// signature file as the CLI writes them (indented) fit what it reads.
func TestDetachedRotationFitsAtMaxRoots(t *testing.T) {
	f := signFixture{t: t, dir: t.TempDir()}
	var keys []*ecdsa.PrivateKey
	for i := range updatemeta.MaxRootKeys + 1 {
		k, _, _ := f.key(fmt.Sprint("k", i))
		keys = append(keys, k)
	}
	root := f.root(keys[:updatemeta.MaxRootKeys], updatemeta.MaxRootKeys, keys[updatemeta.MaxRootKeys], func(r *metadata.RootType) { r.Version = 1e12 })
	repo := "director/" + strings.Repeat("0", 36) + "/held"
	sig := v1.RootSignature{Repository: repo, KeyID: strings.Repeat("a", 64), Sig: strings.Repeat("ab", 72)}
	req := v1.UpdateRootComplete{}
	prep := v1.UpdateRootPrepared{TenantID: strings.Repeat("t", 64)}
	one := v1.RootSignatures{}
	for range updatemeta.MaxRotationRoots {
		pr := v1.PreparedRoot{Repository: repo, Root: root}
		req.Roots, prep.Roots = append(req.Roots, pr), append(prep.Roots, pr)
		for range 2 * updatemeta.MaxRootKeys {
			req.Signatures = append(req.Signatures, sig)
		}
		one.Signatures = append(one.Signatures, sig)
	}
	b, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := json.MarshalIndent(prep, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	sb, err := json.MarshalIndent(one, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("at %d roots: request %d bytes (limit %d), prepared file %d (limit %d), signature file %d (limit %d)",
		updatemeta.MaxRotationRoots, len(b), updatemeta.MaxCompleteRequestBytes, len(pb), maxUnsignedFile, len(sb), maxSignatureFile)
	if len(b) > updatemeta.MaxCompleteRequestBytes*9/10 {
		t.Errorf("the request is %d bytes, more than 90%% of %d", len(b), updatemeta.MaxCompleteRequestBytes)
	}
	if len(pb) > maxUnsignedFile || len(sb) > maxSignatureFile {
		t.Errorf("prepared file %d bytes (limit %d), signature file %d (limit %d)", len(pb), maxUnsignedFile, len(sb), maxSignatureFile)
	}
}

// FuzzInspectRoot: root-sign reads a prepared root from a file the operator hands over; any
// bytes are refused or shown without a panic, and a root it accepts has all four top-level
// roles with a usable threshold of keys it lists.
func FuzzInspectRoot(f *testing.F) {
	fx := signFixture{t: f, dir: f.TempDir()}
	k1, _, _ := fx.key("k1")
	online, _, _ := fx.key("online")
	f.Add(fx.root([]*ecdsa.PrivateKey{k1}, 1, online, nil))
	f.Add(fx.root([]*ecdsa.PrivateKey{k1}, 1, online, func(r *metadata.RootType) { delete(r.Roles, tufrepo.RoleRoot) }))
	f.Add(fx.root([]*ecdsa.PrivateKey{k1}, 1, online, func(r *metadata.RootType) { r.Roles[tufrepo.RoleRoot].Threshold = 2 }))
	f.Add([]byte(`{"signed":{"_type":"root"},"signatures":[]}`))
	f.Add([]byte("{"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := inspectRoot("images", b)
		if err != nil {
			return
		}
		if len(p.rootKeys) == 0 || p.threshold < 1 || p.threshold > len(p.rootKeys) || len(p.onlineKeys) == 0 {
			t.Fatalf("accepted %+v from %q", p, b)
		}
	})
}
