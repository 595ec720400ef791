package osupdate

import (
	"context"
	"crypto"
	"fmt"
	"os"

	"github.com/rampart-iot/rampart/imagepkg"
)

// PackageVerifier verifies that a downloaded bundle is an OS image package (imagepkg) signed
// by at least Threshold of the Trusted keys (imagepkg.TrustedKeys), for the target's version,
// whose golden OS-bundle measurement is the target's measurement when the target names one,
// whose security version is the target's (the one the anti-rollback counter was checked
// against), and whose payload matches the digest in its signed metadata.
type PackageVerifier struct {
	Trusted   []crypto.PublicKey
	Threshold int // 0 means 1
}

// Verify implements Verifier.
func (v PackageVerifier) Verify(ctx context.Context, bundle string, t Target) error {
	p, f, err := openPackage(bundle)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := p.Verify(v.Trusted, max(v.Threshold, 1)); err != nil {
		return err
	}
	md := p.Metadata
	if md.Kind != imagepkg.KindOS {
		return fmt.Errorf("the package is a %s image, not an OS bundle", md.Kind)
	}
	if md.ImageVersion != t.Version {
		return fmt.Errorf("the package is version %s; the target is %s", md.ImageVersion, t.Version)
	}
	if golden := md.Measurements[imagepkg.MeasurementOSBundle]; t.Measurement != "" && golden != t.Measurement {
		return fmt.Errorf("the package's OS-bundle measurement is %s; the target's is %s", golden, t.Measurement)
	}
	if md.SecurityVersion != t.SecurityVersion {
		return fmt.Errorf("the package's security version is %d; the target's is %d", md.SecurityVersion, t.SecurityVersion)
	}
	return p.VerifyPayload()
}

// UnpackPackage is the default Config.Unpack: it extracts the payload of the OS image package
// bundle into dir with imagepkg's guarded extractor, checking the payload's digest as it reads.
func UnpackPackage(ctx context.Context, bundle, dir string) error {
	p, f, err := openPackage(bundle)
	if err != nil {
		return err
	}
	defer f.Close()
	return p.Extract(dir)
}

func openPackage(path string) (*imagepkg.Package, *os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	p, err := imagepkg.Open(f, st.Size())
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return p, f, nil
}

// compareVersions orders two semantic versions by precedence: -1, 0 or +1.
func compareVersions(a, b string) (int, error) {
	va, err := imagepkg.ParseVersion(a)
	if err != nil {
		return 0, err
	}
	vb, err := imagepkg.ParseVersion(b)
	if err != nil {
		return 0, err
	}
	return va.Compare(vb), nil
}
