package landlockaudit

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	llsys "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"golang.org/x/sys/unix"
)

// MinABI is the first Landlock ABI whose denials the kernel logs (Linux 6.15).
const MinABI = 7

// ErrUnavailable is wrapped by Open's errors when this kernel or process cannot report
// Landlock denials.
var ErrUnavailable = errors.New("landlock denials cannot be read")

// Config configures Open.
type Config struct {
	// EnableAudit turns the kernel's audit on if it is off (it is off unless the kernel was
	// booted with audit=1 or an audit daemon turned it on). The kernel logs no Landlock
	// denial while audit is off; with it on and no audit daemon, the kernel also prints every
	// audit record to its log, rate-limited.
	EnableAudit bool
	// Logger is nil for no logging.
	Logger *slog.Logger
}

// Reader reads Landlock denials. Next is for one goroutine at a time; Close may be called at
// any time.
type Reader struct {
	f  *os.File
	rc interface {
		Read(func(uintptr) bool) error
	}
	log  *slog.Logger
	join *joiner
	buf  []byte
	out  []Denial // complete denials not yet returned

	closeOnce sync.Once
	closed    atomic.Bool
}

// Open checks that the kernel logs Landlock denials (Landlock ABI MinABI or later, audit
// on: see Config.EnableAudit) and opens a socket on the audit multicast group. Its errors
// wrap ErrUnavailable.
func Open(cfg Config) (*Reader, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	abi, err := llsys.LandlockGetABIVersion()
	if err != nil {
		return nil, fmt.Errorf("%w: Landlock is not enabled: %w", ErrUnavailable, err)
	}
	if abi < MinABI {
		return nil, fmt.Errorf("%w: Landlock ABI %d; denials are logged from ABI %d (Linux 6.15)", ErrUnavailable, abi, MinABI)
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
		log.Info("turned the kernel's audit on, to read Landlock denials")
	}
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_AUDIT)
	if err != nil {
		return nil, fmt.Errorf("%w: audit socket: %w", ErrUnavailable, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: 1 << (unix.AUDIT_NLGRP_READLOG - 1)}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("%w: joining the audit log multicast group: %w", ErrUnavailable, err)
	}
	f := os.NewFile(uintptr(fd), "audit")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return &Reader{f: f, rc: rc, log: log, join: newJoiner(), buf: make([]byte, unix.NLMSG_HDRLEN+MaxRecord+64)}, nil
}

// Close closes the socket; a Next in progress returns os.ErrClosed.
func (r *Reader) Close() error {
	var err error
	r.closeOnce.Do(func() {
		r.closed.Store(true)
		err = r.f.Close()
	})
	return err
}

// Next returns the next Landlock denial. It returns ctx's error when ctx ends, and
// os.ErrClosed after Close. Records it cannot parse are logged and skipped; records the kernel
// dropped because this reader fell behind are logged as lost.
func (r *Reader) Next(ctx context.Context) (Denial, error) {
	stop := context.AfterFunc(ctx, func() { _ = r.f.SetReadDeadline(time.Unix(1, 0)) })
	defer func() {
		if !stop() {
			_ = r.f.SetReadDeadline(time.Time{})
		}
	}()
	for len(r.out) == 0 {
		typ, text, err := r.read()
		switch {
		case errors.Is(err, unix.ENOBUFS):
			r.log.Warn("Landlock denials lost: the audit multicast overflowed")
			continue
		case errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() != nil:
			return Denial{}, ctx.Err()
		case err != nil && r.closed.Load():
			return Denial{}, os.ErrClosed
		case err != nil:
			return Denial{}, err
		}
		switch typ {
		case TypeAccess:
			a, err := ParseAccess(text)
			if err != nil {
				r.log.Warn("skipping a Landlock audit record", "err", err)
				continue
			}
			r.out = append(r.out, r.join.access(a)...)
		case TypeDomain:
			d, err := ParseDomain(text)
			if err != nil {
				r.log.Warn("skipping a Landlock audit record", "err", err)
				continue
			}
			r.out = append(r.out, r.join.domain(d)...)
		}
	}
	d := r.out[0]
	r.out = r.out[1:]
	return d, nil
}

// read returns one record from the kernel: its type and text.
func (r *Reader) read() (uint16, []byte, error) {
	for {
		var n int
		var from unix.Sockaddr
		var rerr error
		err := r.rc.Read(func(fd uintptr) bool {
			n, from, rerr = unix.Recvfrom(int(fd), r.buf, 0)
			return rerr != unix.EAGAIN
		})
		if err == nil {
			err = rerr
		}
		if err != nil {
			return 0, nil, err
		}
		if nl, ok := from.(*unix.SockaddrNetlink); !ok || nl.Pid != 0 {
			continue // only the kernel's records count
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
