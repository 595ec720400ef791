package tpmrot

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"time"
)

// maxResponse bounds a response read from a socket. TPM responses are at most a few KiB
// (MAX_RESPONSE_SIZE is 4096 in the reference implementation).
const maxResponse = 64 << 10

// socketTimeout bounds one command over a socket, including the TPM's work: creating an RSA
// primary key in swtpm takes up to a few seconds.
const socketTimeout = 2 * time.Minute

// socketTPM sends each command over a new connection to a TPM emulator's data channel (swtpm's
// socket interface, Unix or TCP): it writes the raw command and reads one response, framed by
// the size in its header.
//
// Why not go-tpm's transports: tpm2/transport/tcp speaks the Microsoft simulator's protocol,
// which needs a second, "platform" port that swtpm does not offer on its data channel; and
// tpm2/transport/linuxudstpm reads a response with a single read of at most 4 KiB and retries
// TPM_RC_RETRY on its own, which would hide it from Retry.
type socketTPM struct {
	network, addr string
	timeout       time.Duration
}

func (s *socketTPM) Send(cmd []byte) ([]byte, error) {
	conn, err := net.DialTimeout(s.network, s.addr, s.timeout)
	if err != nil {
		return nil, fmt.Errorf("connecting to the TPM: %w", err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(s.timeout)); err != nil {
		return nil, fmt.Errorf("connecting to the TPM: %w", err)
	}
	if _, err := conn.Write(cmd); err != nil {
		return nil, fmt.Errorf("sending a command to the TPM at %s: %w", s.addr, err)
	}
	// TPM response header: tag (2), size (4), response code (4).
	hdr := make([]byte, 10)
	if _, err := io.ReadFull(conn, hdr); err != nil {
		return nil, fmt.Errorf("reading the TPM's response from %s: %w", s.addr, err)
	}
	size := binary.BigEndian.Uint32(hdr[2:6])
	if size < 10 || size > maxResponse {
		return nil, fmt.Errorf("the TPM at %s answered with a response of %d bytes", s.addr, size)
	}
	rsp := make([]byte, size)
	copy(rsp, hdr)
	if _, err := io.ReadFull(conn, rsp[10:]); err != nil {
		return nil, fmt.Errorf("reading the TPM's response from %s: %w", s.addr, err)
	}
	return rsp, nil
}

func (s *socketTPM) Close() error { return nil }
