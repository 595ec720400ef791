package imagepkg

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// build writes a package of meta with payload, signed by signers.
func build(t testing.TB, meta *Metadata, payload []byte, signers ...crypto.Signer) []byte {
	t.Helper()
	sum := sha256.Sum256(payload)
	meta.Payload = Payload{SHA256: hex.EncodeToString(sum[:]), Size: int64(len(payload)), Format: PayloadFormatTar}
	var out bytes.Buffer
	if err := Write(&out, meta, bytes.NewReader(payload), signers...); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func osMetadata() *Metadata {
	return &Metadata{
		Version: MetadataVersion, ImageID: "0d1b6c1e-8f2a-4c3d-9e4f-5a6b7c8d9e0f", ComponentID: OSComponentID,
		Kind: KindOS, Name: "Rampart OS", ImageVersion: "2.0.0-rc.1+build.7",
		CreatedAt:    time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC),
		Measurements: map[string]string{MeasurementOSBundle: strings.Repeat("ab", 32)},
	}
}

func TestKinds(t *testing.T) {
	tarOf := func(fsys fstest.MapFS) []byte {
		var b bytes.Buffer
		if _, err := Pack(&b, fsys); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	payload := tarOf(fstest.MapFS{"boot/kernel": {Data: []byte("kernel")}})
	board := osMetadata()
	board.Kind, board.ComponentID, board.Name, board.Measurements = KindBoardConfig, "5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b", "ethernet", nil
	secure := osMetadata()
	secure.SecurityVersion = 7
	for i, meta := range []*Metadata{osMetadata(), board, goldenMetadata(t, Payload{}), secure} {
		t.Run(fmt.Sprint(i, meta.Kind), func(t *testing.T) {
			data := build(t, meta, payload, testKey(t))
			p, _, err := openAndVerify(data, []crypto.PublicKey{testKey(t).Public()}, 1)
			if err != nil {
				t.Fatal(err)
			}
			if p.Metadata.Kind != meta.Kind || p.Metadata.ImageVersion != meta.ImageVersion || len(p.Metadata.Measurements) != len(meta.Measurements) ||
				p.Metadata.SecurityVersion != meta.SecurityVersion {
				t.Errorf("metadata = %+v", p.Metadata)
			}
			dst := t.TempDir()
			if err := p.Extract(dst); err != nil {
				t.Fatal(err)
			}
			if b, err := os.ReadFile(dst + "/boot/kernel"); err != nil || string(b) != "kernel" {
				t.Errorf("extracted %q, %v", b, err)
			}
		})
	}
}

func TestExtractChecksTheDigest(t *testing.T) {
	g := golden(t)
	_, envEnd := envelopeBounds(g)
	// A change in file contents keeps the tar well formed: only the digest catches it.
	i := envEnd + bytes.Index(g[envEnd:], []byte("Blinky blinks"))
	p, err := Open(bytes.NewReader(flip(g, i, 0x01)), int64(len(g)))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Extract(t.TempDir()); !errors.Is(err, ErrPayloadDigest) {
		t.Errorf("Extract = %v, want ErrPayloadDigest", err)
	}
	// A change in a tar header is reported as the digest mismatch it is.
	p, err = Open(bytes.NewReader(flip(g, envEnd+100, 0x01)), int64(len(g)))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Extract(t.TempDir()); !errors.Is(err, ErrPayloadDigest) {
		t.Errorf("Extract = %v, want ErrPayloadDigest", err)
	}
}

func TestDevelopmentKey(t *testing.T) {
	id, err := KeyID(DevelopmentPublicKey())
	if err != nil || id != DevelopmentKeyID {
		t.Fatalf("KeyID(development key) = %s, %v; DevelopmentKeyID = %s", id, err, DevelopmentKeyID)
	}
	pemFile, err := os.ReadFile("development-key.pem")
	if err != nil {
		t.Fatal(err)
	}
	if k, err := ParsePrivateKeyPEM(pemFile); err != nil || !k.Equal(DevelopmentKey()) {
		t.Fatalf("development-key.pem: %v", err)
	}
	meta := osMetadata()
	meta.Development = true
	data := build(t, meta, []byte("payload"), DevelopmentKey())
	p, err := Open(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if s := p.Signatures(); len(s) != 1 || !s[0].Development || s[0].KeyID != DevelopmentKeyID {
		t.Errorf("Signatures = %+v", s)
	}
	prod := []crypto.PublicKey{testKey(t).Public()}
	// A device in production mode refuses it; one in development mode accepts it, and knows.
	if _, err := p.Verify(TrustedKeys(prod, false), 1); !errors.Is(err, ErrUntrusted) {
		t.Errorf("production device: %v", err)
	}
	v, err := p.Verify(TrustedKeys(prod, true), 1)
	if err != nil || !v.DevelopmentOnly {
		t.Errorf("development device: %+v, %v", v, err)
	}
	// Once the service has countersigned it, production devices accept it.
	if err := p.Sign(testKey(t)); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	p.WriteTo(&out)
	_, v, err = openAndVerify(out.Bytes(), TrustedKeys(prod, false), 1)
	if err != nil || v.DevelopmentOnly {
		t.Errorf("countersigned, production device: %+v, %v", v, err)
	}
	_, v, err = openAndVerify(out.Bytes(), TrustedKeys(prod, true), 1)
	if err != nil || v.DevelopmentOnly || len(v.KeyIDs) != 2 {
		t.Errorf("countersigned, development device: %+v, %v", v, err)
	}

	// The development flag must match the signers.
	meta = osMetadata()
	if err := Write(io.Discard, meta, bytes.NewReader(nil), DevelopmentKey()); err == nil {
		t.Error("Write accepted a development-signed package without development: true")
	}
	meta.Development = true
	if err := Write(io.Discard, meta, bytes.NewReader(nil), testKey(t)); err == nil {
		t.Error("Write accepted development: true with a production key")
	}
	// A package signed with the development key and another, whose metadata says
	// development: false, is refused where only the development key's signature counts.
	meta.Development = false
	data = build(t, meta, nil, DevelopmentKey(), testKey(t))
	p, err = Open(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Verify([]crypto.PublicKey{DevelopmentPublicKey()}, 1); err == nil || !strings.Contains(err.Error(), "development is false") {
		t.Errorf("Verify = %v", err)
	}
}

func TestVerifyArguments(t *testing.T) {
	g := golden(t)
	p, err := Open(bytes.NewReader(g), int64(len(g)))
	if err != nil {
		t.Fatal(err)
	}
	k := testKey(t).Public()
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	for _, tc := range []struct {
		name      string
		trusted   []crypto.PublicKey
		threshold int
	}{
		{"no keys", nil, 1},
		{"threshold zero", []crypto.PublicKey{k}, 0},
		{"threshold over keys", []crypto.PublicKey{k}, 2},
		{"one key twice", []crypto.PublicKey{k, k}, 2},
		{"ed25519", []crypto.PublicKey{edKey.Public()}, 1},
		{"P-384", []crypto.PublicKey{p384.Public()}, 1},
		{"nil", []crypto.PublicKey{nil}, 1},
	} {
		if _, err := p.Verify(tc.trusted, tc.threshold); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	// Duplicated trusted keys count once.
	if _, err := p.Verify([]crypto.PublicKey{k, k}, 1); err != nil {
		t.Error(err)
	}
	// A threshold of two needs two signers.
	if _, err := p.Verify([]crypto.PublicKey{k, otherKey(t).Public()}, 2); !errors.Is(err, ErrUntrusted) {
		t.Errorf("threshold 2 with one signature: %v", err)
	}
}

func TestWriteRejects(t *testing.T) {
	payload := []byte("payload")
	sum := sha256.Sum256(payload)
	good := func() *Metadata {
		m := osMetadata()
		m.Payload = Payload{SHA256: hex.EncodeToString(sum[:]), Size: int64(len(payload)), Format: PayloadFormatTar}
		return m
	}
	for _, tc := range []struct {
		name string
		edit func(m *Metadata)
		msg  string
	}{
		{"version", func(m *Metadata) { m.Version = 2 }, "version: must be 1"},
		{"image id", func(m *Metadata) { m.ImageID = "x" }, "image_id: must be a UUID"},
		{"component id", func(m *Metadata) { m.ComponentID = "" }, "component_id: must be a UUID"},
		{"kind", func(m *Metadata) { m.Kind = "firmware" }, "kind: must be"},
		{"name", func(m *Metadata) { m.Name = " " }, "name: must not be empty"},
		{"name control", func(m *Metadata) { m.Name = "a\nb" }, "name: must not contain control"},
		{"image version", func(m *Metadata) { m.ImageVersion = "1.4" }, "image_version"},
		{"image version v", func(m *Metadata) { m.ImageVersion = "v1.4.2" }, "image_version"},
		{"created at", func(m *Metadata) { m.CreatedAt = time.Time{} }, "created_at"},
		{"payload digest", func(m *Metadata) { m.Payload.SHA256 = "abc" }, "payload.sha256"},
		{"payload size", func(m *Metadata) { m.Payload.Size = -1 }, "payload.size"},
		{"payload too large", func(m *Metadata) { m.Payload.Size = MaxPayloadSize + 1 }, "payload.size"},
		{"payload format", func(m *Metadata) { m.Payload.Format = "cpio" }, "payload.format"},
		{"no measurements", func(m *Metadata) { m.Measurements = nil }, "measurements: is required"},
		{"no os-bundle", func(m *Metadata) { m.Measurements = map[string]string{"kernel": strings.Repeat("0", 64)} }, `must include "os-bundle"`},
		{"bad measurement", func(m *Metadata) { m.Measurements["os-bundle"] = "00" }, "measurements.os-bundle"},
		{"bad measurement name", func(m *Metadata) { m.Measurements["Kernel Image"] = strings.Repeat("0", 64) }, "measurements: name"},
		{"manifest on OS", func(m *Metadata) { m.Manifest = goldenMetadata(t, Payload{}).Manifest }, "manifest: is only for applications"},
		{"app without manifest", func(m *Metadata) { m.Kind, m.Measurements = KindApplication, nil }, "manifest: is required"},
		{"app with measurements", func(m *Metadata) { m.Kind, m.Manifest = KindApplication, goldenMetadata(t, Payload{}).Manifest }, "measurements: is only for OS bundles"},
		{"security version too high", func(m *Metadata) { m.SecurityVersion = MaxSecurityVersion + 1 }, "security_version: must be 0 to 1048576"},
		{"app with security version", func(m *Metadata) {
			m.Kind, m.Measurements, m.Manifest, m.SecurityVersion = KindApplication, nil, goldenMetadata(t, Payload{}).Manifest, 2
		}, "security_version: is only for OS bundles"},
		{"manifest component", func(m *Metadata) {
			m.Kind, m.Measurements, m.Manifest = KindApplication, nil, goldenMetadata(t, Payload{}).Manifest
		}, "manifest.ComponentId: is 2a4f1e0c"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := good()
			tc.edit(m)
			err := Write(io.Discard, m, bytes.NewReader(payload), testKey(t))
			var pe *Error
			if !errors.As(err, &pe) || pe.Region != RegionMetadata || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("Write = %v, want a metadata error containing %q", err, tc.msg)
			}
			if err := m.Validate(); err == nil {
				t.Error("Validate accepted it")
			}
		})
	}
	// The payload must be what the metadata says.
	m := good()
	if err := Write(io.Discard, m, strings.NewReader("payloaX"), testKey(t)); !errors.Is(err, ErrPayloadDigest) {
		t.Errorf("Write with another payload = %v", err)
	}
	if err := Write(io.Discard, m, strings.NewReader("payload!"), testKey(t)); err == nil {
		t.Error("Write with a longer payload succeeded")
	}
	if err := Write(io.Discard, m, bytes.NewReader(payload)); err == nil {
		t.Error("Write without a signer succeeded")
	}
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	if err := Write(io.Discard, m, bytes.NewReader(payload), edKey); err == nil {
		t.Error("Write with an Ed25519 key succeeded")
	}
}

func TestParseKeys(t *testing.T) {
	if _, err := ParsePrivateKeyPEM([]byte("not PEM")); err == nil {
		t.Error("accepted not PEM")
	}
	if _, err := ParsePrivateKeyPEM([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")); err == nil {
		t.Error("accepted a certificate")
	}
	k := testKey(t)
	if _, err := ParsePublicKeyPEM(nil); err == nil {
		t.Error("accepted nothing")
	}
	id1, _ := KeyID(k.Public())
	id2, _ := KeyID(&k.PublicKey)
	if id1 != id2 || len(id1) != 64 {
		t.Errorf("KeyID = %s, %s", id1, id2)
	}
}

func TestVersion(t *testing.T) {
	for _, bad := range []string{"", "1", "1.2", "1.2.3.4", "01.2.3", "1.02.3", "1.2.03", "v1.2.3", "1.2.3-", "1.2.3+", "1.2.3-01",
		"1.2.3-a..b", "1.2.3-a_b", "-1.2.3", "1.2.3 ", "99999999999999999999.0.0", strings.Repeat("1", 70) + ".0.0"} {
		if _, err := ParseVersion(bad); err == nil {
			t.Errorf("ParseVersion(%q) accepted", bad)
		}
	}
	// Precedence from semver.org, oldest first.
	order := []string{"0.0.1", "0.0.1767225600", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta",
		"1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.1.0", "2.0.0"}
	for i := range order {
		for j := range order {
			a, err := ParseVersion(order[i])
			if err != nil {
				t.Fatal(err)
			}
			b, _ := ParseVersion(order[j])
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := a.Compare(b); got != want {
				t.Errorf("Compare(%s, %s) = %d, want %d", a, b, got, want)
			}
		}
	}
	v, _ := ParseVersion("1.0.0+build.5")
	w, _ := ParseVersion("1.0.0")
	if v.Compare(w) != 0 || v.String() != "1.0.0+build.5" {
		t.Errorf("build metadata: %v %d", v, v.Compare(w))
	}
}

func TestNewUUID(t *testing.T) {
	u, err := NewUUID(rand.Reader)
	if err != nil || len(u) != 36 || u[14] != '4' || !strings.ContainsRune("89ab", rune(u[19])) {
		t.Errorf("NewUUID = %s, %v", u, err)
	}
}

// FuzzOpen feeds arbitrary files to everything a device runs before it installs a package:
// Open, Verify, VerifyPayload and Extract. Nothing may panic, every refusal is an *Error or a
// verification argument error, and whatever passes must be what the golden keys signed.
func FuzzOpen(f *testing.F) {
	f.Add(golden(f))
	if b, err := os.ReadFile(goldenCountersigned); err == nil {
		f.Add(b)
	}
	dev := osMetadata()
	dev.Development = true
	f.Add(build(f, dev, []byte("not a tar"), DevelopmentKey()))
	f.Add([]byte(Magic + "\x00\x00\x00\x02{}"))
	trusted := TrustedKeys([]crypto.PublicKey{testKey(f).Public(), otherKey(f).Public()}, true)
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Open(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("Open error is %T: %v", err, err)
			}
			return
		}
		_ = p.Signatures()
		_ = p.String()
		if _, err := p.Verify(trusted, 1); err != nil {
			return
		}
		if err := p.VerifyPayload(); err != nil {
			return
		}
		if err := p.Extract(t.TempDir()); err != nil {
			var pe *Error
			if !errors.As(err, &pe) || pe.Region != RegionPayload {
				t.Fatalf("Extract error: %v", err)
			}
		}
	})
}
