package tpmrot

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-tpm/tpm2/transport/linuxtpm"

	"github.com/rampart-iot/rampart/internal/rot"
)

// Backend names in root-of-trust specs.
const (
	NameDevice = "tpm"     // "tpm" or "tpm:PATH"
	NameSWTPM  = "swtpm"   // "swtpm:unix:PATH" or "swtpm:tcp:HOST:PORT"
	NameSim    = "tpm-sim" // "tpm-sim"; only in cgo builds
)

// DefaultDevice is the TPM device "tpm" opens without a path.
const DefaultDevice = "/dev/tpmrm0"

// StateSubdir is the directory under the agent's state directory where the "tpm" and "swtpm"
// backends keep ak.json.
const StateSubdir = "rot-tpm"

func init() {
	rot.Register(NameDevice, openDevice)
	rot.Register(NameSWTPM, openSWTPM)
}

func openDevice(ctx context.Context, arg, stateDir string) (rot.RootOfTrust, error) {
	path := arg
	if path == "" {
		path = DefaultDevice
	}
	t, err := linuxtpm.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening the TPM %s: %w", path, err)
	}
	r, err := Open(ctx, t, stateDirFor(stateDir))
	if err != nil {
		return nil, err
	}
	r.firmwareLog = firmwareLogPath(path)
	return r, nil
}

func openSWTPM(ctx context.Context, arg, stateDir string) (rot.RootOfTrust, error) {
	t, err := socketTransport(arg)
	if err != nil {
		return nil, err
	}
	return Open(ctx, t, stateDirFor(stateDir))
}

// socketTransport makes the transport to swtpm's data channel from the argument of a "swtpm"
// spec: "unix:PATH" or "tcp:HOST:PORT".
func socketTransport(arg string) (*socketTPM, error) {
	network, addr, _ := strings.Cut(arg, ":")
	switch network {
	case "unix":
		fi, err := os.Stat(addr)
		if err != nil {
			return nil, fmt.Errorf("swtpm socket: %w", err)
		}
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("swtpm socket: %s is not a socket", addr)
		}
	case "tcp":
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("swtpm address %q: %w", addr, err)
		}
	default:
		return nil, fmt.Errorf("root of trust %q wants unix:PATH or tcp:HOST:PORT, not %q", NameSWTPM, arg)
	}
	if addr == "" {
		return nil, fmt.Errorf("root of trust %q wants unix:PATH or tcp:HOST:PORT, not %q", NameSWTPM, arg)
	}
	return &socketTPM{network: network, addr: addr, timeout: socketTimeout}, nil
}

func stateDirFor(stateDir string) string {
	if stateDir == "" {
		return ""
	}
	return filepath.Join(stateDir, StateSubdir)
}
