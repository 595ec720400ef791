package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/rampart-iot/rampart/api/v1"
)

func TestE2EDeploymentRollout(t *testing.T) {
	e := startE2E(t)
	r := e.admin
	app, hw := appTree(t)
	pkgs := t.TempDir()
	var imgs []v1.Image
	for _, v := range []string{"1.0.0", "1.1.0"} {
		file := filepath.Join(pkgs, v+".rampkg")
		r.ok(t, "image-package", "pack-application", "--package-directory", app, "--hardware-definitions", hw, "--output-file", file, "--version", v)
		var img v1.Image
		r.json(t, &img, "image", "add", "--image-path", file)
		imgs = append(imgs, img)
	}
	r.ok(t, "product", "create", "--name", "Lamp")
	var prev v1.Deployment
	r.json(t, &prev, "deployment", "create", "--product", "Lamp", "--device-group", "Field Test", "--images", imgs[0].ID)

	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	create := func(policy string) []string {
		return []string{"deployment", "create", "--product", "Lamp", "--device-group", "Field Test", "--images", imgs[1].ID, "--rollout-policy", policy}
	}
	// Strict decoding, then the service's validation, each naming the problem.
	r.fails(t, "unknown field", create(write("typo.json", `{"batchs":[{"count":1}]}`))...)
	r.fails(t, "rollout.batches[0]", create(write("bad.json", `{"batches":[{"count":1,"percent":10}]}`))...)
	r.fails(t, "no such file", create(filepath.Join(dir, "missing.json"))...)

	var dep v1.Deployment
	r.json(t, &dep, create(write("policy.json", `{"batches":[{"count":1}],"soak_seconds":3600,"abort":{"crash_rate_ratio":2}}`))...)
	var ro v1.Rollout
	r.json(t, &ro, "deployment", "status", dep.ID)
	if ro.State != v1.RolloutRunning || ro.PreviousDeploymentID != prev.ID || ro.Policy.SoakSeconds != 3600 || ro.Policy.Abort == nil {
		t.Fatalf("status: %+v", ro)
	}
	if out := r.ok(t, "deployment", "status", dep.ID); !strings.Contains(out, "running") || !strings.Contains(out, prev.ID) {
		t.Fatalf("status table:\n%s", out)
	}
	r.json(t, &ro, "deployment", "pause", dep.ID)
	if ro.State != v1.RolloutPaused || !strings.Contains(ro.Reason, "paused by") {
		t.Fatalf("pause: %+v", ro)
	}
	r.fails(t, "paused", "deployment", "pause", dep.ID)
	r.json(t, &ro, "deployment", "resume", dep.ID)
	if ro.State != v1.RolloutRunning {
		t.Fatalf("resume: %+v", ro)
	}
	r.json(t, &ro, "deployment", "abort", dep.ID)
	if ro.State != v1.RolloutAborted || ro.RevertDeploymentID == "" {
		t.Fatalf("abort: %+v", ro)
	}
	r.fails(t, "aborted", "deployment", "abort", dep.ID)
	var cur v1.Deployment
	r.json(t, &cur, "deployment", "show", ro.RevertDeploymentID)
	if !cur.Current || len(cur.ImageIDs) != 1 || cur.ImageIDs[0] != imgs[0].ID {
		t.Fatalf("after the abort the group's deployment is %+v, want the previous images", cur)
	}
	r.fails(t, "not found", "deployment", "status", prev.ID)
}
