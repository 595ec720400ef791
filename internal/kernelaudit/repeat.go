package kernelaudit

import "bytes"

// A program that is refused a system call in a loop makes the kernel log a record per call,
// all alike but for the stamp (and the pid, if it forks). Parsing each whole (about 1.7 µs and
// 9 allocations) is slower than the kernel logs them (about 2 µs a refused raw socket, the
// record included), and the reader falls behind. So the Reader keeps the last few refusals it
// parsed whole, and counts a record as a repeat of one of them when the fields a refusal is
// reported by (uid, arch, syscall, compat, code) hold the same text: read without allocating,
// by seccompKey. What is reported of a repeat is thereby exactly what a whole parse would give;
// the rest of it (pid, stamp, comm, exe, ip) is not read, so a repeat malformed elsewhere is
// counted, where a whole parse would have skipped it.

// maxRepeatKeys is how many refusals the Reader counts repeats of: a few programs flooding at
// once. maxRepeats bounds the repeats counted before they are returned.
const (
	maxRepeatKeys = 8
	maxRepeats    = 4096
)

// repeatKey is the text of the fields a seccomp refusal is reported by.
type repeatKey struct {
	uid, arch, syscall, compat, code []byte
}

func (k *repeatKey) equal(o *repeatKey) bool {
	return bytes.Equal(k.uid, o.uid) && bytes.Equal(k.arch, o.arch) && bytes.Equal(k.syscall, o.syscall) &&
		bytes.Equal(k.compat, o.compat) && bytes.Equal(k.code, o.code)
}

// clone copies k's text out of the record's buffer.
func (k repeatKey) clone() repeatKey {
	b := bytes.Join([][]byte{k.uid, k.arch, k.syscall, k.compat, k.code}, nil)
	cut := func(n int) []byte { s := b[:n:n]; b = b[n:]; return s }
	return repeatKey{uid: cut(len(k.uid)), arch: cut(len(k.arch)), syscall: cut(len(k.syscall)),
		compat: cut(len(k.compat)), code: cut(len(k.code))}
}

// seccompKey reads the key fields of a seccomp record's text without allocating: ok if each
// is there once, unquoted and not empty. Fields are separated by spaces and a quoted value
// ends at its closing quote, as split reads them; the kernel logs the values a program chooses
// (comm, exe) quoted only if they hold no space or quote, else in hexadecimal, so a program
// cannot make a field of its own.
func seccompKey(text []byte) (k repeatKey, ok bool) {
	if len(text) > MaxRecord {
		return k, false
	}
	i := bytes.Index(text, []byte("): "))
	if i < 0 {
		return k, false
	}
	rest := text[i+2:]
	for len(rest) > 0 {
		if rest[0] != ' ' {
			return k, false
		}
		rest = rest[1:]
		eq := bytes.IndexByte(rest, '=')
		sp := bytes.IndexByte(rest, ' ')
		if eq < 0 || (sp >= 0 && sp < eq) {
			// Not key=value (an LSM label's words): skip it.
			if sp < 0 {
				break
			}
			rest = rest[sp:]
			continue
		}
		key, val := rest[:eq], rest[eq+1:]
		if len(val) > 0 && val[0] == '"' {
			end := bytes.IndexByte(val[1:], '"')
			if end < 0 {
				return k, false
			}
			rest = val[2+end:]
			if isKeyField(key) {
				return k, false // quoted
			}
			continue
		}
		end := bytes.IndexByte(val, ' ')
		if end < 0 {
			end = len(val)
		}
		val, rest = val[:end], val[end:]
		var f *[]byte
		switch string(key) { // no allocation: the compiler compares in place
		case "uid":
			f = &k.uid
		case "arch":
			f = &k.arch
		case "syscall":
			f = &k.syscall
		case "compat":
			f = &k.compat
		case "code":
			f = &k.code
		default:
			continue
		}
		if *f != nil || len(val) == 0 {
			return k, false
		}
		*f = val
	}
	return k, k.uid != nil && k.arch != nil && k.syscall != nil && k.compat != nil && k.code != nil
}

func isKeyField(key []byte) bool {
	switch string(key) {
	case "uid", "arch", "syscall", "compat", "code":
		return true
	}
	return false
}

// repeat is a refusal parsed whole, and how many repeats of it were counted since it was last
// returned.
type repeat struct {
	key repeatKey
	s   Seccomp
	n   int
}
