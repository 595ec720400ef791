package console

import (
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"

	v1 "github.com/rampart-iot/rampart/api/v1"
)

// policyForm is the rollout part of the new-deployment form, as typed: it is shown again
// unchanged when the form has problems.
type policyForm struct {
	Enabled               bool
	Batches               string // "1, 10%, 25%": counts and percents
	MaxDevicesPerMinute   string
	SuccessThreshold      string
	SoakSeconds           string
	InstallFailurePercent string
	MinInstalls           string
	CrashRateRatio        string
	MinDeviceHours        string
	MinCrashes            string
	Canaries              string // device IDs, separated by commas or white space
}

// maxBatchesText bounds the batch list as typed (the policy's own bound is checked by
// rollout.Validate through the management plane).
const maxBatchesText = 2000

func readPolicyForm(f url.Values) policyForm {
	return policyForm{
		Enabled:               f.Get("rollout") == "on",
		Batches:               f.Get("batches"),
		MaxDevicesPerMinute:   f.Get("max_devices_per_minute"),
		SuccessThreshold:      f.Get("success_threshold_percent"),
		SoakSeconds:           f.Get("soak_seconds"),
		InstallFailurePercent: f.Get("install_failure_percent"),
		MinInstalls:           f.Get("min_installs"),
		CrashRateRatio:        f.Get("crash_rate_ratio"),
		MinDeviceHours:        f.Get("min_device_hours"),
		MinCrashes:            f.Get("min_crashes"),
		Canaries:              f.Get("canary_device_ids"),
	}
}

// policy turns the typed fields into a rollout policy (nil when the rollout is not asked
// for). It only checks that each field is a number of the right kind; the policy's own rules
// are rollout.Validate's, applied by the management plane. Problems name the fields as the
// API does (rollout.…).
func (pf policyForm) policy() (*v1.RolloutPolicy, []v1.ErrorDetail) {
	if !pf.Enabled {
		return nil, nil
	}
	var p v1.RolloutPolicy
	var d []v1.ErrorDetail
	bad := func(field, format string, args ...any) {
		d = append(d, v1.ErrorDetail{Field: "rollout." + field, Message: fmt.Sprintf(format, args...)})
	}
	var err error
	if p.Batches, err = parseBatches(pf.Batches); err != nil {
		bad("batches", "%v", err)
	}
	integer := func(field, s string) int64 {
		s = strings.TrimSpace(s)
		if s == "" {
			return 0
		}
		n, err := strconv.ParseInt(s, 10, 32)
		if err != nil {
			bad(field, "must be a whole number, not %q", s)
		}
		return n
	}
	decimal := func(field, s string) float64 {
		s = strings.TrimSpace(s)
		if s == "" {
			return 0
		}
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
			bad(field, "must be a number, not %q", s)
			return 0
		}
		return v
	}
	p.MaxDevicesPerMinute = int(integer("max_devices_per_minute", pf.MaxDevicesPerMinute))
	p.SuccessThresholdPercent = decimal("success_threshold_percent", pf.SuccessThreshold)
	p.SoakSeconds = integer("soak_seconds", pf.SoakSeconds)
	a := v1.RolloutAbort{
		InstallFailurePercent: decimal("abort.install_failure_percent", pf.InstallFailurePercent),
		MinInstalls:           int(integer("abort.min_installs", pf.MinInstalls)),
		CrashRateRatio:        decimal("abort.crash_rate_ratio", pf.CrashRateRatio),
		MinDeviceHours:        decimal("abort.min_device_hours", pf.MinDeviceHours),
		MinCrashes:            int(integer("abort.min_crashes", pf.MinCrashes)),
	}
	if a != (v1.RolloutAbort{}) {
		p.Abort = &a
	}
	if len(pf.Canaries) > maxCanariesText {
		bad("canary_device_ids", "is longer than %d characters", maxCanariesText)
	} else {
		if ids := strings.FieldsFunc(strings.ToLower(pf.Canaries), func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' }); len(ids) > 0 {
			p.CanaryDeviceIDs = ids
		}
	}
	return &p, d
}

// maxCanariesText bounds the canary list as typed (the form itself is at most 64 KiB).
const maxCanariesText = 60000

// parseBatches reads a comma-separated list of batch sizes: a count ("5") or a percent
// ("10%"). An empty list is one batch of every device.
func parseBatches(s string) ([]v1.RolloutBatch, error) {
	if len(s) > maxBatchesText {
		return nil, fmt.Errorf("is longer than %d characters", maxBatchesText)
	}
	var out []v1.RolloutBatch
	for i, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			if strings.TrimSpace(s) == "" {
				return nil, nil
			}
			return nil, fmt.Errorf("batch %d is empty: give a count (5) or a percent (10%%)", i+1)
		}
		if pct, ok := strings.CutSuffix(part, "%"); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(pct), 64)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("batch %d, %q, is not a percent such as 10%%", i+1, part)
			}
			out = append(out, v1.RolloutBatch{Percent: v})
			continue
		}
		n, err := strconv.ParseInt(part, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("batch %d, %q, is neither a count (5) nor a percent (10%%)", i+1, part)
		}
		out = append(out, v1.RolloutBatch{Count: int(n)})
	}
	return out, nil
}

// fieldInput names the form input a problem's field (as the API names it) belongs to, so the
// problem is shown next to it; "" for the form as a whole.
func fieldInput(field string) string {
	rest, ok := strings.CutPrefix(field, "rollout.")
	if !ok {
		switch {
		case field == "group", field == "device_group_id":
			return "group"
		case strings.HasPrefix(field, "image"):
			return "image"
		case field == "rollout":
			return "rollout"
		}
		return ""
	}
	rest = strings.TrimPrefix(rest, "abort.")
	if strings.HasPrefix(rest, "batches") {
		return "batches"
	}
	if strings.HasPrefix(rest, "canary_device_ids") {
		return "canary_device_ids"
	}
	return rest
}
