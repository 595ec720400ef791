package measure

import (
	"os"

	"golang.org/x/sys/unix"
)

// dropCached drops f's pages from the page cache once it is measured. A measurement reads
// each file once; without this the agent's own binary, read whole at every boot, would stay
// whole in the page cache, where every later page fault in the running agent maps the cached
// pages around it (fault-around) whether the agent uses them or not. Pages that are mapped,
// such as those the running agent has touched, stay; the kernel skips them.
func dropCached(f *os.File) { _ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED) }
