package cli

import (
	"context"
	"errors"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/client"
	"github.com/rampart-iot/rampart/internal/atomicfile"
)

func newErrorReportCmd(a *app) *cobra.Command {
	return group("error-report", "Read the error reports the tenant's devices uploaded",
		newErrorReportListCmd(a), newErrorReportBucketsCmd(a), newErrorReportDownloadCmd(a))
}

// eventTypes are the error-report event types, for --type.
var eventTypes = []string{v1.EventAppCrash, v1.EventAppExit, v1.EventAppOOM, v1.EventSandboxDenied, v1.EventUpdateFailed,
	v1.EventRollbackPerformed, v1.EventAttestationFailed, v1.EventAgentRestart, v1.EventWatchdogReset}

// reportFilterFlags are the flags that select error reports.
type reportFilterFlags struct {
	devices      deviceFilterFlags
	device, typ  string
	since, until string
}

func (f *reportFilterFlags) addFlags(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.devices.product, "product", "", "only reports from devices of this product (name or ID) when they reported")
	fl.StringVar(&f.devices.group, "device-group", "", "only reports from devices in this device group (name or ID) when they reported")
	fl.StringVar(&f.device, "device-id", "", "only this device's reports")
	fl.StringVar(&f.typ, "type", "", "only this event type: "+strings.Join(eventTypes, ", "))
	fl.StringVar(&f.since, "since", "", "only events at or after this time (RFC 3339, a date, or a duration before now such as 7d)")
	fl.StringVar(&f.until, "until", "", "only events before this time")
}

func (f *reportFilterFlags) resolve(ctx context.Context, cmd *cobra.Command, a *app, s *session) (client.ErrorReportFilter, error) {
	out := client.ErrorReportFilter{Type: f.typ}
	var err error
	if f.since != "" {
		if out.Since, err = parseTime(f.since, a.now()); err != nil {
			return out, usagef(cmd, "--since: %v", err)
		}
	}
	if f.until != "" {
		if out.Until, err = parseTime(f.until, a.now()); err != nil {
			return out, usagef(cmd, "--until: %v", err)
		}
	}
	if f.device != "" {
		if out.DeviceID, err = deviceID(f.device); err != nil {
			return out, usagef(cmd, "--device-id: %v", err)
		}
	}
	df, err := f.devices.resolve(ctx, s)
	if err != nil {
		return out, err
	}
	out.ProductID, out.DeviceGroupID = df.ProductID, df.DeviceGroupID
	if out.DeviceGroupID != "" {
		out.ProductID = "" // the group decides
	}
	return out, nil
}

func exitCell(n *int) string {
	if n == nil {
		return ""
	}
	return strconv.Itoa(*n)
}

func signalCell(n int) string {
	if n == 0 {
		return ""
	}
	return strconv.Itoa(n)
}

