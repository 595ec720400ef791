//go:build cgo

package tpmrot

// The "tpm-sim" backend: the reference TPM 2.0 simulator (Microsoft's, through go-tpm-tools)
// running inside this process. It needs cgo and libcrypto (libssl-dev to build), which is why
// this file builds only with cgo: CGO_ENABLED=0 binaries have no "tpm-sim" backend.
//
// What its identity is worth: nothing beyond a test's. The simulator keeps its state in this
// process's memory, and its hierarchy seeds, from which the EK and the storage root key derive,
// come from go-tpm-tools' simulator.GetWithFixedSeedInsecure(seed): seed is derived from a
// random file, STATE/rot-tpm-sim/seed, so the same state directory gives the same EK (and so
// the same device ID) and the AK in STATE/rot-tpm-sim/ak.json loads again after a restart.
// Anyone with that file can be the device. GetWithFixedSeedInsecure feeds the seed to
// math/rand, which keeps only 31 bits of it: two simulated devices share an identity with
// probability about n²/2³² among n devices. Nothing about the simulator is hardware, and it has no
// EK certificate, so a verifier that demands an EK certificate chain refuses it.
//
// The simulator is one per process: go-tpm-tools keeps it in global state. Every "tpm-sim"
// root of trust open at the same time shares it, and they must all use the same state
// directory; opening another is an error until the others are closed. When the last one
// closes the simulator shuts down, and the next open starts it afresh: PCRs reset, as at a
// reboot. Code elsewhere in the process that calls go-tpm-tools' simulator.Get while a
// "tpm-sim" root is open blocks until the root closes.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/google/go-tpm-tools/simulator"

	"github.com/rampart-iot/rampart/internal/atomicfile"
	"github.com/rampart-iot/rampart/internal/rot"
)

// SimStateSubdir is the directory under the agent's state directory where "tpm-sim" keeps its
// seed and ak.json.
const SimStateSubdir = "rot-tpm-sim"

// simSeedSize is the size of the seed file.
const simSeedSize = 32

func init() { rot.Register(NameSim, openSim) }

// sim is the process's simulator.
var sim struct {
	mu    sync.Mutex // guards everything below, and every command sent to the simulator
	s     *simulator.Simulator
	dir   string // the state directory it was started for
	users int
}

func openSim(ctx context.Context, arg, stateDir string) (rot.RootOfTrust, error) {
	if arg != "" {
		return nil, fmt.Errorf("root of trust %q takes no argument", NameSim)
	}
	if stateDir == "" {
		return nil, errors.New("the TPM simulator root of trust needs a state directory")
	}
	dir := filepath.Join(stateDir, SimStateSubdir)
	t, err := acquireSim(dir)
	if err != nil {
		return nil, err
	}
	return Open(ctx, t, dir)
}

// acquireSim starts the simulator with the seed kept in dir, or shares it if it already runs
// for dir.
func acquireSim(dir string) (*simTPM, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("TPM simulator: %w", err)
	}
	sim.mu.Lock()
	defer sim.mu.Unlock()
	if sim.s != nil {
		if sim.dir != abs {
			return nil, fmt.Errorf("the TPM simulator is already running for %s; one simulator per process, one device per simulator", sim.dir)
		}
		sim.users++
		return &simTPM{}, nil
	}
	seed, err := simSeed(abs)
	if err != nil {
		return nil, err
	}
	s, err := simulator.GetWithFixedSeedInsecure(seed)
	if err != nil {
		return nil, fmt.Errorf("starting the TPM simulator: %w", err)
	}
	sim.s, sim.dir, sim.users = s, abs, 1
	return &simTPM{}, nil
}

// simSeed reads dir/seed, creating it with fresh random bytes on first use, and derives the
// simulator's seed from it.
func simSeed(dir string) (int64, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, fmt.Errorf("TPM simulator: %w", err)
	}
	path := filepath.Join(dir, "seed")
	b, err := readBounded(path, simSeedSize)
	if errors.Is(err, fs.ErrNotExist) {
		b = make([]byte, simSeedSize)
		if _, err := rand.Read(b); err != nil {
			return 0, fmt.Errorf("TPM simulator: %w", err)
		}
		if err := atomicfile.WriteFile(path, b, 0o600); err != nil {
			return 0, fmt.Errorf("TPM simulator: %w", err)
		}
	} else if err != nil {
		return 0, fmt.Errorf("TPM simulator: %w", err)
	}
	if len(b) != simSeedSize {
		return 0, fmt.Errorf("TPM simulator: %s holds %d bytes; want %d", path, len(b), simSeedSize)
	}
	sum := sha256.Sum256(append([]byte("rampart tpm-sim seed\x00"), b...))
	return int64(binary.BigEndian.Uint64(sum[:8]) >> 1), nil
}

// simTPM is one user's transport to the shared simulator.
type simTPM struct{ closed bool }

func (t *simTPM) Send(cmd []byte) ([]byte, error) {
	sim.mu.Lock()
	defer sim.mu.Unlock()
	if t.closed || sim.s == nil {
		return nil, errors.New("TPM simulator: closed")
	}
	if _, err := sim.s.Write(cmd); err != nil {
		return nil, fmt.Errorf("TPM simulator: %w", err)
	}
	var rsp bytes.Buffer
	if _, err := rsp.ReadFrom(sim.s); err != nil {
		return nil, fmt.Errorf("TPM simulator: %w", err)
	}
	return rsp.Bytes(), nil
}

// Close releases this user's share; the last one shuts the simulator down.
func (t *simTPM) Close() error {
	sim.mu.Lock()
	defer sim.mu.Unlock()
	if t.closed {
		return nil
	}
	t.closed = true
	sim.users--
	if sim.users > 0 {
		return nil
	}
	s := sim.s
	sim.s, sim.dir = nil, ""
	return s.Close()
}
