package console_test

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"
	"testing"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/client"
	"github.com/rampart-iot/rampart/imagepkg/imagepkgtest"
	"github.com/rampart-iot/rampart/internal/server/servertest"
)

// withRollout adds two devices to the fixture's group and a newer image, ready for a
// deployment with a rollout; it returns the new image.
func (f *fixture) withRollout(t *testing.T) *v1.Image {
	t.Helper()
	f.srv.AttestedDevice(t, f.admin, f.tenant, f.group.ID)
	f.srv.AttestedDevice(t, f.admin, f.tenant, f.group.ID)
	pkg := imagepkgtest.Application(t, imagepkgtest.App{Name: "blink", Version: "1.1.0"})
	img, err := f.admin.AddImage(t.Context(), f.tenant, bytes.NewReader(pkg.Bytes), int64(len(pkg.Bytes)), nil)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// rolloutForm is the new-deployment form with a rollout of one device first, soaking an hour.
func rolloutForm(csrf, group, image string) url.Values {
	return url.Values{"csrf": {csrf}, "group": {group}, "image": {image}, "rollout": {"on"}, "batches": {"1"},
		"soak_seconds": {"3600"}, "success_threshold_percent": {"100"}, "install_failure_percent": {"50"}, "min_installs": {"2"},
		"crash_rate_ratio": {"2"}, "min_device_hours": {"1"}, "min_crashes": {"3"}}
}

func TestRolloutPolicyFormErrorsInPlace(t *testing.T) {
	srv := servertest.Start(t)
	f := newFixture(t, srv)
	img := f.withRollout(t)
	b := newBrowser(t, srv)
	token := b.login(srv.AdminToken)
	base := "/console/t/" + f.tenant

	page := b.get(base + "/deployments/new")
	mustStatus(t, "form", page, 200)
	for _, want := range []string{`<label for="batches">`, `<label for="rollout">`, `<label for="soak_seconds">`, `<label for="min_crashes">`, `<legend>Rollout (optional)</legend>`} {
		if !strings.Contains(page.body, want) {
			t.Errorf("the form lacks %s", want)
		}
	}

	// What the console reads itself: not numbers. Shown next to their fields, values kept.
	form := rolloutForm(token, f.group.ID, img.ID)
	form.Set("batches", "one, 10%")
	form.Set("soak_seconds", "an hour")
	r := b.post(base+"/deployments", form)
	mustStatus(t, "unreadable policy", r, http.StatusUnprocessableEntity)
	for _, want := range []string{`is neither a count (5) nor a percent (10%)`, `must be a whole number, not &#34;an hour&#34;`,
		`value="one, 10%"`, `value="an hour"`, `id="rollout" name="rollout" value="on" checked`, `value="` + img.ID + `" checked`} {
		if !strings.Contains(r.body, want) {
			t.Errorf("the refused form lacks %s", want)
		}
	}
	if !strings.Contains(r.body, `<p class="field-error">batch 1, &#34;one&#34;`) {
		t.Errorf("the batch problem is not next to its field:\n%s", r.body)
	}

	// What the management plane judges (rollout.Validate): shown the same way.
	form = rolloutForm(token, f.group.ID, img.ID)
	form.Set("batches", "150%")
	form.Set("crash_rate_ratio", "5000")
	r = b.post(base+"/deployments", form)
	mustStatus(t, "invalid policy", r, http.StatusUnprocessableEntity)
	for _, want := range []string{"rollout.batches[0].percent", "rollout.abort.crash_rate_ratio", `<p class="field-error">must be above 0 and at most 100, not 150</p>`} {
		if !strings.Contains(r.body, want) {
			t.Errorf("the refused policy lacks %s", want)
		}
	}

	// A canary that is not in the group is refused next to its field, as typed.
	stranger := strings.Repeat("ab", 32)
	form = rolloutForm(token, f.group.ID, img.ID)
	form.Set("canary_device_ids", stranger)
	r = b.post(base+"/deployments", form)
	mustStatus(t, "a canary outside the group", r, http.StatusUnprocessableEntity)
	if !strings.Contains(r.body, "is not in the deployment&#39;s group") || !strings.Contains(r.body, ">"+stranger+"</textarea>") {
		t.Errorf("the canary problem is not shown in place:\n%s", r.body)
	}

	// A group with no deployment yet cannot take a rollout.
	groups, err := f.admin.AllProductDeviceGroups(t.Context(), f.tenant, f.product.ID, client.DeviceGroupListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var empty string
	for _, g := range groups {
		if g.ID != f.group.ID {
			empty = g.ID
		}
	}
	r = b.post(base+"/deployments", rolloutForm(token, empty, img.ID))
	mustStatus(t, "rollout without a previous deployment", r, http.StatusUnprocessableEntity)
	if !strings.Contains(r.body, "the group has no deployment yet") {
		t.Errorf("no reason given:\n%s", r.body)
	}
	list, err := f.admin.ListDeployments(t.Context(), f.tenant, f.group.ID, client.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 {
		t.Fatalf("a refused form made a deployment: %+v", list.Items)
	}
}

func TestRolloutPageAndCommands(t *testing.T) {
	srv := servertest.Start(t)
	f := newFixture(t, srv)
	img := f.withRollout(t)
	readerToken := f.reader(t, "rita")
	b := newBrowser(t, srv)
	token := b.login(srv.AdminToken)
	base := "/console/t/" + f.tenant

	r := b.post(base+"/deployments", rolloutForm(token, f.group.ID, img.ID))
	mustStatus(t, "create with a rollout", r, http.StatusSeeOther)
	if !strings.HasPrefix(r.location, base+"/deployments/") {
		t.Fatalf("after create: redirect to %q, want the deployment's page", r.location)
	}
	depID := strings.TrimPrefix(r.location, base+"/deployments/")
	st, err := f.admin.GetRollout(t.Context(), f.tenant, depID)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != v1.RolloutRunning || st.Policy.SoakSeconds != 3600 || st.Policy.Abort == nil || st.Policy.Abort.MinCrashes != 3 || len(st.Batches) != 2 {
		t.Fatalf("the form's policy did not reach the rollout: %+v", st)
	}

	page := b.get(r.location)
	mustStatus(t, "rollout page", page, 200)
	for _, want := range []string{`id="rollout-state">running<`, `id="rollout-batch">1 of 2<`, `id="pause"`, `id="abort"`,
		`<th scope="row">1 <span class="state">current</span></th>`, "<td>1</td><td>1</td>", // batch 1: one device, released
		"<td>2</td><td>0</td>", // batch 2: two devices, none released
		"50% once 2 finished", "2× the previous rate, after 1 device-hours and 3 crash(es)", "1, then the rest",
		"the current batch has <strong>0</strong> of the <strong>1</strong> it needs", `class="state held">held<`, `class="state released">released<`} {
		if !strings.Contains(page.body, want) {
			t.Errorf("the rollout page lacks %s", want)
		}
	}

	// The fleet overview lists the active rollout.
	ov := b.get(base + "/")
	if !strings.Contains(ov.body, `<p id="active-rollouts">1 active rollout(s).</p>`) ||
		!strings.Contains(ov.body, `<a href="`+r.location+`"><span class="state running">running</span> batch 1</a>`) {
		t.Errorf("the overview does not list the active rollout:\n%s", ov.body)
	}

	// A Reader sees the progress but no controls, and a forged command is refused and audited.
	rb := newBrowser(t, srv)
	rtoken := rb.login(readerToken)
	rp := rb.get(r.location)
	mustStatus(t, "reader's rollout page", rp, 200)
	if !strings.Contains(rp.body, `id="rollout-state">running<`) || strings.Contains(rp.body, `/rollout/pause"`) || strings.Contains(rp.body, `/rollout/abort"`) {
		t.Errorf("the Reader's page shows controls or no state:\n%s", rp.body)
	}
	mustStatus(t, "forged pause", rb.post(r.location+"/rollout/pause", url.Values{"csrf": {rtoken}}), http.StatusForbidden)
	mustStatus(t, "forged abort", rb.post(r.location+"/rollout/abort", url.Values{"csrf": {rtoken}}), http.StatusForbidden)
	if es := f.audit(t, "rollout.pause"); len(es) != 0 {
		t.Errorf("a forged pause reached the rollout: %+v", es)
	}

	// No CSRF token, another session's, or a GET: nothing happens.
	mustStatus(t, "pause without CSRF", b.post(r.location+"/rollout/pause", url.Values{}), http.StatusForbidden)
	mustStatus(t, "pause with the Reader's CSRF", b.post(r.location+"/rollout/pause", url.Values{"csrf": {rtoken}}), http.StatusForbidden)
	if g := b.get(r.location + "/rollout/pause"); g.status < 400 {
		t.Errorf("GET of a command: %d", g.status)
	}
	mustStatus(t, "unknown command", b.post(r.location+"/rollout/explode", url.Values{"csrf": {token}}), http.StatusNotFound)
	if st, _ := f.admin.GetRollout(t.Context(), f.tenant, depID); st.State != v1.RolloutRunning {
		t.Fatalf("a refused command changed the rollout: %s", st.State)
	}

	// Pause, a second pause (refused in place), resume, abort.
	mustStatus(t, "pause", b.post(r.location+"/rollout/pause", url.Values{"csrf": {token}}), http.StatusSeeOther)
	page = b.get(r.location)
	if !strings.Contains(page.body, `id="rollout-state">paused<`) || !strings.Contains(page.body, "paused by dev-admin") || !strings.Contains(page.body, `id="resume"`) {
		t.Errorf("after pause:\n%s", page.body)
	}
	if es := f.audit(t, "rollout.pause"); len(es) != 1 || es[0].Result != "success" || es[0].Actor != "dev-admin" {
		t.Errorf("pause audit: %+v", es)
	}
	again := b.post(r.location+"/rollout/pause", url.Values{"csrf": {token}})
	mustStatus(t, "pause twice", again, http.StatusConflict)
	if !strings.Contains(again.body, `id="form-error"`) || !strings.Contains(again.body, "is paused") || !strings.Contains(again.body, `id="rollout-batch"`) {
		t.Errorf("the refused pause is not shown on the rollout's page:\n%s", again.body)
	}
	mustStatus(t, "resume", b.post(r.location+"/rollout/resume", url.Values{"csrf": {token}}), http.StatusSeeOther)
	if st, _ := f.admin.GetRollout(t.Context(), f.tenant, depID); st.State != v1.RolloutRunning {
		t.Fatalf("after resume: %s", st.State)
	}
	mustStatus(t, "abort", b.post(r.location+"/rollout/abort", url.Values{"csrf": {token}}), http.StatusSeeOther)
	page = b.get(r.location)
	if !strings.Contains(page.body, `id="rollout-state">aborted<`) || !strings.Contains(page.body, "aborted by dev-admin") ||
		!strings.Contains(page.body, "Reverted by") || strings.Contains(page.body, `id="abort"`) {
		t.Errorf("after abort:\n%s", page.body)
	}
	if es := f.audit(t, "rollout.abort"); len(es) != 1 || es[0].Result != "success" {
		t.Errorf("abort audit: %+v", es)
	}
	if ov := b.get(base + "/"); strings.Contains(ov.body, `id="active-rollouts"`) {
		t.Error("the overview still lists the aborted rollout")
	}

	// The list links each deployment to its page; one without a rollout says so.
	list := b.get(base + "/deployments")
	if !strings.Contains(list.body, `href="`+r.location+`"`) {
		t.Errorf("the list does not link the deployment")
	}
	plain := b.get(base + "/deployments/" + f.deploy.ID)
	mustStatus(t, "deployment without rollout", plain, 200)
	if !strings.Contains(plain.body, "has no rollout") {
		t.Errorf("plain deployment page:\n%s", plain.body)
	}
	mustStatus(t, "unknown deployment", b.get(base+"/deployments/0190f2c4-0000-7000-8000-000000000000"), http.StatusNotFound)
}
