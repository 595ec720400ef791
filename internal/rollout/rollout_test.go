package rollout

import (
	"strings"
	"testing"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func devices(batches ...int) []Device {
	var ds []Device
	for b, n := range batches {
		for i := 0; i < n; i++ {
			ds = append(ds, Device{ID: string(rune('a'+len(ds))) + "", Batch: b})
		}
	}
	return ds
}

func release(ds []Device, batch int, at time.Time, installed bool) {
	for i := range ds {
		if ds[i].Batch == batch {
			ds[i].ReleasedAt, ds[i].Installed = at, installed
		}
	}
}

func TestPlan(t *testing.T) {
	for _, c := range []struct {
		p    v1.RolloutPolicy
		n    int
		want []int
	}{
		{v1.RolloutPolicy{Batches: []v1.RolloutBatch{{Count: 1}, {Percent: 50}}}, 10, []int{1, 5, 4}},
		{v1.RolloutPolicy{Batches: []v1.RolloutBatch{{Percent: 10}}}, 3, []int{1, 2}},
		{v1.RolloutPolicy{Batches: []v1.RolloutBatch{{Count: 5}, {Count: 5}}}, 3, []int{3}},
		{v1.RolloutPolicy{}, 4, []int{4}},
		{v1.RolloutPolicy{Batches: []v1.RolloutBatch{{Count: 1}}}, 0, nil},
	} {
		got := Plan(c.p, c.n)
		if len(got) != len(c.want) {
			t.Errorf("Plan(%+v, %d) = %v, want %v", c.p, c.n, got, c.want)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("Plan(%+v, %d) = %v, want %v", c.p, c.n, got, c.want)
			}
		}
	}
}

func TestValidate(t *testing.T) {
	if d := Validate(v1.RolloutPolicy{Batches: []v1.RolloutBatch{{Count: 1}, {Percent: 50}}, Abort: &v1.RolloutAbort{InstallFailurePercent: 10}}); len(d) != 0 {
		t.Errorf("a good policy: %v", d)
	}
	d := Validate(v1.RolloutPolicy{Batches: []v1.RolloutBatch{{}, {Count: 1, Percent: 1}, {Percent: 101}},
		MaxDevicesPerMinute: -1, SuccessThresholdPercent: 200, SoakSeconds: -1,
		Abort: &v1.RolloutAbort{InstallFailurePercent: -1, CrashRateRatio: -2, MinDeviceHours: -1}})
	var fields []string
	for _, x := range d {
		fields = append(fields, x.Field)
	}
	want := "rollout.batches[0] rollout.batches[1] rollout.batches[2].percent rollout.max_devices_per_minute rollout.success_threshold_percent rollout.soak_seconds rollout.abort.install_failure_percent rollout.abort.crash_rate_ratio rollout.abort.min_device_hours"
	if got := strings.Join(fields, " "); got != want {
		t.Errorf("problems %q\nwant %q", got, want)
	}
}

func TestReleasesWithinTheRateCap(t *testing.T) {
	ds := devices(5, 5)
	in := Input{Policy: v1.RolloutPolicy{MaxDevicesPerMinute: 2}, Now: t0, Started: t0, BatchStartedAt: t0, Devices: ds}
	if d := Evaluate(in); len(d.Release) != 2 || d.Advance {
		t.Fatalf("first minute: %+v, want 2 released", d)
	}
	ds[0].ReleasedAt, ds[1].ReleasedAt = t0, t0
	in.Now = t0.Add(90 * time.Second)
	if d := Evaluate(in); len(d.Release) != 2 || d.Release[0] != ds[2].ID {
		t.Fatalf("second minute: %+v, want 2 more", d)
	}
	in.Now = t0.Add(10 * time.Minute)
	if d := Evaluate(in); len(d.Release) != 3 {
		t.Fatalf("later: %+v, want the 3 left, never the next batch's", d)
	}
}

