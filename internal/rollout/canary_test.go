package rollout_test

import (
	"fmt"
	"strings"
	"testing"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/client"
	"github.com/rampart-iot/rampart/imagepkg/imagepkgtest"
	"github.com/rampart-iot/rampart/internal/rollout"
)

func TestOrderPutsCanariesFirst(t *testing.T) {
	devs := []string{"a", "b", "c", "d"}
	got, bad := rollout.Order(v1.RolloutPolicy{CanaryDeviceIDs: []string{"c", "a"}}, devs)
	if len(bad) != 0 || fmt.Sprint(got) != "[c a b d]" {
		t.Fatalf("Order = %v %v", got, bad)
	}
	got, bad = rollout.Order(v1.RolloutPolicy{}, devs)
	if len(bad) != 0 || fmt.Sprint(got) != "[a b c d]" {
		t.Fatalf("without canaries: %v %v", got, bad)
	}
	if _, bad := rollout.Order(v1.RolloutPolicy{CanaryDeviceIDs: []string{"z"}}, devs); len(bad) != 1 ||
		bad[0].Field != "rollout.canary_device_ids[0]" || !strings.Contains(bad[0].Message, "not in the deployment's group") {
		t.Fatalf("a stranger: %+v", bad)
	}
}

func TestValidateCanaries(t *testing.T) {
	id := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		ids  []string
		want string
	}{{[]string{"nope"}, "canary_device_ids[0]"}, {[]string{id, id}, "canary_device_ids[1]"}, {[]string{strings.ToUpper(id)}, "canary_device_ids[0]"}} {
		bad := rollout.Validate(v1.RolloutPolicy{Batches: []v1.RolloutBatch{{Count: 1}}, CanaryDeviceIDs: tc.ids})
		if len(bad) != 1 || bad[0].Field != "rollout."+tc.want {
			t.Errorf("%v: %+v, want %s", tc.ids, bad, tc.want)
		}
	}
}

// TestE2ECanariesGoFirst: the devices a policy names as canaries are the first batch, released
// at once, whatever their place in device ID order; a canary outside the group is refused
// naming the field, and nothing is deployed.
func TestE2ECanariesGoFirst(t *testing.T) {
	e := start(t, 3)
	v1img := e.upload(imagepkgtest.Application(t, imagepkgtest.App{Name: "lamp", Version: "1.0.0"}))
	comp := v1img.ComponentID
	e.deploy(v1img, nil)
	v2img := e.upload(imagepkgtest.Application(t, imagepkgtest.App{ComponentID: comp, Name: "lamp", Version: "2.0.0"}))
	last := e.devs[2] // last in ID order: without canaries it would be released last
	_, err := e.admin.CreateDeployment(e.ctx, e.srv.TenantID, e.group, v1.DeploymentCreate{ImageIDs: []string{v2img.ID},
		Rollout: &v1.RolloutPolicy{Batches: []v1.RolloutBatch{{Count: 1}}, SoakSeconds: 3600, CanaryDeviceIDs: []string{strings.Repeat("0", 64)}}})
	if err == nil || !strings.Contains(err.Error(), "canary_device_ids[0]") {
		t.Fatalf("a canary outside the group: %v", err)
	}
	if deps, err := e.admin.ListDeployments(e.ctx, e.srv.TenantID, e.group, client.ListOptions{}); err != nil || len(deps.Items) != 1 {
		t.Fatalf("after the refused deployment: %d deployments, %v; want only the first", len(deps.Items), err)
	}
	e.deploy(v2img, &v1.RolloutPolicy{Batches: []v1.RolloutBatch{{Count: 1}}, SoakSeconds: 3600, CanaryDeviceIDs: []string{last.id}})
	got := e.offers(v2img, v1img)
	if len(got) != 1 || got[0].id != last.id {
		t.Fatalf("offered v2: %d devices, want only the canary %s", len(got), last.id)
	}
}
