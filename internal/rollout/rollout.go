// Package rollout decides health-gated rollouts: it validates a rollout policy, splits a
// group's devices into batches, and, from the health of the devices released so far, decides
// what happens next: release more devices (within the rate cap), advance to the next batch,
// complete, or abort. It is pure logic: the caller (internal/manage) gathers the health from the
// store, applies the decision and records it.
//
// Trust: the health it judges comes from devices (check-in reports and error reports) and is
// untrusted; a device can at most make a rollout of its own group look healthier or sicker.
package rollout

import (
	"fmt"
	"math"
	"time"

	v1 "github.com/rampart-iot/rampart/api/v1"
)

// Validate names every problem of a policy.
func Validate(p v1.RolloutPolicy) []v1.ErrorDetail {
	var d []v1.ErrorDetail
	bad := func(field, format string, args ...any) {
		d = append(d, v1.ErrorDetail{Field: "rollout." + field, Message: fmt.Sprintf(format, args...)})
	}
	if len(p.Batches) > v1.MaxRolloutBatches {
		bad("batches", "lists %d batches; at most %d", len(p.Batches), v1.MaxRolloutBatches)
	}
	for i, b := range p.Batches {
		f := fmt.Sprintf("batches[%d]", i)
		switch {
		case b.Count != 0 && b.Percent != 0:
			bad(f, "give count or percent, not both")
		case b.Count < 0 || b.Count > 1_000_000:
			bad(f+".count", "must be 1 to 1000000, not %d", b.Count)
		case b.Percent < 0 || b.Percent > 100 || math.IsNaN(b.Percent):
			bad(f+".percent", "must be above 0 and at most 100, not %v", b.Percent)
		case b.Count == 0 && b.Percent == 0:
			bad(f, "give count or percent")
		}
	}
	if len(p.CanaryDeviceIDs) > v1.MaxCanaryDevices {
		bad("canary_device_ids", "lists %d devices; at most %d", len(p.CanaryDeviceIDs), v1.MaxCanaryDevices)
	} else {
		seen := map[string]bool{}
		for i, id := range p.CanaryDeviceIDs {
			f := fmt.Sprintf("canary_device_ids[%d]", i)
			switch {
			case !isDeviceID(id):
				bad(f, "is not a device ID (64 lowercase hexadecimal characters)")
			case seen[id]:
				bad(f, "device %s is listed twice", id)
			}
			seen[id] = true
		}
	}
	if p.MaxDevicesPerMinute < 0 || p.MaxDevicesPerMinute > 1_000_000 {
		bad("max_devices_per_minute", "must be 0 (no cap) to 1000000, not %d", p.MaxDevicesPerMinute)
	}
	percent := func(f string, v float64) {
		if v < 0 || v > 100 || math.IsNaN(v) {
			bad(f, "must be 0 to 100, not %v", v)
		}
	}
	percent("success_threshold_percent", p.SuccessThresholdPercent)
	if p.SoakSeconds < 0 || p.SoakSeconds > 90*24*3600 {
		bad("soak_seconds", "must be 0 to 90 days, not %d", p.SoakSeconds)
	}
	if a := p.Abort; a != nil {
		percent("abort.install_failure_percent", a.InstallFailurePercent)
		if a.MinInstalls < 0 {
			bad("abort.min_installs", "must not be negative")
		}
		if a.CrashRateRatio < 0 || a.CrashRateRatio > 1000 || math.IsNaN(a.CrashRateRatio) {
			bad("abort.crash_rate_ratio", "must be 0 (off) to 1000, not %v", a.CrashRateRatio)
		}
		if a.MinDeviceHours < 0 || math.IsNaN(a.MinDeviceHours) || math.IsInf(a.MinDeviceHours, 0) {
			bad("abort.min_device_hours", "must not be negative")
		}
		if a.MinCrashes < 0 {
			bad("abort.min_crashes", "must not be negative")
		}
	}
	return d
}

// Plan splits n devices into the policy's batches: each listed batch's size (a percent of n
// rounded up, at least 1), as long as devices are left, then one last batch of the rest. The
// sizes sum to n; n = 0 makes no batch.
func Plan(p v1.RolloutPolicy, n int) []int {
	var sizes []int
	left := n
	for _, b := range p.Batches {
		if left == 0 {
			break
		}
		k := b.Count
		if b.Percent > 0 {
			k = int(math.Ceil(b.Percent * float64(n) / 100))
		}
		k = max(1, min(k, left))
		sizes = append(sizes, k)
		left -= k
	}
	if left > 0 {
		sizes = append(sizes, left)
	}
	return sizes
}

func isDeviceID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// Order puts the group's devices in release order: the canaries first, as the policy lists
// them, then the others as given. It fails naming a canary that is not among devices.
func Order(p v1.RolloutPolicy, devices []string) ([]string, []v1.ErrorDetail) {
	in := make(map[string]bool, len(devices))
	for _, d := range devices {
		in[d] = true
	}
	var bad []v1.ErrorDetail
	first := make(map[string]bool, len(p.CanaryDeviceIDs))
	out := make([]string, 0, len(devices))
	for i, c := range p.CanaryDeviceIDs {
		if !in[c] {
			bad = append(bad, v1.ErrorDetail{Field: fmt.Sprintf("rollout.canary_device_ids[%d]", i),
				Message: fmt.Sprintf("device %s is not in the deployment's group", c)})
			continue
		}
		first[c] = true
		out = append(out, c)
	}
	for _, d := range devices {
		if !first[d] {
			out = append(out, d)
		}
	}
	return out, bad
}

