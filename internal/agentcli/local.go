package agentcli

import (
	"encoding/json"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/rampart-iot/rampart/internal/board"
	"github.com/rampart-iot/rampart/internal/localapi"
)

// localFlags are the flags of the commands that talk to the running agent.
type localFlags struct {
	state, output string
}

func (f *localFlags) add(cmd *cobra.Command, output bool) {
	cmd.Flags().StringVar(&f.state, "state", DefaultStateDir, "the running agent's state `directory`")
	if output {
		cmd.Flags().StringVarP(&f.output, "output", "o", "table", "table or json")
	}
}

func newAppCmd(sys *IO) *cobra.Command {
	cmd := &cobra.Command{Use: "app", Short: "List, stop and start the applications of the running agent", Args: cobra.NoArgs}
	var lf localFlags
	list := &cobra.Command{
		Use:   "list --state DIR [-o json]",
		Short: "List the installed applications and how they run",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			apps, err := localapi.Dial(lf.state).Apps(cmd.Context())
			if err != nil {
				return err
			}
			if lf.output == "json" {
				b, _ := json.MarshalIndent(apps, "", "  ")
				_, err := fmt.Fprintln(sys.Out, string(b))
				return err
			}
			tw := tabwriter.NewWriter(sys.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "COMPONENT ID\tNAME\tVERSION\tSTATE\tRESTARTS\tLAST EXIT")
			for _, a := range apps {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", a.ComponentID, a.Name, a.Version, a.State, a.Restarts, a.LastExit)
			}
			return tw.Flush()
		},
	}
	lf.add(list, true)
	var qf localFlags
	quota := &cobra.Command{
		Use:   "show-quota COMPONENT_ID --state DIR [-o json]",
		Short: "Show how much of its MutableStorage quota a running application uses",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			q, err := localapi.Dial(qf.state).Quota(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if qf.output == "json" {
				b, _ := json.MarshalIndent(q, "", "  ")
				_, err := fmt.Fprintln(sys.Out, string(b))
				return err
			}
			_, err = fmt.Fprintf(sys.Out, "%s: %d KB of %d KB used\n", q.ComponentID, q.UsedKB, q.QuotaKB)
			return err
		},
	}
	qf.add(quota, true)
	cmd.AddCommand(list, newAppControlCmd(sys, "stop", "Stop an application (it stays stopped until started)"),
		newAppControlCmd(sys, "start", "Start a stopped application"), quota)
	return cmd
}

func newAppControlCmd(sys *IO, verb, short string) *cobra.Command {
	var lf localFlags
	cmd := &cobra.Command{
		Use:   verb + " COMPONENT_ID --state DIR",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c := localapi.Dial(lf.state)
			var err error
			if verb == "stop" {
				err = c.StopApp(cmd.Context(), args[0])
			} else {
				err = c.StartApp(cmd.Context(), args[0])
			}
			if err != nil {
				return err
			}
			done := "started"
			if verb == "stop" {
				done = "stopped"
			}
			_, err = fmt.Fprintf(sys.Out, "%s: %s\n", args[0], done)
			return err
		},
	}
	lf.add(cmd, false)
	return cmd
}

func newSideloadCmd(sys *IO) *cobra.Command {
	cmd := &cobra.Command{Use: "sideload", Short: "Install or delete applications on a device in development mode", Args: cobra.NoArgs}
	var df, rf localFlags
	deploy := &cobra.Command{
		Use:   "deploy FILE --state DIR",
		Short: "Install an application package and run it (any version; the development key is accepted)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			a, err := localapi.Dial(df.state).Sideload(cmd.Context(), b)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(sys.Out, "installed %s %s (component %s, image %s)\n", a.Name, a.Version, a.ComponentID, a.ImageID)
			return err
		},
	}
	df.add(deploy, false)
	del := &cobra.Command{
		Use:   "delete COMPONENT_ID --state DIR",
		Short: "Stop and remove an application and its data",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := localapi.Dial(rf.state).DeleteApp(cmd.Context(), args[0]); err != nil {
				return err
			}
			_, err := fmt.Fprintf(sys.Out, "deleted %s\n", args[0])
			return err
		},
	}
	rf.add(del, false)
	cmd.AddCommand(deploy, del)
	return cmd
}

func newBoardCmd(sys *IO) *cobra.Command {
	var lf localFlags
	cmd := &cobra.Command{
		Use:   "board --state DIR [-o json]",
		Short: "Show the running agent's emulated board: LEDs, buttons, sensors",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bc := &board.Client{HTTP: localapi.Dial(lf.state).HTTP(), Base: "http://agent"}
			st, err := bc.State(cmd.Context())
			if err != nil {
				return err
			}
			if lf.output == "json" {
				b, _ := json.MarshalIndent(st, "", "  ")
				_, err := fmt.Fprintln(sys.Out, string(b))
				return err
			}
			tw := tabwriter.NewWriter(sys.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "BOARD\t%s\n", st.Board)
			for _, l := range st.LEDs {
				on := "off"
				if l.On {
					on = "on"
				}
				fmt.Fprintf(tw, "LED %s\tGPIO %d\t%s\n", l.Name, l.GPIO, on)
			}
			for _, b := range st.Buttons {
				fmt.Fprintf(tw, "button %s\tGPIO %d\tpressed=%v\n", b.Name, b.GPIO, b.Pressed)
			}
			return tw.Flush()
		},
	}
	lf.add(cmd, true)
	var pf localFlags
	press := &cobra.Command{
		Use:   "press BUTTON --state DIR",
		Short: "Press a button of the emulated board (apps polling its GPIO see it)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			bc := &board.Client{HTTP: localapi.Dial(pf.state).HTTP(), Base: "http://agent"}
			if err := bc.Press(cmd.Context(), args[0]); err != nil {
				return err
			}
			_, err := fmt.Fprintf(sys.Out, "pressed %s\n", args[0])
			return err
		},
	}
	pf.add(press, false)
	cmd.AddCommand(press)
	return cmd
}

func newEventsCmd(sys *IO) *cobra.Command {
	cmd := &cobra.Command{Use: "events", Short: "The error-report events queued on the device", Args: cobra.NoArgs}
	var lf localFlags
	list := &cobra.Command{
		Use:   "list --state DIR [-o json]",
		Short: "List the structured events the running agent has queued and not yet uploaded (oldest first)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			evs, err := localapi.Dial(lf.state).Events(cmd.Context())
			if err != nil {
				return err
			}
			if lf.output == "json" {
				b, _ := json.MarshalIndent(evs, "", "  ")
				_, err := fmt.Fprintln(sys.Out, string(b))
				return err
			}
			tw := tabwriter.NewWriter(sys.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TIME\tTYPE\tCOMPONENT ID\tREASON\tMESSAGE")
			for _, e := range evs.Events {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Time.UTC().Format(time.RFC3339), e.Type, e.ComponentID, e.Reason, e.Message)
			}
			if evs.Dropped > 0 {
				fmt.Fprintf(tw, "(%d events dropped when the queue was full)\n", evs.Dropped)
			}
			return tw.Flush()
		},
	}
	lf.add(list, true)
	cmd.AddCommand(list)
	return cmd
}
