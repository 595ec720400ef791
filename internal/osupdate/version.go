package osupdate

import (
	"fmt"
	"strconv"
	"strings"
)

// maxVersionLen bounds a version string.
const maxVersionLen = 128

// version is a parsed semantic version (semver.org 2.0.0); build metadata is dropped, as it
// plays no part in ordering.
type version struct {
	core [3]uint64
	pre  []string
}

func parseVersion(s string) (version, error) {
	var v version
	if s == "" || len(s) > maxVersionLen {
		return v, fmt.Errorf("version %q is not a semantic version of 1 to %d characters", s, maxVersionLen)
	}
	rest, build, hasBuild := strings.Cut(s, "+")
	if hasBuild {
		if err := identifiers(build, false); err != nil {
			return v, fmt.Errorf("version %q: build metadata: %w", s, err)
		}
	}
	core, pre, hasPre := strings.Cut(rest, "-")
	if hasPre {
		if err := identifiers(pre, true); err != nil {
			return v, fmt.Errorf("version %q: pre-release: %w", s, err)
		}
		v.pre = strings.Split(pre, ".")
	}
	parts := strings.Split(core, ".")
	if len(parts) != 3 {
		return v, fmt.Errorf("version %q is not MAJOR.MINOR.PATCH", s)
	}
	for i, p := range parts {
		n, err := number(p)
		if err != nil {
			return v, fmt.Errorf("version %q: %w", s, err)
		}
		v.core[i] = n
	}
	return v, nil
}

// identifiers checks dot-separated identifiers of [0-9A-Za-z-]; numeric ones in a
// pre-release have no leading zeros.
func identifiers(s string, pre bool) error {
	for _, id := range strings.Split(s, ".") {
		if id == "" {
			return fmt.Errorf("empty identifier")
		}
		numeric := true
		for _, c := range id {
			switch {
			case c >= '0' && c <= '9':
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '-':
				numeric = false
			default:
				return fmt.Errorf("identifier %q has %q", id, c)
			}
		}
		if pre && numeric {
			if _, err := number(id); err != nil {
				return err
			}
		}
	}
	return nil
}

func number(s string) (uint64, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	if len(s) > 1 && s[0] == '0' {
		return 0, fmt.Errorf("%q has a leading zero", s)
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n, nil
}

// compareVersions orders two semantic versions by precedence: -1, 0 or +1.
func compareVersions(a, b string) (int, error) {
	va, err := parseVersion(a)
	if err != nil {
		return 0, err
	}
	vb, err := parseVersion(b)
	if err != nil {
		return 0, err
	}
	for i := range va.core {
		if c := cmpUint(va.core[i], vb.core[i]); c != 0 {
			return c, nil
		}
	}
	switch {
	case len(va.pre) == 0 && len(vb.pre) == 0:
		return 0, nil
	case len(va.pre) == 0:
		return 1, nil // a release follows its pre-releases
	case len(vb.pre) == 0:
		return -1, nil
	}
	for i := 0; i < len(va.pre) && i < len(vb.pre); i++ {
		x, y := va.pre[i], vb.pre[i]
		nx, ex := strconv.ParseUint(x, 10, 64)
		ny, ey := strconv.ParseUint(y, 10, 64)
		switch {
		case ex == nil && ey == nil:
			if c := cmpUint(nx, ny); c != 0 {
				return c, nil
			}
		case ex == nil:
			return -1, nil // numeric identifiers come first
		case ey == nil:
			return 1, nil
		default:
			if c := strings.Compare(x, y); c != 0 {
				return c, nil
			}
		}
	}
	return cmpUint(uint64(len(va.pre)), uint64(len(vb.pre))), nil
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
