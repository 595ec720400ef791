package linux

import (
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// uart is an open tty in raw mode: 8 data bits, no parity, no flow control, no echo and no
// line editing, read and written without waiting. The kernel's tty buffers are its buffers:
// a read takes at most what the caller asked for, a write what the tty accepts.
type uart struct {
	path string
	mu   sync.Mutex
	fd   int
	tx   int64
	rx   int64
}

func openUART(path string, baud int) (*uart, error) {
	speed, ok := baudRates[baud]
	if !ok {
		return nil, fmt.Errorf("%s: %d baud is not a standard rate", path, baud)
	}
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	if err := makeRaw(fd, speed); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &uart{path: path, fd: fd}, nil
}

// makeRaw puts the tty fd in raw mode at speed (a termios B constant), as cfmakeraw, and
// drops whatever was waiting in it.
func makeRaw(fd int, speed uint32) error {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return fmt.Errorf("not a tty: %w", err)
	}
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON | unix.IXOFF | unix.IXANY
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB | unix.CSTOPB | unix.CRTSCTS | unix.CBAUD
	t.Cflag |= unix.CS8 | unix.CREAD | unix.CLOCAL | speed
	t.Cc[unix.VMIN] = 0
	t.Cc[unix.VTIME] = 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, t); err != nil {
		return fmt.Errorf("setting raw mode: %w", err)
	}
	if err := unix.IoctlSetInt(fd, unix.TCFLSH, unix.TCIOFLUSH); err != nil {
		return fmt.Errorf("flushing: %w", err)
	}
	return nil
}

// write writes what the tty takes now; a full output buffer takes less than p.
func (u *uart) write(p []byte) (int, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.fd < 0 {
		return 0, fmt.Errorf("%s: closed", u.path)
	}
	if len(p) == 0 {
		return 0, nil
	}
	n, err := unix.Write(u.fd, p)
	if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("writing %s: %w", u.path, err)
	}
	u.tx += int64(n)
	return n, nil
}

// read reads what has arrived, up to len(p) bytes, without waiting.
func (u *uart) read(p []byte) (int, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.fd < 0 {
		return 0, fmt.Errorf("%s: closed", u.path)
	}
	if len(p) == 0 {
		return 0, nil
	}
	n, err := unix.Read(u.fd, p)
	if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) || errors.Is(err, unix.EIO) && n <= 0 {
		// EIO: a pseudo-terminal whose other side is closed (a UART with nothing attached)
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading %s: %w", u.path, err)
	}
	u.rx += int64(n)
	return n, nil
}

// buffered is how many received bytes wait to be read.
func (u *uart) buffered() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.fd < 0 {
		return 0
	}
	n, err := unix.IoctlGetInt(u.fd, unix.TIOCINQ)
	if err != nil {
		return 0
	}
	return n
}

func (u *uart) counts() (tx, rx int64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.tx, u.rx
}

func (u *uart) close() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.fd < 0 {
		return nil
	}
	err := unix.Close(u.fd)
	u.fd = -1
	return err
}
