package kernelaudit

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// captured returns a file of testdata (records.txt, flood.txt): real records from this
// project's machine.
func captured(t testing.TB, name string) (types []int, texts []string) {
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		typ, text, ok := strings.Cut(line, " ")
		n, err := strconv.Atoi(typ)
		if !ok || err != nil {
			t.Fatalf("bad line %q", line)
		}
		types, texts = append(types, n), append(texts, text)
	}
	return types, texts
}

func TestParseCaptured(t *testing.T) {
	types, texts := captured(t, "records.txt")
	at := func(sec, ms int64) time.Time { return time.Unix(sec, ms*1e6) }
	want := []any{
		Access{Stamp: Stamp{at(1795580659, 890), 16}, Domain: 0x139157c3c, Blockers: []string{"fs.make_reg"},
			Path: "/tmp/llfeas", Dev: "vda", Ino: 9979285},
		Domain{Stamp: Stamp{at(1795580659, 890), 16}, ID: 0x139157c3c, Status: "allocated", Mode: "enforcing",
			Pid: 1194, UID: 0, Exe: "/tmp/llfeas/llfeas", Comm: "exe"},
		Access{Stamp: Stamp{at(1795580659, 894), 18}, Domain: 0x139157c60, Blockers: []string{"fs.write_file"},
			Path: "/dev/null", Dev: "devtmpfs", Ino: 3},
		Access{Stamp: Stamp{at(1795580659, 898), 19}, Domain: 0x139157c8d, Blockers: []string{"net.connect_tcp"},
			Addr: "127.0.0.1", Port: 9},
		Domain{Stamp: Stamp{at(1795580659, 898), 19}, ID: 0x139157c8d, Status: "allocated", Mode: "enforcing",
			Pid: 1206, UID: 0, Exe: "/tmp/llfeas/llfeas", Comm: "exe"},
		Access{Stamp: Stamp{at(1795580659, 898), 20}, Domain: 0x139157c8d, Blockers: []string{"net.bind_tcp"}, Addr: "::1"},
		Access{Stamp: Stamp{at(1795580659, 898), 21}, Domain: 0x139157c8d, Blockers: []string{"net.bind_tcp"}, Addr: "::ffff:127.0.0.1"},
		Access{Stamp: Stamp{at(1795580659, 902), 22}, Domain: 0x139157c8d, Blockers: []string{"scope.signal"},
			OPid: 1186, OComm: "llfeas"},
		Domain{Stamp: Stamp{at(1795580659, 934), 23}, ID: 0x139157c3c, Status: "deallocated", Denials: 1},
		Seccomp{Stamp: Stamp{at(1795589174, 625), 7}, Pid: 19228, UID: 61234, GID: 61234, Comm: "app", Exe: "/bin/app",
			Signal: 31, Arch: 0xc000003e, Syscall: 101, IP: 0x40a76e, Code: 0x80000000},
		Seccomp{Stamp: Stamp{at(1795589174, 761), 15}, Pid: 19288, UID: 61234, GID: 61234, Comm: "app", Exe: "/bin/app",
			Arch: 0xc000003e, Syscall: 56, IP: 0x40a76e, Code: 0x50000},
		Seccomp{Stamp: Stamp{at(1795589174, 805), 16}, Pid: 19303, UID: 0, GID: 0, Comm: "app", Exe: "/tmp/sandbox-testapp-3905868533/app",
			Arch: 0xc000003e, Syscall: 41, IP: 0x40a76e, Code: 0x50000},
	}
	if len(texts) != len(want) {
		t.Fatalf("%d captured records, want %d", len(texts), len(want))
	}
	for i, text := range texts {
		var got any
		var err error
		switch types[i] {
		case TypeAccess:
			got, err = ParseAccess([]byte(text))
		case TypeDomain:
			got, err = ParseDomain([]byte(text))
		case TypeSeccomp:
			got, err = ParseSeccomp([]byte(text))
		}
		if err != nil {
			t.Errorf("record %d: %v", i, err)
			continue
		}
		if !reflect.DeepEqual(got, want[i]) {
			t.Errorf("record %d:\n got %+v\nwant %+v", i, got, want[i])
		}
	}
}

