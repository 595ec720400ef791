package agentcli

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
	"github.com/rampart-iot/rampart/client"
	"github.com/rampart-iot/rampart/enrollment"
	"github.com/rampart-iot/rampart/imagepkg/imagepkgtest"
	"github.com/rampart-iot/rampart/internal/appinstall"
	"github.com/rampart-iot/rampart/internal/board"
	"github.com/rampart-iot/rampart/internal/bootctl"
	"github.com/rampart-iot/rampart/internal/cloudbroker"
	"github.com/rampart-iot/rampart/internal/localapi"
	"github.com/rampart-iot/rampart/internal/measure"
	"github.com/rampart-iot/rampart/internal/osupdate"
	"github.com/rampart-iot/rampart/internal/rot/softrot"
	"github.com/rampart-iot/rampart/internal/server/servertest"
)

// emulated is an emulated device: the real agent command, run in-process, restarted when it
// exits to boot an armed slot, as a service manager would.
type emulated struct {
	t      *testing.T
	srv    *servertest.Server
	state  string
	cancel context.CancelFunc
	exits  chan int
	log    *lockedBuffer
	// args are added to the agent's command line.
	args []string
}

func (d *emulated) start() {
	ctx, cancel := context.WithCancel(d.t.Context())
	d.cancel = cancel
	go func() {
		d.exits <- Run(ctx, append([]string{"run", "--rot", "software", "--state", d.state, "--server", d.srv.URL,
			"--cacert", d.srv.CACertFile, "--boot-control", "dir", "--development", "--board", "emulated", "--log-level", "debug",
			"--app-healthy-after", "1s"}, d.args...),
			IO{Out: d.log, Err: d.log, Getenv: func(string) string { return "" }})
	}()
}

// reboot waits for the agent to exit asking for a restart, and starts it again.
func (d *emulated) reboot() {
	d.t.Helper()
	select {
	case code := <-d.exits:
		if code != ExitReboot {
			d.t.Fatalf("the agent exited with %d, want %d (reboot); log:\n%s", code, ExitReboot, d.log.String())
		}
	case <-time.After(2 * time.Minute):
		d.t.Fatalf("the agent did not ask for a reboot; log:\n%s", d.log.String())
	}
	d.start()
}

func (d *emulated) stop() {
	d.cancel()
	select { // an exit a failed check already took is not waited for
	case <-d.exits:
	case <-time.After(time.Minute):
	}
}

// local runs a local command (rampart-agent ARGS --state STATE), which talks to the running
// agent, and returns its output.
func (d *emulated) local(args ...string) string {
	d.t.Helper()
	var out lockedBuffer
	if code := Run(d.t.Context(), append(args, "--state", d.state), IO{Out: &out, Err: &out}); code != 0 {
		d.t.Fatalf("rampart-agent %s: exit %d: %s", strings.Join(args, " "), code, out.String())
	}
	return out.String()
}

func (d *emulated) measurements(osDir string) map[string]string {
	d.t.Helper()
	exe, _ := os.Executable()
	dig, err := measure.Digests(measure.Inputs{AgentBinary: exe, PolicyFile: filepath.Join(d.state, "policy.json"), OSBundle: osDir})
	if err != nil {
		d.t.Fatal(err)
	}
	out := map[string]string{}
	for k, v := range dig {
		out[k] = hex.EncodeToString(v)
	}
	return out
}

