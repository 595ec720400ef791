// Package cli is the rampart command line: the management commands (login, tenant, role, token,
// product, device-group, device, audit) as cobra commands over the /v1 REST API, plus
// `rampart server`. Commands take a context, arguments and an IO, so tests run the real CLI
// in-process.
//
// What it trusts: the server named by --addr, RAMPART_ADDR or the config file, authenticated by
// TLS against --cacert, RAMPART_CACERT or the config file's CA certificate (else the system
// roots). The config file's token is sent only to the config file's own address. Everything the
// server returns is untrusted text: tables and error lines are stripped of control characters
// before they reach the terminal.
package cli

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/client"
)

// IO is what a command may touch outside itself; tests pass buffers and a fake environment.
type IO struct {
	In      io.Reader
	Out     io.Writer
	Err     io.Writer
	Getenv  func(string) string
	HomeDir string // for ~/.config/rampart when XDG_CONFIG_HOME is unset
}

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// Run runs the rampart CLI with args (without the program name) and returns the exit code:
// 0 success, 1 error, 2 usage error. Errors are printed as one line on sys.Err
// ("rampart: <message>"), never a stack trace or usage dump.
func Run(ctx context.Context, args []string, sys IO) int {
	if sys.In == nil {
		sys.In = strings.NewReader("")
	}
	if sys.Out == nil {
		sys.Out = io.Discard
	}
	if sys.Err == nil {
		sys.Err = io.Discard
	}
	if sys.Getenv == nil {
		sys.Getenv = func(string) string { return "" }
	}
	if args == nil {
		args = []string{} // cobra would read os.Args for nil
	}
	root := newRootCmd(&sys)
	root.SetArgs(args)
	_, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	msg, code := describe(ctx, err)
	fmt.Fprintf(sys.Err, "rampart: %s\n", msg)
	return code
}

// describe turns an error into the one line the user sees and an exit code.
func describe(ctx context.Context, err error) (string, int) {
	var ue *usageError
	if errors.As(err, &ue) {
		path := "rampart"
		if ue.cmd != nil {
			path = ue.cmd.CommandPath()
		}
		return oneLine(ue.msg) + "; run '" + path + " --help'", exitUsage
	}
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return "interrupted", exitError
	}
	msg := err.Error()
	var ae *client.APIError
	if errors.As(err, &ae) {
		// Name the two codes users must act on, unless the server's message does.
		switch apiMsg := ae.Error(); ae.Body.Code {
		case v1.CodeForbidden, v1.CodeUnauthenticated:
			if !strings.HasPrefix(strings.ToLower(apiMsg), ae.Body.Code) {
				msg = strings.Replace(msg, apiMsg, ae.Body.Code+": "+apiMsg, 1)
			}
		}
	}
	var uae x509.UnknownAuthorityError
	if errors.As(err, &uae) {
		msg += "; pass --cacert or set " + envCACert + " to the PEM file of the server's CA"
	}
	return oneLine(msg), exitError
}

// oneLine keeps a message on one line and free of control characters.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
	return clean(s)
}

// app is the state the commands share: the IO, the global flags, and the settings resolved
// from them.
type app struct {
	sys      *IO
	flags    globalFlags
	resolved *settings
	now      func() time.Time
}

func (a *app) printer() printer { return printer{w: a.sys.Out, format: a.flags.output} }

func newRootCmd(sys *IO) *cobra.Command {
	a := &app{sys: sys, now: time.Now}
	root := &cobra.Command{
		Use:   "rampart",
		Short: "Manage a Rampart security service: tenants, products, device groups and devices",
		Long: `rampart manages a Rampart security service: tenants, users and roles, products, device
groups, devices and the audit log. It also runs the service itself (rampart server).

Configuration comes from flags, then the environment (RAMPART_ADDR, RAMPART_TOKEN,
RAMPART_CACERT, RAMPART_TENANT), then the config file that 'rampart login' writes
($XDG_CONFIG_HOME/rampart/config.json or ~/.config/rampart/config.json).`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          unknownCommand,
		RunE:          showHelp,
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetIn(sys.In)
	root.SetOut(sys.Out)
	root.SetErr(sys.Err)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &usageError{cmd: c, msg: err.Error()}
	})

	pf := root.PersistentFlags()
	a.flags.output = formatTable
	pf.VarP(&enumValue{allowed: []string{formatTable, formatJSON}, value: &a.flags.output}, "output", "o", "output format: table or json")
	_ = root.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{formatTable, formatJSON}, cobra.ShellCompDirectiveNoFileComp))
	pf.StringVar(&a.flags.tenant, "tenant", "", "tenant name or ID (default: $RAMPART_TENANT, then the selected tenant)")
	pf.StringVar(&a.flags.addr, "addr", "", "server address, https://host:port (default: $RAMPART_ADDR, then the config file)")
	pf.StringVar(&a.flags.cacert, "cacert", "", "PEM file of the CA that verifies the server (default: $RAMPART_CACERT, then the config file, then the system roots)")
	pf.StringVar(&a.flags.token, "token", "", "API token, or - to read it from stdin (default: $RAMPART_TOKEN, then the config file)")

	root.AddCommand(
		newLoginCmd(a),
		newLogoutCmd(a),
		newTenantCmd(a),
		newRoleCmd(a),
		newTokenCmd(a),
		newProductCmd(a),
		newDeviceGroupCmd(a),
		newDeviceCmd(a),
		newAuditCmd(a),
		newOSReleaseCmd(a),
		newImageCmd(a),
		newDeploymentCmd(a),
		newCACertificateCmd(a),
		newKeysCmd(a),
		newErrorReportCmd(a),
		newWebhookCmd(a),
		newImagePackageCmd(a),
		newCompletionCmd(a),
		newVersionCmd(a),
		newServerCmd(sys),
	)
	a.registerNameCompletion(root)
	return root
}

// group returns a command that only holds subcommands: alone it prints its help, and with an
// unknown subcommand it is a usage error.
func group(use, short string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{Use: use, Short: short, Args: unknownCommand, RunE: showHelp}
	c.AddCommand(subs...)
	return c
}

func showHelp(cmd *cobra.Command, _ []string) error { return cmd.Help() }

func unknownCommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2
	}
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += fmt.Sprintf(" (did you mean %q?)", s[0])
	}
	return &usageError{cmd: cmd, msg: msg}
}
