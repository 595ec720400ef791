package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/client"
)

// maxRolloutPolicyBytes bounds a --rollout-policy file.
const maxRolloutPolicyBytes = 64 << 10

// readRolloutPolicy reads a JSON v1.RolloutPolicy strictly (unknown keys are errors); the
// service validates its values.
func readRolloutPolicy(path string) (*v1.RolloutPolicy, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading the rollout policy: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxRolloutPolicyBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading the rollout policy: %w", err)
	}
	if len(b) > maxRolloutPolicyBytes {
		return nil, fmt.Errorf("rollout policy %s is larger than %d bytes", path, maxRolloutPolicyBytes)
	}
	var p v1.RolloutPolicy
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("rollout policy %s: %w", path, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("rollout policy %s: data after the JSON object", path)
	}
	return &p, nil
}

func newDeploymentStatusCmd(a *app) *cobra.Command {
	return rolloutCmd(a, "status", "Show where a deployment's rollout stands: state, batches and health", (*client.Client).GetRollout)
}

func newDeploymentPauseCmd(a *app) *cobra.Command {
	return rolloutCmd(a, "pause", "Stop a deployment's rollout from releasing more devices", (*client.Client).PauseRollout)
}

func newDeploymentResumeCmd(a *app) *cobra.Command {
	return rolloutCmd(a, "resume", "Let a paused rollout go on", (*client.Client).ResumeRollout)
}

func newDeploymentAbortCmd(a *app) *cobra.Command {
	return rolloutCmd(a, "abort", "Abort a deployment's rollout: the device group returns to its previous deployment", (*client.Client).AbortRollout)
}

func rolloutCmd(a *app, verb, short string, fn func(*client.Client, context.Context, string, string) (*v1.Rollout, error)) *cobra.Command {
	return &cobra.Command{
		Use:   verb + " DEPLOYMENT_ID",
		Short: short,
		Args:  args(1, 1, "DEPLOYMENT_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := a.session(cmd.Context())
			if err != nil {
				return err
			}
			r, err := fn(s.c, cmd.Context(), s.tenant, args[0])
			if err != nil {
				return err
			}
			return a.showRollout(r)
		},
	}
}

func (a *app) showRollout(r *v1.Rollout) error {
	p := a.printer()
	return p.print(r, func() error {
		kv := [][2]string{{"Deployment", r.DeploymentID}, {"Device group", r.DeviceGroupID},
			{"Previous deployment", r.PreviousDeploymentID}, {"State", r.State}, {"Reason", r.Reason},
			{"Batch", fmt.Sprintf("%d of %d", r.Batch, len(r.Batches))}}
		for i, b := range r.Batches {
			kv = append(kv, [2]string{fmt.Sprintf("Batch %d", i+1), fmt.Sprintf("%d of %d devices released", b.Released, b.Devices)})
		}
		kv = append(kv, [][2]string{{"Succeeded", fmt.Sprint(r.Succeeded)}, {"Failed", fmt.Sprint(r.Failed)},
			{"Crashes (new)", fmt.Sprintf("%d in %.1f device-hours", r.NewCrashes, r.NewDeviceHours)},
			{"Crashes (previous)", fmt.Sprintf("%d in %.1f device-hours", r.PrevCrashes, r.PrevDeviceHours)},
			{"Revert deployment", r.RevertDeploymentID}, {"Created", timeCell(r.CreatedAt)},
			{"Batch started", timeCell(r.BatchStartedAt)}, {"Updated", timeCell(r.UpdatedAt)}}...)
		return p.fields(kv)
	})
}
