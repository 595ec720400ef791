package console

import (
	"errors"
	"math"
	"net/http"
	"net/url"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/authz"
	"github.com/rampart-iot/rampart/internal/manage"
	"github.com/rampart-iot/rampart/internal/problem"
	"github.com/rampart-iot/rampart/internal/store"
)

// rolloutBatchDevices bounds the devices listed under each batch of a rollout's page; the
// counts always cover them all.
const rolloutBatchDevices = 100

type batchRow struct {
	Number    int
	Current   bool
	Devices   int
	Released  int
	Held      int
	Installed int
	Failed    int
	Pending   int // released, not yet installed or failed
	List      []manage.RolloutDevice
	More      int // devices of the batch not listed
}

type rolloutView struct {
	R          v1.Rollout
	Batches    []batchRow
	Wait       string
	Active     bool // running or paused
	NeedNow    int  // installed devices the current batch needs to advance
	HaveNow    int
	Threshold  float64
	Finished   int     // released devices that installed or failed
	FailedPct  float64 // of the finished
	NewRate    float64 // crashes per device-hour, new release
	PrevRate   float64
	CanControl bool
}

type deploymentView struct {
	Deployment store.Deployment
	Current    bool
	Group      string
	Images     []imageRef
	Rollout    *rolloutView
	Health     healthView
	Error      string
	Details    []v1.ErrorDetail
}

// healthView is a deployment cohort's crash-free hours.
type healthView struct {
	store.CohortHours
	Percent string // "" until a device-hour is recorded
}

// deployment shows one deployment and, when it has one, its rollout: state, policy, the
// current batch, each batch's devices with their state, the health the abort criteria judge
// and the pause, resume and abort forms for those who may use them.
func (h *Handler) deployment(c *call) error {
	return h.showDeployment(c, http.StatusOK, "", nil)
}

func (h *Handler) showDeployment(c *call, status int, msg string, details []v1.ErrorDetail) error {
	ctx := c.r.Context()
	id := c.r.PathValue("deployment")
	d, current, err := h.m.GetDeployment(ctx, c.p, c.tenant.ID, id)
	if err != nil {
		return err
	}
	v := deploymentView{Deployment: d, Current: current, Error: msg, Details: details}
	if g, err := h.m.GetDeviceGroup(ctx, c.p, c.tenant.ID, d.DeviceGroupID); err == nil {
		v.Group = g.Name
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	for _, iid := range d.ImageIDs {
		ref := imageRef{ID: iid}
		if img, err := h.m.GetImage(ctx, c.p, c.tenant.ID, iid); err == nil {
			ref.Label = img.Name + " " + img.Version
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		v.Images = append(v.Images, ref)
	}
	hours, err := h.m.DeploymentHealth(ctx, c.p, c.tenant.ID, id)
	if err != nil {
		return err
	}
	v.Health = healthView{CohortHours: hours, Percent: crashFree(hours)}
	r, err := h.m.GetRollout(ctx, c.p, c.tenant.ID, id)
	switch {
	case err == nil:
		devs, wait, err := h.m.RolloutDevices(ctx, c.p, c.tenant.ID, id)
		if err != nil {
			return err
		}
		rv := newRolloutView(r, devs, wait)
		rv.CanControl = c.can(authz.DeploymentCreate)
		v.Rollout = &rv
	case !errors.Is(err, store.ErrNotFound):
		return err
	}
	vw := h.view(c, "Deployment "+shortID(d.ID), "deployments")
	vw.Data = v
	h.render(c.w, c.r, status, "deployment", vw)
	return nil
}

// newRolloutView arranges a rollout's status and devices by batch, with the figures its
// success threshold and abort criteria are judged on.
func newRolloutView(r v1.Rollout, devs []manage.RolloutDevice, wait string) rolloutView {
	v := rolloutView{R: r, Wait: wait, Active: r.State == v1.RolloutRunning || r.State == v1.RolloutPaused}
	v.Threshold = r.Policy.SuccessThresholdPercent
	if v.Threshold == 0 {
		v.Threshold = 100
	}
	for i, b := range r.Batches {
		v.Batches = append(v.Batches, batchRow{Number: i + 1, Current: i+1 == r.Batch, Devices: b.Devices, Released: b.Released})
	}
	for _, d := range devs {
		for len(v.Batches) < d.Batch {
			v.Batches = append(v.Batches, batchRow{Number: len(v.Batches) + 1})
		}
		b := &v.Batches[d.Batch-1]
		switch d.State {
		case manage.RolloutDeviceHeld:
			b.Held++
		case manage.RolloutDeviceInstalled:
			b.Installed++
		case manage.RolloutDeviceFailed:
			b.Failed++
		default:
			b.Pending++
		}
		if len(b.List) < rolloutBatchDevices {
			b.List = append(b.List, d)
		} else {
			b.More++
		}
	}
	if r.Batch >= 1 && r.Batch <= len(v.Batches) {
		b := v.Batches[r.Batch-1]
		v.NeedNow = int(math.Ceil(v.Threshold / 100 * float64(b.Devices)))
		v.HaveNow = b.Installed
	}
	v.Finished = r.Succeeded + r.Failed
	if v.Finished > 0 {
		v.FailedPct = 100 * float64(r.Failed) / float64(v.Finished)
	}
	if r.NewDeviceHours > 0 {
		v.NewRate = float64(r.NewCrashes) / r.NewDeviceHours
	}
	if r.PrevDeviceHours > 0 {
		v.PrevRate = float64(r.PrevCrashes) / r.PrevDeviceHours
	}
	return v
}

// rolloutCommand pauses, resumes or aborts a rollout (POST, CSRF-checked; manage authorizes
// and audits it exactly as for the API). A command the rollout's state does not allow is shown
// on the deployment's page.
func (h *Handler) rolloutCommand(c *call) error {
	ctx := c.r.Context()
	id := c.r.PathValue("deployment")
	var err error
	switch c.r.PathValue("command") {
	case "pause":
		_, err = h.m.PauseRollout(ctx, c.p, c.tenant.ID, id)
	case "resume":
		_, err = h.m.ResumeRollout(ctx, c.p, c.tenant.ID, id)
	case "abort":
		_, err = h.m.AbortRollout(ctx, c.p, c.tenant.ID, id)
	default:
		return problem.New(v1.CodeNotFound, "a rollout has no command %q", c.r.PathValue("command"))
	}
	if err == nil {
		c.redirect(c.tenantPath("deployments/" + url.PathEscape(id)))
		return nil
	}
	status, body, internal := problem.Describe(err)
	if internal || status != http.StatusConflict {
		return err
	}
	return h.showDeployment(c, status, body.Message, body.Details)
}
