package cli

import (
	"github.com/spf13/cobra"

	v1 "github.com/rampart-iot/rampart/api/v1"
)

func newTenantCmd(a *app) *cobra.Command {
	return group("tenant", "Create, list, show and select tenants",
		newTenantCreateCmd(a),
		newTenantListCmd(a),
		newTenantShowCmd(a),
		newTenantSelectCmd(a),
	)
}

func newTenantCreateCmd(a *app) *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   "create --name NAME",
		Short: "Create a tenant (service administrators only); you become its Administrator",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "name"); err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			t, err := c.CreateTenant(cmd.Context(), v1.TenantCreate{Name: name})
			if err != nil {
				return err
			}
			return showTenant(a.printer(), t)
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "tenant name (required)")
	return cmd
}

func newTenantListCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the tenants in which you have a role",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			ts, err := c.AllTenants(cmd.Context())
			if err != nil {
				return err
			}
			p := a.printer()
			return p.print(ts, func() error {
				rows := make([][]string, 0, len(ts))
				for _, t := range ts {
					rows = append(rows, []string{t.ID, t.Name, t.Role, timeCell(t.CreatedAt)})
				}
				return p.table([]string{"ID", "NAME", "ROLE", "CREATED"}, rows)
			})
		},
	}
}

func newTenantShowCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "show [TENANT]",
		Short: "Show a tenant, by name or ID (default: the current tenant)",
		Args:  args(0, 1, "TENANT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var id string
			if len(args) == 1 {
				c, err := a.client()
				if err != nil {
					return err
				}
				t, err := findTenant(cmd.Context(), c, args[0])
				if err != nil {
					return err
				}
				id = t.ID
			} else {
				s, err := a.session(cmd.Context())
				if err != nil {
					return err
				}
				id = s.tenant
			}
			c, _ := a.client()
			t, err := c.GetTenant(cmd.Context(), id)
			if err != nil {
				return err
			}
			return showTenant(a.printer(), t)
		},
	}
}

func newTenantSelectCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "select TENANT",
		Short: "Make a tenant, by name or ID, the default for this server",
		Args:  args(1, 1, "TENANT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			t, err := findTenant(cmd.Context(), c, args[0])
			if err != nil {
				return err
			}
			path, cfg, err := a.config()
			if err != nil {
				return err
			}
			if cfg.Tenants == nil {
				cfg.Tenants = map[string]string{}
			}
			cfg.Tenants[normAddr(c.Addr())] = t.ID
			if err := saveConfig(path, cfg); err != nil {
				return err
			}
			p := a.printer()
			return p.print(t, func() error {
				return p.line("Selected tenant " + t.Name + " (" + t.ID + ").")
			})
		},
	}
}

func showTenant(p printer, t *v1.Tenant) error {
	return p.print(t, func() error {
		kv := [][2]string{{"ID", t.ID}, {"Name", t.Name}}
		if t.Role != "" {
			kv = append(kv, [2]string{"Your role", t.Role})
		}
		kv = append(kv, [2]string{"Created", timeCell(t.CreatedAt)})
		return p.fields(kv)
	})
}
