package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	v1 "github.com/rampart-iot/rampart/api/v1"
)

func newTokenCmd(a *app) *cobra.Command {
	return group("token", "Create, list and revoke API tokens",
		newTokenCreateCmd(a),
		newTokenListCmd(a),
		newTokenRevokeCmd(a),
	)
}

func newTokenCreateCmd(a *app) *cobra.Command {
	var (
		user, description string
		expiresIn         time.Duration
	)
	cmd := &cobra.Command{
		Use:   "create [--user NAME] [--description D] [--expires-in DURATION]",
		Short: "Create an API token for yourself, or for a user of the tenant; it is shown once",
		Long: `create makes an API token and prints it once: the server keeps only its hash.

Without --user the token is yours and works wherever you have a role. With --user (tenant
Administrators only) it belongs to that user and works only in the tenant.

--expires-in takes a duration such as 12h or 30d; the server's default is 90 days and its
limit one year.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := v1.TokenCreate{Description: description}
			if expiresIn > 0 {
				secs, err := seconds(expiresIn, "expires-in")
				if err != nil {
					return err
				}
				req.ExpiresInSeconds = secs
			}
			var t *v1.Token
			if user != "" {
				s, err := a.session(cmd.Context())
				if err != nil {
					return err
				}
				if t, err = s.c.CreateUserToken(cmd.Context(), s.tenant, user, req); err != nil {
					return err
				}
			} else {
				c, err := a.client()
				if err != nil {
					return err
				}
				if t, err = c.CreateToken(cmd.Context(), req); err != nil {
					return err
				}
			}
			p := a.printer()
			return p.print(t, func() error {
				if err := p.fields(tokenFields(t)); err != nil {
					return err
				}
				_, err := fmt.Fprintln(a.sys.Err, "This is the only time the token is shown; store it now.")
				return err
			})
		},
	}
	cmd.Flags().StringVar(&user, "user", "", "user name or ID in the tenant (default: yourself)")
	cmd.Flags().StringVar(&description, "description", "", "what the token is for")
	cmd.Flags().Var(durationValue{&expiresIn}, "expires-in", "lifetime, such as 12h or 30d (default: the server's, 90 days)")
	return cmd
}

func tokenFields(t *v1.Token) [][2]string {
	kv := [][2]string{{"ID", t.ID}, {"User", first(t.User, t.UserID)}}
	if t.TenantID != "" {
		kv = append(kv, [2]string{"Tenant", t.TenantID})
	}
	kv = append(kv,
		[2]string{"Description", t.Description},
		[2]string{"Created", timeCell(t.CreatedAt)},
		[2]string{"Expires", timeCell(t.ExpiresAt)},
	)
	if t.Secret != "" {
		kv = append(kv, [2]string{"Token", t.Secret})
	}
	return kv
}

func newTokenListCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List your own API tokens",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			ts, err := c.AllTokens(cmd.Context())
			if err != nil {
				return err
			}
			p := a.printer()
			return p.print(ts, func() error {
				rows := make([][]string, 0, len(ts))
				for _, t := range ts {
					rows = append(rows, []string{t.ID, t.TenantID, t.Description, timeCell(t.CreatedAt), timeCell(t.ExpiresAt), boolCell(t.Revoked)})
				}
				return p.table([]string{"ID", "TENANT", "DESCRIPTION", "CREATED", "EXPIRES", "REVOKED"}, rows)
			})
		},
	}
}

func newTokenRevokeCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke an API token",
		Args:  args(1, 1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			if err := c.RevokeToken(cmd.Context(), args[0]); err != nil {
				return err
			}
			return a.printer().line("Revoked token " + args[0] + ".")
		},
	}
}
