package cli

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/atomicfile"
	"github.com/rampart-iot/rampart/internal/strictjson"
	"github.com/rampart-iot/rampart/internal/tufrepo"
	"github.com/rampart-iot/rampart/internal/updatemeta"
)

// Detached root signatures (docs/UPDATE-METADATA.md): root-keygen and root-sign run where a
// root key lives, without the service; root-prepare and rotate-root --unsigned --signature
// talk to it.

const (
	maxUnsignedFile  = 8 << 20 // a prepared rotation: a root per repository
	maxSignatureFile = 4 << 20 // one holder's signatures: one per repository
)

// readBounded reads a file of at most max bytes.
func readBounded(name string, max int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, max)
	}
	return b, nil
}

// readPrepared reads a prepared rotation as root-prepare wrote it.
func readPrepared(name string) (v1.UpdateRootPrepared, error) {
	var p v1.UpdateRootPrepared
	b, err := readBounded(name, maxUnsignedFile)
	if err != nil {
		return p, err
	}
	if err := strictjson.Decode(b, &p); err != nil {
		return p, fmt.Errorf("%s: %w", name, err)
	}
	if len(p.Roots) == 0 || len(p.Roots) > updatemeta.MaxRotationRoots {
		return p, fmt.Errorf("%s: %d roots; want 1 to %d", name, len(p.Roots), updatemeta.MaxRotationRoots)
	}
	return p, nil
}

