package cli

import (
	"context"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rampart-iot/rampart/client"
)

func newCompletionCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish",
		Short: "Print a shell completion script",
		Long: `completion prints a completion script for bash, zsh or fish. For example:

  source <(rampart completion bash)             # bash, this shell only
  rampart completion zsh > "${fpath[1]}/_rampart" # zsh
  rampart completion fish | source               # fish, this shell only`,
		ValidArgs: []string{"bash", "zsh", "fish"},
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef(cmd, "want one shell: bash, zsh or fish")
			}
			switch args[0] {
			case "bash", "zsh", "fish":
				return nil
			}
			return usagef(cmd, "unsupported shell %q: want bash, zsh or fish", args[0])
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			root, out := cmd.Root(), a.sys.Out
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(out, true)
			case "zsh":
				return root.GenZshCompletion(out)
			default:
				return root.GenFishCompletion(out, true)
			}
		},
	}
}

// Completion of names from the server, for the generated scripts. A failure (no server, not
// logged in, a slow server) offers nothing rather than an error.

// completionTimeout bounds how long a completion waits for the server.
const completionTimeout = 5 * time.Second

// completeArg wraps a name completer so that it completes only the first argument.
func completeArg(f cobra.CompletionFunc) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return f(cmd, args, toComplete)
	}
}

func (a *app) completeTenants(cmd *cobra.Command, _ []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
	ctx, cancel := context.WithTimeout(cmd.Context(), completionTimeout)
	defer cancel()
	c, err := a.client()
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	ts, err := c.AllTenants(ctx)
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	var names []cobra.Completion
	for _, t := range ts {
		names = append(names, cobra.CompletionWithDesc(t.Name, t.Role))
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}

func (a *app) completeProducts(cmd *cobra.Command, _ []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
	ctx, cancel := context.WithTimeout(cmd.Context(), completionTimeout)
	defer cancel()
	s, err := a.session(ctx)
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	ps, err := s.c.AllProducts(ctx, s.tenant, client.ProductListOptions{})
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	var names []cobra.Completion
	for _, p := range ps {
		names = append(names, cobra.CompletionWithDesc(p.Name, p.Description))
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}

// completeGroups offers the names of the device groups of --product if it is set, else of all
// products.
func (a *app) completeGroups(cmd *cobra.Command, _ []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
	ctx, cancel := context.WithTimeout(cmd.Context(), completionTimeout)
	defer cancel()
	s, err := a.session(ctx)
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	var o client.DeviceGroupListOptions
	if f := cmd.Flags().Lookup("product"); f != nil && f.Value.String() != "" {
		p, err := resolveProduct(ctx, s.c, s.tenant, f.Value.String())
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		o.ProductID = p.ID
	}
	gs, err := s.c.AllDeviceGroups(ctx, s.tenant, o)
	if err != nil {
		return nil, cobra.ShellCompDirectiveError
	}
	seen := map[string]bool{}
	var names []cobra.Completion
	for _, g := range gs {
		if !seen[strings.ToLower(g.Name)] {
			seen[strings.ToLower(g.Name)] = true
			names = append(names, g.Name)
		}
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}

// registerNameCompletion wires name completion into the commands: product and device group
// arguments and the --product and --device-group flags wherever they appear, and tenant names.
func (a *app) registerNameCompletion(root *cobra.Command) {
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			walk(sub)
		}
		if c.Flags().Lookup("product") != nil {
			_ = c.RegisterFlagCompletionFunc("product", a.completeProducts)
		}
		if c.Flags().Lookup("device-group") != nil {
			_ = c.RegisterFlagCompletionFunc("device-group", a.completeGroups)
		}
		if c.ValidArgsFunction != nil || c.HasSubCommands() || c.Parent() == nil {
			return
		}
		switch c.Parent().Name() + " " + c.Name() {
		case "product show", "product update", "product delete":
			c.ValidArgsFunction = completeArg(a.completeProducts)
		case "device-group show", "device-group update", "device-group delete":
			c.ValidArgsFunction = completeArg(a.completeGroups)
		case "tenant show", "tenant select":
			c.ValidArgsFunction = completeArg(a.completeTenants)
		}
	}
	walk(root)
	_ = root.RegisterFlagCompletionFunc("tenant", a.completeTenants)
}
