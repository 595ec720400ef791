package cli

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/rampart-iot/rampart/internal/atomicfile"
)

func newKeysCmd(a *app) *cobra.Command {
	return group("keys", "Take the tenant's update-metadata root key offline and bring it back",
		newKeysExportRootCmd(a), newKeysImportRootCmd(a))
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
