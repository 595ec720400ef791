package kernelaudit

// Bounds of the joiner's memory.
const (
	// maxDomains is how many domains' creators are remembered (the oldest go first); a
	// domain's record is logged once, so a forgotten domain's later denials have no Pid.
	maxDomains = 4096
	// maxPending is how many denials may wait for their domain's record, which the kernel
	// logs right after a domain's first denial.
	maxPending = 64
)

type creator struct {
	pid int
	exe string
}

// joiner joins access records with the domain records that describe their domains.
type joiner struct {
	domains map[uint64]creator
	order   []uint64 // domains in the order first seen, for eviction
	pending []Access // denials whose domain record has not come yet
}

func newJoiner() *joiner { return &joiner{domains: map[uint64]creator{}} }

// access takes an access record and returns the denials now complete: this one if its domain
// is known, and a pending one pushed out by it.
func (j *joiner) access(a Access) []LandlockDenial {
	if c, ok := j.domains[a.Domain]; ok {
		return []LandlockDenial{{Access: a, Pid: c.pid, Exe: c.exe}}
	}
	j.pending = append(j.pending, a)
	if len(j.pending) > maxPending {
		old := j.pending[0]
		j.pending = j.pending[1:]
		return []LandlockDenial{{Access: old}}
	}
	return nil
}

// domain takes a domain record and returns the pending denials it completes.
func (j *joiner) domain(d Domain) []LandlockDenial {
	var out []LandlockDenial
	switch d.Status {
	case "allocated":
		c := creator{pid: d.Pid, exe: d.Exe}
		if _, ok := j.domains[d.ID]; !ok {
			j.order = append(j.order, d.ID)
		}
		j.domains[d.ID] = c
		for len(j.order) > maxDomains {
			delete(j.domains, j.order[0])
			j.order = j.order[1:]
		}
		out = j.release(d.ID, c)
	case "deallocated":
		out = j.release(d.ID, creator{}) // none should be pending: the allocation came first
		if _, ok := j.domains[d.ID]; ok {
			delete(j.domains, d.ID)
			for i, id := range j.order {
				if id == d.ID {
					j.order = append(j.order[:i], j.order[i+1:]...)
					break
				}
			}
		}
	}
	return out
}

func (j *joiner) release(id uint64, c creator) []LandlockDenial {
	var out []LandlockDenial
	kept := j.pending[:0]
	for _, a := range j.pending {
		if a.Domain == id {
			out = append(out, LandlockDenial{Access: a, Pid: c.pid, Exe: c.exe})
		} else {
			kept = append(kept, a)
		}
	}
	j.pending = kept
	return out
}
