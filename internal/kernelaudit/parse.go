package kernelaudit

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// ParseAccess parses the text of an AUDIT_LANDLOCK_ACCESS record, such as
//
//	audit(1795580455.454:11): domain=139157b8a blockers=fs.write_file path="/dev/null" dev="devtmpfs" ino=3
func ParseAccess(text []byte) (Access, error) {
	var a Access
	st, fields, err := split(text)
	if err != nil {
		return a, err
	}
	a.Stamp = st
	seen := map[string]bool{}
	for _, f := range fields {
		k, v := f.key, f.val
		if seen[k] {
			return a, syntaxf("field %s appears twice", k)
		}
		seen[k] = true
		switch k {
		case "domain":
			a.Domain, err = parseDomainID(v)
		case "blockers":
			a.Blockers, err = parseBlockers(v)
		case "path", "name":
			if a.Path != "" {
				return a, syntaxf("both path and name")
			}
			a.Path, err = untrusted(k, f)
		case "dev":
			a.Dev, err = untrusted(k, f)
		case "ino":
			a.Ino, err = parseUint(k, f, 64)
		case "saddr", "daddr", "laddr", "faddr":
			if a.Addr != "" {
				return a, syntaxf("more than one address")
			}
			a.Addr, err = parseAddr(k, f)
		case "src", "dest", "lport", "fport":
			if a.Port != 0 {
				return a, syntaxf("more than one port")
			}
			var p uint64
			p, err = parseUint(k, f, 16)
			a.Port = int(p)
		case "opid":
			var p uint64
			p, err = parseUint(k, f, 31)
			a.OPid = int(p)
		case "ocomm":
			a.OComm, err = untrusted(k, f)
		default:
			if !validKey(k) {
				return a, syntaxf("bad field name %q", k)
			}
			if a.Other == nil {
				a.Other = map[string]string{}
			}
			a.Other[k] = v
		}
		if err != nil {
			return a, err
		}
	}
	for _, k := range []string{"domain", "blockers"} {
		if !seen[k] {
			return a, syntaxf("no %s field", k)
		}
	}
	return a, nil
}

// ParseDomain parses the text of an AUDIT_LANDLOCK_DOMAIN record, such as
//
//	audit(1795580455.450:10): domain=139157b8a status=allocated mode=enforcing pid=28391 uid=0 exe="/usr/bin/app" comm="app"
//	audit(1795580455.506:13): domain=139157b8a status=deallocated denials=2
func ParseDomain(text []byte) (Domain, error) {
	var d Domain
	st, fields, err := split(text)
	if err != nil {
		return d, err
	}
	d.Stamp = st
	seen := map[string]bool{}
	for _, f := range fields {
		k, v := f.key, f.val
		if seen[k] {
			return d, syntaxf("field %s appears twice", k)
		}
		seen[k] = true
		var n uint64
		switch k {
		case "domain":
			d.ID, err = parseDomainID(v)
		case "status":
			if f.quoted || (v != "allocated" && v != "deallocated") {
				return d, syntaxf("status %q: want allocated or deallocated", v)
			}
			d.Status = v
		case "mode":
			if f.quoted || !validWord(v) {
				return d, syntaxf("bad mode %q", v)
			}
			d.Mode = v
		case "pid":
			n, err = parseUint(k, f, 31)
			d.Pid = int(n)
		case "uid":
			n, err = parseUint(k, f, 32)
			d.UID = uint32(n)
		case "exe":
			d.Exe, err = untrusted(k, f)
		case "comm":
			d.Comm, err = untrusted(k, f)
		case "denials":
			d.Denials, err = parseUint(k, f, 64)
		default:
			// A newer kernel may describe more; the fields above are what is used.
			if !validKey(k) {
				return d, syntaxf("bad field name %q", k)
			}
		}
		if err != nil {
			return d, err
		}
	}
	need := []string{"domain", "status"}
	switch d.Status {
	case "allocated":
		need = append(need, "mode", "pid", "uid", "exe", "comm")
	case "deallocated":
		need = append(need, "denials")
	}
	for _, k := range need {
		if !seen[k] {
			return d, syntaxf("no %s field", k)
		}
	}
	return d, nil
}

type field struct {
	key, val string
	quoted   bool
}

