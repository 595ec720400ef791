package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"

	"github.com/spf13/cobra"

	"github.com/rampart-iot/rampart/internal/atomicfile"
	"github.com/rampart-iot/rampart/internal/updatemeta"
)

func newKeysCmd(a *app) *cobra.Command {
	return group("keys", "Take the tenant's update-metadata root keys offline, bring them back, rotate them",
		newKeysExportRootCmd(a), newKeysImportRootCmd(a), newKeysRotateRootCmd(a), newKeysRootMetadataCmd(a), newKeysStatusCmd(a),
		newKeysRootKeygenCmd(a), newKeysRootPrepareCmd(a), newKeysRootSignCmd(a))
}

func newKeysExportRootCmd(a *app) *cobra.Command {
	var out, keyID string
	cmd := &cobra.Command{
		Use:   "export-root --out FILE [--key-id ID]",
		Short: "Write one of the tenant's update-metadata root keys to FILE and remove it from the service",
		Long: `export-root takes a root key of the tenant's update metadata (TUF) offline: the key is
written to FILE (mode 0600, PKCS #8 PEM) and the service keeps only its public half. With more
than one root key online, name the one with --key-id ('keys status' lists them). Existing image
and director repositories go on being published and renewed with their online keys; a group's
first deployment and the renewal of roots need a threshold of the root keys online, so import
them again first ('keys import-root'). Keep FILE somewhere safe and offline.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return &usageError{cmd: cmd, msg: "--out FILE is required"}
			}
			if _, err := os.Stat(out); err == nil {
				return fmt.Errorf("%s exists; refusing to overwrite a key file", out)
			}
			s, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			key, err := s.c.ExportUpdateRootKey(cmd.Context(), s.tenant, keyID)
			if err != nil {
				return err
			}
			if err := atomicfile.WriteFile(out, []byte(key), 0o600); err != nil {
				return fmt.Errorf("the key was exported but could not be written; it is printed below so it is not lost: %w\n%s", err, key)
			}
			fmt.Fprintf(a.sys.Out, "wrote the update-metadata root key to %s; the service no longer holds it\n", out)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "file to write the key to (must not exist)")
	cmd.Flags().StringVar(&keyID, "key-id", "", "the root key to export, when more than one is online")
	return cmd
}

func newKeysImportRootCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "import-root FILE",
		Short: "Bring one of the tenant's exported update-metadata root keys back online",
		Args:  args(1, 1, "FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := readKeyFile(args[0])
			if err != nil {
				return err
			}
			s, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			if err := s.c.ImportUpdateRootKey(cmd.Context(), s.tenant, string(b)); err != nil {
				return err
			}
			fmt.Fprintln(a.sys.Out, "the update-metadata root key is online again")
			return nil
		},
	}
}

// maxKeyFile bounds a key file the CLI reads (the service takes at most 16 KiB).
const maxKeyFile = 16 << 10

// readKeyFile reads a key file of at most maxKeyFile bytes.
func readKeyFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxKeyFile {
		return nil, fmt.Errorf("%s is larger than %d bytes: not a key file", name, maxKeyFile)
	}
	return b, nil
}

func newKeysRotateRootCmd(a *app) *cobra.Command {
	var rootKeys, sigFiles []string
	var out, outDir, unsigned string
	var newKeys, threshold int
	var onlineKeys bool
	cmd := &cobra.Command{
		Use:   "rotate-root [--root-key FILE ...] [--new-keys N --threshold K] [--out FILE | --out-dir DIR] [--online-keys] | --unsigned UNSIGNED --signature SIG ...",
		Short: "Replace the tenant's update-metadata root keys; devices follow at their next refresh",
		Long: `rotate-root makes new root keys for the tenant's update metadata (TUF): --new-keys N of them
(default 1, at most 8), of which --threshold K (default 1) must sign every later root. Every
image and director repository gets root version N+1, which lists the new keys and threshold and
is signed by a threshold of the current root keys and by the new keys; devices walk to it at
their next refresh and from then on refuse a root signed by fewer than K of the new keys. The
old keys are revoked and can never be imported again.

The current root keys that are online sign by themselves. Pass those that are offline (as
'keys export-root' or an earlier rotation wrote them) with --root-key, once per key: the
service signs with them once and does not keep them. With fewer than the current threshold
given or online, nothing changes and the error says how many were given and needed.

--out-dir DIR takes the new keys offline at once: each is written to DIR/root-KEYID.pem (mode
0600; DIR must be empty or not exist, and writable: checked before the service is asked) and
the service keeps only their public halves; hand each to its holder. Should a key file still
fail to be written, it goes to root-KEYID.pem in the current directory (else the temporary
directory), mode 0600; key material is never printed. --out FILE does the same for a single new key. Without either the new keys
stay online. --online-keys also replaces every repository's online key (targets, snapshot,
timestamp) in the same root version.

With --unsigned UNSIGNED --signature SIG ... it instead publishes a rotation whose keys never
reach the service: UNSIGNED as 'keys root-prepare' wrote it, and each holder's signatures as
'keys root-sign' wrote them. Each root needs a threshold of the current and of the new keys.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if unsigned != "" || len(sigFiles) > 0 {
				if unsigned == "" || len(sigFiles) == 0 || len(rootKeys) > 0 || newKeys != 0 || threshold != 0 || out != "" || outDir != "" || onlineKeys {
					return &usageError{cmd: cmd, msg: "--unsigned UNSIGNED takes --signature SIG (at least one) and no other flag"}
				}
				if len(sigFiles) > 2*updatemeta.MaxRootKeys {
					return &usageError{cmd: cmd, msg: fmt.Sprintf("at most %d --signature files", 2*updatemeta.MaxRootKeys)}
				}
				return completeRotation(cmd, a, unsigned, sigFiles)
			}
			req := v1.UpdateRootRotate{NewKeys: newKeys, Threshold: threshold, OnlineKeys: onlineKeys}
			if newKeys < 0 || newKeys > 8 || threshold < 0 || threshold > max(newKeys, 1) {
				return &usageError{cmd: cmd, msg: "want 1 to 8 --new-keys and a --threshold from 1 to --new-keys"}
			}
			if len(rootKeys) > 16 {
				return &usageError{cmd: cmd, msg: "at most 16 --root-key files"}
			}
			for _, f := range rootKeys {
				b, err := readKeyFile(f)
				if err != nil {
					return err
				}
				req.KeyPEMs = append(req.KeyPEMs, string(b))
			}
			switch {
			case out != "" && outDir != "":
				return &usageError{cmd: cmd, msg: "--out and --out-dir exclude each other"}
			case out != "" && newKeys > 1:
				return &usageError{cmd: cmd, msg: "--out takes one key; with --new-keys above 1 use --out-dir DIR"}
			case out != "":
				if _, err := os.Stat(out); err == nil {
					return fmt.Errorf("%s exists; refusing to overwrite a key file", out)
				}
				if err := writableDir(filepath.Dir(out)); err != nil {
					return err
				}
				req.Offline = true
			case outDir != "":
				if err := emptyKeyDir(outDir); err != nil {
					return err
				}
				if err := writableDir(outDir); err != nil {
					return err
				}
				req.Offline = true
			}
			s, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			rot, err := s.c.RotateUpdateRootKey(cmd.Context(), s.tenant, req)
			if err != nil {
				return err
			}
			written := []string{}
			if req.Offline {
				if len(rot.KeyPEMs) != len(rot.NewKeyIDs) {
					return fmt.Errorf("the root was rotated but the service returned %d keys for %d key IDs", len(rot.KeyPEMs), len(rot.NewKeyIDs))
				}
				var failed []error
				for i, k := range rot.KeyPEMs {
					name := out
					if outDir != "" {
						name = filepath.Join(outDir, "root-"+rot.NewKeyIDs[i]+".pem")
					}
					got, err := writeNewRootKey(name, rot.NewKeyIDs[i], []byte(k))
					if err != nil {
						failed = append(failed, err)
						continue
					}
					written = append(written, got)
				}
				rot.KeyPEM, rot.KeyPEMs = "", nil
				if len(failed) > 0 {
					// Never print key material: the keys written elsewhere are named, the rest are lost.
					return fmt.Errorf("the root was rotated but %d of the %d new keys could not be written anywhere (they are not printed; without a threshold of them the root cannot be renewed: rotate again with the keys that remain): %w; written: %s",
						len(failed), len(rot.NewKeyIDs), errors.Join(failed...), strings.Join(written, ", "))
				}
				rot.KeyPEM, rot.KeyPEMs = "", nil
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
				msg := fmt.Sprintf("rotated the update-metadata root keys %s (threshold %d) to %s (threshold %d of %d)",
					strings.Join(rot.OldKeyIDs, ", "), rot.OldThreshold, strings.Join(rot.NewKeyIDs, ", "), rot.Threshold, len(rot.NewKeyIDs))
				if len(written) > 0 {
					msg += "; wrote the new keys to " + strings.Join(written, ", ") + " (the service holds only their public halves)"
				}
				return p.line(msg)
			})
		},
	}
	cmd.Flags().StringArrayVar(&rootKeys, "root-key", nil, "a current root key as exported, when it is offline (repeatable: as many as the threshold needs)")
	cmd.Flags().IntVar(&newKeys, "new-keys", 0, "how many new root keys to make (1 to 8; default 1)")
	cmd.Flags().IntVar(&threshold, "threshold", 0, "how many of the new root keys must sign a root (1 to --new-keys; default 1)")
	cmd.Flags().StringVar(&out, "out", "", "take the single new root key offline: write it to this file (must not exist)")
	cmd.Flags().StringVar(&outDir, "out-dir", "", "take the new root keys offline: write each to DIR/root-KEYID.pem (DIR empty or new)")
	cmd.Flags().BoolVar(&onlineKeys, "online-keys", false, "also replace every repository's online key")
	cmd.Flags().StringVar(&unsigned, "unsigned", "", "publish a rotation prepared with root-prepare (with --signature)")
	cmd.Flags().StringArrayVar(&sigFiles, "signature", nil, "a holder's signatures from root-sign (repeatable; with --unsigned)")
	return cmd
}

