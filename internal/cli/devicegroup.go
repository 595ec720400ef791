package cli

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/client"
)

// Device group settings, as Azure Sphere names them.
var (
	osFeeds        = []string{"Retail", "RetailEval"}
	updatePolicies = []string{"UpdateAll", "No3rdPartyAppUpdates"}
)

func newDeviceGroupCmd(a *app) *cobra.Command {
	return group("device-group", "Create, list, show, update and delete device groups",
		newDeviceGroupCreateCmd(a),
		newDeviceGroupCreateDefaultsCmd(a),
		newDeviceGroupListCmd(a),
		newDeviceGroupShowCmd(a),
		newDeviceGroupUpdateCmd(a),
		newDeviceGroupDeleteCmd(a),
	)
}

// groupSettings are the flags that set a device group's fields.
type groupSettings struct {
	description, osFeed, updatePolicy string
	checkIn, certLifetime             time.Duration
}

func (g *groupSettings) addFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&g.description, "description", "", "description")
	enumFlag(cmd, &g.osFeed, "os-feed", "", "", "OS feed (default Retail)", osFeeds...)
	enumFlag(cmd, &g.updatePolicy, "application-update", "", "", "application update policy (default UpdateAll)", updatePolicies...)
	cmd.Flags().Var(durationValue{&g.checkIn}, "check-in-interval", "how often devices check in, such as 1h or 15m (default 1h)")
	cmd.Flags().Var(durationValue{&g.certLifetime}, "cert-lifetime", "lifetime of device certificates, 5m to 7d (default 24h)")
}

func newDeviceGroupCreateCmd(a *app) *cobra.Command {
	var (
		product, name string
		gs            groupSettings
	)
	cmd := &cobra.Command{
		Use:   "create --product PRODUCT --name NAME [--description D] [--os-feed Retail|RetailEval] [--application-update UpdateAll|No3rdPartyAppUpdates] [--check-in-interval DURATION] [--cert-lifetime DURATION]",
		Short: "Create a device group in a product",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "product", "name"); err != nil {
				return err
			}
			req := v1.DeviceGroupCreate{Name: name, Description: gs.description, OSFeed: gs.osFeed, UpdatePolicy: gs.updatePolicy}
			if gs.checkIn > 0 {
				secs, err := seconds(gs.checkIn, "check-in-interval")
				if err != nil {
					return err
				}
				req.CheckInIntervalSeconds = secs
			}
			if gs.certLifetime > 0 {
				secs, err := seconds(gs.certLifetime, "cert-lifetime")
				if err != nil {
					return err
				}
				req.CertLifetimeSeconds = secs
			}
			s, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			pr, err := resolveProduct(cmd.Context(), s.c, s.tenant, product)
			if err != nil {
				return err
			}
			g, err := s.c.CreateDeviceGroup(cmd.Context(), s.tenant, pr.ID, req)
			if err != nil {
				return err
			}
			return showGroup(a.printer(), g, pr.Name)
		},
	}
	cmd.Flags().StringVar(&product, "product", "", "product name or ID (required)")
	cmd.Flags().StringVar(&name, "name", "", "group name, unique in the product (required)")
	gs.addFlags(cmd)
	return cmd
}

func newDeviceGroupCreateDefaultsCmd(a *app) *cobra.Command {
	var product string
	cmd := &cobra.Command{
		Use:   "create-defaults --product PRODUCT",
		Short: "Create whichever of a product's five default device groups are missing",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "product"); err != nil {
				return err
			}
			s, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			pr, err := resolveProduct(cmd.Context(), s.c, s.tenant, product)
			if err != nil {
				return err
			}
			d, err := s.c.CreateDefaultDeviceGroups(cmd.Context(), s.tenant, pr.ID)
			if err != nil {
				return err
			}
			p := a.printer()
			return p.print(d, func() error {
				var rows [][]string
				for _, g := range d.Created {
					rows = append(rows, append(groupRow(g, pr.Name), "created"))
				}
				for _, g := range d.Existing {
					rows = append(rows, append(groupRow(g, pr.Name), "existed"))
				}
				return p.table(append(groupHeader, "STATUS"), rows)
			})
		},
	}
	cmd.Flags().StringVar(&product, "product", "", "product name or ID (required)")
	return cmd
}

func newDeviceGroupListCmd(a *app) *cobra.Command {
	var product string
	cmd := &cobra.Command{
		Use:   "list [--product PRODUCT]",
		Short: "List the device groups of a product, or of every product",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			s, err := a.session(ctx)
			if err != nil {
				return err
			}
			var gs []v1.DeviceGroup
			productNames := map[string]string{}
			if product != "" {
				pr, err := resolveProduct(ctx, s.c, s.tenant, product)
				if err != nil {
					return err
				}
				productNames[pr.ID] = pr.Name
				gs, err = s.c.AllProductDeviceGroups(ctx, s.tenant, pr.ID, client.DeviceGroupListOptions{})
				if err != nil {
					return err
				}
			} else {
				if gs, err = s.c.AllDeviceGroups(ctx, s.tenant, client.DeviceGroupListOptions{}); err != nil {
					return err
				}
				if !a.printer().json() {
					if productNames, err = loadProductNames(ctx, s); err != nil {
						return err
					}
				}
			}
			p := a.printer()
			return p.print(gs, func() error {
				rows := make([][]string, 0, len(gs))
				for _, g := range gs {
					rows = append(rows, groupRow(g, nameOr(productNames, g.ProductID)))
				}
				return p.table(groupHeader, rows)
			})
		},
	}
	cmd.Flags().StringVar(&product, "product", "", "product name or ID (default: every product)")
	return cmd
}

