//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package blob

import "os"

// Without flock, temporary files are not locked: OpenDir removes every one, so only one
// process may use a directory at a time.

func lock(*os.File) error { return nil }

func tryLock(*os.File) (held bool, err error) { return false, nil }
