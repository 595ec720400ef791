package imagepkg

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"
)

// MaxVersionLength bounds an image version, in bytes.
const MaxVersionLength = 64

// Version is a semantic version (https://semver.org, 2.0.0): MAJOR.MINOR.PATCH, an optional
// pre-release after "-" and optional build metadata after "+".
type Version struct {
	Major, Minor, Patch uint64
	Prerelease          []string // dot-separated identifiers; empty for a release
	Build               string   // ignored when comparing
}

// ParseVersion parses a semantic version such as "1.4.2" or "2.0.0-rc.1+build.5".
func ParseVersion(s string) (Version, error) {
	var v Version
	if s == "" {
		return v, fmt.Errorf("empty version; want a semantic version such as 1.4.2")
	}
	if len(s) > MaxVersionLength {
		return v, fmt.Errorf("version is %d bytes; the limit is %d", len(s), MaxVersionLength)
	}
	bad := func(why string) (Version, error) {
		return Version{}, fmt.Errorf("%q is not a semantic version such as 1.4.2: %s", s, why)
	}
	rest, build, hasBuild := strings.Cut(s, "+")
	if hasBuild {
		if err := identifiers(build, false); err != "" {
			return bad("build metadata " + err)
		}
		v.Build = build
	}
	core, pre, hasPre := strings.Cut(rest, "-")
	if hasPre {
		if err := identifiers(pre, true); err != "" {
			return bad("pre-release " + err)
		}
		v.Prerelease = strings.Split(pre, ".")
	}
	parts := strings.Split(core, ".")
	if len(parts) != 3 {
		return bad("want MAJOR.MINOR.PATCH")
	}
	for i, p := range parts {
		n, err := numeric(p)
		if err != "" {
			return bad(err)
		}
		*[]*uint64{&v.Major, &v.Minor, &v.Patch}[i] = n
	}
	return v, nil
}

// numeric parses a numeric identifier: digits, no leading zero.
func numeric(p string) (uint64, string) {
	if p == "" {
		return 0, "empty number"
	}
	if len(p) > 1 && p[0] == '0' {
		return 0, "number with a leading zero"
	}
	n, err := strconv.ParseUint(p, 10, 64)
	if err != nil {
		return 0, "not a number: " + strconv.Quote(p)
	}
	return n, ""
}

// identifiers checks dot-separated identifiers of [0-9A-Za-z-]; pre-release numeric
// identifiers may not have leading zeros.
func identifiers(s string, pre bool) string {
	for _, id := range strings.Split(s, ".") {
		if id == "" {
			return "has an empty identifier"
		}
		digits := true
		for i := 0; i < len(id); i++ {
			c := id[i]
			switch {
			case '0' <= c && c <= '9':
			case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', c == '-':
				digits = false
			default:
				return "has a character other than letters, digits and hyphens"
			}
		}
		if pre && digits {
			if _, err := numeric(id); err != "" {
				return "has a " + err
			}
		}
	}
	return ""
}

// String returns v in its canonical form.
func (v Version) String() string {
	s := fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch)
	if len(v.Prerelease) > 0 {
		s += "-" + strings.Join(v.Prerelease, ".")
	}
	if v.Build != "" {
		s += "+" + v.Build
	}
	return s
}

// Compare returns -1, 0 or +1 as v is older than, as old as, or newer than w, by semantic
// version precedence (build metadata is ignored; a pre-release is older than its release).
func (v Version) Compare(w Version) int {
	if c := cmp.Compare(v.Major, w.Major); c != 0 {
		return c
	}
	if c := cmp.Compare(v.Minor, w.Minor); c != 0 {
		return c
	}
	if c := cmp.Compare(v.Patch, w.Patch); c != 0 {
		return c
	}
	switch {
	case len(v.Prerelease) == 0 && len(w.Prerelease) == 0:
		return 0
	case len(v.Prerelease) == 0:
		return 1
	case len(w.Prerelease) == 0:
		return -1
	}
	for i := 0; i < len(v.Prerelease) && i < len(w.Prerelease); i++ {
		a, b := v.Prerelease[i], w.Prerelease[i]
		an, aerr := numeric(a)
		bn, berr := numeric(b)
		var c int
		switch {
		case aerr == "" && berr == "":
			c = cmp.Compare(an, bn)
		case aerr == "":
			c = -1 // numeric identifiers sort before alphanumeric ones
		case berr == "":
			c = 1
		default:
			c = strings.Compare(a, b)
		}
		if c != 0 {
			return c
		}
	}
	return cmp.Compare(len(v.Prerelease), len(w.Prerelease))
}