func loadProductNames(ctx context.Context, s *session) (map[string]string, error) {
	ps, err := s.c.AllProducts(ctx, s.tenant, client.ProductListOptions{})
	if err != nil {
		return nil, err
	}
	m := make(map[string]string, len(ps))
	for _, p := range ps {
		m[p.ID] = p.Name
	}
	return m, nil
}

func newDeviceGroupShowCmd(a *app) *cobra.Command {
	var product string
	cmd := &cobra.Command{
		Use:   "show GROUP [--product PRODUCT]",
		Short: "Show a device group, by name or ID",
		Args:  args(1, 1, "GROUP"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			_, g, err := resolveProductAndGroup(cmd.Context(), s.c, s.tenant, product, args[0])
			if err != nil {
				return err
			}
			return showGroup(a.printer(), g, a.productName(cmd.Context(), s, g.ProductID))
		},
	}
	cmd.Flags().StringVar(&product, "product", "", "product name or ID, needed if several products have a group of that name")
	return cmd
}

func newDeviceGroupUpdateCmd(a *app) *cobra.Command {
	var (
		product, name string
		gs            groupSettings
	)
	cmd := &cobra.Command{
		Use:   "update GROUP [--product PRODUCT] [--name NAME] [--description D] [--os-feed Retail|RetailEval] [--application-update UpdateAll|No3rdPartyAppUpdates] [--check-in-interval DURATION] [--cert-lifetime DURATION]",
		Short: "Change a device group's name or settings",
		Args:  args(1, 1, "GROUP"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var req v1.DeviceGroupUpdate
			f := cmd.Flags()
			if f.Changed("name") {
				req.Name = &name
			}
			if f.Changed("description") {
				req.Description = &gs.description
			}
			if f.Changed("os-feed") {
				req.OSFeed = &gs.osFeed
			}
			if f.Changed("application-update") {
				req.UpdatePolicy = &gs.updatePolicy
			}
			if f.Changed("check-in-interval") {
				secs, err := seconds(gs.checkIn, "check-in-interval")
				if err != nil {
					return err
				}
				req.CheckInIntervalSeconds = &secs
			}
			if f.Changed("cert-lifetime") {
				secs, err := seconds(gs.certLifetime, "cert-lifetime")
				if err != nil {
					return err
				}
				req.CertLifetimeSeconds = &secs
			}
			if req == (v1.DeviceGroupUpdate{}) {
				return usagef(cmd, "nothing to update: pass --name, --description, --os-feed, --application-update, --check-in-interval or --cert-lifetime")
			}
			s, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			_, g, err := resolveProductAndGroup(cmd.Context(), s.c, s.tenant, product, args[0])
			if err != nil {
				return err
			}
			if g, err = s.c.UpdateDeviceGroup(cmd.Context(), s.tenant, g.ID, req); err != nil {
				return err
			}
			return showGroup(a.printer(), g, a.productName(cmd.Context(), s, g.ProductID))
		},
	}
	cmd.Flags().StringVar(&product, "product", "", "product name or ID, needed if several products have a group of that name")
	cmd.Flags().StringVar(&name, "name", "", "new name")
	gs.addFlags(cmd)
	return cmd
}

func newDeviceGroupDeleteCmd(a *app) *cobra.Command {
	var product string
	cmd := &cobra.Command{
		Use:   "delete GROUP [--product PRODUCT]",
		Short: "Delete a device group, which must hold no devices",
		Args:  args(1, 1, "GROUP"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			_, g, err := resolveProductAndGroup(cmd.Context(), s.c, s.tenant, product, args[0])
			if err != nil {
				return err
			}
			if err := s.c.DeleteDeviceGroup(cmd.Context(), s.tenant, g.ID); err != nil {
				return err
			}
			return a.printer().line("Deleted device group " + g.Name + " (" + g.ID + ").")
		},
	}
	cmd.Flags().StringVar(&product, "product", "", "product name or ID, needed if several products have a group of that name")
	return cmd
}

// productName returns a product's name for a table, or its ID if the lookup fails. JSON output
// does not need it.
func (a *app) productName(ctx context.Context, s *session, id string) string {
	if id == "" || a.printer().json() {
		return id
	}
	p, err := s.c.GetProduct(ctx, s.tenant, id)
	if err != nil {
		return id
	}
	return p.Name
}

var groupHeader = []string{"ID", "NAME", "PRODUCT", "OS FEED", "UPDATE POLICY", "CHECK-IN"}

func groupRow(g v1.DeviceGroup, product string) []string {
	return []string{g.ID, g.Name, product, g.OSFeed, g.UpdatePolicy, secondsCell(g.CheckInIntervalSeconds)}
}

func showGroup(p printer, g *v1.DeviceGroup, product string) error {
	return p.print(g, func() error {
		return p.fields([][2]string{
			{"ID", g.ID}, {"Name", g.Name}, {"Product", product}, {"Product ID", g.ProductID},
			{"Description", g.Description}, {"OS feed", g.OSFeed}, {"Update policy", g.UpdatePolicy},
			{"Check-in interval", secondsCell(g.CheckInIntervalSeconds)},
			{"Created", timeCell(g.CreatedAt)}, {"Updated", timeCell(g.UpdatedAt)},
		})
	})
}
