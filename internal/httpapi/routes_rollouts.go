package httpapi

import (
	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/internal/authz"
)

// rolloutRoutes are the health-gated rollouts of deployments (docs/ROLLOUTS.md).
func rolloutRoutes() []route {
	p := tenantPath + "/deployments/{deployment}/rollout"
	return []route{
		{method: "GET", path: p, op: "getRollout", summary: "Where the deployment's rollout stands: state, batch progress and the health it is judged on.",
			action: authz.DeploymentRead, out: v1.Rollout{}, status: 200, handle: getRollout},
		{method: "POST", path: p + "/pause", op: "pauseRollout", summary: "Stop releasing devices; released devices keep the deployment.",
			action: authz.DeploymentCreate, out: v1.Rollout{}, status: 200, handle: pauseRollout},
		{method: "POST", path: p + "/resume", op: "resumeRollout", summary: "Let a paused rollout go on.",
			action: authz.DeploymentCreate, out: v1.Rollout{}, status: 200, handle: resumeRollout},
		{method: "POST", path: p + "/abort", op: "abortRollout", summary: "Abort the rollout: the group gets a new deployment equal to the previous one, and every device returns to it.",
			action: authz.DeploymentCreate, out: v1.Rollout{}, status: 200, handle: abortRollout},
	}
}

func getRollout(c *call) (any, error) {
	return c.h.m.GetRollout(c.r.Context(), c.p, c.param("tenant"), c.param("deployment"))
}

func pauseRollout(c *call) (any, error) {
	return c.h.m.PauseRollout(c.r.Context(), c.p, c.param("tenant"), c.param("deployment"))
}

func resumeRollout(c *call) (any, error) {
	return c.h.m.ResumeRollout(c.r.Context(), c.p, c.param("tenant"), c.param("deployment"))
}

func abortRollout(c *call) (any, error) {
	return c.h.m.AbortRollout(c.r.Context(), c.p, c.param("tenant"), c.param("deployment"))
}

// advanceRollout steps the rollout of the calling device's group, if any, after it reported:
// a failure here is logged, never the device's problem.
func (h *Handler) advanceRollout(c *call) {
	d := c.dev.Device
	if err := h.m.AdvanceGroupRollout(c.r.Context(), d.TenantID, d.DeviceGroupID); err != nil {
		h.log.Warn("advancing the group's rollout", "tenant", d.TenantID, "device_group", d.DeviceGroupID, "error", err)
	}
}
