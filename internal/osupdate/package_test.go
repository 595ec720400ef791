package osupdate_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rampart-iot/rampart/imagepkg"
	"github.com/rampart-iot/rampart/internal/osupdate"
)

func TestPackageVerifier(t *testing.T) {
	b := makeBundle(t, "2.0.0", 1000)
	file := filepath.Join(t.TempDir(), "bundle")
	must(t, os.WriteFile(file, b.pkg, 0o600))
	production, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	good := *b.target("https://example.com")
	must(t, devVerifier.Verify(ctx, file, good))

	for name, tc := range map[string]struct {
		v    osupdate.PackageVerifier
		t    func(*osupdate.Target)
		want string
	}{
		"production device": {osupdate.PackageVerifier{Trusted: []crypto.PublicKey{production.Public()}}, nil, "not signed by enough trusted keys"},
		"other version":     {devVerifier, func(t *osupdate.Target) { t.Version = "2.0.1" }, "the package is version 2.0.0; the target is 2.0.1"},
		"other measurement": {devVerifier, func(t *osupdate.Target) { t.Measurement = strings.Repeat("0", 64) }, "measurement"},
	} {
		tg := good
		if tc.t != nil {
			tc.t(&tg)
		}
		if err := tc.v.Verify(ctx, file, tg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}

	// A flipped payload byte: the signature holds, the payload digest does not.
	bad := bytes.Clone(b.pkg)
	bad[len(bad)-10] ^= 1
	must(t, os.WriteFile(file, bad, 0o600))
	if err := devVerifier.Verify(ctx, file, good); !errors.Is(err, imagepkg.ErrPayloadDigest) {
		t.Errorf("tampered payload: %v", err)
	}
	if err := osupdate.UnpackPackage(ctx, file, t.TempDir()); !errors.Is(err, imagepkg.ErrPayloadDigest) {
		t.Errorf("unpacking a tampered payload: %v", err)
	}
	must(t, os.WriteFile(file, []byte("not a package"), 0o600))
	if err := devVerifier.Verify(ctx, file, good); !errors.Is(err, imagepkg.ErrNotPackage) {
		t.Errorf("not a package: %v", err)
	}
}
