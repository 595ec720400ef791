package kernelaudit

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	llsys "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"github.com/rampart-iot/rampart/internal/netlinksock"
	"golang.org/x/sys/unix"
)

// MinABI is the first Landlock ABI whose denials the kernel logs (Linux 6.15).
const MinABI = 7

// ErrUnavailable is wrapped by Open's errors when this kernel or process cannot report
// denials.
var ErrUnavailable = errors.New("kernel denials cannot be read")

// actionsLogged is where the kernel says which seccomp actions it logs.
const actionsLogged = "/proc/sys/kernel/seccomp/actions_logged"

// Config configures Open.
type Config struct {
	// EnableAudit turns the kernel's audit on if it is off (it is off unless the kernel was
	// booted with audit=1 or an audit daemon turned it on). The kernel logs no Landlock
	// denial while audit is off; with it on and no audit daemon, the kernel also prints every
	// audit record to its log, rate-limited. Without it, Open fails while audit is off.
	EnableAudit bool
	// ReceiveBuffer is the socket's receive buffer in bytes, what the kernel may hold for the
	// Reader before it drops records (DefaultReceiveBuffer if 0). Past net.core.rmem_max it
	// takes CAP_NET_ADMIN; without it, the buffer is rmem_max.
	ReceiveBuffer int
	// Logger is nil for no logging.
	Logger *slog.Logger
}

// DefaultReceiveBuffer is Config.ReceiveBuffer's default: it holds about 10,000 seccomp
// records (10,078 on Linux 6.18, x86-64), 20 to 60 ms of a program refused a system call in a
// loop, while the Reader is kept from reading.
const DefaultReceiveBuffer = 4 << 20

// Reader reads the kernel's denials. Next is for one goroutine at a time; Close may be called
// at any time.
type Reader struct {
	c        *netlinksock.Conn
	log      *slog.Logger
	join     *joiner
	buf      []byte
	out      []Denial // complete denials not yet returned
	landlock bool
	seccomp  bool

	// repeats are the latest refusals parsed whole (nextRepeat the one to replace), with the
	// repeats of each counted since it was last returned; pending is their sum.
	repeats    [maxRepeatKeys]repeat
	nextRepeat int
	pending    int
}

// Open checks that the kernel's audit is on (see Config.EnableAudit), and that the kernel logs
// Landlock denials (Landlock ABI MinABI or later) or seccomp refusals ("errno" in
// /proc/sys/kernel/seccomp/actions_logged), and opens a socket on the audit multicast group.
// Its errors wrap ErrUnavailable. Logged says which of the two it will see.
func Open(cfg Config) (*Reader, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var landlock, seccomp bool
	var why []string
	if abi, err := llsys.LandlockGetABIVersion(); err != nil {
		why = append(why, fmt.Sprintf("Landlock is not enabled (%v)", err))
	} else if abi < MinABI {
		why = append(why, fmt.Sprintf("Landlock ABI %d; denials are logged from ABI %d (Linux 6.15)", abi, MinABI))
	} else {
		landlock = true
	}
	if b, err := os.ReadFile(actionsLogged); err != nil {
		why = append(why, fmt.Sprintf("seccomp logs nothing (%v)", err))
	} else if !containsWord(string(b), "errno") {
		why = append(why, fmt.Sprintf("seccomp does not log refusals (%s: %q)", actionsLogged, strings.TrimSpace(string(b))))
	} else {
		seccomp = true
	}
	if !landlock && !seccomp {
		return nil, fmt.Errorf("%w: %s", ErrUnavailable, strings.Join(why, "; "))
	}
	enabled, err := auditEnabled()
	if err != nil {
		return nil, fmt.Errorf("%w: reading the audit status: %w", ErrUnavailable, err)
	}
	if enabled == 0 {
		if !cfg.EnableAudit {
			return nil, fmt.Errorf("%w: the kernel's audit is off", ErrUnavailable)
		}
		if err := setAuditEnabled(1); err != nil {
			return nil, fmt.Errorf("%w: turning the kernel's audit on: %w", ErrUnavailable, err)
		}
		log.Info("turned the kernel's audit on, to read sandbox denials")
	}
	c, err := netlinksock.Open(unix.NETLINK_AUDIT, 1<<(unix.AUDIT_NLGRP_READLOG-1))
	if err != nil {
		return nil, fmt.Errorf("%w: joining the audit log multicast group: %w", ErrUnavailable, err)
	}
	size := cmp.Or(cfg.ReceiveBuffer, DefaultReceiveBuffer)
	if got, err := c.SetReceiveBuffer(size); err != nil {
		log.Warn("cannot size the audit socket's buffer: denials may be lost in a flood", "bytes", size, "err", err)
	} else {
		log.Debug("audit socket buffer", "asked", size, "granted", got)
	}
	return &Reader{c: c, log: log, join: newJoiner(), buf: make([]byte, unix.NLMSG_HDRLEN+MaxRecord+64),
		landlock: landlock, seccomp: seccomp}, nil
}

// Logged says which denials this kernel logs: Landlock's, and seccomp's refusals.
func (r *Reader) Logged() (landlock, seccomp bool) { return r.landlock, r.seccomp }

func containsWord(s, w string) bool {
	for _, f := range strings.Fields(s) {
		if f == w {
			return true
		}
	}
	return false
}