func TestParseAccessForms(t *testing.T) {
	const h = "audit(1700000000.001:7): "
	for _, tc := range []struct {
		name, text string
		check      func(Access) bool
	}{
		// audit_log_untrustedstring logs a string with a space, a quote or a control
		// character in hexadecimal.
		{"hex path", h + `domain=1 blockers=fs.read_file path=2F746D702F6120622263 dev="vda" ino=5`,
			func(a Access) bool { return a.Path == `/tmp/a b"c` }},
		{"several blockers", h + `domain=ab blockers=fs.read_file,fs.write_file path="/x"`,
			func(a Access) bool { return reflect.DeepEqual(a.Blockers, []string{"fs.read_file", "fs.write_file"}) }},
		{"ioctl kept in Other", h + `domain=ab blockers=fs.ioctl_dev path="/dev/tty" dev="devtmpfs" ino=9 ioctlcmd=0x5401`,
			func(a Access) bool { return a.Other["ioctlcmd"] == "0x5401" && a.Object() == "/dev/tty" }},
		{"dentry name", h + `domain=ab blockers=fs.remove_file name="f" dev="vda" ino=2`,
			func(a Access) bool { return a.Path == "f" }},
		{"too long path", h + `domain=ab blockers=fs.read_file path=<too_long>`,
			func(a Access) bool { return a.Path == "<too_long>" }},
		{"object of a connect", h + `domain=ab blockers=net.connect_tcp daddr=10.0.0.1 dest=443`,
			func(a Access) bool { return a.Object() == "10.0.0.1 port 443" }},
		{"object of a signal", h + `domain=ab blockers=scope.signal opid=12 ocomm="sh"`,
			func(a Access) bool { return a.Object() == "process 12 (sh)" }},
		{"trailing space", h + `domain=ab blockers=ptrace `,
			func(a Access) bool { return a.Blockers[0] == "ptrace" }},
	} {
		a, err := ParseAccess([]byte(tc.text))
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !tc.check(a) {
			t.Errorf("%s: got %+v", tc.name, a)
		}
	}
}

func TestParseRejects(t *testing.T) {
	const h = "audit(1700000000.001:7): "
	for _, tc := range []struct{ text, want string }{
		{"", "no audit( stamp"},
		{"audit(1700000000.001:7 domain=1", "unterminated stamp"},
		{"audit(1700000000:7): domain=1 blockers=x", "want SECONDS.MILLISECONDS:SERIAL"},
		{"audit(1700000000.01:7): domain=1 blockers=x", "want SECONDS.MILLISECONDS:SERIAL"},
		{"audit(-1.001:7): domain=1 blockers=x", "want SECONDS.MILLISECONDS:SERIAL"},
		{"audit(1700000000.001:7):domain=1", "no space before"},
		{h + "blockers=fs.read_file", "no domain field"},
		{h + "domain=1", "no blockers field"},
		{h + "domain=0 blockers=x", "want nonzero lower-case hexadecimal"},
		{h + "domain=AB blockers=x", "want lower-case hexadecimal"},
		{h + "domain=10000000000000000 blockers=x", "want lower-case hexadecimal"},
		{h + "domain=1 domain=2 blockers=x", "field domain appears twice"},
		{h + "domain=1 blockers=fs.read_file,", `blocker ""`},
		{h + "domain=1 blockers=FS", `blocker "FS"`},
		{h + `domain=1 blockers=x path="/a`, "unterminated quote"},
		{h + `domain=1 blockers=x path=/a`, "neither quoted nor hexadecimal"},
		{h + `domain=1 blockers=x path=2F7`, "neither quoted nor hexadecimal"},
		{h + `domain=1 blockers=x path=2f61`, "neither quoted nor hexadecimal"},
		{h + `domain=1 blockers=x path="/a" name="b"`, "both path and name"},
		{h + `domain=1 blockers=x ino=-1`, "not a decimal number"},
		{h + `domain=1 blockers=x daddr=1.2.3 dest=1`, "not an IP address"},
		{h + `domain=1 blockers=x daddr=1.2.3.4 dest=70000`, "out of range"},
		{h + `domain=1 blockers=x daddr=1.2.3.4 saddr=1.2.3.5`, "more than one address"},
		{h + `domain=1 blockers=x noequals`, "want key=value"},
		{h + `domain=1 blockers=x BAD=1`, "bad field name"},
		{h + "domain=1 blockers=x path=\"" + strings.Repeat("a", MaxRecord) + `"`, "over the 8970-byte limit"},
	} {
		_, err := ParseAccess([]byte(tc.text))
		if err == nil || !errors.Is(err, ErrSyntax) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseAccess(%.60q) = %v, want an ErrSyntax saying %q", tc.text, err, tc.want)
		}
	}
	for _, tc := range []struct{ text, want string }{
		{h + "domain=1 status=allocated mode=enforcing pid=1 uid=0 exe=\"/a\"", "no comm field"},
		{h + "domain=1 status=deallocated", "no denials field"},
		{h + "domain=1 status=freed denials=1", `status "freed"`},
		{h + "status=deallocated denials=1", "no domain field"},
		{h + "domain=1 status=allocated mode=enforcing pid=99999999999 uid=0 exe=\"/a\" comm=\"a\"", "field pid"},
		{h + "domain=1 status=allocated mode=Enforcing pid=1 uid=0 exe=\"/a\" comm=\"a\"", "bad mode"},
	} {
		_, err := ParseDomain([]byte(tc.text))
		if err == nil || !errors.Is(err, ErrSyntax) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseDomain(%.60q) = %v, want an ErrSyntax saying %q", tc.text, err, tc.want)
		}
	}
}

