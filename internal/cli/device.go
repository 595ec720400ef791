package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/client"
)

func newDeviceCmd(a *app) *cobra.Command {
	return group("device", "Claim, list, show and assign devices",
		newDeviceClaimCmd(a),
		newDeviceListCmd(a),
		newDeviceShowCmd(a),
		newDeviceAssignCmd(a),
		newDeviceShowCountCmd(a),
		newDeviceDisableCmd(a, true),
		newDeviceDisableCmd(a, false),
		newDeviceAttestationsCmd(a),
	)
}

func newDeviceClaimCmd(a *app) *cobra.Command {
	var file, bulk, product, group string
	cmd := &cobra.Command{
		Use:   "claim (--enrollment FILE | --bulk FILE) [--product PRODUCT --device-group GROUP]",
		Short: "Claim devices into the tenant from their enrollment records",
		Long: `claim binds devices to the tenant, optionally straight into a device group. A device
claimed by one tenant cannot be claimed by another.

--enrollment FILE claims the one device whose enrollment record FILE holds. --bulk FILE claims
many: FILE is a JSON array of records or holds one record per line (JSONL). Records go to the
server 1000 at a time; the result of each is printed, and claim fails if any record failed.
FILE may be - for stdin.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (file == "") == (bulk == "") {
				return usagef(cmd, "pass either --enrollment FILE or --bulk FILE")
			}
			if product != "" && group == "" {
				return usagef(cmd, "--product needs --device-group")
			}
			if a.flags.token == "-" && (file == "-" || bulk == "-") {
				return usagef(cmd, "the token and the enrollment records cannot both come from stdin")
			}
			ctx := cmd.Context()
			var recs []record
			var err error
			if bulk != "" {
				recs, err = readEnrollmentFile(bulk, a.sys.In)
			} else {
				var raw json.RawMessage
				raw, err = readSingleEnrollment(file, a.sys.In)
				recs = []record{{raw: raw, line: 1}}
			}
			if err != nil {
				return err
			}
			s, err := a.session(ctx)
			if err != nil {
				return err
			}
			var groupID string
			if group != "" {
				_, g, err := resolveProductAndGroup(ctx, s.c, s.tenant, product, group)
				if err != nil {
					return err
				}
				groupID = g.ID
			}
			if bulk == "" {
				d, already, err := s.c.ClaimDevice(ctx, s.tenant, v1.DeviceClaim{Enrollment: recs[0].raw, DeviceGroupID: groupID})
				if err != nil {
					return err
				}
				if already && !a.printer().json() {
					fmt.Fprintf(a.sys.Err, "Device %s was already claimed by this tenant.\n", d.ID)
				}
				return a.showDevice(ctx, s, d)
			}
			return a.bulkClaim(ctx, s, recs, groupID)
		},
	}
	cmd.Flags().StringVar(&file, "enrollment", "", "file holding one enrollment record, or - for stdin")
	cmd.Flags().StringVar(&bulk, "bulk", "", "file of enrollment records (JSON array or JSONL), or - for stdin")
	cmd.Flags().StringVar(&product, "product", "", "product name or ID of the device group")
	cmd.Flags().StringVar(&group, "device-group", "", "device group name or ID to claim the devices into")
	return cmd
}

// bulkClaim claims recs in requests of at most maxBulkClaim records and prints every record's
// result, including those of earlier requests if a later one fails.
func (a *app) bulkClaim(ctx context.Context, s *session, recs []record, groupID string) error {
	total := v1.DeviceBulkClaimResult{Results: []v1.ClaimResult{}}
	var reqErr error
	for off := 0; off < len(recs); off += maxBulkClaim {
		chunk := recs[off:min(off+maxBulkClaim, len(recs))]
		req := v1.DeviceBulkClaim{DeviceGroupID: groupID}
		for _, r := range chunk {
			req.Enrollments = append(req.Enrollments, r.raw)
		}
		res, err := s.c.BulkClaimDevices(ctx, s.tenant, req)
		if err != nil {
			reqErr = fmt.Errorf("claiming records %d to %d: %w", off+1, off+len(chunk), err)
			break
		}
		for _, r := range res.Results {
			r.Index += off
			total.Results = append(total.Results, r)
		}
		total.Claimed += res.Claimed
		total.Already += res.Already
		total.Failed += res.Failed
	}
	p := a.printer()
	err := p.print(total, func() error {
		rows := make([][]string, 0, len(total.Results))
		for _, r := range total.Results {
			line := ""
			if r.Index >= 0 && r.Index < len(recs) {
				line = strconv.Itoa(recs[r.Index].line)
			}
			msg := ""
			if r.Error != nil {
				msg = (&client.APIError{Body: *r.Error}).Error()
			}
			rows = append(rows, []string{line, r.DeviceID, r.Result, msg})
		}
		if err := p.table([]string{"LINE", "DEVICE ID", "RESULT", "ERROR"}, rows); err != nil {
			return err
		}
		return p.line(fmt.Sprintf("Claimed %d, already claimed %d, failed %d.", total.Claimed, total.Already, total.Failed))
	})
	switch {
	case err != nil:
		return err
	case reqErr != nil:
		return reqErr
	case total.Failed > 0:
		return fmt.Errorf("%d of %d enrollment records failed", total.Failed, len(recs))
	}
	return nil
}

func newDeviceListCmd(a *app) *cobra.Command {
	var f deviceFilterFlags
	cmd := &cobra.Command{
		Use:   "list [--product PRODUCT] [--device-group GROUP] [--unassigned]",
		Short: "List the tenant's devices",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			s, err := a.session(ctx)
			if err != nil {
				return err
			}
			filter, err := f.resolve(ctx, s)
			if err != nil {
				return err
			}
			ds, err := s.c.AllDevices(ctx, s.tenant, client.DeviceListOptions{DeviceFilter: filter})
			if err != nil {
				return err
			}
			p := a.printer()
			return p.print(ds, func() error {
				n, err := loadNames(ctx, s.c, s.tenant)
				if err != nil {
					return err
				}
				rows := make([][]string, 0, len(ds))
				for _, d := range ds {
					rows = append(rows, []string{d.ID, n.product(d.ProductID), n.group(d.DeviceGroupID), d.RootOfTrust, timeCell(d.ClaimedAt)})
				}
				return p.table([]string{"ID", "PRODUCT", "DEVICE GROUP", "ROOT OF TRUST", "CLAIMED"}, rows)
			})
		},
	}
	f.addFlags(cmd)
	return cmd
}

func newDeviceShowCountCmd(a *app) *cobra.Command {
	var f deviceFilterFlags
	cmd := &cobra.Command{
		Use:   "show-count [--product PRODUCT] [--device-group GROUP] [--unassigned]",
		Short: "Count the tenant's devices",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			s, err := a.session(ctx)
			if err != nil {
				return err
			}
			filter, err := f.resolve(ctx, s)
			if err != nil {
				return err
			}
			n, err := s.c.CountDevices(ctx, s.tenant, filter)
			if err != nil {
				return err
			}
			p := a.printer()
			return p.print(n, func() error {
				return p.fields([][2]string{{"Count", strconv.Itoa(n.Count)}})
			})
		},
	}
	f.addFlags(cmd)
	return cmd
}

// deviceFilterFlags are the flags that select devices.
type deviceFilterFlags struct {
	product, group string
	unassigned     bool
}

func (f *deviceFilterFlags) addFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.product, "product", "", "only devices of this product (name or ID)")
	cmd.Flags().StringVar(&f.group, "device-group", "", "only devices in this device group (name or ID)")
	cmd.Flags().BoolVar(&f.unassigned, "unassigned", false, "only devices in no device group")
}

func (f *deviceFilterFlags) resolve(ctx context.Context, s *session) (client.DeviceFilter, error) {
	filter := client.DeviceFilter{Unassigned: f.unassigned}
	switch {
	case f.group != "":
		p, g, err := resolveProductAndGroup(ctx, s.c, s.tenant, f.product, f.group)
		if err != nil {
			return filter, err
		}
		filter.DeviceGroupID = g.ID
		if p != nil {
			filter.ProductID = p.ID
		}
	case f.product != "":
		p, err := resolveProduct(ctx, s.c, s.tenant, f.product)
		if err != nil {
			return filter, err
		}
		filter.ProductID = p.ID
	}
	return filter, nil
}

func newDeviceShowCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "Show a device",
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
			d, err := s.c.GetDevice(cmd.Context(), s.tenant, id)
			if err != nil {
				return err
			}
			return a.showDevice(cmd.Context(), s, d)
		},
	}
}

func newDeviceAssignCmd(a *app) *cobra.Command {
	var product, group string
	cmd := &cobra.Command{
		Use:   "assign ID --device-group GROUP [--product PRODUCT]",
		Short: "Move a device to a device group",
		Long: `assign moves a device to a device group of the tenant. Without --product, a group name is
looked for first in the device's current product, then across the tenant.`,
		Args: args(1, 1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := requireFlags(cmd, "device-group"); err != nil {
				return err
			}
			ctx := cmd.Context()
			id, err := deviceID(args[0])
			if err != nil {
				return err
			}
			s, err := a.session(ctx)
			if err != nil {
				return err
			}
			var g *v1.DeviceGroup
			if product == "" {
				d, err := s.c.GetDevice(ctx, s.tenant, id)
				if err != nil {
					return err
				}
				if d.ProductID != "" {
					g, err = resolveGroup(ctx, s.c, s.tenant, group, &v1.Product{ID: d.ProductID, Name: d.ProductID})
					var nf *notFoundError
					if err != nil && !errors.As(err, &nf) {
						return err
					}
				}
			}
			if g == nil {
				if _, g, err = resolveProductAndGroup(ctx, s.c, s.tenant, product, group); err != nil {
					return err
				}
			}
			d, err := s.c.UpdateDevice(ctx, s.tenant, id, v1.DeviceUpdate{DeviceGroupID: &g.ID})
			if err != nil {
				return err
			}
			return a.showDevice(ctx, s, d)
		},
	}
	cmd.Flags().StringVar(&group, "device-group", "", "device group name or ID (required)")
	cmd.Flags().StringVar(&product, "product", "", "product name or ID of the device group")
	return cmd
}

