package nflog

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/rampart-iot/rampart/internal/netlinksock"
	"golang.org/x/sys/unix"
)

// Defaults for Config.
const (
	// DefaultCopyRange is how much of each packet the kernel copies: the largest IPv4 header
	// (60 bytes) and the first 68 bytes after it, ports and all.
	DefaultCopyRange = 128
	// maxDatagram bounds one read: the kernel's batches stay below its nlbufsiz (a page by
	// default; at most 128 KiB), and a longer one is reported as cut, not read past.
	maxDatagram = 64 << 10
	// ackTimeout bounds the wait for the kernel's answer to the configuration.
	ackTimeout = 5 * time.Second
)

// Config configures Open.
type Config struct {
	// Group is the log group to bind (the rules' "log group N").
	Group uint16
	// CopyRange is how many bytes of each packet the kernel copies (DefaultCopyRange when 0).
	CopyRange uint32
	// Logger is nil for no logging.
	Logger *slog.Logger
}

// Reader reads the packets logged to one group in one network namespace. Next is for one
// goroutine at a time; Close may be called at any time.
type Reader struct {
	c     *netlinksock.Conn
	group uint16
	log   *slog.Logger
	buf   []byte
	out   []Packet // parsed, not yet returned
	// datagram, if set, sees every datagram read (tests capture real messages with it).
	datagram func([]byte)
}

// Open binds a NETLINK_NETFILTER socket to cfg.Group in the calling thread's network
// namespace, asking for every packet's first CopyRange bytes, delivered at once. It fails if
// another socket holds the group there (the kernel answers EPERM).
func Open(cfg Config) (*Reader, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.CopyRange == 0 {
		cfg.CopyRange = DefaultCopyRange
	}
	c, err := netlinksock.Open(unix.NETLINK_NETFILTER, 0)
	if err != nil {
		return nil, fmt.Errorf("nflog: %w", err)
	}
	r := &Reader{c: c, group: cfg.Group, log: log, buf: make([]byte, maxDatagram)}
	if err := r.configure(cfg.CopyRange); err != nil {
		c.Close()
		return nil, fmt.Errorf("nflog: binding log group %d: %w", cfg.Group, err)
	}
	return r, nil
}

// configure binds the group, copies packets, and sets the queue threshold to 1 (each packet
// sent as it is logged), in one NFULNL_MSG_CONFIG, and waits for the kernel's acknowledgement.
func (r *Reader) configure(copyRange uint32) error {
	msg := binary.NativeEndian.AppendUint32(nil, 0) // length, set below
	msg = binary.NativeEndian.AppendUint16(msg, subsysULOG<<8|msgConfig)
	msg = binary.NativeEndian.AppendUint16(msg, unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	msg = binary.NativeEndian.AppendUint32(msg, 1) // sequence
	msg = binary.NativeEndian.AppendUint32(msg, 0) // port: the kernel's
	msg = append(msg, unix.AF_UNSPEC, unix.NFNETLINK_V0)
	msg = binary.BigEndian.AppendUint16(msg, r.group)
	msg = appendAttr(msg, cfgCmd, []byte{cmdBind})
	msg = appendAttr(msg, cfgMode, append(binary.BigEndian.AppendUint32(nil, copyRange), copyPacket, 0))
	msg = appendAttr(msg, cfgQThresh, binary.BigEndian.AppendUint32(nil, 1))
	binary.NativeEndian.PutUint32(msg[0:4], uint32(len(msg)))
	if err := r.c.Send(msg); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), ackTimeout)
	defer cancel()
	for {
		b, err := r.recv(ctx)
		if err != nil {
			return fmt.Errorf("waiting for the kernel's answer: %w", err)
		}
		if len(b) < unix.NLMSG_HDRLEN+4 || binary.NativeEndian.Uint16(b[4:6]) != unix.NLMSG_ERROR {
			continue // a packet logged already, before its mode was set
		}
		if errno := int32(binary.NativeEndian.Uint32(b[unix.NLMSG_HDRLEN:])); errno != 0 {
			return unix.Errno(-errno)
		}
		return nil
	}
}

func appendAttr(b []byte, typ uint16, v []byte) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(unix.SizeofNlAttr+len(v)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, v...)
	for len(b)%unix.NLA_ALIGNTO != 0 {
		b = append(b, 0)
	}
	return b
}

// Close closes the socket, which unbinds the group; a Next in progress returns os.ErrClosed.
func (r *Reader) Close() error { return r.c.Close() }

// Next returns the next logged packet. It returns ctx's error when ctx ends, and os.ErrClosed
// after Close. Messages it cannot parse are logged and skipped; packets the kernel dropped
// because this reader fell behind are logged as lost.
func (r *Reader) Next(ctx context.Context) (Packet, error) {
	for len(r.out) == 0 {
		b, err := r.recv(ctx)
		switch {
		case errors.Is(err, unix.ENOBUFS):
			r.log.Warn("logged packets lost: the socket's buffer overflowed", "group", r.group)
			continue
		case err != nil:
			return Packet{}, err
		}
		ps, err := Parse(b)
		if err != nil {
			r.log.Warn("skipping an nflog message", "group", r.group, "err", err)
		}
		for _, p := range ps {
			if p.Group == r.group {
				r.out = append(r.out, p)
			}
		}
	}
	p := r.out[0]
	r.out = r.out[1:]
	return p, nil
}

// recv returns the next datagram the kernel sent.
func (r *Reader) recv(ctx context.Context) ([]byte, error) {
	for {
		n, err := r.c.Receive(ctx, r.buf)
		if errors.Is(err, netlinksock.ErrTruncated) {
			r.log.Warn("skipping an nflog datagram longer than the read buffer", "group", r.group, "err", err)
			continue
		}
		if err != nil {
			return nil, err
		}
		if r.datagram != nil {
			r.datagram(r.buf[:n])
		}
		return r.buf[:n], nil
	}
}
