package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/client"
	"github.com/rampart-iot/rampart/internal/atomicfile"
)

func newImageCmd(a *app) *cobra.Command {
	return group("image", "Upload, list, show and download the tenant's image packages",
		newImageAddCmd(a), newImageListCmd(a), newImageShowCmd(a), newImageDownloadCmd(a))
}

func newDeploymentCmd(a *app) *cobra.Command {
	return group("deployment", "Deploy images to device groups and see deployment history",
		newDeploymentCreateCmd(a), newDeploymentListCmd(a), newDeploymentShowCmd(a),
		newDeploymentStatusCmd(a), newDeploymentPauseCmd(a), newDeploymentResumeCmd(a), newDeploymentAbortCmd(a))
}

// progress draws a one-line progress bar on a terminal, and nothing elsewhere.
type progress struct {
	w     io.Writer
	verb  string
	total int64
	last  time.Time
	on    bool
}

func (a *app) progress(verb string, total int64) *progress {
	f, ok := a.sys.Err.(*os.File)
	on := false
	if ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			on = true
		}
	}
	return &progress{w: a.sys.Err, verb: verb, total: total, on: on}
}

func (p *progress) update(n int64) {
	if !p.on || (time.Since(p.last) < 100*time.Millisecond && n != p.total) {
		return
	}
	p.last = time.Now()
	const width = 30
	if p.total > 0 {
		done := int(int64(width) * n / p.total)
		fmt.Fprintf(p.w, "\r%s [%s%s] %s / %s", p.verb, strings.Repeat("=", done), strings.Repeat(" ", width-done), mib(n), mib(p.total))
	} else {
		fmt.Fprintf(p.w, "\r%s %s", p.verb, mib(n))
	}
}

func (p *progress) done() {
	if p.on {
		fmt.Fprintln(p.w)
	}
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func newImageAddCmd(a *app) *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "add --image-path F",
		Short: "Upload an image package; the service validates it and countersigns it with the tenant's key",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "image-path"); err != nil {
				return err
			}
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			st, err := f.Stat()
			if err != nil {
				return err
			}
			s, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			bar := a.progress("uploading", st.Size())
			img, err := s.c.AddImage(cmd.Context(), s.tenant, f, st.Size(), bar.update)
			bar.done()
			if err != nil {
				return err
			}
			return a.showImage(img)
		},
	}
	cmd.Flags().StringVar(&path, "image-path", "", "the image package `file` to upload")
	return cmd
}

func (a *app) showImage(img *v1.Image) error {
	p := a.printer()
	return p.print(img, func() error {
		return p.fields([][2]string{
			{"ID", img.ID}, {"Component ID", img.ComponentID}, {"Kind", img.Kind}, {"Name", img.Name},
			{"Version", img.Version}, {"Development-signed upload", boolCell(img.Development)},
			{"Payload SHA-256", img.PayloadSHA256}, {"Package SHA-256", img.PackageSHA256},
			{"Package size", fmt.Sprint(img.PackageSize)}, {"Uploaded", timeCell(img.CreatedAt)},
		})
	})
}

func newImageListCmd(a *app) *cobra.Command {
	var component, kind string
	cmd := &cobra.Command{
		Use:   "list [--component-id ID] [--kind application|os|board-config]",
		Short: "List the tenant's images",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			imgs, err := s.c.AllImages(cmd.Context(), s.tenant, client.ImageListOptions{ComponentID: component, Kind: kind})
			if err != nil {
				return err
			}
			p := a.printer()
			return p.print(imgs, func() error {
				rows := make([][]string, len(imgs))
				for i, img := range imgs {
					rows[i] = []string{img.ID, img.ComponentID, img.Kind, img.Name, img.Version, timeCell(img.CreatedAt)}
				}
				return p.table([]string{"ID", "COMPONENT ID", "KIND", "NAME", "VERSION", "UPLOADED"}, rows)
			})
		},
	}
	cmd.Flags().StringVar(&component, "component-id", "", "only images of this component")
	cmd.Flags().StringVar(&kind, "kind", "", "only images of this kind")
	return cmd
}

func newImageShowCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "Show an image",
		Args:  args(1, 1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			img, err := s.c.GetImage(cmd.Context(), s.tenant, args[0])
			if err != nil {
				return err
			}
			return a.showImage(img)
		},
	}
}

