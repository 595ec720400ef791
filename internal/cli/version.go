package cli

import (
	"runtime"

	"github.com/spf13/cobra"

	"github.com/rampart-iot/rampart/internal/buildinfo"
)

func newVersionCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of this binary",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := struct {
				Version   string `json:"version"`
				GoVersion string `json:"go_version"`
			}{buildinfo.Version(), runtime.Version()}
			p := a.printer()
			return p.print(v, func() error {
				return p.line("rampart " + v.Version + " (" + v.GoVersion + ")")
			})
		},
	}
}
