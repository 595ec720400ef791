package residency

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

const sampleMaps = `00400000-00a38000 r-xp 00000000 fe:00 1234567                            /usr/bin/rampart-agent
00a38000-010ee000 r--p 00638000 fe:00 1234567                            /usr/bin/rampart-agent
010ee000-0115a000 rw-p 00cee000 fe:00 1234567                            /usr/bin/rampart-agent
0115a000-0319e000 rw-p 00000000 00:00 0 
00d00000-00d01000 r--p 00000000 fe:01 1234567                            /other/fs/same-inode
7f6d6c02b000-7f6d6c09d000 rw-p 00000000 00:00 0 
7ffe3a1f6000-7ffe3a217000 rw-p 00000000 00:00 0                          [stack]
7ffe3a3c1000-7ffe3a3c5000 r--p 00000000 00:00 0                          [vvar]
`

func TestMappings(t *testing.T) {
	got, err := Mappings([]byte(sampleMaps), 0x400100) // code in the executable's text
	if err != nil {
		t.Fatal(err)
	}
	want := []Span{{0x400000, 0xa38000}, {0xa38000, 0x10ee000}, {0x10ee000, 0x115a000}}
	if len(got) != len(want) {
		t.Fatalf("got %x, want %x", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("span %d: got %x, want %x", i, got[i], want[i])
		}
	}
	// The same inode number on another device is another file.
	got, err = Mappings([]byte(sampleMaps), 0xd00010)
	if err != nil || len(got) != 1 || got[0] != (Span{0xd00000, 0xd01000}) {
		t.Fatalf("other device: got %x, %v", got, err)
	}
	// Code outside every mapping, or in an anonymous one, names no file.
	for _, pc := range []uintptr{0x1000, 0x115a100} {
		if got, err := Mappings([]byte(sampleMaps), pc); err == nil {
			t.Errorf("pc %#x: got %x, want an error", pc, got)
		}
	}
}

func TestMappingsRejectsMalformedLines(t *testing.T) {
	for _, line := range []string{
		"00400000-00a38000 r-xp 00000000 fe:00\n",                // no inode
		"00400000-00a38000 r-xp 00000000 fe:00 x /bin/a\n",       // inode not a number
		"00400000-00a38000 r-xp 00000000 fe00 1234567 /bin/a\n",  // device without a colon
		"00400000 r-xp 00000000 fe:00 1234567 /bin/a\n",          // no range
		"00a38000-00400000 r-xp 00000000 fe:00 1234567 /bin/a\n", // empty range
		"0040000g-00a38000 r-xp 00000000 fe:00 1234567 /bin/a\n", // not hexadecimal
	} {
		if got, err := Mappings([]byte(line), 0x400100); err == nil {
			t.Errorf("%q: got %x, want an error", line, got)
		}
	}
}

func TestParseDevMatchesStat(t *testing.T) {
	for _, c := range []struct{ major, minor uint32 }{{0, 0}, {8, 1}, {0xfe, 0}, {259, 3}, {0x123, 0x45678}} {
		s := strconv.FormatUint(uint64(c.major), 16) + ":" + strconv.FormatUint(uint64(c.minor), 16)
		got, err := parseDev([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		if want := unix.Mkdev(c.major, c.minor); got != want {
			t.Errorf("%s: got %#x, want %#x", s, got, want)
		}
	}
}

// TestInitAdvisedTheExecutable checks, in this test binary, that the package's init marked
// every mapping of the executable random-read ("rr" in /proc/self/smaps' VmFlags) and no
// other mapping.
func TestInitAdvisedTheExecutable(t *testing.T) {
	n, err := Result()
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := syscall.Getenv(Off); v == "1" {
		t.Skipf("%s=1 in this test's environment: the init did not advise", Off)
	}
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	exe = strings.TrimSuffix(exe, " (deleted)")
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	var mapped, marked int
	var name string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":") {
			name = ""
			if len(f) >= 6 {
				name = strings.TrimSuffix(strings.Join(f[5:], " "), " (deleted)")
			}
			continue
		}
		if len(f) == 0 || f[0] != "VmFlags:" {
			continue
		}
		rr := false
		for _, fl := range f[1:] {
			rr = rr || fl == "rr"
		}
		switch {
		case name == exe:
			mapped++
			if rr {
				marked++
			}
		case rr:
			t.Errorf("mapping of %q is marked random-read too", name)
		}
	}
	if mapped == 0 || marked != mapped {
		t.Fatalf("%d of the executable's %d mappings are marked random-read (the init advised %d bytes)", marked, mapped, n)
	}
	if n == 0 {
		t.Fatal("the init reports no bytes advised")
	}
}

func TestOffLeavesTheKernelsReadAround(t *testing.T) {
	t.Setenv(Off, "1")
	if n, err := Advise(); n != 0 || err != nil {
		t.Fatalf("with %s=1: advised %d bytes, %v", Off, n, err)
	}
}

func FuzzMappings(f *testing.F) {
	f.Add([]byte(sampleMaps), uint64(0x400100))
	f.Add([]byte("1-2 r 0 1:2 3\n"), uint64(1))
	f.Add([]byte("ffffffffffffffff-0 r 0 1:2 3 x\n"), uint64(3))
	f.Fuzz(func(t *testing.T, maps []byte, pc uint64) {
		spans, err := Mappings(maps, uintptr(pc))
		if err != nil {
			return
		}
		for _, s := range spans {
			if s.End <= s.Start {
				t.Fatalf("empty span %x from %q", s, maps)
			}
		}
	})
}
