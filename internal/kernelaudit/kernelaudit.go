// Package kernelaudit reads the kernel's audit records of what it refused sandboxed programs,
// from the audit subsystem's read-only multicast group, and parses them:
//
//   - Landlock denials (Linux 6.15 and later, Landlock ABI 7): an AUDIT_LANDLOCK_ACCESS record
//     (1423) says which domain denied what (blockers such as "fs.write_file", and the object: a
//     path, an address and port, a process), and the AUDIT_LANDLOCK_DOMAIN record (1424) that
//     follows a domain's first logged denial says which process created that domain (its host
//     pid and executable); the Reader joins the two.
//   - Seccomp actions (AUDIT_SECCOMP, 1326): which process (host pid, uid, executable) made which
//     system call, and what a filter did about it. The kernel logs the kills, and the other
//     actions of filters loaded with SECCOMP_FILTER_FLAG_LOG; the Reader returns the refusals
//     (SECCOMP_RET_ERRNO).
//
// A Reader returns both as Denials, in the order the kernel logged them, but that it counts a
// seccomp refusal repeating a recent one instead of parsing it (a program refused a call in a
// loop logs faster than whole parses go), and returns the count; and it returns a Denial with
// Lost when the kernel dropped records because it fell behind. It owns no file; it
// opens a NETLINK_AUDIT socket (CAP_AUDIT_READ) joined to AUDIT_NLGRP_READLOG, which does not
// disturb an audit daemon. Config.EnableAudit turns the kernel's audit on when it is off
// (CAP_AUDIT_CONTROL): without it the kernel logs no Landlock denial.
//
// Trust: the records come from the kernel, but their contents (paths, command names) are chosen
// by the sandboxed programs whose denials they describe, so every record is parsed strictly and
// with bounds, and a Denial's strings are untrusted text. A pid is the kernel's; it names a
// process only while that process lives (pids are reused). A uid is the kernel's, and cannot be
// changed by a process that holds no capability.
package kernelaudit

import (
	"errors"
	"time"
)

// Audit record types (include/uapi/linux/audit.h).
const (
	TypeAccess  = 1423 // AUDIT_LANDLOCK_ACCESS
	TypeDomain  = 1424 // AUDIT_LANDLOCK_DOMAIN
	TypeSeccomp = 1326 // AUDIT_SECCOMP
)

// MaxRecord is the longest record text the parser accepts: the kernel's
// MAX_AUDIT_MESSAGE_LENGTH (8970) less the netlink header.
const MaxRecord = 8970

// ErrSyntax is wrapped by every parse error.
var ErrSyntax = errors.New("malformed audit record")

// Stamp is a record's audit stamp: records with the same stamp belong to one audit event.
type Stamp struct {
	Time   time.Time
	Serial uint64
}

// Access is an AUDIT_LANDLOCK_ACCESS record: one denied request. Its strings are untrusted.
type Access struct {
	Stamp
	// Domain is the ID of the youngest domain that denied the request.
	Domain uint64
	// Blockers are the missing rights, such as "fs.write_file", "net.connect_tcp",
	// "scope.signal" or "ptrace"; at least one.
	Blockers []string
	// Path, Dev and Ino name a file, for file-system denials ("path" or "name").
	Path string
	Dev  string
	Ino  uint64
	// Addr and Port name a network endpoint (the local one for a bind, else the remote one).
	Addr string
	Port int
	// OPid and OComm name the target process of a denied signal or ptrace.
	OPid  int
	OComm string
	// Other holds any other fields, as logged (a newer kernel may add some).
	Other map[string]string
}

// Domain is an AUDIT_LANDLOCK_DOMAIN record: a domain's description, logged with its first
// logged denial (Status "allocated"), or its end (Status "deallocated").
type Domain struct {
	Stamp
	ID     uint64
	Status string // "allocated" or "deallocated"
	// Allocated: Mode ("enforcing"), and the process that created the domain, when it did:
	// its host pid, uid, executable and command name (untrusted).
	Mode string
	Pid  int
	UID  uint32
	Exe  string
	Comm string
	// Deallocated: how many denials the domain logged.
	Denials uint64
}

// Denial is what a Reader read: a refusal the kernel logged (Landlock or Seccomp), or that
// records were lost (Lost). Exactly one of the three is set.
type Denial struct {
	Landlock *LandlockDenial
	Seccomp  *Seccomp
	// Count is how many refusals the Denial stands for, at least 1. A Landlock denial is one.
	// A Seccomp refusal stands for Count records with the same uid, architecture, system
	// call, compat and action: Seccomp is the first of them, parsed whole (its pid, stamp,
	// comm and exe are that one's), and the others repeat it (see Reader.Next).
	Count int
	// Lost is how many times the kernel dropped records meant for the Reader, because the
	// Reader fell behind and the socket's buffer was full (ENOBUFS), since the last Denial.
	// How many records each time, the kernel does not say; they may be any process's.
	Lost int
}

// LandlockDenial is an Access joined with the domain that denied it.
type LandlockDenial struct {
	Access
	// Pid is the host pid of the process that created the denying domain; 0 if its domain
	// record was not seen (the domain's first denial came before the Reader opened). Exe is
	// that process's executable then.
	Pid int
	Exe string
}

// Object describes what was denied, for people: the path, the address and port, or the
// target process; "" if the record names none.
func (a *Access) Object() string {
	switch {
	case a.Path != "":
		return a.Path
	case a.Addr != "" && a.Port != 0:
		return a.Addr + " port " + itoa(a.Port)
	case a.Addr != "":
		return a.Addr
	case a.Port != 0:
		return "port " + itoa(a.Port)
	case a.OPid != 0:
		return "process " + itoa(a.OPid) + " (" + a.OComm + ")"
	}
	return ""
}
