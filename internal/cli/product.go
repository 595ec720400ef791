package cli

import (
	"github.com/spf13/cobra"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/client"
)

func newProductCmd(a *app) *cobra.Command {
	return group("product", "Create, list, show, update and delete products",
		newProductCreateCmd(a),
		newProductListCmd(a),
		newProductShowCmd(a),
		newProductUpdateCmd(a),
		newProductDeleteCmd(a),
	)
}

func newProductCreateCmd(a *app) *cobra.Command {
	var req v1.ProductCreate
	cmd := &cobra.Command{
		Use:   "create --name NAME [--description D] [--no-default-device-groups]",
		Short: "Create a product and its five default device groups",
		Long: `create makes a product and, unless --no-default-device-groups is given, its five default
device groups: Development, Field Test, Production, Field Test OS Evaluation and Production
OS Evaluation.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "name"); err != nil {
				return err
			}
			s, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			pr, err := s.c.CreateProduct(cmd.Context(), s.tenant, req)
			if err != nil {
				return err
			}
			return showProduct(a.printer(), pr)
		},
	}
	cmd.Flags().StringVar(&req.Name, "name", "", "product name, unique in the tenant (required)")
	cmd.Flags().StringVar(&req.Description, "description", "", "description")
	cmd.Flags().BoolVar(&req.NoDefaultDeviceGroups, "no-default-device-groups", false, "do not create the default device groups")
	return cmd
}

func newProductListCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the tenant's products",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			ps, err := s.c.AllProducts(cmd.Context(), s.tenant, client.ProductListOptions{})
			if err != nil {
				return err
			}
			p := a.printer()
			return p.print(ps, func() error {
				rows := make([][]string, 0, len(ps))
				for _, pr := range ps {
					rows = append(rows, []string{pr.ID, pr.Name, pr.Description, timeCell(pr.CreatedAt)})
				}
				return p.table([]string{"ID", "NAME", "DESCRIPTION", "CREATED"}, rows)
			})
		},
	}
}

func newProductShowCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "show PRODUCT",
		Short: "Show a product, by name or ID",
		Args:  args(1, 1, "PRODUCT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			pr, err := resolveProduct(cmd.Context(), s.c, s.tenant, args[0])
			if err != nil {
				return err
			}
			return showProduct(a.printer(), pr)
		},
	}
}

func newProductUpdateCmd(a *app) *cobra.Command {
	var name, description string
	cmd := &cobra.Command{
		Use:   "update PRODUCT [--name NAME] [--description D]",
		Short: "Rename a product or change its description",
		Args:  args(1, 1, "PRODUCT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var req v1.ProductUpdate
			if cmd.Flags().Changed("name") {
				req.Name = &name
			}
			if cmd.Flags().Changed("description") {
				req.Description = &description
			}
			if req == (v1.ProductUpdate{}) {
				return usagef(cmd, "nothing to update: pass --name or --description")
			}
			s, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			pr, err := resolveProduct(cmd.Context(), s.c, s.tenant, args[0])
			if err != nil {
				return err
			}
			if pr, err = s.c.UpdateProduct(cmd.Context(), s.tenant, pr.ID, req); err != nil {
				return err
			}
			return showProduct(a.printer(), pr)
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "new name")
	cmd.Flags().StringVar(&description, "description", "", "new description")
	return cmd
}

func newProductDeleteCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "delete PRODUCT",
		Short: "Delete a product and its device groups, which must hold no devices",
		Args:  args(1, 1, "PRODUCT"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			pr, err := resolveProduct(cmd.Context(), s.c, s.tenant, args[0])
			if err != nil {
				return err
			}
			if err := s.c.DeleteProduct(cmd.Context(), s.tenant, pr.ID); err != nil {
				return err
			}
			return a.printer().line("Deleted product " + pr.Name + " (" + pr.ID + ").")
		},
	}
}

func showProduct(p printer, pr *v1.Product) error {
	return p.print(pr, func() error {
		return p.fields([][2]string{
			{"ID", pr.ID}, {"Name", pr.Name}, {"Description", pr.Description},
			{"Created", timeCell(pr.CreatedAt)}, {"Updated", timeCell(pr.UpdatedAt)},
		})
	})
}
