package sandbox

import (
	"github.com/landlock-lsm/go-landlock/landlock"
)

// landlockConfig is what the sandbox restricts with Landlock: every file-system right up to ABI
// 7 and the IPC scopes (signals and abstract UNIX sockets towards processes outside the app's
// domain). Network rights are left to the network namespace and the egress ruleset: handling
// them here with no rules would forbid even loopback TCP. BestEffort: on an older kernel the
// sandbox uses what the kernel has (nothing, without Landlock) and relies on the other layers.
// The app's denials are logged to the kernel's audit (ABI 7, when audit is on), where the agent
// reads them (internal/kernelaudit): by default the kernel logs only the denials of the
// program that restricted itself, and the init execs the app.
var landlockConfig = func() landlock.Config {
	c := landlock.V7
	c.HandledAccessNet = 0
	return c.EnableLoggingForSubprocesses().BestEffort()
}()

// restrictPaths limits the app, after pivot_root, to reading and executing its image (and
// reading /proc), reading and writing /tmp and its storage, and using its device nodes.
// Nothing else in the file system can be written, even where mounts or permissions would allow
// it (such as the app's own files in /proc).
func restrictPaths(cfg *initConfig) error {
	rw := []string{TmpPath}
	if cfg.Storage != "" {
		rw = append(rw, StoragePath)
	}
	return landlockConfig.Restrict(
		landlock.RODirs("/"),
		landlock.RWDirs(rw...),
		landlock.RWFiles(cfg.Devices...).WithIoctlDev(),
	)
}
