//go:build !linux

package measure

import "os"

// dropCached does nothing where the kernel has no posix_fadvise (see cache_linux.go).
func dropCached(*os.File) {}
