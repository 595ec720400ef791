package netlinksock

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// getLink is an RTM_GETLINK dump request: the kernel answers it for anyone.
func getLink() []byte {
	msg := make([]byte, unix.NLMSG_HDRLEN+unix.SizeofIfInfomsg)
	binary.NativeEndian.PutUint32(msg[0:], uint32(len(msg)))
	binary.NativeEndian.PutUint16(msg[4:], unix.RTM_GETLINK)
	binary.NativeEndian.PutUint16(msg[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	binary.NativeEndian.PutUint32(msg[8:], 7)
	msg[unix.NLMSG_HDRLEN] = unix.AF_UNSPEC
	return msg
}

func TestSendAndReceive(t *testing.T) {
	c, err := Open(unix.NETLINK_ROUTE, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Send(getLink()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second) // bounds a hang only
	defer cancel()
	buf := make([]byte, 64<<10)
	n, err := c.Receive(ctx, buf)
	if err != nil {
		t.Fatal(err)
	}
	if n < unix.NLMSG_HDRLEN || binary.NativeEndian.Uint32(buf[8:12]) != 7 {
		t.Fatalf("received %d bytes %x; want the answer to request 7", n, buf[:min(n, 32)])
	}
}

func TestReceiveReportsATruncatedDatagram(t *testing.T) {
	c, err := Open(unix.NETLINK_ROUTE, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Send(getLink()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if _, err := c.Receive(ctx, make([]byte, 8)); !errors.Is(err, ErrTruncated) {
		t.Fatalf("Receive into 8 bytes: %v, want ErrTruncated", err)
	}
}

func TestReceiveEndsWithItsContextAndClose(t *testing.T) {
	c, err := Open(unix.NETLINK_ROUTE, 0)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	ctx, cancel := context.WithCancel(t.Context())
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	if _, err := c.Receive(ctx, buf); !errors.Is(err, context.Canceled) {
		t.Fatalf("Receive after its context ended: %v, want context.Canceled", err)
	}
	// The deadline it set is gone: a later Receive waits again, until Close.
	go func() { time.Sleep(50 * time.Millisecond); c.Close() }()
	if _, err := c.Receive(t.Context(), buf); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Receive after Close: %v, want os.ErrClosed", err)
	}
}

// TestCancelledReceiveLeavesNoDeadline: a Receive whose context ends just as a datagram arrives
// must not leave the socket's read deadline in the past for the next Receive, whose context is
// live. The race is narrow, so it runs many rounds.
func TestCancelledReceiveLeavesNoDeadline(t *testing.T) {
	c, err := Open(unix.NETLINK_ROUTE, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := make([]byte, unix.NLMSG_HDRLEN+unix.SizeofIfInfomsg) // lo's link, one answer
	binary.NativeEndian.PutUint32(req[0:], uint32(len(req)))
	binary.NativeEndian.PutUint16(req[4:], unix.RTM_GETLINK)
	binary.NativeEndian.PutUint16(req[6:], unix.NLM_F_REQUEST)
	binary.NativeEndian.PutUint32(req[unix.NLMSG_HDRLEN+4:], 1)
	buf := make([]byte, 1<<16)
	live := func(round int) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := c.Receive(ctx, buf); err != nil {
			t.Fatalf("round %d: a Receive with a live context after a cancelled one: %v (deadline exceeded: %v)", round, err, errors.Is(err, os.ErrDeadlineExceeded))
		}
	}
	for i := range 20000 {
		if err := c.Send(req); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		go cancel()
		if _, err := c.Receive(ctx, buf); errors.Is(err, context.Canceled) {
			live(i) // the answer is still queued
		} else if err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		if err := c.Send(req); err != nil {
			t.Fatal(err)
		}
		live(i)
	}
}

// TestTryReceive: TryReceive returns a waiting datagram, and ErrEmpty, at once, when none is.
func TestTryReceive(t *testing.T) {
	c, err := Open(unix.NETLINK_ROUTE, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 64<<10)
	if _, err := c.TryReceive(buf); !errors.Is(err, ErrEmpty) {
		t.Fatalf("TryReceive with nothing sent: %v, want ErrEmpty", err)
	}
	if err := c.Send(getLink()); err != nil {
		t.Fatal(err)
	}
	// The kernel answers a dump in the Send call, so the answer is queued when Send returns.
	n, err := c.TryReceive(buf)
	if err != nil {
		t.Fatal(err)
	}
	if n < unix.NLMSG_HDRLEN || binary.NativeEndian.Uint32(buf[8:12]) != 7 {
		t.Fatalf("received %d bytes %x; want the answer to request 7", n, buf[:min(n, 32)])
	}
	c.Close()
	if _, err := c.TryReceive(buf); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("TryReceive after Close: %v, want os.ErrClosed", err)
	}
}

// TestSetReceiveBuffer: as root the buffer goes past net.core.rmem_max (SO_RCVBUFFORCE);
// without, it is granted up to it.
func TestSetReceiveBuffer(t *testing.T) {
	c, err := Open(unix.NETLINK_ROUTE, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const want = 4 << 20
	got, err := c.SetReceiveBuffer(want)
	if err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 && got < want {
		t.Fatalf("as root, a receive buffer of %d bytes was granted %d", want, got)
	}
	if got <= 0 {
		t.Fatalf("granted %d bytes", got)
	}
}