func TestAdvancesOnlyWhenHealthyAndSoaked(t *testing.T) {
	ds := devices(2, 3)
	p := v1.RolloutPolicy{SoakSeconds: 600, SuccessThresholdPercent: 50}
	release(ds, 0, t0, false)
	in := Input{Policy: p, Now: t0.Add(time.Hour), Started: t0, BatchStartedAt: t0, Devices: ds}
	if d := Evaluate(in); d.Advance || !strings.Contains(d.Wait, "0 of 2") {
		t.Fatalf("nothing installed: %+v, want hold", d)
	}
	ds[0].Installed = true
	in.Now = t0.Add(5 * time.Minute)
	if d := Evaluate(in); d.Advance || !strings.Contains(d.Wait, "soaking") {
		t.Fatalf("before the soak: %+v, want hold", d)
	}
	in.Now = t0.Add(10 * time.Minute)
	if d := Evaluate(in); !d.Advance {
		t.Fatalf("1 of 2 installed at 50%%, soaked: %+v, want advance", d)
	}
	release(ds, 1, t0.Add(10*time.Minute), true)
	in.Batch, in.Now = 1, t0.Add(time.Hour)
	if d := Evaluate(in); !d.Complete {
		t.Fatalf("last batch healthy: %+v, want complete", d)
	}
}

func TestAbortsOnInstallFailures(t *testing.T) {
	ds := devices(4, 4)
	release(ds, 0, t0, true)
	ds[0].Failed = true
	p := v1.RolloutPolicy{Abort: &v1.RolloutAbort{InstallFailurePercent: 50, MinInstalls: 3}}
	in := Input{Policy: p, Now: t0.Add(time.Hour), Started: t0, BatchStartedAt: t0, Devices: ds}
	if d := Evaluate(in); d.Abort != "" {
		t.Fatalf("1 of 4 failed: %+v, want no abort", d)
	}
	ds[1].Failed = true
	if d := Evaluate(in); !strings.Contains(d.Abort, "2 of 4 finished installs failed") {
		t.Fatalf("2 of 4 failed: %+v, want abort", d)
	}
	// Below the minimum number of finished installs, no abort.
	ds2 := devices(4)
	ds2[0].ReleasedAt, ds2[0].Failed = t0, true
	ds2[1].ReleasedAt = t0
	in.Devices = ds2
	if d := Evaluate(in); d.Abort != "" {
		t.Fatalf("1 finished of min 3: %+v, want no abort", d)
	}
}

func TestAbortsOnCrashRegressionOnlyPastSampleAndSoak(t *testing.T) {
	ds := devices(2, 2)
	release(ds, 0, t0, true)
	p := v1.RolloutPolicy{SoakSeconds: 3600, Abort: &v1.RolloutAbort{CrashRateRatio: 2, MinDeviceHours: 2, MinCrashes: 3}}
	in := Input{Policy: p, Started: t0, BatchStartedAt: t0, Devices: ds}
	for _, c := range []struct {
		name  string
		now   time.Duration
		c     Crashes
		abort bool
	}{
		{"before the soak", 30 * time.Minute, Crashes{New: 9, NewHours: 3, Previous: 1, PreviousHours: 3}, false},
		{"below the device-hours", 2 * time.Hour, Crashes{New: 9, NewHours: 1, Previous: 1, PreviousHours: 3}, false},
		{"below the crash count", 2 * time.Hour, Crashes{New: 2, NewHours: 4, Previous: 0, PreviousHours: 4}, false},
		{"within the ratio", 2 * time.Hour, Crashes{New: 4, NewHours: 4, Previous: 2, PreviousHours: 4}, false},
		{"past the ratio", 2 * time.Hour, Crashes{New: 5, NewHours: 4, Previous: 2, PreviousHours: 4}, true},
		{"none before", 2 * time.Hour, Crashes{New: 3, NewHours: 4, Previous: 0, PreviousHours: 4}, true},
	} {
		in.Now, in.Crashes = t0.Add(c.now), c.c
		d := Evaluate(in)
		if got := strings.HasPrefix(d.Abort, "crash rate"); got != c.abort {
			t.Errorf("%s: %+v, want abort %v", c.name, d, c.abort)
		}
	}
}
