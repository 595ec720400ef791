package linux

import (
	"fmt"
	"runtime"
	"sync"
	"unsafe"

	"github.com/rampart-iot/rampart/internal/board"
	"golang.org/x/sys/unix"
)

// The spidev interface (linux/spi/spidev.h), with the ioctl encoding of asm-generic/ioctl.h
// (x86, arm, arm64, riscv; not mips, powerpc or sparc, whose direction bits differ).
const (
	spiIOCMagic = 'k'
	// MaxSPITransfer bounds the bytes of one SPI transfer, both ways together (spidev's
	// default bufsiz).
	MaxSPITransfer = 4096
	// spiTransferSize is sizeof(struct spi_ioc_transfer).
	spiTransferSize = 32
)

// iocWrite is _IOW(type, nr, size).
func iocWrite(typ, nr, size uintptr) uintptr { return 1<<30 | size<<16 | typ<<8 | nr }

var (
	// SPI_IOC_WR_MODE, SPI_IOC_WR_BITS_PER_WORD, SPI_IOC_WR_MAX_SPEED_HZ.
	ioctlSPIWrMode     = iocWrite(spiIOCMagic, 1, 1)
	ioctlSPIWrBits     = iocWrite(spiIOCMagic, 3, 1)
	ioctlSPIWrMaxSpeed = iocWrite(spiIOCMagic, 4, 4)
)

// ioctlSPIMessage is SPI_IOC_MESSAGE(n).
func ioctlSPIMessage(n int) uintptr { return iocWrite(spiIOCMagic, 0, uintptr(n)*spiTransferSize) }

// spiTransfer is struct spi_ioc_transfer; TestSPILayout checks it byte by byte.
type spiTransfer struct {
	txBuf       uint64
	rxBuf       uint64
	len         uint32
	speedHz     uint32
	delayUsecs  uint16
	bitsPerWord uint8
	csChange    uint8
	txNbits     uint8
	rxNbits     uint8
	wordDelay   uint8
	pad         uint8
}

// spiTransfers returns the transfers of a half-duplex write-then-read under one chip select:
// w out, then len(r) bytes in; either may be absent.
func spiTransfers(w, r []byte, speedHz uint32) []spiTransfer {
	var ts []spiTransfer
	if len(w) > 0 {
		ts = append(ts, spiTransfer{txBuf: uint64(uintptr(unsafe.Pointer(&w[0]))), len: uint32(len(w)), speedHz: speedHz, bitsPerWord: 8})
	}
	if len(r) > 0 {
		ts = append(ts, spiTransfer{rxBuf: uint64(uintptr(unsafe.Pointer(&r[0]))), len: uint32(len(r)), speedHz: speedHz, bitsPerWord: 8})
	}
	return ts
}

// spiDevice is one open spidev chip select.
type spiDevice struct {
	path    string
	speedHz uint32
	mu      sync.Mutex
	fd      int
}

func openSPI(path string, mode, speedHz int) (*spiDevice, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	m, bits, speed := uint8(mode), uint8(8), uint32(speedHz)
	for _, set := range []struct {
		req uintptr
		p   unsafe.Pointer
	}{{ioctlSPIWrMode, unsafe.Pointer(&m)}, {ioctlSPIWrBits, unsafe.Pointer(&bits)}, {ioctlSPIWrMaxSpeed, unsafe.Pointer(&speed)}} {
		if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), set.req, uintptr(set.p)); errno != 0 {
			unix.Close(fd)
			return nil, fmt.Errorf("configuring %s (mode %d, 8 bits, %d Hz): %w", path, mode, speedHz, errno)
		}
	}
	return &spiDevice{path: path, speedHz: speed, fd: fd}, nil
}

// transfer selects the chip, writes w, reads len(r) bytes into r, and deselects it.
func (d *spiDevice) transfer(w, r []byte) error {
	if len(w)+len(r) > MaxSPITransfer {
		return fmt.Errorf("%w: SPI transfer of %d bytes: at most %d", board.ErrInvalid, len(w)+len(r), MaxSPITransfer)
	}
	if len(w)+len(r) == 0 {
		return nil
	}
	// The kernel follows the pointers inside the transfers: pin everything they point to.
	var pin runtime.Pinner
	defer pin.Unpin()
	if len(w) > 0 {
		pin.Pin(&w[0])
	}
	if len(r) > 0 {
		pin.Pin(&r[0])
	}
	ts := spiTransfers(w, r, d.speedHz)
	pin.Pin(&ts[0])
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fd < 0 {
		return fmt.Errorf("%s: closed", d.path)
	}
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(d.fd), ioctlSPIMessage(len(ts)), uintptr(unsafe.Pointer(&ts[0])))
	runtime.KeepAlive(ts)
	if errno != 0 {
		return fmt.Errorf("SPI %s: %w", d.path, errno)
	}
	return nil
}

func (d *spiDevice) close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fd < 0 {
		return nil
	}
	err := unix.Close(d.fd)
	d.fd = -1
	return err
}
