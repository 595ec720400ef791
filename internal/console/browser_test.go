package console_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/enrollment"
	"github.com/rampart-iot/rampart/enrollment/enrollmenttest"
	"github.com/rampart-iot/rampart/internal/checkinclient"
	"github.com/rampart-iot/rampart/internal/server/servertest"
)

// chromium finds Debian's chromium. Without it the browser test skips, unless
// RAMPART_REQUIRE_CHROMIUM=1 (as in CI), when it fails.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("RAMPART_REQUIRE_CHROMIUM") == "1" {
		t.Fatal("chromium is not installed and RAMPART_REQUIRE_CHROMIUM=1: apt-get install chromium")
	}
	t.Skip("chromium is not installed (apt-get install chromium); set RAMPART_REQUIRE_CHROMIUM=1 to make this a failure")
	return ""
}

// artifactDir is where the screenshots are kept: $RAMPART_ARTIFACTS/console if set, else the
// test's artifact directory (kept with go test -artifacts).
func artifactDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("RAMPART_ARTIFACTS"); d != "" {
		dir := filepath.Join(d, "console")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	return t.ArtifactDir()
}

// chrome is a headless chromium with JavaScript switched off, driven through the DevTools
// protocol, keeping screenshots in dir.
type chrome struct {
	t   *testing.T
	ctx context.Context
	dir string
}

func startChrome(t *testing.T) *chrome {
	t.Helper()
	exe := chromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900),
		chromedp.Flag("ignore-certificate-errors", true)) // the dev CA is not in the browser's store
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(cancel)
	noScripts := chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
		return err
	})
	if err := chromedp.Do(ctx, noScripts); err != nil { // starts the browser, without the test's timeout
		t.Fatalf("starting chromium: %v", err)
	}
	tctx, cancelT := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(cancelT)
	return &chrome{t: t, ctx: tctx, dir: artifactDir(t)}
}

func (c *chrome) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	c.t.Helper()
	if err := chromedp.Do(c.ctx, steps...); err != nil {
		c.t.Fatalf("%s: %v", what, err)
	}
}

func (c *chrome) shot(name string) {
	c.t.Helper()
	png, err := chromedp.Run(c.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		c.t.Fatalf("screenshot %s: %v", name, err)
	}
	p := filepath.Join(c.dir, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		c.t.Fatal(err)
	}
	c.t.Logf("screenshot: %s", p)
}

// text is the text of the first element a CSS selector matches.
func (c *chrome) text(css string) string {
	c.t.Helper()
	s, err := chromedp.Run(c.ctx, chromedp.Text(chromedp.CSS(css)))
	if err != nil {
		c.t.Fatalf("reading %s: %v", css, err)
	}
	return s
}

func (c *chrome) eval(js string) string {
	c.t.Helper()
	s, err := chromedp.Run(c.ctx, chromedp.Evaluate[string](js))
	if err != nil {
		c.t.Fatalf("evaluating %s: %v", js, err)
	}
	return s
}

