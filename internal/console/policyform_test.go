package console

import (
	"net/url"
	"reflect"
	"strings"
	"testing"

	v1 "github.com/rampart-iot/rampart/api/v1"
)

func TestParseBatches(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []v1.RolloutBatch
		err  string
	}{
		{"", nil, ""},
		{"  ", nil, ""},
		{"1", []v1.RolloutBatch{{Count: 1}}, ""},
		{"1, 10%, 25.5 %", []v1.RolloutBatch{{Count: 1}, {Percent: 10}, {Percent: 25.5}}, ""},
		{"-3", []v1.RolloutBatch{{Count: -3}}, ""}, // the range is rollout.Validate's to judge
		{"1,,2", nil, "batch 2 is empty"},
		{"ten", nil, `batch 1, "ten", is neither a count`},
		{"5, x%", nil, `batch 2, "x%", is not a percent`},
		{"NaN%", nil, "is not a percent"},
		{strings.Repeat("1,", 1001), nil, "longer than"},
	} {
		got, err := parseBatches(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("parseBatches(%q) error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("parseBatches(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

func TestPolicyForm(t *testing.T) {
	if p, d := readPolicyForm(url.Values{"batches": {"1"}}).policy(); p != nil || d != nil {
		t.Fatalf("without the rollout box: %v %v", p, d)
	}
	p, d := readPolicyForm(url.Values{"rollout": {"on"}, "batches": {"1, 50%"}, "max_devices_per_minute": {"10"},
		"success_threshold_percent": {"95"}, "soak_seconds": {"60"}, "crash_rate_ratio": {"2"}, "min_crashes": {"3"}}).policy()
	want := &v1.RolloutPolicy{Batches: []v1.RolloutBatch{{Count: 1}, {Percent: 50}}, MaxDevicesPerMinute: 10, SuccessThresholdPercent: 95,
		SoakSeconds: 60, Abort: &v1.RolloutAbort{CrashRateRatio: 2, MinCrashes: 3}}
	if d != nil || !reflect.DeepEqual(p, want) {
		t.Fatalf("policy = %+v %v, want %+v", p, d, want)
	}
	_, d = readPolicyForm(url.Values{"rollout": {"on"}, "batches": {"x"}, "soak_seconds": {"1.5"}, "min_device_hours": {"Inf"}}).policy()
	var fields []string
	for _, e := range d {
		fields = append(fields, e.Field)
	}
	if !reflect.DeepEqual(fields, []string{"rollout.batches", "rollout.soak_seconds", "rollout.abort.min_device_hours"}) {
		t.Errorf("problems %v", d)
	}
	for field, input := range map[string]string{"rollout.batches[2].percent": "batches", "rollout.abort.min_installs": "min_installs",
		"rollout.soak_seconds": "soak_seconds", "group": "group", "image_ids[0]": "image", "rollout": "rollout", "other": ""} {
		if got := fieldInput(field); got != input {
			t.Errorf("fieldInput(%q) = %q, want %q", field, got, input)
		}
	}
}

// FuzzParseBatches: any text parses or is refused with an error; what parses has at most one
// size per comma-separated part and each is a count or a percent, not both.
func FuzzParseBatches(f *testing.F) {
	for _, s := range []string{"1, 10%, 25%", "", ",", "1e3%", "-0", "99999999999", "5%%"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		bs, err := parseBatches(s)
		if err != nil {
			return
		}
		if len(bs) > strings.Count(s, ",")+1 {
			t.Fatalf("%d batches from %q", len(bs), s)
		}
		for _, b := range bs {
			if b.Count != 0 && b.Percent != 0 {
				t.Fatalf("both count and percent from %q: %+v", s, b)
			}
		}
	})
}
