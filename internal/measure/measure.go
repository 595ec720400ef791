// Package measure is the security monitor's first act at start: it computes the digests of the
// security policy, the agent's own binary and the active OS bundle, extends them into the root
// of trust's PCR in that order, and keeps the measurement log that lets a verifier replay them.
// The log lives in a runtime directory that a reboot clears, as PCRs are; when the agent
// restarts without a reboot, it reuses the log if it still replays to the PCR, and refuses to
// measure again on top of measurements it cannot account for.
//
// Trust: measure trusts the root of trust to extend and report PCRs honestly, and nothing it
// reads back from the runtime directory until the log replays to the PCR.
package measure

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/rampart-iot/rampart/internal/atomicfile"
	"github.com/rampart-iot/rampart/internal/eventlog"
	"github.com/rampart-iot/rampart/internal/rot"
)

// DefaultPolicy is the security policy measured when the device has no policy file.
//
//go:embed default-policy.json
var DefaultPolicy []byte

// Inputs are what the monitor measures.
type Inputs struct {
	// PolicyFile is the security policy; if it does not exist, DefaultPolicy is measured.
	PolicyFile string
	// AgentBinary is the agent's executable (os.Executable() in production).
	AgentBinary string
	// OSBundle is the active OS bundle: a file, or a directory measured as a tree.
	OSBundle string
}

// Digests computes the three measurements without extending anything.
func Digests(in Inputs) (map[string][]byte, error) {
	out := map[string][]byte{}
	policy, err := os.ReadFile(in.PolicyFile)
	if errors.Is(err, fs.ErrNotExist) || in.PolicyFile == "" {
		policy, err = DefaultPolicy, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the security policy: %w", err)
	}
	p := sha256.Sum256(policy)
	out[eventlog.MeasurePolicy] = p[:]
	if out[eventlog.MeasureAgent], err = fileDigest(in.AgentBinary, true); err != nil {
		return nil, fmt.Errorf("measuring the agent binary: %w", err)
	}
	if out[eventlog.MeasureOSBundle], err = TreeDigest(in.OSBundle); err != nil {
		return nil, fmt.Errorf("measuring the OS bundle: %w", err)
	}
	return out, nil
}

var order = []string{eventlog.MeasurePolicy, eventlog.MeasureAgent, eventlog.MeasureOSBundle}

// Boot measures in into pcr, or, if the PCR already holds this agent's measurements from an
// earlier start of this boot, returns the log saved then. The log is kept at logPath.
func Boot(ctx context.Context, r rot.RootOfTrust, pcr int, in Inputs, logPath string) (*eventlog.Log, error) {
	vals, err := r.ReadPCRs(ctx, []int{pcr})
	if err != nil {
		return nil, fmt.Errorf("reading PCR %d: %w", pcr, err)
	}
	cur := vals[pcr]
	if !bytes.Equal(cur, make([]byte, sha256.Size)) {
		b, err := os.ReadFile(logPath)
		if err != nil {
			return nil, fmt.Errorf("PCR %d already holds measurements but the log of them (%s) cannot be read (%v); restart the device so the PCR resets", pcr, logPath, err)
		}
		log, err := eventlog.Parse(b)
		if err != nil {
			return nil, fmt.Errorf("the saved measurement log %s is unusable: %w", logPath, err)
		}
		if !bytes.Equal(log.Replay(nil)[pcr], cur) {
			return nil, fmt.Errorf("PCR %d holds measurements that the saved log %s does not account for; restart the device so the PCR resets", pcr, logPath)
		}
		return log, nil
	}
	digests, err := Digests(in)
	if err != nil {
		return nil, err
	}
	log := eventlog.New()
	descr := map[string]string{eventlog.MeasurePolicy: in.PolicyFile, eventlog.MeasureAgent: in.AgentBinary, eventlog.MeasureOSBundle: in.OSBundle}
	// Save the log before extending, so a crash between the two leaves a log that is
	// ahead of the PCR (detected above) rather than a PCR that nothing explains.
	for _, name := range order {
		if err := log.Append(pcr, name, descr[name], digests[name]); err != nil {
			return nil, err
		}
	}
	b, err := log.Marshal()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(logPath), 0o700); err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(logPath, b, 0o600); err != nil {
		return nil, err
	}
	for _, name := range order {
		if err := r.Extend(ctx, pcr, digests[name]); err != nil {
			return nil, fmt.Errorf("extending PCR %d with %s: %w", pcr, name, err)
		}
	}
	return log, nil
}

// fileDigest is the SHA-256 of the file at path. With drop (the agent's own binary, read whole
// at every start), its pages then leave the page cache (dropCached); other files' stay, since
// the callers of TreeDigest (packing an image, installing a slot) read them again.
func fileDigest(path string, drop bool) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	if drop {
		dropCached(f)
	}
	return h.Sum(nil), nil
}

// TreeDigest is the digest of a file, or of a directory tree: for every entry in lexical order
// of its slash-separated relative path, the path, its type (file, directory, symlink), its
// permission bits, and the SHA-256 of its contents (or of its link target), each length-prefixed.
// Entries that are neither files, directories nor symlinks make it fail.
func TreeDigest(root string) ([]byte, error) {
	st, err := os.Lstat(root)
	if err != nil {
		return nil, err
	}
	if st.Mode().IsRegular() {
		return fileDigest(root, false)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%s is neither a file nor a directory", root)
	}
	var paths []string
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != root {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(paths, func(i, j int) bool { return filepath.ToSlash(paths[i]) < filepath.ToSlash(paths[j]) })
	h := sha256.New()
	put := func(b []byte) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	h.Write([]byte("rampart-tree-v1\x00"))
	for _, p := range paths {
		rel, _ := filepath.Rel(root, p)
		st, err := os.Lstat(p)
		if err != nil {
			return nil, err
		}
		var kind string
		var content []byte
		switch m := st.Mode(); {
		case m.IsRegular():
			kind = "f"
			if content, err = fileDigest(p, false); err != nil {
				return nil, err
			}
		case m.IsDir():
			kind = "d"
		case m&fs.ModeSymlink != 0:
			kind = "l"
			target, err := os.Readlink(p)
			if err != nil {
				return nil, err
			}
			s := sha256.Sum256([]byte(target))
			content = s[:]
		default:
			return nil, fmt.Errorf("%s: unsupported file type %v", p, m.Type())
		}
		put([]byte(filepath.ToSlash(rel)))
		put([]byte(kind))
		put([]byte(fmt.Sprintf("%o", st.Mode().Perm())))
		put(content)
	}
	return h.Sum(nil), nil
}
