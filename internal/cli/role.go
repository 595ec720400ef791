package cli

import (
	"github.com/spf13/cobra"

	v1 "github.com/rampart-iot/rampart/api/v1"
)

// Roles, as Azure Sphere names them.
var roles = []string{"Administrator", "Contributor", "Reader"}

func newRoleCmd(a *app) *cobra.Command {
	return group("role", "Add, delete and list users' roles in the tenant",
		newRoleAddCmd(a),
		newRoleDeleteCmd(a),
		newRoleListCmd(a),
	)
}

func newRoleAddCmd(a *app) *cobra.Command {
	var user, role string
	cmd := &cobra.Command{
		Use:   "add --user NAME --role Administrator|Contributor|Reader",
		Short: "Give a user a role in the tenant, creating the user if the name is new",
		Long: `add gives a user a role in the tenant, replacing any role the user held there. A new
name creates the user; 'rampart token create --user NAME' then makes a token for it.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "user", "role"); err != nil {
				return err
			}
			s, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			r, err := s.c.AddRole(cmd.Context(), s.tenant, v1.RoleAdd{User: user, Role: role})
			if err != nil {
				return err
			}
			p := a.printer()
			return p.print(r, func() error {
				return p.fields([][2]string{
					{"User", r.User}, {"User ID", r.UserID}, {"Role", r.Role},
					{"Created", timeCell(r.CreatedAt)}, {"Updated", timeCell(r.UpdatedAt)},
				})
			})
		},
	}
	cmd.Flags().StringVar(&user, "user", "", "user name (required)")
	enumFlag(cmd, &role, "role", "", "", "role (required)", roles...)
	return cmd
}

func newRoleDeleteCmd(a *app) *cobra.Command {
	var user string
	cmd := &cobra.Command{
		Use:   "delete --user NAME",
		Short: "Remove a user's role in the tenant",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "user"); err != nil {
				return err
			}
			s, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			if err := s.c.DeleteRole(cmd.Context(), s.tenant, user); err != nil {
				return err
			}
			return a.printer().line("Removed the role of " + user + ".")
		},
	}
	cmd.Flags().StringVar(&user, "user", "", "user name or ID (required)")
	return cmd
}

func newRoleListCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the users of the tenant and their roles",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			rs, err := s.c.AllRoles(cmd.Context(), s.tenant)
			if err != nil {
				return err
			}
			p := a.printer()
			return p.print(rs, func() error {
				rows := make([][]string, 0, len(rs))
				for _, r := range rs {
					rows = append(rows, []string{r.User, r.Role, r.UserID, timeCell(r.UpdatedAt)})
				}
				return p.table([]string{"USER", "ROLE", "USER ID", "UPDATED"}, rows)
			})
		},
	}
}
