package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/client"
	"github.com/rampart-iot/rampart/internal/atomicfile"
)

func newDeviceDisableCmd(a *app, disable bool) *cobra.Command {
	verb, short := "enable", "Enable a disabled device"
	if disable {
		verb, short = "disable", "Disable a device: it is refused at its next attestation and on mutual TLS"
	}
	return &cobra.Command{
		Use:   verb + " ID",
		Short: short,
		Args:  args(1, 1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := deviceID(args[0])
			if err != nil {
				return err
			}
			s, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			var d *v1.Device
			if disable {
				d, err = s.c.DisableDevice(cmd.Context(), s.tenant, id)
			} else {
				d, err = s.c.EnableDevice(cmd.Context(), s.tenant, id)
			}
			if err != nil {
				return err
			}
			return a.showDevice(cmd.Context(), s, d)
		},
	}
}

func newDeviceAttestationsCmd(a *app) *cobra.Command {
	var max int
	cmd := &cobra.Command{
		Use:   "attestations ID",
		Short: "List a device's attestations, newest first",
		Args:  args(1, 1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := deviceID(args[0])
			if err != nil {
				return err
			}
			s, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			l, err := s.c.ListAttestations(cmd.Context(), s.tenant, id, client.ListOptions{MaxPageSize: max})
			if err != nil {
				return err
			}
			p := a.printer()
			return p.print(l.Items, func() error {
				rows := make([][]string, len(l.Items))
				for i, at := range l.Items {
					rows[i] = []string{timeCell(at.Time), at.Result, at.Reason, at.Message, timeCell(at.CertificateExpires)}
				}
				return p.table([]string{"TIME", "RESULT", "REASON", "MESSAGE", "CERTIFICATE EXPIRES"}, rows)
			})
		},
	}
	cmd.Flags().IntVar(&max, "max", 20, "how many to show (1 to 1000)")
	return cmd
}

func newOSReleaseCmd(a *app) *cobra.Command {
	return group("os-release", "Register the OS releases whose golden measurements devices may attest to",
		newOSReleaseAddCmd(a), newOSReleaseListCmd(a), newOSReleaseDeleteCmd(a), newOSReleasePublishCmd(a), newOSReleaseWithdrawCmd(a))
}

