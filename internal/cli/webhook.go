package cli

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/client"
	"github.com/rampart-iot/rampart/internal/webhook"
)

func newWebhookCmd(a *app) *cobra.Command {
	return group("webhook", "Manage the tenant's webhooks: signed HTTPS notifications of new error-report buckets and rollout state changes",
		newWebhookCreateCmd(a), newWebhookListCmd(a), newWebhookShowCmd(a), newWebhookDeleteCmd(a), newWebhookDeliveriesCmd(a), newWebhookRetryCmd(a),
		newWebhookRedeliverCmd(a), newWebhookPingCmd(a), newWebhookRotateSecretCmd(a), newWebhookEnableCmd(a))
}

func newWebhookCreateCmd(a *app) *cobra.Command {
	var url, events string
	cmd := &cobra.Command{
		Use:   "create --url URL --events TYPE[,TYPE]",
		Short: "Register a webhook; its signing secret is shown once",
		Long: `create registers an https URL that the service posts events to, signed with a secret it
prints once (the service never shows it again).

Event types: ` + strings.Join(webhook.Events, ", ") + `.

Receivers check the Rampart-Webhook-Signature header: see docs/WEBHOOKS.md.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if url == "" {
				return &usageError{cmd: cmd, msg: "--url is required"}
			}
			list, err := webhook.ParseEvents(events)
			if err != nil {
				return &usageError{cmd: cmd, msg: "--" + err.Error()}
			}
			s, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			w, err := s.c.CreateWebhook(cmd.Context(), s.tenant, v1.WebhookCreate{URL: url, Events: list})
			if err != nil {
				return err
			}
			p := a.printer()
			return p.print(w, func() error {
				if err := p.fields(webhookFields(w)); err != nil {
					return err
				}
				_, err := fmt.Fprintln(a.sys.Err, "This is the only time the secret is shown; store it where the receiver can read it.")
				return err
			})
		},
	}
	cmd.Flags().StringVar(&url, "url", "", "the https URL to post events to")
	cmd.Flags().StringVar(&events, "events", "", "comma-separated event types: "+strings.Join(webhook.Events, ", "))
	return cmd
}

func webhookFields(w *v1.Webhook) [][2]string {
	kv := [][2]string{{"ID", w.ID}, {"URL", w.URL}, {"Events", strings.Join(w.Events, ", ")},
		{"Created by", w.CreatedBy}, {"Created", timeCell(w.CreatedAt)}}
	state := w.State
	if w.DisabledAt != nil {
		state += " since " + timeCell(*w.DisabledAt) + ": " + w.DisabledReason
	}
	kv = append(kv, [2]string{"State", state})
	if w.FailingSince != nil {
		kv = append(kv, [2]string{"Failing", fmt.Sprintf("%d deliveries in a row failed, since %s", w.FailedDeliveries, timeCell(*w.FailingSince))})
	}
	if w.PreviousSecretUntil != nil {
		kv = append(kv, [2]string{"Previous secret", "signs deliveries too until " + timeCell(*w.PreviousSecretUntil)})
	}
	if w.Secret != "" {
		kv = append(kv, [2]string{"Secret", w.Secret})
	}
	return kv
}

func newWebhookListCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the tenant's webhooks",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			ws, err := s.c.AllWebhooks(cmd.Context(), s.tenant, client.ListOptions{})
			if err != nil {
				return err
			}
			p := a.printer()
			return p.print(ws, func() error {
				rows := make([][]string, len(ws))
				for i, w := range ws {
					rows[i] = []string{w.ID, w.URL, strings.Join(w.Events, ","), w.State, timeCell(w.CreatedAt)}
				}
				return p.table([]string{"ID", "URL", "EVENTS", "STATE", "CREATED"}, rows)
			})
		},
	}
}

func newWebhookShowCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "Show a webhook (never its secret)",
		Args:  args(1, 1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			w, err := s.c.GetWebhook(cmd.Context(), s.tenant, args[0])
			if err != nil {
				return err
			}
			p := a.printer()
			return p.print(w, func() error { return p.fields(webhookFields(w)) })
		},
	}
}

func newWebhookDeleteCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "delete ID",
		Short: "Delete a webhook and its deliveries, pending ones too",
		Args:  args(1, 1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			if err := s.c.DeleteWebhook(cmd.Context(), s.tenant, args[0]); err != nil {
				return err
			}
			return a.printer().line("Deleted webhook " + args[0] + ".")
		},
	}
}

func newWebhookRetryCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "retry ID DELIVERY_ID",
		Short: "Send a failed delivery again (after the receiver is fixed), with the same delivery ID",
		Args:  args(2, 2, "ID DELIVERY_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			d, err := s.c.RetryWebhookDelivery(cmd.Context(), s.tenant, args[0], args[1])
			if err != nil {
				return err
			}
			p := a.printer()
			return p.print(d, func() error {
				return p.line("Delivery " + d.ID + " (" + d.EventType + ") is pending again; it is sent within seconds.")
			})
		},
	}
}

func newWebhookRedeliverCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "redeliver ID DELIVERY_ID",
		Short: "Send a delivered or failed delivery's event again: a new delivery, the same event ID",
		Long: `redeliver queues the event of a delivered or failed delivery for the webhook again, as a new
delivery (a new Rampart-Webhook-Id) with the same body, so the same event ID, which receivers
de-duplicate by. A pending delivery is refused, and so is a disabled webhook.`,
		Args: args(2, 2, "ID DELIVERY_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			d, err := s.c.RedeliverWebhookDelivery(cmd.Context(), s.tenant, args[0], args[1])
			if err != nil {
				return err
			}
			p := a.printer()
			return p.print(d, func() error {
				return p.line("Queued delivery " + d.ID + " of event " + d.EventID + " (" + d.EventType + "); it is sent within seconds.")
			})
		},
	}
}

func newWebhookPingCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "ping ID",
		Short: "Queue a ping event for the webhook, to test its receiver",
		Long: `ping queues a "ping" event for the webhook, whatever events it hears. It is signed and sent
like any event; follow it with 'rampart webhook deliveries ID'.`,
		Args: args(1, 1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			d, err := s.c.PingWebhook(cmd.Context(), s.tenant, args[0])
			if err != nil {
				return err
			}
			p := a.printer()
			return p.print(d, func() error {
				return p.line("Queued ping delivery " + d.ID + "; it is sent within seconds (rampart webhook deliveries " + args[0] + ").")
			})
		},
	}
}

func newWebhookRotateSecretCmd(a *app) *cobra.Command {
	var grace time.Duration
	cmd := &cobra.Command{
		Use:   "rotate-secret ID [--grace 24h]",
		Short: "Give the webhook a new secret, shown once; the old one signs too for a grace period",
		Long: `rotate-secret makes a new signing secret and prints it once. For the grace period (default 24h,
0 to 168h) every delivery's Rampart-Webhook-Signature carries two v1= signatures, by the new
secret and by the old one, so the receiver keeps verifying while it is given the new secret;
then the old one is dropped. A secret replaced earlier and still in its grace period is dropped
at once.`,
		Args: args(1, 1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if grace < 0 || grace > 7*24*time.Hour || grace%time.Second != 0 {
				return &usageError{cmd: cmd, msg: fmt.Sprintf("--grace %s is not whole seconds from 0 to 168h", grace)}
			}
			s, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			sec := int64(grace / time.Second)
			w, err := s.c.RotateWebhookSecret(cmd.Context(), s.tenant, args[0], v1.WebhookRotateSecret{GraceSeconds: &sec})
			if err != nil {
				return err
			}
			p := a.printer()
			return p.print(w, func() error {
				if err := p.fields(webhookFields(w)); err != nil {
					return err
				}
				_, err := fmt.Fprintln(a.sys.Err, "This is the only time the new secret is shown; give it to the receiver before the grace period ends.")
				return err
			})
		},
	}
	cmd.Flags().DurationVar(&grace, "grace", 24*time.Hour, "how long the old secret keeps signing deliveries (0 to 168h)")
	return cmd
}

func newWebhookEnableCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "enable ID",
		Short: "Enable a webhook the service disabled because its deliveries kept failing",
		Long: `enable turns a disabled webhook back on and starts its count of failed deliveries afresh.
Deliveries that failed while it was disabled stay failed: send them with 'rampart webhook retry'
or 'rampart webhook redeliver'.`,
		Args: args(1, 1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			w, err := s.c.EnableWebhook(cmd.Context(), s.tenant, args[0])
			if err != nil {
				return err
			}
			p := a.printer()
			return p.print(w, func() error { return p.fields(webhookFields(w)) })
		},
	}
}

func newWebhookDeliveriesCmd(a *app) *cobra.Command {
	var max int
	cmd := &cobra.Command{
		Use:   "deliveries ID [--max N]",
		Short: "List a webhook's recent deliveries, newest first, with their state and last attempt",
		Args:  args(1, 1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if max < 1 || max > 1000 {
				return &usageError{cmd: cmd, msg: fmt.Sprintf("--max %d is outside 1 to 1000", max)}
			}
			s, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			l, err := s.c.ListWebhookDeliveries(cmd.Context(), s.tenant, args[0], client.ListOptions{MaxPageSize: max})
			if err != nil {
				return err
			}
			p := a.printer()
			return p.print(l.Items, func() error {
				rows := make([][]string, len(l.Items))
				for i, d := range l.Items {
					status, next := "", ""
					if d.LastStatus != 0 {
						status = strconv.Itoa(d.LastStatus)
					}
					if d.NextAttemptAt != nil {
						next = timeCell(*d.NextAttemptAt)
					}
					rows[i] = []string{d.ID, d.EventType, d.State, strconv.Itoa(d.Attempts), status, next, timeCell(d.CreatedAt), d.LastError}
				}
				return p.table([]string{"ID", "EVENT", "STATE", "ATTEMPTS", "STATUS", "NEXT ATTEMPT", "CREATED", "LAST ERROR"}, rows)
			})
		},
	}
	cmd.Flags().IntVar(&max, "max", 20, "at most this many deliveries (1 to 1000)")
	return cmd
}
