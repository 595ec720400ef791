package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/client"
)

func newLoginCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "login --token TOKEN [--addr URL] [--cacert FILE]",
		Short: "Check a token against the server and save it in the config file",
		Long: `login checks the token with the server and saves the address, the token and the CA
certificate's path in the config file, readable only by you. --token - reads the token from
stdin, which keeps it out of the shell history.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := a.settings()
			if err != nil {
				return err
			}
			if s.token == "" || s.tokenFromConfig {
				return usagef(cmd, "missing flag --token (pass --token TOKEN, or --token - to read it from stdin)")
			}
			if s.addr == "" {
				return usagef(cmd, "missing flag --addr (or set %s)", envAddr)
			}
			cacert, err := absPath(s.cacert)
			if err != nil {
				return err
			}
			c, err := newClient(s.addr, s.token, cacert)
			if err != nil {
				return err
			}
			me, err := c.Me(cmd.Context())
			if err != nil {
				return fmt.Errorf("login failed: %w", err)
			}
			path, cfg, err := a.config()
			if err != nil {
				return err
			}
			cfg.Addr, cfg.Token, cfg.CACert = c.Addr(), s.token, cacert
			if err := saveConfig(path, cfg); err != nil {
				return err
			}
			p := a.printer()
			return p.print(me, func() error {
				msg := fmt.Sprintf("Logged in to %s as %s; the token expires %s.", c.Addr(), me.User.Name, timeCell(me.ExpiresAt))
				if me.TenantID != "" {
					msg += " The token is limited to tenant " + me.TenantID + "."
				}
				return p.line(msg)
			})
		},
	}
}

func newLogoutCmd(a *app) *cobra.Command {
	var revoke bool
	cmd := &cobra.Command{
		Use:   "logout [--revoke]",
		Short: "Remove the saved token from the config file",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, cfg, err := a.config()
			if err != nil {
				return err
			}
			p := a.printer()
			if cfg.Token == "" {
				return p.line("Not logged in.")
			}
			revoked := ""
			if revoke {
				c, err := newClient(cfg.Addr, cfg.Token, cfg.CACert)
				if err != nil {
					return err
				}
				me, err := c.Me(cmd.Context())
				switch {
				case client.HasCode(err, v1.CodeUnauthenticated):
					revoked = " The token was no longer valid."
				case err != nil:
					return fmt.Errorf("cannot revoke the token, so it stays saved: %w", err)
				default:
					if err := c.RevokeToken(cmd.Context(), me.TokenID); err != nil {
						return fmt.Errorf("cannot revoke the token, so it stays saved: %w", err)
					}
					revoked = " The token is revoked."
				}
			}
			cfg.Token = ""
			if err := saveConfig(path, cfg); err != nil {
				return err
			}
			return p.line("Logged out of " + cfg.Addr + "." + revoked)
		},
	}
	cmd.Flags().BoolVar(&revoke, "revoke", false, "also revoke the token on the server")
	return cmd
}