// deviceID checks a device ID and puts it in lower case.
func deviceID(s string) (string, error) {
	id := strings.ToLower(strings.TrimSpace(s))
	if !isDeviceID(id) {
		return "", fmt.Errorf("invalid device ID %q: want 64 hexadecimal characters", s)
	}
	return id, nil
}

func (a *app) showDevice(ctx context.Context, s *session, d *v1.Device) error {
	p := a.printer()
	return p.print(d, func() error {
		product, group := d.ProductID, d.DeviceGroupID
		if d.ProductID != "" {
			if pr, err := s.c.GetProduct(ctx, s.tenant, d.ProductID); err == nil {
				product = pr.Name + " (" + pr.ID + ")"
			}
		}
		if d.DeviceGroupID != "" {
			if g, err := s.c.GetDeviceGroup(ctx, s.tenant, d.DeviceGroupID); err == nil {
				group = g.Name + " (" + g.ID + ")"
			}
		}
		rows := [][2]string{
			{"ID", d.ID}, {"Product", product}, {"Device group", group},
			{"Root of trust", d.RootOfTrust}, {"Agent version (unverified)", d.AgentVersion},
			{"EK certificate", boolCell(d.EKCertificate)},
			{"Disabled", boolCell(d.Disabled)}, {"AK activated", boolCell(d.AKActivated)},
			{"Claimed", timeCell(d.ClaimedAt)}, {"Claimed by", d.ClaimedBy},
			{"Updated", timeCell(d.UpdatedAt)},
		}
		if la := d.LastAttestation; la != nil {
			result := la.Result
			if la.Reason != "" {
				result += " (" + la.Reason + ")"
			}
			rows = append(rows, [2]string{"Last attestation", timeCell(la.Time) + " " + result})
			if la.Message != "" {
				rows = append(rows, [2]string{"Attestation message", la.Message})
			}
			if !la.CertificateExpires.IsZero() {
				rows = append(rows, [2]string{"Certificate expires", timeCell(la.CertificateExpires)})
			}
		} else {
			rows = append(rows, [2]string{"Last attestation", "never"})
		}
		if st := d.Status; st != nil {
			rows = append(rows, [2]string{"Last check-in", timeCell(st.CheckedInAt)})
			for _, im := range st.Report.Images {
				v := im.Kind + " " + im.Version + " " + im.State + " (component " + im.ComponentID + ", image " + im.ImageID + ")"
				if im.LastError != "" {
					v += ": " + im.LastError
				}
				rows = append(rows, [2]string{"Image", v})
			}
			if o := st.Report.OS; o != nil {
				v := "active " + o.Active + ", booted " + o.Booted + ", committed " + o.CommittedVersion +
					", anti-rollback counter " + strconv.FormatUint(o.SecurityCounter, 10)
				if o.Trial != "" {
					v += ", trial " + o.Trial
				}
				rows = append(rows, [2]string{"OS slots", v})
			}
			if u := st.Report.Update; u != nil {
				v := u.State + " " + u.Version
				if u.Reason != "" {
					v += " (" + u.Phase + ": " + u.Reason + ")"
				}
				rows = append(rows, [2]string{"Latest update", v})
			}
			for _, df := range st.Report.Deferred {
				rows = append(rows, [2]string{"Deferred update", df.UpdateType + " until " + timeCell(df.Until) + " (seen " + timeCell(df.FirstSeen) + ")"})
			}
		}
		return p.fields(rows)
	})
}