// split parses "audit(SEC.MSEC:SERIAL): k=v k=v ..." into the stamp and the fields.
func split(text []byte) (Stamp, []field, error) {
	var st Stamp
	if len(text) > MaxRecord {
		return st, nil, syntaxf("record of %d bytes, over the %d-byte limit", len(text), MaxRecord)
	}
	s := string(text)
	rest, ok := strings.CutPrefix(s, "audit(")
	if !ok {
		return st, nil, syntaxf("no audit( stamp")
	}
	stamp, rest, ok := strings.Cut(rest, "):")
	if !ok {
		return st, nil, syntaxf("unterminated stamp")
	}
	secms, serial, ok := strings.Cut(stamp, ":")
	if !ok {
		return st, nil, syntaxf("stamp %q: no serial", stamp)
	}
	sec, ms, ok := strings.Cut(secms, ".")
	if !ok || len(ms) != 3 || !digits(sec) || !digits(ms) || !digits(serial) {
		return st, nil, syntaxf("stamp %q: want SECONDS.MILLISECONDS:SERIAL", stamp)
	}
	secN, err1 := strconv.ParseInt(sec, 10, 64)
	msN, _ := strconv.ParseInt(ms, 10, 64)
	serN, err2 := strconv.ParseUint(serial, 10, 64)
	if err1 != nil || err2 != nil || secN > 1<<40 {
		return st, nil, syntaxf("stamp %q: number out of range", stamp)
	}
	st = Stamp{Time: time.Unix(secN, msN*int64(time.Millisecond)), Serial: serN}

	var fields []field
	for rest != "" {
		if rest[0] != ' ' {
			return st, nil, syntaxf("no space before %q", clip(rest))
		}
		rest = rest[1:]
		if rest == "" {
			break // a trailing space
		}
		key, after, ok := strings.Cut(rest, "=")
		if !ok || key == "" || strings.ContainsRune(key, ' ') {
			return st, nil, syntaxf("want key=value at %q", clip(rest))
		}
		f := field{key: key}
		if strings.HasPrefix(after, `"`) {
			end := strings.IndexByte(after[1:], '"')
			if end < 0 {
				return st, nil, syntaxf("field %s: unterminated quote", key)
			}
			f.val, f.quoted, rest = after[1:1+end], true, after[2+end:]
		} else {
			end := strings.IndexByte(after, ' ')
			if end < 0 {
				end = len(after)
			}
			f.val, rest = after[:end], after[end:]
		}
		fields = append(fields, f)
	}
	return st, fields, nil
}

// untrusted decodes a string the kernel logs with audit_log_untrustedstring: quoted if it is
// plain printable ASCII, else in upper-case hexadecimal. d_path's failures and absent values
// are logged as bare markers.
func untrusted(key string, f field) (string, error) {
	if f.quoted {
		return f.val, nil
	}
	switch f.val {
	case "(null)", "?", "<too_long>", "<no_memory>":
		return f.val, nil
	}
	if f.val == "" || len(f.val)%2 != 0 || strings.ToUpper(f.val) != f.val {
		return "", syntaxf("field %s: %q is neither quoted nor hexadecimal", key, clip(f.val))
	}
	b, err := hex.DecodeString(f.val)
	if err != nil {
		return "", syntaxf("field %s: %q is neither quoted nor hexadecimal", key, clip(f.val))
	}
	return string(b), nil
}

func parseDomainID(v string) (uint64, error) {
	if v == "" || len(v) > 16 || strings.ToLower(v) != v {
		return 0, syntaxf("domain %q: want lower-case hexadecimal", clip(v))
	}
	id, err := strconv.ParseUint(v, 16, 64)
	if err != nil || id == 0 {
		return 0, syntaxf("domain %q: want nonzero lower-case hexadecimal", clip(v))
	}
	return id, nil
}

// maxBlockers bounds a record's blockers: more than every access right there is.
const maxBlockers = 64

func parseBlockers(v string) ([]string, error) {
	parts := strings.Split(v, ",")
	if len(parts) > maxBlockers {
		return nil, syntaxf("%d blockers, over %d", len(parts), maxBlockers)
	}
	for _, p := range parts {
		if !validWord(p) {
			return nil, syntaxf("blocker %q: want lower-case letters, digits, '_' and '.'", clip(p))
		}
	}
	return parts, nil
}

func parseUint(key string, f field, bits int) (uint64, error) {
	if f.quoted || !digits(f.val) {
		return 0, syntaxf("field %s: %q is not a decimal number", key, clip(f.val))
	}
	n, err := strconv.ParseUint(f.val, 10, bits)
	if err != nil {
		return 0, syntaxf("field %s: %q is out of range", key, clip(f.val))
	}
	return n, nil
}

func parseAddr(key string, f field) (string, error) {
	a, err := netip.ParseAddr(f.val)
	if f.quoted || err != nil {
		return "", syntaxf("field %s: %q is not an IP address", key, clip(f.val))
	}
	return a.String(), nil
}

func digits(s string) bool {
	if s == "" || len(s) > 20 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// validWord: a blocker or a mode, such as fs.write_file.
func validWord(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// validKey: a field name, such as ioctlcmd.
func validKey(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

func itoa(n int) string { return strconv.Itoa(n) }

func syntaxf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrSyntax, fmt.Sprintf(format, args...))
}