// Device is one device of a rollout and what it reported since its release.
type Device struct {
	ID         string
	Batch      int       // from 0
	ReleasedAt time.Time // zero while held on the previous deployment
	Installed  bool      // reports every image of the deployment installed
	Failed     bool      // reported an install failure or rollback since its release
}

// Released reports whether the device was released to the new deployment.
func (d Device) Released() bool { return !d.ReleasedAt.IsZero() }

// Crashes are AppCrash counts and the device-hours they were counted over.
type Crashes struct {
	New, Previous           int     // crashes of devices on the new, and on the previous, deployment
	NewHours, PreviousHours float64 // device-hours of each
}

// Input is what Evaluate judges.
type Input struct {
	Policy         v1.RolloutPolicy
	Now            time.Time
	Started        time.Time // when the rollout began
	Batch          int       // the current batch, from 0
	BatchStartedAt time.Time
	Devices        []Device
	Crashes        Crashes
}

// Decision is what to do next. At most one of Advance, Complete and Abort is set.
type Decision struct {
	Release  []string // IDs of the current batch's devices to release now
	Advance  bool     // the current batch is done: start the next one
	Complete bool     // the last batch is done
	Abort    string   // non-empty: abort, for this reason
	Wait     string   // why nothing more happens now, for status
}

// Evaluate decides the next step of a running rollout.
func Evaluate(in Input) Decision {
	if r := abortReason(in); r != "" {
		return Decision{Abort: r}
	}
	sizes := map[int]int{}
	for _, d := range in.Devices {
		sizes[d.Batch]++
	}
	var batch []Device
	released, lastRelease := 0, time.Time{}
	for _, d := range in.Devices {
		if d.Batch != in.Batch {
			continue
		}
		batch = append(batch, d)
		if d.Released() {
			released++
			if d.ReleasedAt.After(lastRelease) {
				lastRelease = d.ReleasedAt
			}
		}
	}
	last := true
	for b := range sizes {
		if b > in.Batch {
			last = false
		}
	}
	var dec Decision
	if released < len(batch) {
		allowed := len(batch)
		if r := in.Policy.MaxDevicesPerMinute; r > 0 {
			minutes := max(0, int(in.Now.Sub(in.BatchStartedAt)/time.Minute))
			allowed = min(allowed, r*(minutes+1))
		}
		for _, d := range batch {
			if released >= allowed {
				break
			}
			if !d.Released() {
				dec.Release = append(dec.Release, d.ID)
				released++
			}
		}
		if released < len(batch) {
			dec.Wait = fmt.Sprintf("rate cap: %d of %d devices of the batch released", released, len(batch))
		} else {
			dec.Wait = "soaking the batch just released"
		}
		return dec
	}
	if lastRelease.IsZero() { // an empty batch soaks from its start
		lastRelease = in.BatchStartedAt
	}
	if soak := time.Duration(in.Policy.SoakSeconds) * time.Second; in.Now.Sub(lastRelease) < soak {
		dec.Wait = fmt.Sprintf("soaking until %s", lastRelease.Add(soak).UTC().Format(time.RFC3339))
		return dec
	}
	ok := 0
	for _, d := range batch {
		if d.Installed && !d.Failed {
			ok++
		}
	}
	threshold := in.Policy.SuccessThresholdPercent
	if threshold == 0 {
		threshold = 100
	}
	if float64(ok)*100 < threshold*float64(len(batch)) {
		dec.Wait = fmt.Sprintf("%d of %d devices of the batch report the images installed; %v%% must", ok, len(batch), threshold)
		return dec
	}
	if last {
		dec.Complete = true
	} else {
		dec.Advance = true
	}
	return dec
}

// abortReason is why the rollout must abort, or "".
func abortReason(in Input) string {
	a := in.Policy.Abort
	if a == nil {
		return ""
	}
	if a.InstallFailurePercent > 0 {
		finished, failed := 0, 0
		for _, d := range in.Devices {
			if !d.Released() {
				continue
			}
			if d.Failed {
				failed++
				finished++
			} else if d.Installed {
				finished++
			}
		}
		if finished >= max(1, a.MinInstalls) && float64(failed)*100 >= a.InstallFailurePercent*float64(finished) {
			return fmt.Sprintf("install failures: %d of %d finished installs failed (threshold %v%%)", failed, finished, a.InstallFailurePercent)
		}
	}
	c := in.Crashes
	if a.CrashRateRatio > 0 && in.Now.Sub(in.Started) >= time.Duration(in.Policy.SoakSeconds)*time.Second &&
		c.NewHours > 0 && c.NewHours >= a.MinDeviceHours && c.New >= max(1, a.MinCrashes) {
		newRate := float64(c.New) / c.NewHours
		if c.Previous == 0 {
			return fmt.Sprintf("crash rate: %d crashes in %.1f device-hours on the new release, none on the previous one", c.New, c.NewHours)
		}
		if c.PreviousHours > 0 {
			prevRate := float64(c.Previous) / c.PreviousHours
			if newRate > a.CrashRateRatio*prevRate {
				return fmt.Sprintf("crash rate: %.3f crashes per device-hour on the new release, %.3f on the previous one (limit %v times)", newRate, prevRate, a.CrashRateRatio)
			}
		}
	}
	return ""
}
