package netpolicy

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"net/netip"
)

// LinkPrefix starts the name of every host end of an application's link ("rp-" and the slot
// in hex, at most 9 bytes, well within the kernel's 15). The agent owns every interface whose
// name starts with it: links left by an agent that crashed are deleted when it starts again.
const LinkPrefix = "rp-"

// AppLink is the name of an application's end of its link, inside its network namespace.
const AppLink = "eth0"

// slot is an application's place in the pool: the /31 at Pool + 2×slot, whose first address
// is the host end and second the application's.
type slot uint32

// slots is how many /31s the pool holds.
func slots(pool netip.Prefix) uint32 {
	return 1 << (31 - pool.Bits())
}

// addrs returns the host end's and the application's address of s.
func (s slot) addrs(pool netip.Prefix) (host, app netip.Addr) {
	b := pool.Masked().Addr().As4()
	base := binary.BigEndian.Uint32(b[:]) + 2*uint32(s)
	binary.BigEndian.PutUint32(b[:], base)
	host = netip.AddrFrom4(b)
	return host, host.Next()
}

// link is the name of the host end of s.
func (s slot) link() string { return fmt.Sprintf("%s%x", LinkPrefix, uint32(s)) }

// allocate gives app the slot its name hashes to (FNV-1a, modulo the pool's size) or, if an
// application already holds that one, the next free one after it, wrapping around. An
// application therefore keeps its address across restarts unless two names collide, and two
// running applications never share one. used holds the slots taken.
func allocate(pool netip.Prefix, app string, used map[slot]string) (slot, error) {
	n := slots(pool)
	h := fnv.New32a()
	h.Write([]byte(app))
	start := h.Sum32() % n
	for i := uint32(0); i < n; i++ {
		s := slot((start + i) % n)
		if _, taken := used[s]; !taken {
			return s, nil
		}
	}
	return 0, fmt.Errorf("the address pool %s is full (%d applications)", pool, n)
}