func newOSReleaseAddCmd(a *app) *cobra.Command {
	var version, description, file string
	var measurements []string
	cmd := &cobra.Command{
		Use:   "add --version V (--measurement NAME=SHA256 ... | --measurements-file F)",
		Short: "Register an OS release and its golden measurements",
		Long: `add registers the measurements a device running this release produces. Take them from a
trusted build, or from 'rampart-agent measurements --state DIR -o json' on a reference device.
The file form takes that JSON output (an object with a "measurements" map).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := v1.OSReleaseCreate{Version: version, Description: description, Measurements: map[string]string{}}
			if file != "" {
				b, err := os.ReadFile(file)
				if err != nil {
					return err
				}
				var doc struct {
					Measurements map[string]string `json:"measurements"`
				}
				if err := json.Unmarshal(b, &doc); err != nil || len(doc.Measurements) == 0 {
					return fmt.Errorf("%s: want a JSON object with a \"measurements\" map", file)
				}
				req.Measurements = doc.Measurements
			}
			for _, m := range measurements {
				k, v, ok := strings.Cut(m, "=")
				if !ok {
					return usagef(cmd, "--measurement %q: want NAME=SHA256", m)
				}
				req.Measurements[k] = strings.ToLower(v)
			}
			if version == "" {
				return usagef(cmd, "--version is required")
			}
			if len(req.Measurements) == 0 {
				return usagef(cmd, "give --measurement NAME=SHA256 or --measurements-file")
			}
			s, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			r, err := s.c.CreateOSRelease(cmd.Context(), s.tenant, req)
			if err != nil {
				return err
			}
			return a.showOSRelease(r)
		},
	}
	cmd.Flags().StringVar(&version, "version", "", "release version")
	cmd.Flags().StringVar(&description, "description", "", "description")
	cmd.Flags().StringArrayVar(&measurements, "measurement", nil, "NAME=SHA256 (repeatable): policy, agent, os-bundle")
	cmd.Flags().StringVar(&file, "measurements-file", "", "JSON file with a \"measurements\" map")
	return cmd
}

func (a *app) showOSRelease(r *v1.OSRelease) error {
	p := a.printer()
	return p.print(r, func() error {
		rows := [][2]string{{"ID", r.ID}, {"Version", r.Version}, {"Description", r.Description}, {"Created", timeCell(r.CreatedAt)}}
		names := make([]string, 0, len(r.Measurements))
		for n := range r.Measurements {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			rows = append(rows, [2]string{"Measurement " + n, r.Measurements[n]})
		}
		return p.fields(rows)
	})
}

func newOSReleaseListCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the tenant's OS releases",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			rs, err := s.c.AllOSReleases(cmd.Context(), s.tenant)
			if err != nil {
				return err
			}
			p := a.printer()
			return p.print(rs, func() error {
				rows := make([][]string, len(rs))
				for i, r := range rs {
					names := make([]string, 0, len(r.Measurements))
					for n := range r.Measurements {
						names = append(names, n)
					}
					sort.Strings(names)
					feed := r.Feed
					if feed == "" {
						feed = "(every group)"
					}
					rows[i] = []string{r.ID, r.Version, feed, strconv.FormatUint(r.SecurityVersion, 10), strings.Join(names, ","), timeCell(r.CreatedAt)}
				}
				return p.table([]string{"ID", "VERSION", "FEED", "SECURITY", "MEASUREMENTS", "CREATED"}, rows)
			})
		},
	}
}

func newOSReleaseDeleteCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "delete VERSION_OR_ID",
		Short: "Remove an OS release: devices that measure it fail their next attestation",
		Args:  args(1, 1, "VERSION_OR_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			rs, err := s.c.AllOSReleases(cmd.Context(), s.tenant)
			if err != nil {
				return err
			}
			for _, r := range rs {
				if r.ID == args[0] || r.Version == args[0] {
					if err := s.c.DeleteOSRelease(cmd.Context(), s.tenant, r.ID); err != nil {
						return err
					}
					return a.printer().line("deleted OS release " + r.Version)
				}
			}
			return fmt.Errorf("OS release %q not found", args[0])
		},
	}
}

func newOSReleasePublishCmd(a *app) *cobra.Command {
	var feed string
	cmd := &cobra.Command{
		Use:   "publish VERSION_OR_ID --feed Retail|RetailEval|Unpublished",
		Short: "Publish an OS release made from an OS image to a feed",
		Long: `publish makes a release that an OS image upload registered available to the groups that
follow the feed: RetailEval for evaluation groups first, then Retail for every group. Devices of
those groups may attest to it, and their directors offer its OS image (unless a group's
deployment names an OS image). Unpublished takes it back.`,
		Args: args(1, 1, "VERSION_OR_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if feed == "" {
				return &usageError{cmd: cmd, msg: "--feed is required (Retail, RetailEval or Unpublished)"}
			}
			s, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			rs, err := s.c.AllOSReleases(cmd.Context(), s.tenant)
			if err != nil {
				return err
			}
			for _, r := range rs {
				if r.ID == args[0] || r.Version == args[0] {
					out, err := s.c.PublishOSRelease(cmd.Context(), s.tenant, r.ID, feed)
					if err != nil {
						return err
					}
					return a.printer().print(out, func() error {
						return a.printer().line("OS release " + out.Version + " is now " + out.Feed)
					})
				}
			}
			return fmt.Errorf("OS release %q not found", args[0])
		},
	}
	cmd.Flags().StringVar(&feed, "feed", "", "Retail, RetailEval or Unpublished")
	return cmd
}

func newOSReleaseWithdrawCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "withdraw VERSION_OR_ID",
		Short: "Withdraw an OS release from its feed: no group is offered it any more",
		Long: `withdraw takes a release published to Retail or RetailEval out of its feed. No group's
director offers it any more: each group is offered its feed's newest remaining release again
(or its deployment's OS image). Devices that already run it keep attesting with it, since a
device never installs an older OS; they stay on it until a newer release is published. A device
that never attested with it (for example one in a trial boot of it) is refused and rolls back.
'publish' undoes a withdrawal.`,
		Args: args(1, 1, "VERSION_OR_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			rs, err := s.c.AllOSReleases(cmd.Context(), s.tenant)
			if err != nil {
				return err
			}
			for _, r := range rs {
				if r.ID == args[0] || r.Version == args[0] {
					out, err := s.c.WithdrawOSRelease(cmd.Context(), s.tenant, r.ID)
					if err != nil {
						return err
					}
					return a.printer().print(out, func() error {
						return a.printer().line("OS release " + out.Version + " is withdrawn: no group is offered it")
					})
				}
			}
			return fmt.Errorf("OS release %q not found", args[0])
		},
	}
}

func newCACertificateCmd(a *app) *cobra.Command {
	return group("ca-certificate", "The tenant's certificate authority: list, download, download-chain, download-proof",
		newCAListCmd(a), newCADownloadCmd(a), newCAChainCmd(a), newCAProofCmd(a))
}

func newCAListCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the tenant's CA certificates and their status",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			cs, err := s.c.ListCACertificates(cmd.Context(), s.tenant)
			if err != nil {
				return err
			}
			p := a.printer()
			return p.print(cs, func() error {
				rows := make([][]string, len(cs))
				for i, c := range cs {
					rows[i] = []string{c.ID, c.Status, c.ThumbprintSHA1, timeCell(c.ActiveFrom), timeCell(c.NotAfter)}
				}
				return p.table([]string{"ID", "STATUS", "THUMBPRINT", "ACTIVE FROM", "EXPIRES"}, rows)
			})
		},
	}
}

// writeOutput writes PEM to --output-file (atomically) or to stdout.
func (a *app) writeOutput(path, pem string) error {
	if path == "" || path == "-" {
		_, err := fmt.Fprint(a.sys.Out, pem)
		return err
	}
	if err := atomicfile.WriteFile(path, []byte(pem), 0o644); err != nil {
		return err
	}
	return a.printer().line("wrote " + path)
}

func newCADownloadCmd(a *app) *cobra.Command {
	var out, id string
	cmd := &cobra.Command{
		Use:   "download [--certificate-id ID] [--output-file F]",
		Short: "Download a CA certificate (PEM; the active one by default)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			cs, err := s.c.ListCACertificates(cmd.Context(), s.tenant)
			if err != nil {
				return err
			}
			for _, c := range cs {
				if (id == "" && c.Status == "Active") || c.ID == id {
					return a.writeOutput(out, c.Certificate)
				}
			}
			if id == "" {
				return fmt.Errorf("the tenant has no active CA certificate")
			}
			return fmt.Errorf("CA certificate %q not found", id)
		},
	}
	cmd.Flags().StringVar(&id, "certificate-id", "", "which CA certificate (default: the active one)")
	cmd.Flags().StringVar(&out, "output-file", "", "write to this file instead of standard output")
	return cmd
}

func newCAChainCmd(a *app) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "download-chain [--output-file F]",
		Short: "Download the PEM bundle that verifies the tenant's device certificates (current and next CA, and the root)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			pem, err := s.c.CACertificateChain(cmd.Context(), s.tenant)
			if err != nil {
				return err
			}
			return a.writeOutput(out, pem)
		},
	}
	cmd.Flags().StringVar(&out, "output-file", "", "write to this file instead of standard output")
	return cmd
}

func newCAProofCmd(a *app) *cobra.Command {
	var out, id, code string
	cmd := &cobra.Command{
		Use:   "download-proof --verification-code CODE [--certificate-id ID] [--output-file F]",
		Short: "Download a proof-of-possession certificate for registering the CA with another cloud",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if code == "" {
				return usagef(cmd, "--verification-code is required")
			}
			s, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			pem, err := s.c.ProofOfPossession(cmd.Context(), s.tenant, id, code)
			if err != nil {
				return err
			}
			return a.writeOutput(out, pem)
		},
	}
	cmd.Flags().StringVar(&code, "verification-code", "", "the code the other cloud gave you")
	cmd.Flags().StringVar(&id, "certificate-id", "", "which CA certificate signs (default: the active one)")
	cmd.Flags().StringVar(&out, "output-file", "", "write to this file instead of standard output")
	return cmd
}