func newImageDownloadCmd(a *app) *cobra.Command {
	var id, out string
	cmd := &cobra.Command{
		Use:   "download --image-id ID --output-file F",
		Short: "Download an image's countersigned package",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "image-id", "output-file"); err != nil {
				return err
			}
			s, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			bar := a.progress("downloading", -1)
			err = atomicfile.WriteWith(out, 0o644, func(w io.Writer) error {
				_, err := s.c.DownloadImage(cmd.Context(), s.tenant, id, w, func(got, total int64) { bar.total = total; bar.update(got) })
				return err
			})
			bar.done()
			if err != nil {
				return err
			}
			return a.printer().line("wrote " + out)
		},
	}
	cmd.Flags().StringVar(&id, "image-id", "", "the image to download")
	cmd.Flags().StringVar(&out, "output-file", "", "where to write the package")
	return cmd
}

func newDeploymentCreateCmd(a *app) *cobra.Command {
	var product, group, policyFile string
	var images []string
	cmd := &cobra.Command{
		Use:   "create --device-group G [--product P] --images ID [ID...] [--rollout-policy FILE]",
		Short: "Make a new deployment the device group's current one",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlags(cmd, "device-group", "images"); err != nil {
				return err
			}
			s, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			_, g, err := resolveProductAndGroup(cmd.Context(), s.c, s.tenant, product, group)
			if err != nil {
				return err
			}
			req := v1.DeploymentCreate{ImageIDs: images}
			if policyFile != "" {
				if req.Rollout, err = readRolloutPolicy(policyFile); err != nil {
					return err
				}
			}
			d, err := s.c.CreateDeployment(cmd.Context(), s.tenant, g.ID, req)
			if err != nil {
				return err
			}
			return a.showDeployment(d)
		},
	}
	cmd.Flags().StringVar(&product, "product", "", "product name or ID of the device group")
	cmd.Flags().StringVar(&group, "device-group", "", "device group name or ID")
	cmd.Flags().StringSliceVar(&images, "images", nil, "image IDs (repeat the flag or separate with commas)")
	cmd.Flags().StringVar(&policyFile, "rollout-policy", "", "release in health-gated batches: a JSON rollout policy file (docs/ROLLOUTS.md)")
	return cmd
}

func (a *app) showDeployment(d *v1.Deployment) error {
	p := a.printer()
	return p.print(d, func() error {
		rows := [][2]string{{"ID", d.ID}, {"Device group", d.DeviceGroupID}, {"Images", strings.Join(d.ImageIDs, ", ")},
			{"Current", boolCell(d.Current)}, {"Created", timeCell(d.CreatedAt)}, {"Created by", d.CreatedBy}}
		if h := d.Health; h != nil {
			v := "no device-hours yet"
			if h.CrashFreeHoursPercent != nil {
				v = fmt.Sprintf("%.1f%% (%d of %d device-hours crashed; %d devices)", *h.CrashFreeHoursPercent, h.CrashedHours, h.DeviceHours, h.Devices)
			}
			rows = append(rows, [2]string{"Crash-free hours", v})
		}
		return p.fields(rows)
	})
}

func newDeploymentListCmd(a *app) *cobra.Command {
	var product, group string
	var max int
	cmd := &cobra.Command{
		Use:   "list [--device-group G [--product P]]",
		Short: "List deployments, newest first",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			gid := ""
			if group != "" {
				_, g, err := resolveProductAndGroup(cmd.Context(), s.c, s.tenant, product, group)
				if err != nil {
					return err
				}
				gid = g.ID
			}
			l, err := s.c.ListDeployments(cmd.Context(), s.tenant, gid, client.ListOptions{MaxPageSize: max})
			if err != nil {
				return err
			}
			p := a.printer()
			return p.print(l.Items, func() error {
				rows := make([][]string, len(l.Items))
				for i, d := range l.Items {
					rows[i] = []string{d.ID, d.DeviceGroupID, fmt.Sprint(len(d.ImageIDs)), boolCell(d.Current), timeCell(d.CreatedAt)}
				}
				return p.table([]string{"ID", "DEVICE GROUP", "IMAGES", "CURRENT", "CREATED"}, rows)
			})
		},
	}
	cmd.Flags().StringVar(&product, "product", "", "product name or ID of the device group")
	cmd.Flags().StringVar(&group, "device-group", "", "only this device group's deployments")
	cmd.Flags().IntVar(&max, "max", 100, "how many to show (1 to 1000)")
	return cmd
}

func newDeploymentShowCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "Show a deployment",
		Args:  args(1, 1, "ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			d, err := s.c.GetDeployment(cmd.Context(), s.tenant, args[0])
			if err != nil {
				return err
			}
			return a.showDeployment(d)
		},
	}
}
