package cli

import (
	"fmt"
	"os"
	"strconv"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"

	"github.com/spf13/cobra"

	"github.com/rampart-iot/rampart/internal/atomicfile"
)

func newKeysCmd(a *app) *cobra.Command {
	return group("keys", "Take the tenant's update-metadata root key offline, bring it back, rotate it",
		newKeysExportRootCmd(a), newKeysImportRootCmd(a), newKeysRotateRootCmd(a), newKeysRootMetadataCmd(a), newKeysStatusCmd(a))
}

func newKeysExportRootCmd(a *app) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "export-root --out FILE",
		Short: "Write the tenant's update-metadata root key to FILE and remove it from the service",
		Long: `export-root takes the root key of the tenant's update metadata (TUF) offline: the key is
written to FILE (mode 0600, PKCS #8 PEM) and the service keeps only its public half. Existing
image and director repositories go on being published and renewed with their online keys; a
group's first deployment needs the root key, so import it again first ('keys import-root').
Keep FILE somewhere safe and offline.`,
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
			key, err := s.c.ExportUpdateRootKey(cmd.Context(), s.tenant)
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
	return cmd
}

func newKeysImportRootCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "import-root FILE",
		Short: "Bring the tenant's exported update-metadata root key back online",
		Args:  args(1, 1, "FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := os.ReadFile(args[0])
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

func newKeysRotateRootCmd(a *app) *cobra.Command {
	var rootKey, out string
	var onlineKeys bool
	cmd := &cobra.Command{
		Use:   "rotate-root [--root-key FILE] [--out FILE] [--online-keys]",
		Short: "Replace the tenant's update-metadata root key; devices follow at their next refresh",
		Long: `rotate-root makes a new root key for the tenant's update metadata (TUF). Every image and
director repository gets root version N+1, which lists the new key and is signed by both the old
and the new key; devices walk to it at their next refresh and from then on refuse metadata signed
by the old key only. The old key is revoked and can never be imported again.

With the root key online, no flag is needed. With it offline (after 'keys export-root'), pass the
exported file with --root-key: the service signs with it once and does not keep it. --out FILE
takes the new key offline at once (written to FILE, mode 0600; the service keeps only its public
half). --online-keys also replaces every repository's online key (targets, snapshot, timestamp)
in the same root version.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var req v1.UpdateRootRotate
			if rootKey != "" {
				b, err := os.ReadFile(rootKey)
				if err != nil {
					return err
				}
				req.KeyPEM = string(b)
			}
			if out != "" {
				if _, err := os.Stat(out); err == nil {
					return fmt.Errorf("%s exists; refusing to overwrite a key file", out)
				}
				req.Offline = true
			}
			req.OnlineKeys = onlineKeys
			s, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			rot, err := s.c.RotateUpdateRootKey(cmd.Context(), s.tenant, req)
			if err != nil {
				return err
			}
			if out != "" {
				if err := atomicfile.WriteFile(out, []byte(rot.KeyPEM), 0o600); err != nil {
					return fmt.Errorf("the root was rotated but the new key could not be written; it is printed below so it is not lost: %w\n%s", err, rot.KeyPEM)
				}
				rot.KeyPEM = ""
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
				msg := fmt.Sprintf("rotated the update-metadata root key %s to %s", rot.OldKeyID, rot.NewKeyID)
				if out != "" {
					msg += "; wrote the new key to " + out + " (the service holds only its public half)"
				}
				return p.line(msg)
			})
		},
	}
	cmd.Flags().StringVar(&rootKey, "root-key", "", "the current root key as exported, when it is offline")
	cmd.Flags().StringVar(&out, "out", "", "take the new root key offline: write it to this file (must not exist)")
	cmd.Flags().BoolVar(&onlineKeys, "online-keys", false, "also replace every repository's online key")
	return cmd
}

func newKeysStatusCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the update-metadata root key and when each repository's root expires",
		Long: `status shows whether the service holds the tenant's update-metadata root key (online) and,
for each repository, its newest root version and when it expires. While the key is online the
service renews each root itself a quarter of its lifetime before it expires. With the key
offline it cannot: a root marked DUE must be renewed with 'rampart keys rotate-root --root-key
FILE' before it expires, or devices refuse every update after that.`,
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
				where := "offline"
				if st.Online {
					where = "online: the service renews roots itself"
				}
				if err := p.fields([][2]string{{"Root key", st.KeyID}, {"Held", where},
					{"Renewal window", (time.Duration(st.RenewBeforeSeconds) * time.Second).String()}}); err != nil {
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
