package kernelaudit

import (
	"bytes"
	"strconv"
	"strings"

	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/sys/unix"
)

// Seccomp is an AUDIT_SECCOMP record: what a seccomp filter did about one system call. Comm
// and Exe are untrusted.
type Seccomp struct {
	Stamp
	// Pid is the calling process's host pid (its thread group), UID and GID its host real uid
	// and gid.
	Pid      int
	UID, GID uint32
	Comm     string
	Exe      string
	// Arch is the system call's audit architecture (AUDIT_ARCH_X86_64, ...), Syscall its
	// number in that architecture's table, Compat whether it came through a compat ABI.
	Arch    uint32
	Syscall int
	Compat  bool
	// Signal is the signal that kills the caller for a kill action, else 0; IP the
	// instruction pointer of the call.
	Signal int
	IP     uint64
	// Code is the filter's action (SECCOMP_RET_*, without its data: no errno).
	Code uint32
}

// Refused reports whether the filter refused the call with an error (SECCOMP_RET_ERRNO).
func (s *Seccomp) Refused() bool {
	return s.Code&unix.SECCOMP_RET_ACTION_FULL == unix.SECCOMP_RET_ERRNO
}

// SyscallName is the name of the system call, "" if its architecture's table is not known
// (x86-64 and its x32 ABI, i386, arm64 and arm are).
func (s *Seccomp) SyscallName() string {
	var info *arch.Info
	switch arch.AuditArch(s.Arch) {
	case arch.X86_64.ID:
		info = arch.X86_64
		if s.Syscall&arch.X32.SeccompMask != 0 {
			info = arch.X32
		}
	case arch.I386.ID:
		info = arch.I386
	case arch.AARCH64.ID:
		info = arch.AARCH64
	case arch.ARM.ID:
		info = arch.ARM
	default:
		return ""
	}
	return info.SyscallNumbers[s.Syscall&^info.SeccompMask]
}

// ParseSeccomp parses the text of an AUDIT_SECCOMP record, such as
//
//	audit(1795589174.761:15): auid=4294967295 uid=61234 gid=61234 ses=4294967295 pid=19288 comm="app" exe="/bin/app" sig=0 arch=c000003e syscall=41 compat=0 ip=0x40a76e code=0x50000
//
// pid, uid, arch, syscall and code are required; other fields (fields a newer kernel adds) are
// checked for form and ignored. The task's LSM context is skipped (dropTaskContext).
func ParseSeccomp(text []byte) (Seccomp, error) {
	var s Seccomp
	st, fields, err := split(dropTaskContext(text))
	if err != nil {
		return s, err
	}
	s.Stamp = st
	seen := map[string]bool{}
	for _, f := range fields {
		k := f.key
		if seen[k] {
			return s, syntaxf("field %s appears twice", k)
		}
		seen[k] = true
		var n uint64
		switch k {
		case "pid":
			n, err = parseUint(k, f, 31)
			s.Pid = int(n)
		case "uid":
			n, err = parseUint(k, f, 32)
			s.UID = uint32(n)
		case "gid":
			n, err = parseUint(k, f, 32)
			s.GID = uint32(n)
		case "comm":
			s.Comm, err = untrusted(k, f)
		case "exe":
			s.Exe, err = untrusted(k, f)
		case "arch":
			n, err = parseHex(k, f, "", 32)
			s.Arch = uint32(n)
		case "syscall":
			s.Syscall, err = parseInt(k, f)
		case "compat":
			if f.quoted || (f.val != "0" && f.val != "1") {
				return s, syntaxf("field compat: %q, want 0 or 1", clip(f.val))
			}
			s.Compat = f.val == "1"
		case "sig":
			s.Signal, err = parseInt(k, f)
		case "ip":
			s.IP, err = parseHex(k, f, "0x", 64)
		case "code":
			n, err = parseHex(k, f, "0x", 32)
			s.Code = uint32(n)
		default:
			if !validKey(k) {
				return s, syntaxf("bad field name %q", k)
			}
		}
		if err != nil {
			return s, err
		}
	}
	for _, k := range []string{"pid", "uid", "arch", "syscall", "code"} {
		if !seen[k] {
			return s, syntaxf("no %s field", k)
		}
	}
	return s, nil
}

// parseHex parses lower-case hexadecimal after prefix, as the kernel's %x and 0x%x print it.
func parseHex(key string, f field, prefix string, bits int) (uint64, error) {
	v, ok := strings.CutPrefix(f.val, prefix)
	if f.quoted || !ok || v == "" || len(v) > bits/4 || strings.ToLower(v) != v {
		return 0, syntaxf("field %s: %q is not %shexadecimal of %d bits", key, clip(f.val), prefix, bits)
	}
	n, err := strconv.ParseUint(v, 16, bits)
	if err != nil {
		return 0, syntaxf("field %s: %q is not %shexadecimal of %d bits", key, clip(f.val), prefix, bits)
	}
	return n, nil
}

// parseInt parses a signed decimal that fits 32 bits (a system call number, a signal).
func parseInt(key string, f field) (int, error) {
	v := strings.TrimPrefix(f.val, "-")
	if f.quoted || !digits(v) {
		return 0, syntaxf("field %s: %q is not a decimal number", key, clip(f.val))
	}
	n, err := strconv.ParseInt(f.val, 10, 32)
	if err != nil {
		return 0, syntaxf("field %s: %q is out of range", key, clip(f.val))
	}
	return int(n), nil
}

// dropTaskContext removes the task's LSM context from a seccomp record: " subj=LABEL" (or
// " subj_LSM=LABEL ..." under several LSMs), which the kernel writes unquoted between ses= and
// pid= (audit_log_task). An AppArmor label holds a space ("snap.foo.bar (enforce)"), so it
// cannot be split as key=value; it comes from the LSM's policy, not from the app, and nothing
// in it is used.
func dropTaskContext(text []byte) []byte {
	i := bytes.Index(text, []byte(" subj"))
	if i < 0 {
		return text
	}
	j := bytes.Index(text[i:], []byte(" pid="))
	if j < 0 {
		return text // no pid: split reports what is wrong
	}
	out := make([]byte, 0, len(text)-j)
	return append(append(out, text[:i]...), text[i+j:]...)
}