// writableDir checks that a file can be made in dir, by making and removing one (mode 0600).
func writableDir(dir string) error {
	f, err := os.CreateTemp(dir, ".rampart-probe-*")
	if err != nil {
		return fmt.Errorf("cannot write key files to %s; nothing was changed: %w", dir, err)
	}
	name := f.Name()
	err = f.Close()
	if rmErr := os.Remove(name); err == nil {
		err = rmErr
	}
	if err != nil {
		return fmt.Errorf("cannot write key files to %s; nothing was changed: %w", dir, err)
	}
	return nil
}

// writeKeyFile writes a private key file; tests replace it to make a write fail.
var writeKeyFile = atomicfile.WriteFile

// writeNewRootKey writes a new root key (mode 0600) to name or, should that fail, to
// root-KEYID.pem in the current directory and then in the system's temporary directory, never
// over an existing file; it returns the file written. The error names the files it tried, never
// the key.
func writeNewRootKey(name, keyID string, keyPEM []byte) (string, error) {
	var errs []error
	tried := map[string]bool{}
	for _, dir := range []string{"", ".", os.TempDir()} {
		file := name
		if dir != "" {
			file = filepath.Join(dir, "root-"+keyID+".pem")
		}
		if abs, err := filepath.Abs(file); err == nil {
			if tried[abs] {
				continue
			}
			tried[abs] = true
		}
		if _, err := os.Lstat(file); err == nil {
			errs = append(errs, fmt.Errorf("%s exists", file))
			continue
		}
		if err := writeKeyFile(file, keyPEM, 0o600); err != nil {
			errs = append(errs, err)
			continue
		}
		return file, nil
	}
	return "", fmt.Errorf("key %s: %w", keyID, errors.Join(errs...))
}