func newErrorReportListCmd(a *app) *cobra.Command {
	var (
		f          reportFilterFlags
		maxReports int
	)
	cmd := &cobra.Command{
		Use:   "list [--product P] [--device-group G] [--device-id ID] [--type TYPE] [--since TIME] [--until TIME] [--max N]",
		Short: "List error-report events, newest received first",
		Long: `list prints the events the tenant's devices reported (app crashes and exits, OOM kills,
sandbox denials, failed updates, rollbacks, attestation failures, agent restarts and watchdog
resets), newest received first. Times are the devices' clocks.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if maxReports < 0 {
				return usagef(cmd, "--max must be 0 (no limit) or more")
			}
			s, err := a.session(ctx)
			if err != nil {
				return err
			}
			filter, err := f.resolve(ctx, cmd, a, s)
			if err != nil {
				return err
			}
			rs, err := errorReports(ctx, s, filter, maxReports)
			if err != nil {
				return err
			}
			p := a.printer()
			return p.print(rs, func() error {
				rows := make([][]string, len(rs))
				for i, r := range rs {
					rows[i] = []string{timeCell(r.Time), r.DeviceID, r.Type, r.ComponentID, signalCell(r.Signal), exitCell(r.ExitCode),
						first(r.Reason, r.Phase), r.Message}
				}
				return p.table([]string{"TIME", "DEVICE ID", "TYPE", "COMPONENT ID", "SIGNAL", "EXIT", "REASON", "MESSAGE"}, rows)
			})
		},
	}
	f.addFlags(cmd)
	cmd.Flags().IntVar(&maxReports, "max", 100, "list at most N events; 0 lists all")
	return cmd
}

// errorReports follows pages until it has max reports (0: all) or the list ends.
func errorReports(ctx context.Context, s *session, f client.ErrorReportFilter, max int) ([]v1.ErrorReport, error) {
	out := []v1.ErrorReport{}
	o := client.ErrorReportListOptions{ErrorReportFilter: f}
	seen := map[string]bool{}
	for {
		o.MaxPageSize = 1000
		if max > 0 {
			o.MaxPageSize = min(max-len(out), 1000)
		}
		l, err := s.c.ListErrorReports(ctx, s.tenant, o)
		if err != nil {
			return nil, err
		}
		out = append(out, l.Items...)
		if max > 0 && len(out) >= max {
			return out[:max], nil
		}
		if l.NextPageToken == "" {
			return out, nil
		}
		if seen[l.NextPageToken] {
			return nil, errors.New("server repeated a page token")
		}
		seen[l.NextPageToken] = true
		o.PageToken = l.NextPageToken
	}
}

func newErrorReportBucketsCmd(a *app) *cobra.Command {
	var (
		f     reportFilterFlags
		limit int
	)
	cmd := &cobra.Command{
		Use:   "buckets [--product P] [--device-group G] [--device-id ID] [--type TYPE] [--since TIME] [--until TIME] [--limit N]",
		Short: "Show error-report buckets: events counted by type, component, image, signal and exit code",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if limit < 1 || limit > 1000 {
				return usagef(cmd, "--limit must be from 1 to 1000")
			}
			s, err := a.session(ctx)
			if err != nil {
				return err
			}
			filter, err := f.resolve(ctx, cmd, a, s)
			if err != nil {
				return err
			}
			bs, err := s.c.ErrorBuckets(ctx, s.tenant, filter, limit)
			if err != nil {
				return err
			}
			p := a.printer()
			return p.print(bs, func() error {
				rows := make([][]string, len(bs.Items))
				for i, b := range bs.Items {
					rows[i] = []string{strconv.FormatInt(b.Count, 10), strconv.FormatInt(b.Devices, 10), b.Type, b.ComponentID,
						b.ImageID, signalCell(b.Signal), exitCell(b.ExitCode), timeCell(b.FirstSeen), timeCell(b.LastSeen)}
				}
				if err := p.table([]string{"COUNT", "DEVICES", "TYPE", "COMPONENT ID", "IMAGE ID", "SIGNAL", "EXIT", "FIRST SEEN", "LAST SEEN"}, rows); err != nil {
					return err
				}
				if bs.Truncated {
					if err := p.line("(more buckets than shown: raise --limit or narrow the filters)"); err != nil {
						return err
					}
				}
				if bs.Dropped > 0 {
					return p.line(strconv.FormatInt(bs.Dropped, 10) + " events were dropped on the devices before upload (their queues were full)")
				}
				return nil
			})
		},
	}
	f.addFlags(cmd)
	cmd.Flags().IntVar(&limit, "limit", 100, "show at most N buckets, most events first")
	return cmd
}

func newErrorReportDownloadCmd(a *app) *cobra.Command {
	var (
		f           reportFilterFlags
		out, format string
	)
	cmd := &cobra.Command{
		Use:   "download --output-file F [--format csv|json] [--product P] [--device-group G] [--device-id ID] [--type TYPE] [--since TIME] [--until TIME]",
		Short: "Download the error report as CSV (Azure Sphere's columns) or JSON",
		Long: `download writes one row per device and bucket with Azure Sphere's columns: Device ID, Event
Type, Event Class, Event Count, Description, Start Time, End Time. --format json writes the same
rows as JSON. At most 10000 rows, most events first.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if err := requireFlags(cmd, "output-file"); err != nil {
				return err
			}
			s, err := a.session(ctx)
			if err != nil {
				return err
			}
			filter, err := f.resolve(ctx, cmd, a, s)
			if err != nil {
				return err
			}
			err = atomicfile.WriteWith(out, 0o644, func(w io.Writer) error {
				_, err := s.c.DownloadErrorReports(ctx, s.tenant, filter, format, w)
				return err
			})
			if err != nil {
				return err
			}
			return a.printer().line("wrote " + out)
		},
	}
	f.addFlags(cmd)
	cmd.Flags().StringVar(&out, "output-file", "", "where to write the report")
	enumFlag(cmd, &format, "format", "", "csv", "csv or json", "csv", "json")
	return cmd
}