// Close closes the socket; a Next in progress returns os.ErrClosed.
func (r *Reader) Close() error { return r.c.Close() }

// Next returns the next denial: a Landlock denial, or a seccomp refusal (a seccomp record with
// SECCOMP_RET_ERRNO; kills and other actions are skipped), or that records were lost. It
// returns ctx's error when ctx ends, and os.ErrClosed after Close. Records it cannot parse are
// logged and skipped. When the kernel dropped records because this reader fell behind (the
// socket's buffer was full), it returns a Denial with Lost set.
//
// A seccomp refusal that repeats one returned before (the same uid, architecture, system call,
// compat and action) is counted, not parsed whole: the repeats are returned as one Denial,
// with their Count, once the socket has no more records waiting (or maxRepeats were counted,
// or before the next other Denial).
func (r *Reader) Next(ctx context.Context) (Denial, error) {
	for len(r.out) == 0 {
		typ, text, err := r.read(ctx)
		switch {
		case errors.Is(err, netlinksock.ErrEmpty):
			r.flushRepeats()
			continue
		case errors.Is(err, unix.ENOBUFS):
			r.log.Warn("kernel denials lost: the audit multicast overflowed")
			r.flushRepeats()
			r.out = append(r.out, Denial{Lost: 1})
			continue
		case err != nil:
			return Denial{}, err
		}
		r.handle(typ, text)
		if r.pending >= maxRepeats {
			r.flushRepeats()
		}
	}
	d := r.out[0]
	r.out = r.out[1:]
	return d, nil
}

// handle takes one record: it appends what it makes of it to r.out, or counts a repeat.
func (r *Reader) handle(typ uint16, text []byte) {
	switch typ {
	case TypeAccess:
		a, err := ParseAccess(text)
		if err != nil {
			r.log.Warn("skipping a Landlock audit record", "err", err)
			return
		}
		r.landlockDenials(r.join.access(a))
	case TypeDomain:
		d, err := ParseDomain(text)
		if err != nil {
			r.log.Warn("skipping a Landlock audit record", "err", err)
			return
		}
		r.landlockDenials(r.join.domain(d))
	case TypeSeccomp:
		k, ok := seccompKey(text)
		if ok {
			for i := range r.repeats {
				if rp := &r.repeats[i]; rp.key.uid != nil && rp.key.equal(&k) {
					rp.n++
					r.pending++
					return
				}
			}
		}
		s, err := ParseSeccomp(text)
		if err != nil {
			r.log.Warn("skipping a seccomp audit record", "err", err)
			return
		}
		if !s.Refused() {
			return
		}
		r.flushRepeats()
		r.out = append(r.out, Denial{Seccomp: &s, Count: 1})
		if ok {
			rp := &r.repeats[r.nextRepeat]
			r.nextRepeat = (r.nextRepeat + 1) % len(r.repeats)
			*rp = repeat{key: k.clone(), s: s}
		}
	}
}

// flushRepeats returns the repeats counted (to r.out).
func (r *Reader) flushRepeats() {
	if r.pending == 0 {
		return
	}
	for i := range r.repeats {
		if rp := &r.repeats[i]; rp.n > 0 {
			s := rp.s
			r.out = append(r.out, Denial{Seccomp: &s, Count: rp.n})
			rp.n = 0
		}
	}
	r.pending = 0
}

func (r *Reader) landlockDenials(ds []LandlockDenial) {
	if len(ds) > 0 {
		r.flushRepeats()
	}
	for i := range ds {
		r.out = append(r.out, Denial{Landlock: &ds[i], Count: 1})
	}
}

// read returns one record from the kernel: its type and text. With repeats counted, it does
// not wait: it returns netlinksock.ErrEmpty when no record is waiting.
func (r *Reader) read(ctx context.Context) (uint16, []byte, error) {
	for {
		var n int
		var err error
		if r.pending > 0 {
			n, err = r.c.TryReceive(r.buf)
		} else {
			n, err = r.c.Receive(ctx, r.buf)
		}
		if errors.Is(err, netlinksock.ErrTruncated) {
			r.log.Warn("skipping an audit message", "err", err)
			continue
		}
		if err != nil {
			return 0, nil, err
		}
		typ, text, err := parseNetlink(r.buf[:n])
		if err != nil {
			r.log.Warn("skipping an audit message", "err", err)
			continue
		}
		return typ, text, nil
	}
}

// parseNetlink returns the type and payload of the one netlink message in b. The audit
// subsystem sends one message per datagram, with nlmsg_len unpadded.
func parseNetlink(b []byte) (uint16, []byte, error) {
	if len(b) < unix.NLMSG_HDRLEN {
		return 0, nil, fmt.Errorf("netlink message of %d bytes, shorter than its header", len(b))
	}
	l := binary.NativeEndian.Uint32(b[0:4])
	if l < unix.NLMSG_HDRLEN || int64(l) > int64(len(b)) {
		return 0, nil, fmt.Errorf("netlink message length %d, received %d bytes", l, len(b))
	}
	text := b[unix.NLMSG_HDRLEN:l]
	for len(text) > 0 && text[len(text)-1] == 0 {
		text = text[:len(text)-1]
	}
	return binary.NativeEndian.Uint16(b[4:6]), text, nil
}
