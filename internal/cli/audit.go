package cli

import (
	"context"
	"errors"

	"github.com/spf13/cobra"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/client"
)

func newAuditCmd(a *app) *cobra.Command {
	return group("audit", "Read the audit log", newAuditListCmd(a))
}

func newAuditListCmd(a *app) *cobra.Command {
	var (
		o            client.AuditListOptions
		since, until string
		service      bool
		maxEntries   int
	)
	cmd := &cobra.Command{
		Use:   "list [--actor USER] [--action ACTION] [--resource-type TYPE] [--resource-id ID] [--result success|failure] [--since TIME] [--until TIME] [--service] [--max N]",
		Short: "List audit log entries, newest first",
		Long: `list prints the tenant's audit log, newest first: every write, who made it, when, and
whether it succeeded. --service lists the service-level log instead (service administrators
only).

--since and --until take an RFC 3339 time (2026-01-02T15:04:05Z), a date (2026-01-02), or a
duration before now (24h, 7d).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			var err error
			if since != "" {
				if o.Since, err = parseTime(since, a.now()); err != nil {
					return usagef(cmd, "--since: %v", err)
				}
			}
			if until != "" {
				if o.Until, err = parseTime(until, a.now()); err != nil {
					return usagef(cmd, "--until: %v", err)
				}
			}
			if maxEntries < 0 {
				return usagef(cmd, "--max must be 0 (no limit) or more")
			}
			var list func(context.Context, client.AuditListOptions) (v1.List[v1.AuditEntry], error)
			if service {
				c, err := a.client()
				if err != nil {
					return err
				}
				list = c.ListServiceAudit
			} else {
				s, err := a.session(ctx)
				if err != nil {
					return err
				}
				list = func(ctx context.Context, o client.AuditListOptions) (v1.List[v1.AuditEntry], error) {
					return s.c.ListAudit(ctx, s.tenant, o)
				}
			}
			es, err := auditEntries(ctx, list, o, maxEntries)
			if err != nil {
				return err
			}
			p := a.printer()
			return p.print(es, func() error {
				rows := make([][]string, 0, len(es))
				for _, e := range es {
					msg := e.Message
					if e.ErrorCode != "" && msg == "" {
						msg = e.ErrorCode
					}
					rows = append(rows, []string{timeCell(e.Time), first(e.Actor, e.ActorID), e.Action, e.ResourceType, e.ResourceID, e.Result, msg})
				}
				return p.table([]string{"TIME", "ACTOR", "ACTION", "RESOURCE TYPE", "RESOURCE ID", "RESULT", "MESSAGE"}, rows)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Actor, "actor", "", "only entries by this user name")
	f.StringVar(&o.Action, "action", "", "only this action, such as product.create")
	f.StringVar(&o.ResourceType, "resource-type", "", "only this resource type, such as product")
	f.StringVar(&o.ResourceID, "resource-id", "", "only this resource")
	enumFlag(cmd, &o.Result, "result", "", "", "only successes or only failures", "success", "failure")
	f.StringVar(&since, "since", "", "only entries at or after this time")
	f.StringVar(&until, "until", "", "only entries before this time")
	f.BoolVar(&service, "service", false, "list the service-level audit log (service administrators only)")
	f.IntVar(&maxEntries, "max", 100, "list at most N entries; 0 lists all")
	return cmd
}

// auditEntries follows pages until it has max entries (0: all) or the log ends.
func auditEntries(ctx context.Context, list func(context.Context, client.AuditListOptions) (v1.List[v1.AuditEntry], error), o client.AuditListOptions, max int) ([]v1.AuditEntry, error) {
	es := []v1.AuditEntry{}
	seen := map[string]bool{}
	for {
		o.MaxPageSize = 1000
		if max > 0 {
			o.MaxPageSize = min(max-len(es), 1000)
		}
		l, err := list(ctx, o)
		if err != nil {
			return nil, err
		}
		es = append(es, l.Items...)
		if max > 0 && len(es) >= max {
			return es[:max], nil
		}
		if l.NextPageToken == "" {
			return es, nil
		}
		if seen[l.NextPageToken] {
			return nil, errors.New("server repeated a page token")
		}
		seen[l.NextPageToken] = true
		o.PageToken = l.NextPageToken
	}
}