// TestBrowser drives the real console in headless chromium with JavaScript switched off: log
// in with the admin token, set a password and log in with it, read the overview, open a
// device, disable it through its form, see a rollout's batch progress and pause it, see an
// error-report bucket's SVG chart, and read the pages at phone width, keeping a screenshot of
// each step.
func TestBrowser(t *testing.T) {
	srv := servertest.Start(t)
	f := newFixture(t, srv)
	f.addHostileRecords(t)
	f.addCrashes(t)
	img := f.withRollout(t)
	// The rollout's canary: an attested device whose check-ins the test makes.
	canary := srv.AttestedDevice(t, f.admin, f.tenant, f.group.ID)
	canaryClient := &checkinclient.Client{Server: srv.URL, RootCAs: canary.RootCAs, CertDir: canary.Dir}
	c := startChrome(t)
	tctx, do, shot := c.ctx, c.do, c.shot
	location := func() string {
		t.Helper()
		loc, err := chromedp.Run(tctx, chromedp.Location())
		if err != nil {
			t.Fatal(err)
		}
		return loc
	}
	base := srv.URL + "/console/t/" + f.tenant

	const password = "a long console password"
	do("log in with the admin token",
		chromedp.Navigate(srv.URL+"/console/"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), srv.AdminToken),
		chromedp.Click(chromedp.CSS(`#token-form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.ID("counts-h")))
	do("set a password, proving it with the token",
		chromedp.Navigate(srv.URL+"/console/account"),
		chromedp.WaitVisible(chromedp.ID("current")),
		chromedp.SendKeys(chromedp.ID("current"), srv.AdminToken),
		chromedp.SendKeys(chromedp.ID("new_password"), password),
		chromedp.SendKeys(chromedp.ID("confirm"), password),
		chromedp.Click(chromedp.ID("set-password")),
		chromedp.WaitVisible(chromedp.ID("password-set")))
	shot("0-password-set")
	do("log out", chromedp.Click(chromedp.CSS(`form[action="/console/logout"] button`)), chromedp.WaitVisible(chromedp.ID("user")))
	do("log in with the password",
		chromedp.SendKeys(chromedp.ID("user"), "dev-admin"),
		chromedp.SendKeys(chromedp.ID("password"), password),
		chromedp.Click(chromedp.CSS(`#password-form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.ID("counts-h")))
	if got := location(); got != base+"/" {
		t.Fatalf("after login the browser is at %s, want the overview %s", got, base+"/")
	}
	failing, err := chromedp.Run(tctx, chromedp.Text(chromedp.CSS(".tiles .bad")))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("overview tile: %q", failing)
	shot("1-overview")

	do("open the device from the overview's failures",
		chromedp.Click(chromedp.CSS(`a[href$="/devices/`+f.device.ID+`"]`)),
		chromedp.WaitVisible(chromedp.ID("disable")))
	if got := location(); got != base+"/devices/"+f.device.ID {
		t.Fatalf("device page at %s", got)
	}
	shot("2-device")

	do("disable the device through its form",
		chromedp.Click(chromedp.ID("disable")),
		chromedp.WaitVisible(chromedp.ID("enable")))
	shot("3-device-disabled")
	if !f.deviceDisabled(t) {
		t.Fatal("the form did not disable the device")
	}
	if es := f.audit(t, "device.disable"); len(es) != 1 || es[0].Result != "success" || es[0].Actor != "dev-admin" {
		t.Fatalf("audit of the browser's disable: %+v", es)
	}

	// A deployment with a rollout, made with the console's form: the canary leads batch 1.
	do("new deployment with a rollout", chromedp.Navigate(base+"/deployments/new"), chromedp.WaitVisible(chromedp.ID("group")),
		chromedp.SetValue(chromedp.ID("group"), f.group.ID), chromedp.Click(chromedp.ID("img-"+img.ID)),
		chromedp.Click(chromedp.ID("rollout")), chromedp.SetValue(chromedp.ID("batches"), "1"),
		chromedp.SetValue(chromedp.ID("soak_seconds"), "0"), chromedp.SetValue(chromedp.ID("canary_device_ids"), canary.ID),
		chromedp.Submit(chromedp.ID("batches")), chromedp.WaitVisible(chromedp.ID("rollout-batch")))
	depID := strings.TrimPrefix(location(), base+"/deployments/")
	rolled, err := f.admin.GetDeployment(t.Context(), f.tenant, depID)
	if err != nil {
		t.Fatalf("the form's deployment %q: %v", depID, err)
	}
	readRollout := func() (state, batch string) {
		t.Helper()
		var err error
		if state, err = chromedp.Run(tctx, chromedp.Text(chromedp.ID("rollout-state"))); err != nil {
			t.Fatal(err)
		}
		if batch, err = chromedp.Run(tctx, chromedp.Text(chromedp.ID("rollout-batch"))); err != nil {
			t.Fatal(err)
		}
		return state, batch
	}
	if state, batch := readRollout(); state != "running" || batch != "1 of 2" {
		t.Fatalf("the new rollout's page shows %q, batch %q", state, batch)
	}
	shot("7-rollout")
	// The canary reports the new image running: batch 1 is healthy, and with no soak the
	// rollout advances at once; a reload shows batch 2.
	if _, err := canaryClient.CheckIn(t.Context(), v1.CheckIn{AgentVersion: "1.0.0", Images: []v1.InstalledImage{{
		ComponentID: img.ComponentID, ImageID: img.ID, Kind: img.Kind, Version: img.Version, State: v1.ImageRunning}}}); err != nil {
		t.Fatal(err)
	}
	do("the rollout after the canary's check-in", chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("rollout-batch")))
	if state, batch := readRollout(); state != "running" || batch != "2 of 2" {
		t.Fatalf("after the canary's healthy check-in the page shows %q, batch %q, want batch 2 of 2", state, batch)
	}
	shot("7b-rollout-advanced")
	do("pause the rollout", chromedp.Click(chromedp.ID("pause")), chromedp.WaitVisible(chromedp.ID("resume")))
	if st, err := f.admin.GetRollout(t.Context(), f.tenant, rolled.ID); err != nil || st.State != v1.RolloutPaused {
		t.Fatalf("after the pause button: %+v %v", st, err)
	}
	shot("8-rollout-paused")

	// Claim a device by pasting its enrollment record into the devices page's form.
	rec := enrollmenttest.Record(t)
	claimed, err := enrollment.Parse(rec)
	if err != nil {
		t.Fatal(err)
	}
	do("claim a device through the form", chromedp.Navigate(base+"/devices"), chromedp.WaitVisible(chromedp.ID("q")),
		chromedp.Click(chromedp.CSS("#claim-box summary")), chromedp.WaitVisible(chromedp.ID("enrollment")),
		chromedp.SetValue(chromedp.ID("enrollment"), string(rec)), chromedp.Click(chromedp.ID("claim")),
		chromedp.WaitVisible(chromedp.ID("id-h")))
	if got := location(); got != base+"/devices/"+claimed.DeviceID {
		t.Fatalf("after the claim form, the browser is at %s", got)
	}
	shot("9-claimed-device")

	// An error-report bucket and its chart, drawn as SVG with an accessible name.
	do("error reports", chromedp.Navigate(base+"/error-reports?range=24h"), chromedp.WaitVisible(chromedp.ID("buckets")))
	shot("9b-error-reports")
	do("a bucket", chromedp.Click(chromedp.CSS(`#buckets tbody tr:first-child a`)), chromedp.WaitVisible(chromedp.CSS("figure.chart-box svg")))
	label, err := chromedp.Run(tctx, chromedp.Evaluate[string](`(() => { const s = document.querySelector("figure.chart-box svg"); const r = s.getBoundingClientRect();
		return s.getAttribute("role") + "|" + document.getElementById("bucket-title").textContent + "|" + (r.width > 100 && r.height > 30) + "|" + s.querySelectorAll("rect").length })()`))
	if err != nil {
		t.Fatal(err)
	}
	if want := "img|AppCrash in component " + f.image.ComponentID + ", signal 11: events, last 24 hours|true|24"; label != want {
		t.Errorf("the bucket's chart: %q, want %q", label, want)
	}
	shot("10-error-bucket")

	// Keyboard: the first Tab reaches the skip link.
	do("keyboard", chromedp.Navigate(base+"/devices"), chromedp.WaitVisible(chromedp.ID("q")), chromedp.KeyEvent("\t"))
	focused, err := chromedp.Run(tctx, chromedp.Evaluate[string](`document.activeElement.className`))
	if err != nil {
		t.Fatal(err)
	}
	if focused != "skip" {
		t.Errorf("the first Tab focuses %q, want the skip link", focused)
	}

	// Phone width: nothing wider than the screen but the tables' own scrolling boxes.
	for _, p := range []struct{ name, path string }{{"4-phone-overview", "/"}, {"5-phone-devices", "/devices"}, {"6-phone-device", "/devices/" + f.device.ID},
		{"11-phone-rollout", "/deployments/" + rolled.ID}, {"12-phone-error-reports", "/error-reports"}, {"13-phone-new-deployment", "/deployments/new"}} {
		do("phone "+p.path, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile), chromedp.Navigate(base+p.path), chromedp.WaitVisible(chromedp.CSS("h1")))
		fits, err := chromedp.Run(tctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth <= window.innerWidth`))
		if err != nil {
			t.Fatal(err)
		}
		if !fits {
			t.Errorf("%s is wider than a 390px screen", p.path)
		}
		shot(p.name)
	}

	// Log out through the header's form: the console is closed again.
	do("log out at the end", chromedp.Click(chromedp.CSS(`form[action="/console/logout"] button`)), chromedp.WaitVisible(chromedp.ID("token")))
	do("after logout", chromedp.Navigate(base+"/devices"), chromedp.WaitVisible(chromedp.ID("token")))
}
