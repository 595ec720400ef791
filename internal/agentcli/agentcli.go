// Package agentcli is the rampart-agent command line: the device-side commands, as cobra
// commands that take a context, arguments and an IO so tests run them in-process. Today it
// enrolls a device (writes the enrollment record that `rampart device claim` accepts); the
// attestation, update and app issues add `run`, `status`, `app`, `sideload` and the rest.
package agentcli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"

	"github.com/spf13/cobra"

	"github.com/rampart-iot/rampart/internal/atomicfile"
	"github.com/rampart-iot/rampart/internal/buildinfo"
	"github.com/rampart-iot/rampart/internal/enroll"
	"github.com/rampart-iot/rampart/internal/rot"

	// Built-in roots of trust.
	_ "github.com/rampart-iot/rampart/internal/rot/softrot"
	_ "github.com/rampart-iot/rampart/internal/rot/tpmrot"
)

// IO is what a command may touch outside itself.
type IO struct {
	Out    io.Writer
	Err    io.Writer
	Getenv func(string) string
}

// DefaultStateDir is where the agent keeps its state unless told otherwise.
const DefaultStateDir = "/var/lib/rampart"

type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// Run runs rampart-agent with args and returns the exit code: 0 success, 1 error, 2 usage.
func Run(ctx context.Context, args []string, sys IO) int {
	if sys.Out == nil {
		sys.Out = io.Discard
	}
	if sys.Err == nil {
		sys.Err = io.Discard
	}
	if args == nil {
		args = []string{}
	}
	// `rampart-agent -dev` is spelled with one dash, as `rampart server -dev` is.
	for i, a := range args {
		if a == "-dev" {
			args[i] = "--dev"
		}
	}
	var dev runFlags
	var devMode bool
	root := &cobra.Command{
		Use:           "rampart-agent",
		Short:         "The Rampart device agent: root of trust, security monitor, cloud services and app containers",
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !devMode {
				return cmd.Help()
			}
			return runDev(cmd.Context(), &sys, &dev)
		},
	}
	root.Flags().BoolVar(&devMode, "dev", false, "emulated device: enroll on the TPM simulator, claim into the dev tenant of 'rampart server -dev' (RAMPART_ADDR, RAMPART_TOKEN, RAMPART_CACERT), trust its own measurements, and run")
	dev.add(root, "tpm-sim")
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetOut(sys.Out)
	root.SetErr(sys.Err)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err.Error()} })
	root.AddCommand(newEnrollCmd(&sys), newRunCmd(&sys), newStatusCmd(&sys), newMeasurementsCmd(&sys), newVersionCmd(&sys),
		newAppCmd(&sys), newSideloadCmd(&sys), newBoardCmd(&sys), newEventsCmd(&sys))
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	if errors.Is(err, errReboot) {
		return ExitReboot
	}
	msg := strings.Join(strings.Fields(err.Error()), " ")
	var ue *usageError
	if errors.As(err, &ue) || strings.HasPrefix(err.Error(), "unknown command") || strings.HasPrefix(err.Error(), "unknown flag") {
		fmt.Fprintf(sys.Err, "rampart-agent: %s; run 'rampart-agent --help'\n", msg)
		return 2
	}
	fmt.Fprintf(sys.Err, "rampart-agent: %s\n", msg)
	return 1
}

func newEnrollCmd(sys *IO) *cobra.Command {
	var rotSpec, state, out string
	c := &cobra.Command{
		Use:   "enroll --rot BACKEND --state DIR --out FILE",
		Short: "Write this device's enrollment record, for 'rampart device claim'",
		Long: `enroll reads the root of trust (creating the attestation key on first use) and writes the
enrollment record: the device ID, the public EK and AK, and the EK certificate when the root
of trust holds one. No secret leaves the root of trust.

Roots of trust: ` + strings.Join(rot.Backends(), ", ") + `. "software" is for development only: its
keys are files in the state directory, and servers refuse it unless their policy allows it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if rotSpec == "" {
				return &usageError{"--rot is required (for example --rot software)"}
			}
			if out == "" {
				return &usageError{"--out is required (a file, or - for standard output)"}
			}
			r, err := rot.Open(cmd.Context(), rotSpec, state)
			if err != nil {
				return err
			}
			defer r.Close()
			rec, err := enroll.Record(cmd.Context(), r, buildinfo.Version())
			if err != nil {
				return err
			}
			b, err := rec.Marshal()
			if err != nil {
				return err
			}
			b = append(b, '\n')
			if out == "-" {
				_, err = sys.Out.Write(b)
				return err
			}
			if err := atomicfile.WriteFile(out, b, 0o644); err != nil {
				return err
			}
			note := ""
			if rec.IsSoftware() {
				note = " (software root of trust: development only)"
			}
			fmt.Fprintf(sys.Out, "enrolled device %s%s; record written to %s\n", rec.DeviceID, note, out)
			return nil
		},
	}
	c.Flags().StringVar(&rotSpec, "rot", "", "root of trust: "+strings.Join(rot.Backends(), ", "))
	c.Flags().StringVar(&state, "state", DefaultStateDir, "agent state `directory`")
	c.Flags().StringVar(&out, "out", "", "where to write the record (`file`, or - for standard output)")
	return c
}

func newVersionCmd(sys *IO) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of this binary",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			_, err := fmt.Fprintf(sys.Out, "rampart-agent %s (%s)\n", buildinfo.Version(), runtime.Version())
			return err
		},
	}
}