// emptyKeyDir makes dir (mode 0700) if it does not exist, and refuses one that has files.
func emptyKeyDir(dir string) error {
	ents, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return os.MkdirAll(dir, 0o700)
	case err != nil:
		return err
	case len(ents) > 0:
		return fmt.Errorf("%s is not empty; refusing to write key files into it", dir)
	}
	return nil
}

func newKeysStatusCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the update-metadata root keys, their threshold and when each repository's root expires",
		Long: `status shows the tenant's update-metadata root keys (each online, held by the service, or
offline), how many of them must sign a root (the threshold) and, for each repository, its newest
root version and when it expires. While a threshold of the keys is online the service renews each
root itself a quarter of its lifetime before it expires. Otherwise it cannot: a root marked DUE
must be renewed with 'rampart keys rotate-root --root-key FILE ...' (a threshold of the keys)
before it expires, or devices refuse every update after that.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			st, err := s.c.UpdateRootStatus(cmd.Context(), s.tenant)
			if err != nil {
				return err
			}
			p := a.printer()
			return p.print(st, func() error {
				online := 0
				keyRows := make([][]string, len(st.Keys))
				for i, k := range st.Keys {
					where := "offline"
					if k.Online {
						where, online = "online", online+1
					}
					keyRows[i] = []string{k.KeyID, k.TUFKeyID, where}
				}
				where := fmt.Sprintf("%d of %d online: below the threshold, the service cannot renew roots", online, len(st.Keys))
				if st.Online {
					where = fmt.Sprintf("%d of %d online: the service renews roots itself", online, len(st.Keys))
				}
				if err := p.fields([][2]string{{"Threshold", fmt.Sprintf("%d of %d root keys", st.Threshold, len(st.Keys))}, {"Held", where},
					{"Renewal window", (time.Duration(st.RenewBeforeSeconds) * time.Second).String()}}); err != nil {
					return err
				}
				if err := p.table([]string{"ROOT KEY", "TUF KEY ID", "HELD"}, keyRows); err != nil {
					return err
				}
				rows := make([][]string, len(st.Repositories))
				for i, r := range st.Repositories {
					due := ""
					if r.Due {
						due = "DUE"
					}
					rows[i] = []string{r.Repository, strconv.FormatInt(r.RootVersion, 10), timeCell(r.ExpiresAt), due}
				}
				return p.table([]string{"REPOSITORY", "ROOT VERSION", "EXPIRES", "RENEW"}, rows)
			})
		},
	}
}

func newKeysRootMetadataCmd(a *app) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "root-metadata --out FILE",
		Short: "Write the first root metadata of the tenant's image repository, for device images to ship",
		Long: `root-metadata writes 1.root.json of the tenant's image repository (TUF) to FILE. Ship it in
the device's image and run the agent with --update-root FILE: on first contact the device then
trusts this root instead of whatever the service answers, and follows later root rotations from
it. The tenant's repository exists once it uploaded its first image.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return &usageError{cmd: cmd, msg: "--out FILE is required"}
			}
			s, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			b, err := s.c.ImagesRootMetadata(cmd.Context(), s.tenant)
			if err != nil {
				return err
			}
			if err := atomicfile.WriteFile(out, b, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(a.sys.Out, "wrote the image repository's root metadata to %s\n", out)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "file to write the root metadata to")
	return cmd
}
