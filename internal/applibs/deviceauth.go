package applibs

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	sdk "github.com/rampart-iot/rampart/applibs"
)

// checkTenant holds an application's certificate to its manifest: DeviceAuthentication names
// the tenant the application authenticates to (as on Azure Sphere), and the certificate's
// SPIFFE ID (spiffe://TENANT/device/DEVICE/app/COMPONENT) names the tenant the device belongs
// to. An application built for another tenant gets a permission error naming both, not a
// certificate that would not be accepted where it is headed.
func checkTenant(c sdk.Certificate, want string) error {
	got, err := certificateTenant(c.Certificate)
	if err != nil {
		return fmt.Errorf("%w: the application certificate: %v", ErrNotAvailable, err)
	}
	if !strings.EqualFold(got, want) {
		return &PermissionError{Capability: "DeviceAuthentication",
			What: fmt.Sprintf("for this device's tenant %s (the manifest names tenant %s)", got, want)}
	}
	return nil
}

// certificateTenant reads the tenant from the first certificate's SPIFFE ID.
func certificateTenant(certPEM string) (string, error) {
	blk, _ := pem.Decode([]byte(certPEM))
	if blk == nil || blk.Type != "CERTIFICATE" {
		return "", errors.New("no PEM certificate")
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return "", err
	}
	for _, u := range cert.URIs {
		if u.Scheme == "spiffe" && u.Host != "" && strings.HasPrefix(u.Path, "/device/") {
			return u.Host, nil
		}
	}
	return "", errors.New("it names no spiffe://TENANT/device/… URI")
}
