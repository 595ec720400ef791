package kernelaudit

import (
	"encoding/binary"
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// auditStatus is the head of struct audit_status: mask, enabled, failure, pid.
const auditStatusLen = 16

// auditEnabled asks the kernel whether audit is on: 0 off, 1 on, 2 on and locked.
func auditEnabled() (uint32, error) {
	reply, err := auditRequest(unix.AUDIT_GET, nil)
	if err != nil {
		return 0, err
	}
	if len(reply) < auditStatusLen {
		return 0, fmt.Errorf("audit status of %d bytes", len(reply))
	}
	return binary.NativeEndian.Uint32(reply[4:8]), nil
}

// setAuditEnabled turns audit on (1) or off (0).
func setAuditEnabled(v uint32) error {
	st := make([]byte, 8)
	binary.NativeEndian.PutUint32(st[0:], unix.AUDIT_STATUS_ENABLED) // mask
	binary.NativeEndian.PutUint32(st[4:], v)
	_, err := auditRequest(unix.AUDIT_SET, st)
	return err
}

// auditRequest sends one request on a socket of its own and returns the payload of the
// kernel's answer: AUDIT_GET's status, or nothing for an acknowledged AUDIT_SET.
func auditRequest(typ uint16, payload []byte) ([]byte, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_AUDIT)
	if err != nil {
		return nil, fmt.Errorf("audit socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 5}); err != nil {
		return nil, err
	}
	const seq = 1
	msg := make([]byte, unix.NLMSG_HDRLEN+len(payload))
	binary.NativeEndian.PutUint32(msg[0:], uint32(len(msg)))
	binary.NativeEndian.PutUint16(msg[4:], typ)
	binary.NativeEndian.PutUint16(msg[6:], unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	binary.NativeEndian.PutUint32(msg[8:], seq)
	copy(msg[unix.NLMSG_HDRLEN:], payload)
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("audit request %d: %w", typ, err)
	}
	buf := make([]byte, 1<<12)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return nil, fmt.Errorf("audit request %d: %w", typ, err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return nil, fmt.Errorf("audit request %d: answer: %w", typ, err)
		}
		for _, m := range msgs {
			if m.Header.Seq != seq {
				continue
			}
			switch m.Header.Type {
			case unix.NLMSG_ERROR:
				if len(m.Data) < 4 {
					return nil, fmt.Errorf("audit request %d: short error answer", typ)
				}
				if code := int32(binary.NativeEndian.Uint32(m.Data[0:4])); code != 0 {
					return nil, fmt.Errorf("audit request %d: %w", typ, syscall.Errno(-code))
				}
				if typ != unix.AUDIT_GET {
					return nil, nil
				}
				// AUDIT_GET's answer may come before or after its acknowledgement.
			case typ:
				return append([]byte(nil), m.Data...), nil
			}
		}
	}
}
