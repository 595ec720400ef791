// Package buildinfo says which version of Rampart a binary is: the version set at link time,
// else the module version and VCS revision the Go toolchain recorded.
package buildinfo

import "runtime/debug"

// buildVersion may be set at link time: -ldflags "-X github.com/rampart-iot/rampart/internal/buildinfo.buildVersion=v1.2.3".
var buildVersion string

// Version returns the version of this binary: the link-time version, else the module version
// and VCS revision that the Go toolchain recorded.
func Version() string {
	if buildVersion != "" {
		return buildVersion
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if v == "(devel)" && rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		v = "devel-" + rev + dirty
	}
	return v
}