func FuzzParseAccess(f *testing.F) {
	types, texts := captured(f, "records.txt")
	for i, text := range texts {
		if types[i] == TypeAccess {
			f.Add([]byte(text))
		}
	}
	f.Add([]byte(`audit(1700000000.001:7): domain=1 blockers=fs.read_file path=2F746D702F6120622263 ioctlcmd=0x1`))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseAccess(b)
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("error %v does not wrap ErrSyntax", err)
			}
			return
		}
		if a.Domain == 0 || len(a.Blockers) == 0 || len(a.Blockers) > maxBlockers {
			t.Fatalf("accepted %q as %+v", b, a)
		}
		for _, bl := range a.Blockers {
			if !validWord(bl) {
				t.Fatalf("accepted blocker %q", bl)
			}
		}
		_ = a.Object()
	})
}

func FuzzParseDomain(f *testing.F) {
	types, texts := captured(f, "records.txt")
	for i, text := range texts {
		if types[i] == TypeDomain {
			f.Add([]byte(text))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseDomain(b)
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("error %v does not wrap ErrSyntax", err)
			}
			return
		}
		if d.ID == 0 || (d.Status != "allocated" && d.Status != "deallocated") || d.Pid < 0 {
			t.Fatalf("accepted %q as %+v", b, d)
		}
	})
}