func newKeysRootKeygenCmd(a *app) *cobra.Command {
	var out, pubOut string
	cmd := &cobra.Command{
		Use:   "root-keygen --out KEY --public-out PUB",
		Short: "Make a root key where it will live (no service): the private half to KEY, the public half to PUB",
		Long: `root-keygen makes an ECDSA P-256 key for a tenant's update-metadata root, for the detached
flow in which root keys never reach the service: the private key is written to KEY (mode 0600,
PKCS #8 PEM) and stays on this machine; give PUB (PKIX PEM) to the operator for 'keys
root-prepare --public-key PUB'. It does not talk to the service.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" || pubOut == "" {
				return &usageError{cmd: cmd, msg: "--out KEY and --public-out PUB are required"}
			}
			for _, f := range []string{out, pubOut} {
				if _, err := os.Stat(f); err == nil {
					return fmt.Errorf("%s exists; refusing to overwrite it", f)
				}
			}
			k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				return err
			}
			der, err := x509.MarshalPKCS8PrivateKey(k)
			if err != nil {
				return err
			}
			pub, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
			if err != nil {
				return err
			}
			if err := atomicfile.WriteFile(out, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
				return err
			}
			if err := atomicfile.WriteFile(pubOut, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644); err != nil {
				return err
			}
			id, err := tufrepo.KeyID(&k.PublicKey)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.sys.Out, "wrote root key %s (TUF key ID) to %s and its public half to %s\n", id, out, pubOut)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "file for the private key (must not exist; mode 0600)")
	cmd.Flags().StringVar(&pubOut, "public-out", "", "file for the public key (must not exist)")
	return cmd
}

func newKeysRootPrepareCmd(a *app) *cobra.Command {
	var pubs []string
	var threshold int
	var out string
	cmd := &cobra.Command{
		Use:   "root-prepare --public-key PUB ... --threshold K --out UNSIGNED",
		Short: "Prepare a root rotation whose keys never reach the service: every repository's next root, unsigned",
		Long: `root-prepare asks the service for root version N+1 of every repository of the tenant, listing
the new root keys given by their public halves (--public-key, once per key, as 'keys
root-keygen' wrote them; 1 to 8) and --threshold K of them, unsigned. It writes them to UNSIGNED
and publishes nothing. Each holder of a current root key and of a new one then runs 'keys
root-sign --unsigned UNSIGNED --key KEY --expect-public-key PUB ... --expect-threshold K --out
SIG' where the key lives, with the new keys' public halves and the threshold as agreed, and 'keys rotate-root
--unsigned UNSIGNED --signature SIG ...' publishes. Should a repository change its root in
between (another rotation, a renewal, a new group's first deployment), prepare again.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" || len(pubs) == 0 {
				return &usageError{cmd: cmd, msg: "--public-key PUB (at least one) and --out UNSIGNED are required"}
			}
			if len(pubs) > updatemeta.MaxRootKeys || threshold < 1 || threshold > len(pubs) {
				return &usageError{cmd: cmd, msg: fmt.Sprintf("want 1 to %d --public-key and a --threshold from 1 to their number", updatemeta.MaxRootKeys)}
			}
			if _, err := os.Stat(out); err == nil {
				return fmt.Errorf("%s exists; refusing to overwrite it", out)
			}
			req := v1.UpdateRootPrepare{Threshold: threshold}
			for _, f := range pubs {
				b, err := readBounded(f, updatemeta.MaxPublicKeyPEM)
				if err != nil {
					return err
				}
				if _, err := updatemeta.ParsePublicKey(b); err != nil {
					return fmt.Errorf("%s: %w", f, err)
				}
				req.PublicKeysPEM = append(req.PublicKeysPEM, string(b))
			}
			s, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			prep, err := s.c.PrepareUpdateRoot(cmd.Context(), s.tenant, req)
			if err != nil {
				return err
			}
			b, err := json.MarshalIndent(prep, "", "  ")
			if err != nil {
				return err
			}
			if err := atomicfile.WriteFile(out, append(b, '\n'), 0o644); err != nil {
				return err
			}
			fmt.Fprintf(a.sys.Out, "wrote the next root of %d repositories to %s: have each holder of a current and a new root key sign it with 'rampart keys root-sign --expect-public-key PUB ... --expect-threshold K'\n", len(prep.Roots), out)
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&pubs, "public-key", nil, "a new root key's public half, PEM (repeatable)")
	cmd.Flags().IntVar(&threshold, "threshold", 1, "how many of the new keys must sign a root")
	cmd.Flags().StringVar(&out, "out", "", "file to write the prepared roots to (must not exist)")
	return cmd
}

// preparedRoot is what root-sign shows of one prepared root.
type preparedRoot struct {
	repository string
	version    int64
	expires    string
	rootKeys   []string // TUF key IDs, sorted
	threshold  int
	onlineKeys []string // the TUF key IDs targets, snapshot and timestamp list, sorted, once each
}

// inspectRoot parses a prepared root for root-sign: all four top-level roles must be there,
// each listing only keys the root has.
func inspectRoot(repository string, b []byte) (preparedRoot, error) {
	m, err := metadata.Root().FromBytes(b)
	if err != nil {
		return preparedRoot{}, fmt.Errorf("the root of %s: %w", repository, err)
	}
	for _, name := range []string{tufrepo.RoleRoot, tufrepo.RoleTargets, tufrepo.RoleSnapshot, tufrepo.RoleTimestamp} {
		role := m.Signed.Roles[name]
		if role == nil || len(role.KeyIDs) == 0 || role.Threshold < 1 || role.Threshold > len(role.KeyIDs) {
			return preparedRoot{}, fmt.Errorf("the root of %s has no usable %s role; refusing to sign it", repository, name)
		}
		for _, id := range role.KeyIDs {
			if m.Signed.Keys[id] == nil {
				return preparedRoot{}, fmt.Errorf("the root of %s lists key %s for %s but not among its keys; refusing to sign it", repository, id, name)
			}
		}
	}
	p := preparedRoot{repository: repository, version: m.Signed.Version, expires: m.Signed.Expires.UTC().Format("2006-01-02T15:04:05Z"),
		rootKeys: slices.Sorted(slices.Values(m.Signed.Roles[tufrepo.RoleRoot].KeyIDs)), threshold: m.Signed.Roles[tufrepo.RoleRoot].Threshold}
	for _, name := range []string{tufrepo.RoleTargets, tufrepo.RoleSnapshot, tufrepo.RoleTimestamp} {
		p.onlineKeys = append(p.onlineKeys, m.Signed.Roles[name].KeyIDs...)
	}
	slices.Sort(p.onlineKeys)
	p.onlineKeys = slices.Compact(p.onlineKeys)
	return p, nil
}

func newKeysRootSignCmd(a *app) *cobra.Command {
	var unsigned, key, out string
	var expectPubs []string
	var expectThreshold int
	cmd := &cobra.Command{
		Use:   "root-sign --unsigned UNSIGNED --key KEY --expect-public-key PUB ... --expect-threshold K --out SIG",
		Short: "Sign a prepared root rotation with a root key, where the key lives (no service)",
		Long: `root-sign signs every root in UNSIGNED (as 'keys root-prepare' wrote it) with KEY, a current
or a new root key, and writes the detached signatures to SIG for the operator ('keys rotate-root
--unsigned UNSIGNED --signature SIG ...'). The key is only read. It does not talk to the service.

Give the new root keys' public halves (--expect-public-key, once per key, as the holders handed
them over) and the threshold agreed on (--expect-threshold): root-sign refuses unless every root
lists exactly those keys and that threshold. It prints what it signs: for each repository the
root version, expiry, threshold, every root key's TUF key ID and the online keys' IDs; check
them before you hand SIG over. It refuses to sign roots that disagree on the root keys or the
threshold, or that lack one of the four top-level roles.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if unsigned == "" || key == "" || out == "" {
				return &usageError{cmd: cmd, msg: "--unsigned UNSIGNED, --key KEY and --out SIG are required"}
			}
			if _, err := os.Stat(out); err == nil {
				return fmt.Errorf("%s exists; refusing to overwrite it", out)
			}
			var expectIDs []string
			for _, f := range expectPubs {
				b, err := readBounded(f, updatemeta.MaxPublicKeyPEM)
				if err != nil {
					return err
				}
				pub, err := updatemeta.ParsePublicKey(b)
				if err != nil {
					return fmt.Errorf("%s: %w", f, err)
				}
				id, err := tufrepo.KeyID(pub)
				if err != nil {
					return err
				}
				expectIDs = append(expectIDs, id)
			}
			slices.Sort(expectIDs)
			expectIDs = slices.Compact(expectIDs)
			prep, err := readPrepared(unsigned)
			if err != nil {
				return err
			}
			kb, err := readKeyFile(key)
			if err != nil {
				return err
			}
			blk, rest := pem.Decode(kb)
			if blk == nil || blk.Type != "PRIVATE KEY" || strings.TrimSpace(string(rest)) != "" {
				return fmt.Errorf("%s: not one PEM 'PRIVATE KEY' block", key)
			}
			parsed, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
			if err != nil {
				return fmt.Errorf("%s: %w", key, err)
			}
			k, ok := parsed.(*ecdsa.PrivateKey)
			if !ok || k.Curve != elliptic.P256() {
				return fmt.Errorf("%s: not an ECDSA P-256 key", key)
			}
			var roots []preparedRoot
			for _, r := range prep.Roots {
				pr, err := inspectRoot(r.Repository, r.Root)
				if err != nil {
					return err
				}
				roots = append(roots, pr)
			}
			p := a.printer()
			rows := [][]string{}
			for _, r := range roots {
				rows = append(rows, []string{r.repository, fmt.Sprint(r.version), r.expires, fmt.Sprintf("%d of %d", r.threshold, len(r.rootKeys)),
					strings.Join(r.rootKeys, ","), strings.Join(r.onlineKeys, ",")})
			}
			if err := p.table([]string{"REPOSITORY", "ROOT VERSION", "EXPIRES", "THRESHOLD", "ROOT KEYS", "ONLINE KEYS"}, rows); err != nil {
				return err
			}
			first := roots[0]
			for _, r := range roots[1:] {
				if r.threshold != first.threshold || !slices.Equal(r.rootKeys, first.rootKeys) {
					return fmt.Errorf("the roots of %s and %s list different root keys or thresholds; refusing to sign", first.repository, r.repository)
				}
			}
			if len(expectIDs) > 0 && !slices.Equal(expectIDs, first.rootKeys) {
				return fmt.Errorf("the roots list root keys %s, not the %d given with --expect-public-key (%s); refusing to sign",
					strings.Join(first.rootKeys, ", "), len(expectIDs), strings.Join(expectIDs, ", "))
			}
			if expectThreshold != 0 && expectThreshold != first.threshold {
				return fmt.Errorf("the roots need %d of their root keys, not --expect-threshold %d; refusing to sign", first.threshold, expectThreshold)
			}
			sigs := v1.RootSignatures{Signatures: []v1.RootSignature{}}
			for _, r := range prep.Roots {
				id, sig, err := tufrepo.SignRoot(r.Root, k)
				if err != nil {
					return fmt.Errorf("the root of %s: %w", r.Repository, err)
				}
				sigs.Signatures = append(sigs.Signatures, v1.RootSignature{Repository: r.Repository, KeyID: id, Sig: hex.EncodeToString(sig)})
			}
			b, err := json.MarshalIndent(sigs, "", "  ")
			if err != nil {
				return err
			}
			if err := atomicfile.WriteFile(out, append(b, '\n'), 0o644); err != nil {
				return err
			}
			if len(expectIDs) == 0 || expectThreshold == 0 {
				if err := p.line("warning: not checked against the expected new root keys and threshold (--expect-public-key, --expect-threshold)"); err != nil {
					return err
				}
			}
			return p.line(fmt.Sprintf("signed %d roots with key %s; wrote the signatures to %s", len(rows), sigs.Signatures[0].KeyID, out))
		},
	}
	cmd.Flags().StringVar(&unsigned, "unsigned", "", "the prepared roots, as root-prepare wrote them")
	cmd.Flags().StringVar(&key, "key", "", "the root key to sign with (PKCS #8 PEM)")
	cmd.Flags().StringVar(&out, "out", "", "file to write the signatures to (must not exist)")
	cmd.Flags().StringArrayVar(&expectPubs, "expect-public-key", nil, "a new root key's public half, PEM: refuse unless the roots list exactly these keys (repeatable)")
	cmd.Flags().IntVar(&expectThreshold, "expect-threshold", 0, "refuse unless the roots need exactly this many of the new root keys")
	return cmd
}

// completeRotation publishes a prepared rotation with signature files (rotate-root --unsigned).
func completeRotation(cmd *cobra.Command, a *app, unsigned string, sigFiles []string) error {
	prep, err := readPrepared(unsigned)
	if err != nil {
		return err
	}
	req := v1.UpdateRootComplete{Roots: prep.Roots}
	for _, f := range sigFiles {
		b, err := readBounded(f, maxSignatureFile)
		if err != nil {
			return err
		}
		var sigs v1.RootSignatures
		if err := strictjson.Decode(b, &sigs); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		if len(sigs.Signatures) > updatemeta.MaxRotationRoots {
			return fmt.Errorf("%s: %d signatures; at most %d", f, len(sigs.Signatures), updatemeta.MaxRotationRoots)
		}
		for _, s := range sigs.Signatures {
			if _, err := updatemeta.ParseRootSignature(s.Repository, s.KeyID, s.Sig); err != nil {
				return fmt.Errorf("%s: %w", f, err)
			}
		}
		req.Signatures = append(req.Signatures, sigs.Signatures...)
	}
	s, err := a.session(cmd.Context())
	if err != nil {
		return err
	}
	rot, err := s.c.CompleteUpdateRoot(cmd.Context(), s.tenant, req)
	if err != nil {
		return err
	}
	p := a.printer()
	return p.print(rot, func() error {
		rows := [][]string{}
		for _, r := range rot.Repositories {
			rows = append(rows, []string{r.Repository, fmt.Sprint(r.RootVersion)})
		}
		if err := p.table([]string{"REPOSITORY", "ROOT VERSION"}, rows); err != nil {
			return err
		}
		return p.line(fmt.Sprintf("rotated the update-metadata root keys %s (threshold %d) to %s (threshold %d of %d) with detached signatures; the service holds none of the new keys",
			strings.Join(rot.OldKeyIDs, ", "), rot.OldThreshold, strings.Join(rot.NewKeyIDs, ", "), rot.Threshold, len(rot.NewKeyIDs)))
	})
}
