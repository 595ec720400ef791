package kernelaudit

import "testing"

func TestJoinerAttributesByDomainRecord(t *testing.T) {
	j := newJoiner()
	a := Access{Domain: 7, Blockers: []string{"fs.write_file"}, Path: "/x"}
	if got := j.access(a); len(got) != 0 {
		t.Fatalf("a denial of an unknown domain came out before its domain record: %+v", got)
	}
	got := j.domain(Domain{ID: 7, Status: "allocated", Pid: 42, Exe: "/init"})
	if len(got) != 1 || got[0].Pid != 42 || got[0].Exe != "/init" || got[0].Path != "/x" {
		t.Fatalf("after the domain record: %+v", got)
	}
	// Later denials of the domain have no domain record of their own.
	got = j.access(Access{Domain: 7, Blockers: []string{"fs.read_file"}})
	if len(got) != 1 || got[0].Pid != 42 {
		t.Fatalf("a later denial: %+v", got)
	}
	// Once deallocated, the domain is forgotten.
	if got := j.domain(Domain{ID: 7, Status: "deallocated", Denials: 2}); len(got) != 0 {
		t.Fatalf("deallocation released %+v", got)
	}
	if got := j.access(Access{Domain: 7}); len(got) != 0 {
		t.Fatalf("a deallocated domain is still known: %+v", got)
	}
}

func TestJoinerBounds(t *testing.T) {
	j := newJoiner()
	var out []LandlockDenial
	for i := range maxPending + 5 {
		out = append(out, j.access(Access{Domain: uint64(1000 + i)})...)
	}
	if len(j.pending) != maxPending || len(out) != 5 {
		t.Fatalf("%d pending, %d pushed out; want %d and 5", len(j.pending), len(out), maxPending)
	}
	for i, d := range out {
		if d.Pid != 0 || d.Domain != uint64(1000+i) {
			t.Errorf("pushed out %d: %+v, want the oldest, unattributed", i, d)
		}
	}
	for i := range maxDomains + 10 {
		j.domain(Domain{ID: uint64(1 << 20 * (i + 1)), Status: "allocated", Pid: i + 1})
	}
	if len(j.domains) != maxDomains || len(j.order) != maxDomains {
		t.Fatalf("%d domains remembered (%d in order), want %d", len(j.domains), len(j.order), maxDomains)
	}
	if _, ok := j.domains[1<<20]; ok {
		t.Error("the oldest domain was not forgotten")
	}
}
