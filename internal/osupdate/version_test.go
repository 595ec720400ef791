package osupdate

import "testing"

func TestCompareVersions(t *testing.T) {
	// semver.org's precedence example, in order.
	ordered := []string{"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
		"1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.1.0", "2.0.0", "10.0.0", "18446744073709551615.0.0"}
	for i := range ordered {
		for j := range ordered {
			got, err := compareVersions(ordered[i], ordered[j])
			want := cmpUint(uint64(i), uint64(j))
			if err != nil || got != want {
				t.Errorf("compare(%s, %s) = %d, %v; want %d", ordered[i], ordered[j], got, err, want)
			}
		}
	}
	if c, err := compareVersions("1.0.0+build.1", "1.0.0+build.2"); c != 0 || err != nil {
		t.Errorf("build metadata ordered: %d %v", c, err)
	}
	for _, bad := range []string{"", "1", "1.0", "1.0.0.0", "v1.0.0", "01.0.0", "1.0.0-01", "1.0.0-", "1.0.0+", "1.0.0-a..b",
		"1.0.0-a_b", "-1.0.0", "1.0.0 ", "18446744073709551616.0.0", string(make([]byte, 200))} {
		if _, err := parseVersion(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzCompareVersions(f *testing.F) {
	for _, s := range []string{"1.0.0", "1.0.0-rc.1+b", "0.0.0-0", "1.2.3-a.b.c.1"} {
		f.Add(s, "1.0.0")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		ab, errA := compareVersions(a, b)
		ba, errB := compareVersions(b, a)
		if (errA == nil) != (errB == nil) {
			t.Fatalf("errors differ: %v, %v", errA, errB)
		}
		if errA == nil && ab != -ba {
			t.Fatalf("compare(%q,%q)=%d but compare(%q,%q)=%d", a, b, ab, b, a, ba)
		}
		if _, err := parseVersion(a); err == nil {
			if c, _ := compareVersions(a, a); c != 0 {
				t.Fatalf("%q not equal to itself", a)
			}
		}
	})
}
