package applibs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	sdk "github.com/rampart-iot/rampart/applibs"
	"github.com/rampart-iot/rampart/internal/attestclient"
)

// maxPEM bounds each certificate file read.
const maxPEM = 64 << 10

// CertDir reads applications' certificates from the agent's attestation store (the directory
// attestclient.Client.Dir): certs/app-COMPONENT.crt and .key, and certs/chain.pem. The agent
// asks for them at attestation for the components whose manifests have DeviceAuthentication
// (agent.Config.Components); until then a call fails with ErrNotAvailable.
type CertDir string

// AppCertificate implements Certificates.
func (d CertDir) AppCertificate(componentID string) (sdk.Certificate, error) {
	if !validID(componentID) {
		return sdk.Certificate{}, fmt.Errorf("component ID %q", componentID)
	}
	base := filepath.Join(string(d), attestclient.CertsLink)
	read := func(name string) (string, error) {
		b, err := readBounded(filepath.Join(base, name))
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("%w: the device has no certificate for this application yet (it is issued at the next attestation)", ErrNotAvailable)
		}
		return string(b), err
	}
	var c sdk.Certificate
	var err error
	if c.Certificate, err = read("app-" + componentID + ".crt"); err != nil {
		return sdk.Certificate{}, err
	}
	if c.PrivateKey, err = read("app-" + componentID + ".key"); err != nil {
		return sdk.Certificate{}, err
	}
	if c.Chain, err = read(attestclient.ChainFile); err != nil {
		return sdk.Certificate{}, err
	}
	return c, nil
}

func readBounded(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPEM+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxPEM {
		return nil, fmt.Errorf("%s is larger than %d bytes", p, maxPEM)
	}
	return b, nil
}
