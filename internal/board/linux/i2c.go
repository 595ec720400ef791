package linux

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"unsafe"

	"github.com/rampart-iot/rampart/internal/board"
	"golang.org/x/sys/unix"
)

// The i2c-dev interface (linux/i2c-dev.h, linux/i2c.h).
const (
	// ioctlI2CRDWR is I2C_RDWR: a combined transaction of i2c_msg.
	ioctlI2CRDWR = 0x0707
	// i2cMsgRead is I2C_M_RD: the message reads from the target.
	i2cMsgRead = 0x0001
	// MaxI2CTransfer bounds each direction of one I2C transfer (i2c-dev refuses messages
	// longer than 8192 bytes).
	MaxI2CTransfer = 8192
)

// i2cMsg is struct i2c_msg: __u16 addr, flags, len; __u8 *buf. Go lays it out as C does
// (buf aligned to a pointer), which TestI2CLayout checks byte by byte.
type i2cMsg struct {
	addr  uint16
	flags uint16
	len   uint16
	buf   uintptr
}

// i2cRdwrData is struct i2c_rdwr_ioctl_data: struct i2c_msg *msgs; __u32 nmsgs.
type i2cRdwrData struct {
	msgs  uintptr
	nmsgs uint32
}

// i2cMessages returns the messages of a write-then-read: a write of w (if any), then a read
// into r (if any); a transfer with neither is one empty write (a quick probe of the address).
func i2cMessages(addr uint16, w, r []byte) []i2cMsg {
	var msgs []i2cMsg
	if len(w) > 0 || len(r) == 0 {
		m := i2cMsg{addr: addr, len: uint16(len(w))}
		if len(w) > 0 {
			m.buf = uintptr(unsafe.Pointer(&w[0]))
		}
		msgs = append(msgs, m)
	}
	if len(r) > 0 {
		msgs = append(msgs, i2cMsg{addr: addr, flags: i2cMsgRead, len: uint16(len(r)), buf: uintptr(unsafe.Pointer(&r[0]))})
	}
	return msgs
}

// i2cBus is an open i2c-dev adapter.
type i2cBus struct {
	path string
	mu   sync.Mutex
	fd   int
}

func openI2C(path string) (*i2cBus, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	return &i2cBus{path: path, fd: fd}, nil
}

// transfer writes w to addr and reads r from it in one combined transaction (a repeated
// start between them, as I2CMaster_WriteThenRead).
func (b *i2cBus) transfer(addr uint16, w, r []byte) error {
	if addr > 0x7F {
		return fmt.Errorf("%w: I2C address %#x: want a 7-bit address", board.ErrInvalid, addr)
	}
	if len(w) > MaxI2CTransfer || len(r) > MaxI2CTransfer {
		return fmt.Errorf("%w: I2C transfer of %d bytes out and %d in: at most %d each way", board.ErrInvalid, len(w), len(r), MaxI2CTransfer)
	}
	// The kernel follows the pointers inside msgs and data: pin everything they point to.
	var pin runtime.Pinner
	defer pin.Unpin()
	if len(w) > 0 {
		pin.Pin(&w[0])
	}
	if len(r) > 0 {
		pin.Pin(&r[0])
	}
	msgs := i2cMessages(addr, w, r)
	pin.Pin(&msgs[0])
	data := &i2cRdwrData{msgs: uintptr(unsafe.Pointer(&msgs[0])), nmsgs: uint32(len(msgs))}
	pin.Pin(data)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fd < 0 {
		return fmt.Errorf("%s: closed", b.path)
	}
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(b.fd), ioctlI2CRDWR, uintptr(unsafe.Pointer(data)))
	runtime.KeepAlive(msgs)
	if errno != 0 {
		if errors.Is(errno, unix.ENXIO) || errors.Is(errno, unix.EREMOTEIO) {
			return fmt.Errorf("I2C %s address %#x: %w (%v)", b.path, addr, board.ErrNoDevice, errno)
		}
		return fmt.Errorf("I2C %s address %#x: %w", b.path, addr, errno)
	}
	return nil
}

func (b *i2cBus) close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fd < 0 {
		return nil
	}
	err := unix.Close(b.fd)
	b.fd = -1
	return err
}
