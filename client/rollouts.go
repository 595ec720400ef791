package client

import (
	"context"
	"net/http"

	v1 "github.com/rampart-iot/rampart/api/v1"
)

// GetRollout returns where a deployment's rollout stands.
func (c *Client) GetRollout(ctx context.Context, tenant, deploymentID string) (*v1.Rollout, error) {
	return c.rollout(ctx, http.MethodGet, tenant, deploymentID, "")
}

// PauseRollout stops a running rollout from releasing more devices.
func (c *Client) PauseRollout(ctx context.Context, tenant, deploymentID string) (*v1.Rollout, error) {
	return c.rollout(ctx, http.MethodPost, tenant, deploymentID, "pause")
}

// ResumeRollout lets a paused rollout go on.
func (c *Client) ResumeRollout(ctx context.Context, tenant, deploymentID string) (*v1.Rollout, error) {
	return c.rollout(ctx, http.MethodPost, tenant, deploymentID, "resume")
}

// AbortRollout aborts a running or paused rollout: the group returns to its previous
// deployment.
func (c *Client) AbortRollout(ctx context.Context, tenant, deploymentID string) (*v1.Rollout, error) {
	return c.rollout(ctx, http.MethodPost, tenant, deploymentID, "abort")
}

func (c *Client) rollout(ctx context.Context, method, tenant, deploymentID, verb string) (*v1.Rollout, error) {
	path := []string{"tenants", tenant, "deployments", deploymentID, "rollout"}
	if verb != "" {
		path = append(path, verb)
	}
	var r v1.Rollout
	if _, err := c.do(ctx, method, path, nil, nil, &r); err != nil {
		return nil, err
	}
	return &r, nil
}