func (d *emulated) waitUntil(what string, cond func() bool) {
	d.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		select {
		case code := <-d.exits:
			d.t.Fatalf("%s: the agent exited with %d; log:\n%s", what, code, d.log.String())
		default:
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("%s: not within 2 minutes; agent log:\n%s", what, d.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestUpdatesEndToEnd drives the agent against a real service: applications v1 then v2, an OS
// bundle that is not healthy (the service refuses its measurements) and rolls back, then one
// that is released and commits.
func TestUpdatesEndToEnd(t *testing.T) {
	ctx := t.Context()
	srv := servertest.Start(t, servertest.AllowSoftwareRootOfTrust(true))
	admin := srv.Client(t, srv.AdminToken)
	prod, err := admin.CreateProduct(ctx, srv.TenantID, v1.ProductCreate{Name: "Lamp"})
	if err != nil {
		t.Fatal(err)
	}
	group, err := admin.CreateDeviceGroup(ctx, srv.TenantID, prod.ID, v1.DeviceGroupCreate{Name: "Field"})
	if err != nil {
		t.Fatal(err)
	}
	d := &emulated{t: t, srv: srv, state: t.TempDir(), exits: make(chan int, 1), log: &lockedBuffer{}}

	// Manufacture: the OS the device ships with, an enrollment record, a claim, and the release
	// the tenant allows.
	shipped := filepath.Join(d.state, "os", "active")
	if err := os.MkdirAll(shipped, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(shipped, "VERSION"), []byte("os 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	recFile := filepath.Join(t.TempDir(), "device.json")
	if code := Run(ctx, []string{"enroll", "--rot", "software", "--state", d.state, "--out", recFile}, IO{Out: d.log, Err: d.log}); code != 0 {
		t.Fatalf("enroll: %d\n%s", code, d.log.String())
	}
	recJSON, _ := os.ReadFile(recFile)
	rec, err := enrollment.Parse(recJSON)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := admin.ClaimDevice(ctx, srv.TenantID, v1.DeviceClaim{Enrollment: recJSON, DeviceGroupID: group.ID}); err != nil {
		t.Fatal(err)
	}
	release := func(version string, m map[string]string) {
		t.Helper()
		if _, err := admin.CreateOSRelease(ctx, srv.TenantID, v1.OSReleaseCreate{Version: version, Measurements: m}); err != nil {
			t.Fatal(err)
		}
	}
	release("1.0.0", d.measurements(shipped))
	d.start()
	defer d.stop()

	upload := func(b imagepkgtest.Built) *v1.Image {
		t.Helper()
		img, err := admin.AddImage(ctx, srv.TenantID, bytes.NewReader(b.Bytes), -1, nil)
		if err != nil {
			t.Fatal(err)
		}
		return img
	}
	deploy := func(imgs ...*v1.Image) {
		t.Helper()
		var ids []string
		for _, i := range imgs {
			ids = append(ids, i.ID)
		}
		if _, err := admin.CreateDeployment(ctx, srv.TenantID, group.ID, v1.DeploymentCreate{ImageIDs: ids}); err != nil {
			t.Fatal(err)
		}
	}
	appsDirPath := filepath.Join(d.state, appsDir)
	current := func(component string) string {
		apps, err := appinstall.Read(appsDirPath)
		if err != nil {
			return ""
		}
		for _, a := range apps {
			if a.ComponentID == component {
				return a.Current.ID
			}
		}
		return ""
	}
	show := func() *v1.Device {
		t.Helper()
		dev, err := admin.GetDevice(ctx, srv.TenantID, rec.DeviceID)
		if err != nil {
			t.Fatal(err)
		}
		return dev
	}

	comp := imagepkgtest.NewUUID(t)
	// 1. Application v1, then v2: each is installed, runs in its sandbox, and the device
	// reports it running. 2. v3 crashes on start: the device rolls back to v2 by itself and
	// says so.
	bin := buildApp(t)
	appPkg := func(version string, args ...string) *v1.Image {
		return upload(imagepkgtest.Application(t, imagepkgtest.App{ComponentID: comp, Name: "lamp", Version: version,
			CmdArgs: args, Files: map[string]string{"bin/app": bin}}))
	}
	reported := func(imageID, state, lastError string) func() bool {
		return func() bool {
			s := show().Status
			if s == nil || len(s.Report.Images) != 1 {
				return false
			}
			im := s.Report.Images[0]
			return im.ImageID == imageID && im.State == state && strings.Contains(im.LastError, lastError)
		}
	}
	app1 := appPkg("1.0.0")
	deploy(app1)
	d.waitUntil("app v1 installed", func() bool { return current(comp) == app1.ID })
	d.waitUntil("app v1 reported running", reported(app1.ID, v1.ImageRunning, ""))
	// All of it went through the cloud broker, the agent's unprivileged network part, which
	// got the certificate attestation installed (the privilege split is on by default).
	if l := d.log.String(); !strings.Contains(l, "cloud broker: started") || !strings.Contains(l, "took the agent's certificate") ||
		!strings.Contains(l, fmt.Sprintf("uid=%d", cloudbroker.DefaultUID)) {
		t.Fatalf("the device did not reach the service through the cloud broker; log:\n%s", l)
	}
	app2 := appPkg("2.0.0")
	deploy(app2)
	d.waitUntil("app v2 installed", func() bool { return current(comp) == app2.ID })
	d.waitUntil("app v2 reported running", reported(app2.ID, v1.ImageRunning, ""))
	// 2.5.0 crashes in the field: it runs past its healthy second, so the device does not roll
	// it back, and then keeps crashing. It goes out as a rollout to our device first (a second
	// device, which never checks in, holds the next batch) that aborts on the crash rate
	// against 2.0.0's cohort: the crash reports abort it, and the group returns to 2.0.0.
	_ = srv.AttestedDevice(t, admin, srv.TenantID, group.ID)
	app25 := appPkg("2.5.0", "-crash-after", "2s")
	dep25, err := admin.CreateDeployment(ctx, srv.TenantID, group.ID, v1.DeploymentCreate{ImageIDs: []string{app25.ID},
		Rollout: &v1.RolloutPolicy{Batches: []v1.RolloutBatch{{Count: 1}}, SoakSeconds: 1, CanaryDeviceIDs: []string{rec.DeviceID},
			Abort: &v1.RolloutAbort{CrashRateRatio: 1, MinCrashes: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	d.waitUntil("the rollout of 2.5.0 aborted on its crash rate", func() bool {
		r, err := admin.GetRollout(ctx, srv.TenantID, dep25.ID)
		if err != nil {
			t.Fatal(err)
		}
		return r.State == "aborted" && strings.Contains(r.Reason, "crash rate") && r.NewCrashes >= 1
	})
	d.waitUntil("the device back on 2.0.0 through the revert deployment", func() bool {
		return current(comp) == app2.ID && reported(app2.ID, v1.ImageRunning, "")()
	})

	// v3 goes out as a health-gated rollout that aborts on install failures: the device's own
	// rollback of v3 is such a failure, so the rollout stops by itself and returns the group
	// to v2 (the "done when", with the real agent).
	app3 := appPkg("3.0.0", "-crash")
	dep3, err := admin.CreateDeployment(ctx, srv.TenantID, group.ID, v1.DeploymentCreate{ImageIDs: []string{app3.ID},
		Rollout: &v1.RolloutPolicy{Batches: []v1.RolloutBatch{{Count: 1}}, SoakSeconds: 600, CanaryDeviceIDs: []string{rec.DeviceID},
			Abort: &v1.RolloutAbort{InstallFailurePercent: 50, MinInstalls: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	d.waitUntil("app v3 rolled back to v2", reported(app2.ID, v1.ImageRunning, "rolled back from 3.0.0"))
	d.waitUntil("the rollout of v3 aborted by itself", func() bool {
		r, err := admin.GetRollout(ctx, srv.TenantID, dep3.ID)
		if err != nil {
			t.Fatal(err)
		}
		return r.State == "aborted" && r.Failed == 1 && r.RevertDeploymentID != ""
	})
	if r, _ := admin.GetRollout(ctx, srv.TenantID, dep3.ID); !strings.Contains(r.Reason, "install") {
		t.Fatalf("the rollout aborted for %q, want install failures", r.Reason)
	}
	if current(comp) != app2.ID {
		t.Fatalf("after the rollback the current image is %s, want v2 %s", current(comp), app2.ID)
	}
	// The crashes and the rollback are in the tenant's error reports, uploaded by the device.
	d.waitUntil("crashes and the rollback reported", func() bool {
		rs, err := admin.AllErrorReports(ctx, srv.TenantID, client.ErrorReportListOptions{ErrorReportFilter: client.ErrorReportFilter{DeviceID: rec.DeviceID}})
		if err != nil {
			t.Fatal(err)
		}
		crashes, rollbacks := 0, 0
		for _, r := range rs {
			switch {
			case r.Type == v1.EventAppCrash && r.ImageID == app3.ID && r.ExitCode != nil && *r.ExitCode == 1:
				crashes++
			case r.Type == v1.EventRollbackPerformed && r.ImageID == app3.ID:
				rollbacks++
			}
		}
		return crashes >= 3 && rollbacks == 1
	})

	// Locally, through the running agent: list, stop and start, sideload and delete.
	local := d.local
	appState := func(component string) string {
		var apps []localapi.App
		if err := json.Unmarshal([]byte(local("app", "list", "-o", "json")), &apps); err != nil {
			t.Fatal(err)
		}
		for _, a := range apps {
			if a.ComponentID == component {
				return a.Version + " " + a.State
			}
		}
		return ""
	}
	if got := appState(comp); got != "2.0.0 running" {
		t.Fatalf("app list: %q, want 2.0.0 running", got)
	}
	local("app", "stop", comp)
	if got := appState(comp); got != "2.0.0 stopped" {
		t.Fatalf("after app stop: %q", got)
	}
	local("app", "start", comp)
	d.waitUntil("app started again", func() bool { return appState(comp) == "2.0.0 running" })
	tool := imagepkgtest.Application(t, imagepkgtest.App{Name: "tool", Version: "0.1.0", Files: map[string]string{"bin/app": bin}})
	local("sideload", "deploy", tool.File(t, t.TempDir()))
	d.waitUntil("sideloaded app running", func() bool { return appState(tool.ComponentID) == "0.1.0 running" })
	local("sideload", "delete", tool.ComponentID)
	if got := appState(tool.ComponentID); got != "" {
		t.Fatalf("after sideload delete: %q", got)
	}

	// The emulated board, seen and driven from outside through the running agent.
	var st board.State
	if err := json.Unmarshal([]byte(local("board", "-o", "json")), &st); err != nil {
		t.Fatal(err)
	}
	if st.Board != "emulated" || len(st.LEDs) == 0 || len(st.Buttons) == 0 {
		t.Fatalf("board state %+v", st)
	}
	local("board", "press", st.Buttons[0].Name)
	if err := json.Unmarshal([]byte(local("board", "-o", "json")), &st); err != nil || !st.Buttons[0].Pending {
		t.Fatalf("after pressing %s: %+v %v", st.Buttons[0].Name, st.Buttons[0], err)
	}

	// An app granted the red LED turns it on through the applibs API in its sandbox.
	ledApp := imagepkgtest.Application(t, imagepkgtest.App{Name: "led", Version: "1.0.0", Files: map[string]string{"bin/app": bin},
		CmdArgs: []string{"-led"}, Capabilities: `{"Gpio":[8],"MutableStorage":{"SizeKB":64}}`})
	local("sideload", "deploy", ledApp.File(t, t.TempDir()))
	d.waitUntil("the red LED on", func() bool {
		var st board.State
		if err := json.Unmarshal([]byte(local("board", "-o", "json")), &st); err != nil {
			t.Fatal(err)
		}
		for _, l := range st.LEDs {
			if l.GPIO == 8 && l.On {
				return true
			}
		}
		return false
	})
	// The service sees the lit LED (the console's live board), and a button pressed through
	// the service reaches the device's board.
	d.waitUntil("the service sees the red LED on", func() bool {
		s := show().Status
		if s == nil || s.Report.Board == nil {
			return false
		}
		for _, l := range s.Report.Board.LEDs {
			if l.GPIO == 8 && l.On {
				return true
			}
		}
		return false
	})
	pressesOfA := func() int {
		var st board.State
		if err := json.Unmarshal([]byte(local("board", "-o", "json")), &st); err != nil {
			t.Fatal(err)
		}
		for _, b := range st.Buttons {
			if b.Name == "BUTTON_A" {
				return b.Presses
			}
		}
		return -1
	}
	before := pressesOfA()
	if err := admin.PressButton(ctx, srv.TenantID, rec.DeviceID, "BUTTON_A"); err != nil {
		t.Fatal(err)
	}
	d.waitUntil("the press from the service on the board", func() bool { return pressesOfA() == before+1 })
	if err := admin.PressButton(ctx, srv.TenantID, rec.DeviceID, "BUTTON_Z"); err == nil || !strings.Contains(err.Error(), "no button") {
		t.Fatalf("pressing a button the board does not have: %v", err)
	}
	// Its storage quota, as `app show-quota` reads it from the running sandbox.
	var q localapi.Quota
	if err := json.Unmarshal([]byte(local("app", "show-quota", ledApp.ComponentID, "-o", "json")), &q); err != nil ||
		q.QuotaKB != 64 || q.UsedKB < 0 || q.UsedKB > 64 {
		t.Fatalf("show-quota: %+v %v", q, err)
	}
	local("sideload", "delete", ledApp.ComponentID)

	// An app whose manifest asks for DeviceAuthentication gets its own certificate: installing
	// it makes the agent attest again with a key for it.
	authApp := imagepkgtest.Application(t, imagepkgtest.App{Name: "auth", Version: "1.0.0", Files: map[string]string{"bin/app": bin},
		Capabilities: `{"DeviceAuthentication":"` + srv.TenantID + `"}`})
	local("sideload", "deploy", authApp.File(t, t.TempDir()))
	d.waitUntil("the app's certificate", func() bool {
		_, err := os.Stat(filepath.Join(d.state, "certs", "app-"+authApp.ComponentID+".crt"))
		return err == nil
	})
	local("sideload", "delete", authApp.ComponentID)

	// The event queue, through the running agent (uploaded events have left it).
	var evs localapi.Events
	if err := json.Unmarshal([]byte(local("events", "list", "-o", "json")), &evs); err != nil || evs.Events == nil {
		t.Fatalf("events list: %+v %v", evs, err)
	}

	// 2. OS 2, which the tenant never released: its trial boot fails attestation, so it is not
	// healthy, and the device rolls back to OS 1 by itself.
	osComp := imagepkgtest.NewUUID(t)
	os2 := upload(imagepkgtest.OS(t, osComp, "2.0.0", map[string]string{"VERSION": "os 2\n"}, nil))
	deploy(app2, os2)
	d.reboot() // into the trial of slot b
	d.reboot() // the trial was refused: back into slot a
	boot, err := bootctl.OpenDir(filepath.Join(d.state, "boot"))
	if err != nil {
		t.Fatal(err)
	}
	d.waitUntil("OS 2 rolled back", func() bool {
		st, err := osupdate.ReadStatus(filepath.Join(d.state, osUpdateDir))
		return err == nil && st.State == osupdate.RolledBack
	})
	if st, _ := osupdate.ReadStatus(filepath.Join(d.state, osUpdateDir)); st.Phase != osupdate.PhaseHealth {
		t.Fatalf("OS 2 rolled back in phase %q, want %q (%s)", st.Phase, osupdate.PhaseHealth, st.Reason)
	}
	if bs, err := boot.State(ctx); err != nil || bs.Active != bootctl.A || bs.Trial != "" {
		t.Fatalf("boot state after the rollback: %+v %v", bs, err)
	}
	d.waitUntil("the rollback reported", func() bool {
		s := show().Status
		return s != nil && s.Report.Update != nil && s.Report.Update.State == string(osupdate.RolledBack) &&
			s.Report.Update.Version == "2.0.0"
	})
	if current(comp) != app2.ID {
		t.Fatal("the OS rollback changed the application")
	}

	// 3. OS 3 comes through the Retail feed: packed with every golden measurement the device
	// makes, it becomes an OS release at upload; published to Retail, the group's director
	// offers it (the deployment names no OS image), the trial attests, and it commits.
	os3dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(os3dir, "VERSION"), []byte("os 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os3 := upload(imagepkgtest.OSSecure(t, osComp, "3.0.0", map[string]string{"VERSION": "os 3\n"}, d.measurements(os3dir), nil, 1))
	rels, err := admin.AllOSReleases(ctx, srv.TenantID)
	if err != nil {
		t.Fatal(err)
	}
	var rel3 *v1.OSRelease
	for i := range rels {
		if rels[i].ImageID == os3.ID {
			rel3 = &rels[i]
		}
	}
	if rel3 == nil || rel3.Feed != "Unpublished" || rel3.Version != "3.0.0" {
		t.Fatalf("the OS 3 upload registered no unpublished release: %+v", rels)
	}
	if _, err := admin.PublishOSRelease(ctx, srv.TenantID, rel3.ID, "Retail"); err != nil {
		t.Fatal(err)
	}
	// An app with SoftwareUpdateDeferral defers it when it is announced; the device says so
	// to the service and waits, until the app resumes it (button B pressed).
	deferApp := imagepkgtest.Application(t, imagepkgtest.App{Name: "defer", Version: "1.0.0", Files: map[string]string{"bin/app": bin},
		CmdArgs: []string{"-defer"}, Capabilities: `{"Gpio":[13],"SystemEventNotifications":true,"SoftwareUpdateDeferral":true}`})
	local("sideload", "deploy", deferApp.File(t, t.TempDir()))
	d.waitUntil("the deferring app running", func() bool { return appState(deferApp.ComponentID) == "1.0.0 running" })
	deploy(app2) // no OS image: the group follows its feed
	d.waitUntil("the OS update deferred, as the device reports", func() bool {
		s := show().Status
		return s != nil && len(s.Report.Deferred) == 1 && s.Report.Deferred[0].UpdateType == "System" &&
			s.Report.Deferred[0].Until.Sub(s.Report.Deferred[0].FirstSeen) > 9*time.Hour
	})
	if st, err := osupdate.ReadStatus(filepath.Join(d.state, osUpdateDir)); err != nil || st.State != osupdate.RolledBack {
		t.Fatalf("the deferred OS update started anyway: %+v %v", st, err)
	}
	local("board", "press", "BUTTON_B")
	d.reboot() // resumed: into the trial of slot b, which attests
	d.waitUntil("OS 3 committed", func() bool {
		st, err := osupdate.ReadStatus(filepath.Join(d.state, osUpdateDir))
		return err == nil && st.State == osupdate.Committed && st.Target != nil && st.Target.Version == "3.0.0"
	})
	if bs, err := boot.State(ctx); err != nil || bs.Active != bootctl.B || bs.Trial != "" || bs.Slots[bootctl.B].Version != "3.0.0" {
		t.Fatalf("boot state after OS 3: %+v %v", bs, err)
	}
	d.waitUntil("OS 3 reported, with the anti-rollback counter the service now holds", func() bool {
		dev := show()
		s := dev.Status
		return s != nil && s.Report.OS != nil && s.Report.OS.Active == "b" && s.Report.OS.CommittedVersion == "3.0.0" &&
			len(s.Report.Deferred) == 0 && s.Report.OS.SecurityCounter == 1 && dev.SecurityCounter == 1
	})
	local("sideload", "delete", deferApp.ComponentID)

	// 4. OS 3 has security version 1, so committing it advanced the root of trust's
	// anti-rollback counter (the software root's sealed file here). A newer release whose
	// security version is 0 is refused before download, and the slots stay as they are.
	sw, err := softrot.Open(d.state, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := sw.ReadCounter(ctx); err != nil || c != 1 {
		t.Fatalf("the root of trust's anti-rollback counter is %d, %v; want 1", c, err)
	}
	os4dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(os4dir, "VERSION"), []byte("os 4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os4 := upload(imagepkgtest.OSMeasured(t, osComp, "4.0.0", map[string]string{"VERSION": "os 4\n"}, d.measurements(os4dir), nil))
	deploy(app2, os4)
	d.waitUntil("OS 4 refused by the anti-rollback counter", func() bool {
		s := show().Status
		return s != nil && s.Report.Update != nil && s.Report.Update.Version == "4.0.0" && s.Report.Update.Phase == osupdate.PhaseCheck &&
			strings.Contains(s.Report.Update.Reason, "security version 0, below the anti-rollback counter 1")
	})
	if bs, err := boot.State(ctx); err != nil || bs.Active != bootctl.B || bs.Slots[bootctl.A].Version == "4.0.0" {
		t.Fatalf("boot state after the refused OS 4: %+v %v", bs, err)
	}
}

// buildApp builds testdata/app as a static binary and returns its bytes.
func buildApp(t *testing.T) string {
	t.Helper()
	return buildProgram(t, "app")
}

// buildProgram builds testdata/NAME as a static binary and returns its bytes.
func buildProgram(t *testing.T, name string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), name)
	cmd := exec.Command("go", "build", "-o", out, "./testdata/"+name)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the test app: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
