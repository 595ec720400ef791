// Package netlinksock is a netlink socket that talks to the kernel and whose reads end with a
// context or Close: the one piece of plumbing the agent's kernel readers (internal/kernelaudit,
// internal/nflog) share. It opens and binds the socket, sends a message to the kernel, and
// reads one datagram at a time into the caller's buffer, keeping only the kernel's (port 0),
// waiting for it (Receive) or not (TryReceive); SetReceiveBuffer sizes what the kernel may queue
// for it before it drops datagrams.
//
// It owns no protocol: what the datagrams mean is the caller's. It trusts nothing in them; a
// datagram longer than the caller's buffer is reported as such, not read past.
package netlinksock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Conn is a bound netlink socket. Receive is for one goroutine at a time; Send and Close may be
// called at any time.
type Conn struct {
	f  *os.File
	rc syscall.RawConn

	closeOnce sync.Once
	closed    atomic.Bool
}

// Open opens a NETLINK protocol socket (unix.NETLINK_AUDIT, ...) in the calling thread's
// network namespace, bound to the multicast groups in the groups bit mask (0 for none).
func Open(protocol int, groups uint32) (*Conn, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, protocol)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: groups}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("binding the netlink socket: %w", err)
	}
	f := os.NewFile(uintptr(fd), "netlink")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &Conn{f: f, rc: rc}, nil
}

// Send sends msg, one or more netlink messages, to the kernel.
func (c *Conn) Send(msg []byte) error {
	var serr error
	err := c.rc.Write(func(fd uintptr) bool {
		serr = unix.Sendto(int(fd), msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		return serr != unix.EAGAIN
	})
	if err == nil {
		err = serr
	}
	if err != nil && c.closed.Load() {
		return os.ErrClosed
	}
	return err
}

// ErrTruncated is returned by Receive for a datagram longer than the buffer; the datagram is
// gone, and the next Receive reads the one after it.
var ErrTruncated = errors.New("netlink datagram longer than the read buffer")

// SetReceiveBuffer asks for a receive buffer of n bytes, past the system's limit
// (SO_RCVBUFFORCE, CAP_NET_ADMIN) if it can, else up to it (SO_RCVBUF, net.core.rmem_max). It
// returns the size the kernel granted (which counts its bookkeeping too: about twice n).
func (c *Conn) SetReceiveBuffer(n int) (int, error) {
	var got int
	var serr error
	err := c.rc.Control(func(fd uintptr) {
		if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n); serr != nil {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, n)
		}
		if serr == nil {
			got, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
		}
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return 0, fmt.Errorf("setting the netlink receive buffer: %w", err)
	}
	return got, nil
}

// ErrEmpty is returned by TryReceive when no datagram is waiting.
var ErrEmpty = errors.New("no netlink datagram waiting")

// TryReceive is Receive without waiting: it returns ErrEmpty when no datagram is waiting.
func (c *Conn) TryReceive(buf []byte) (int, error) {
	for {
		var n int
		var from unix.Sockaddr
		var rerr error
		err := c.rc.Read(func(fd uintptr) bool {
			n, from, rerr = unix.Recvfrom(int(fd), buf, unix.MSG_TRUNC|unix.MSG_DONTWAIT)
			return true
		})
		if err == nil {
			err = rerr
		}
		if n, done, err := c.received(buf, n, from, err); done {
			return n, err
		}
	}
}

// received sorts out one recvfrom's result: done is false for a datagram not the kernel's.
func (c *Conn) received(buf []byte, n int, from unix.Sockaddr, err error) (int, bool, error) {
	switch {
	case err == nil:
	case errors.Is(err, unix.EAGAIN):
		return 0, true, ErrEmpty
	case c.closed.Load():
		return 0, true, os.ErrClosed
	default:
		return 0, true, err
	}
	if nl, ok := from.(*unix.SockaddrNetlink); !ok || nl.Pid != 0 {
		return 0, false, nil // only the kernel's datagrams count
	}
	if n > len(buf) {
		return 0, true, fmt.Errorf("%w: %d bytes, buffer %d", ErrTruncated, n, len(buf))
	}
	return n, true, nil
}

// Receive reads the next datagram the kernel sent into buf and returns its length. Datagrams
// from other sockets are skipped. It returns ctx's error when ctx ends (also by its deadline),
// os.ErrClosed after Close, an error wrapping ErrTruncated (with the datagram's length) for a
// datagram longer than buf, and unix.ENOBUFS when the kernel dropped datagrams because the
// socket's buffer was full (the socket stays usable).
func (c *Conn) Receive(ctx context.Context, buf []byte) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	// A deadline in the past wakes the read when ctx ends. If the function has started, wait
	// for it to set that deadline before clearing it: clearing first would leave the deadline
	// in the past for the next Receive.
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		_ = c.f.SetReadDeadline(time.Unix(1, 0))
		close(fired)
	})
	defer func() {
		if !stop() {
			<-fired
			_ = c.f.SetReadDeadline(time.Time{})
		}
	}()
	for {
		var n int
		var from unix.Sockaddr
		var rerr error
		err := c.rc.Read(func(fd uintptr) bool {
			n, from, rerr = unix.Recvfrom(int(fd), buf, unix.MSG_TRUNC)
			return rerr != unix.EAGAIN
		})
		if err == nil {
			err = rerr
		}
		if errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() != nil {
			return 0, ctx.Err()
		}
		if n, done, err := c.received(buf, n, from, err); done {
			return n, err
		}
	}
}

// Close closes the socket; a Receive in progress returns os.ErrClosed.
func (c *Conn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		err = c.f.Close()
	})
	return err
}