func TestSeccompRecords(t *testing.T) {
	const h = "audit(1700000000.001:7): "
	for _, tc := range []struct {
		text    string
		name    string
		refused bool
	}{
		{h + "auid=1 uid=100000 gid=100000 ses=2 pid=5 comm=\"app\" exe=\"/bin/app\" sig=0 arch=c000003e syscall=41 compat=0 ip=0x1 code=0x50000", "socket", true},
		{h + "pid=5 uid=1 arch=c000003e syscall=56 code=0x80000000", "clone", false},
		{h + "pid=5 uid=1 arch=c000003e syscall=1073741865 code=0x50000", "socket", true}, // x32
		{h + "pid=5 uid=1 arch=c00000b7 syscall=198 code=0x50000", "socket", true},        // arm64
		{h + "pid=5 uid=1 arch=40000028 syscall=281 code=0x50000", "socket", true},        // arm
		{h + "pid=5 uid=1 arch=40000003 syscall=102 code=0x50000 compat=1", "socketcall", true},
		{h + "pid=5 uid=1 arch=c0000016 syscall=1 code=0x7ffc0000", "", false}, // s390x, a log action
		{h + "pid=5 uid=1 subj=unconfined arch=c000003e syscall=-1 code=0x50000 newfield=x", "", true},
		{h + "pid=5 uid=1 comm=617070206E616D65 exe=(null) arch=c000003e syscall=41 code=0x50000", "socket", true},
		// Under AppArmor the task's label is unquoted and holds a space; under several LSMs
		// each has its own subj_ field. Both come before pid= and are skipped.
		{h + "auid=1000 uid=61234 gid=61234 ses=3 subj==snap.rampart.agent (enforce) pid=1864 comm=\"app\" exe=\"/bin/app\" sig=0 arch=c000003e syscall=41 compat=0 ip=0x7f06966c6527 code=0x50000", "socket", true},
		{h + "auid=0 uid=100001 gid=100001 ses=1 subj_selinux=system_u:system_r:rampart_t:s0 subj_apparmor=unconfined pid=7 comm=\"app\" arch=c000003e syscall=41 code=0x50000", "socket", true},
	} {
		s, err := ParseSeccomp([]byte(tc.text))
		if err != nil {
			t.Errorf("%q: %v", tc.text, err)
			continue
		}
		if s.SyscallName() != tc.name || s.Refused() != tc.refused {
			t.Errorf("%q: %q refused %v, want %q %v", tc.text, s.SyscallName(), s.Refused(), tc.name, tc.refused)
		}
	}
	for _, tc := range []struct{ text, want string }{
		{h + "uid=1 arch=c000003e syscall=41 code=0x50000", "no pid field"},
		{h + "pid=1 arch=c000003e syscall=41 code=0x50000", "no uid field"},
		{h + "pid=1 uid=1 syscall=41 code=0x50000", "no arch field"},
		{h + "pid=1 uid=1 arch=c000003e code=0x50000", "no syscall field"},
		{h + "pid=1 uid=1 arch=c000003e syscall=41", "no code field"},
		{h + "pid=1 uid=1 arch=C000003E syscall=41 code=0x50000", "not hexadecimal"},
		{h + "pid=1 uid=1 arch=0xc000003e syscall=41 code=0x50000", "not hexadecimal"},
		{h + "pid=1 uid=1 arch=1c000003e syscall=41 code=0x50000", "not hexadecimal"},
		{h + "pid=1 uid=1 arch=c000003e syscall=41 code=50000", "not 0xhexadecimal"},
		{h + "pid=1 uid=1 arch=c000003e syscall=4x code=0x50000", "not a decimal number"},
		{h + "pid=1 uid=1 arch=c000003e syscall=99999999999 code=0x50000", "out of range"},
		{h + "pid=1 uid=1 arch=c000003e syscall=-- code=0x50000", "not a decimal number"},
		{h + "pid=1 uid=-1 arch=c000003e syscall=41 code=0x50000", "not a decimal number"},
		{h + "pid=1 pid=2 uid=1 arch=c000003e syscall=41 code=0x50000", "appears twice"},
		{h + "pid=1 uid=1 arch=c000003e syscall=41 code=0x50000 compat=2", "want 0 or 1"},
		{h + "pid=1 uid=1 arch=c000003e syscall=41 code=0x50000 comm=app", "neither quoted nor hexadecimal"},
		{h + "pid=1 uid=1 arch=c000003e syscall=41 code=0x50000 ip=0x10000000000000000", "hexadecimal of 64 bits"},
	} {
		_, err := ParseSeccomp([]byte(tc.text))
		if err == nil || !errors.Is(err, ErrSyntax) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseSeccomp(%.80q) = %v, want an ErrSyntax saying %q", tc.text, err, tc.want)
		}
	}
}

func FuzzParseSeccomp(f *testing.F) {
	types, texts := captured(f, "records.txt")
	for i, text := range texts {
		if types[i] == TypeSeccomp {
			f.Add([]byte(text))
		}
	}
	f.Add([]byte(`audit(1700000000.001:7): pid=5 uid=1 subj=unconfined comm=617070 arch=40000028 syscall=-1 code=0x50000 compat=1 ip=0xffffffffffffffff`))
	f.Add([]byte(`audit(1605134160.384:35): auid=1000 uid=61234 gid=61234 ses=3 subj==snap.rampart.agent (enforce) pid=1864 comm="app" exe="/bin/app" sig=0 arch=c000003e syscall=41 compat=0 ip=0x7f06966c6527 code=0x50000`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSeccomp(b)
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("error %v does not wrap ErrSyntax", err)
			}
			return
		}
		if s.Pid < 0 {
			t.Fatalf("accepted %q as %+v", b, s)
		}
		_, _ = s.SyscallName(), s.Refused()
	})
}
