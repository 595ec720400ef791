package linux

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/internal/board"
	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal pair: the master, which the test holds as the far end of
// the wire, and the path of the slave, a real tty that the board opens as its UART.
func openPTY(t *testing.T) (*os.File, string) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	rc, err := m.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var ierr error
	if err := rc.Control(func(fd uintptr) {
		if ierr = unix.IoctlSetPointerInt(int(fd), unix.TIOCSPTLCK, 0); ierr == nil {
			n, ierr = unix.IoctlGetInt(int(fd), unix.TIOCGPTN)
		}
	}); err != nil || ierr != nil {
		t.Fatal(err, ierr)
	}
	return m, "/dev/pts/" + strconv.Itoa(n)
}

// readFull reads n bytes from the master, waiting at most 5 s for them.
func readFull(t *testing.T, m *os.File, n int) []byte {
	t.Helper()
	if err := m.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 0, n)
	for len(buf) < n {
		p := make([]byte, n-len(buf))
		k, err := m.Read(p)
		if err != nil {
			t.Fatalf("read %q of %d bytes: %v", buf, n, err)
		}
		buf = append(buf, p[:k]...)
	}
	return buf
}

// uartRead polls the board's UART until it has read n bytes, for at most 5 s.
func uartRead(t *testing.T, b board.Board, isu string, n int) []byte {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	var got []byte
	for len(got) < n {
		p := make([]byte, n-len(got))
		k, err := b.UARTRead(isu, p)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p[:k]...)
		if k == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("UART read %q, want %d bytes", got, n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return got
}

const serialDefs = `{"Name":"SERIAL","Type":"Uart","AppManifestValue":"ISU0"}`

func uartBoard(t *testing.T, tty string) *Board {
	t.Helper()
	dir := writeBoard(t, minimal+`,"Uart":[{"Isu":"ISU0","Device":"`+tty+`","Baud":115200}]}`, definitions(serialDefs))
	b, err := Open(board.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// TestUARTOnPTY drives the UART path against a real tty: raw mode (no CR/LF translation, no
// line editing, no signals, no echo), the speed set, reads that do not wait, and the counters.
func TestUARTOnPTY(t *testing.T) {
	m, tty := openPTY(t)
	exerciseUART(t, m, uartBoard(t, tty))
}

// TestUARTOnSerialPort drives the UART path through the kernel's 8250 driver and an emulated
// 16550: two serial ports wired to each other, named in RAMPART_TEST_SERIAL_PAIR (the board's,
// then the far end's). TestLinuxBoardInVM runs it in a QEMU guest whose ttyS2 and ttyS3 are
// wired so.
func TestUARTOnSerialPort(t *testing.T) {
	pair := os.Getenv("RAMPART_TEST_SERIAL_PAIR")
	tty, farPath, ok := strings.Cut(pair, ",")
	if !ok {
		t.Skip("needs two serial ports wired to each other, named in RAMPART_TEST_SERIAL_PAIR=/dev/ttyS2,/dev/ttyS3 (TestLinuxBoardInVM runs it in a VM that has them)")
	}
	far, err := os.OpenFile(farPath, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { far.Close() })
	// The far end in raw mode at the board's speed, as the device at the other end of the wire.
	rc, err := far.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var terr error
	if err := rc.Control(func(fd uintptr) {
		var tm *unix.Termios
		if tm, terr = unix.IoctlGetTermios(int(fd), unix.TCGETS); terr != nil {
			return
		}
		tm.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
		tm.Oflag &^= unix.OPOST
		tm.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
		tm.Cflag &^= unix.CSIZE | unix.PARENB | unix.CBAUD | unix.CRTSCTS
		tm.Cflag |= unix.CS8 | unix.CLOCAL | unix.CREAD | unix.B115200
		if terr = unix.IoctlSetTermios(int(fd), unix.TCSETS, tm); terr == nil {
			terr = unix.IoctlSetInt(int(fd), unix.TCFLSH, unix.TCIOFLUSH)
		}
	}); err != nil || terr != nil {
		t.Fatal(err, terr)
	}
	// The serial core's port type: 4 is PORT_16550A, the UART the 8250 driver found behind it.
	if typ, err := readAttribute(filepath.Join("/sys/class/tty", filepath.Base(tty), "type")); err != nil || typ != "4" {
		t.Fatalf("%s is not a 16550A serial port: type %q, %v", tty, typ, err)
	}
	exerciseUART(t, far, uartBoard(t, tty))
}

// exerciseUART checks the board's UART ISU0 against far, the other end of its wire.
func exerciseUART(t *testing.T, m *os.File, b *Board) {
	t.Helper()
	tm, err := unix.IoctlGetTermios(b.uarts["ISU0"].fd, unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if tm.Lflag&(unix.ICANON|unix.ECHO|unix.ISIG) != 0 || tm.Oflag&unix.OPOST != 0 || tm.Iflag&(unix.ICRNL|unix.IXON) != 0 {
		t.Fatalf("not raw: %+v", tm)
	}
	if tm.Cflag&unix.CBAUD != unix.B115200 || tm.Cflag&unix.CSIZE != unix.CS8 {
		t.Fatalf("cflag %#o: want 115200 baud, 8 bits", tm.Cflag)
	}

	// Nothing waiting: a read returns at once with nothing.
	if n, err := b.UARTRead("ISU0", make([]byte, 16)); n != 0 || err != nil {
		t.Fatalf("empty read: %d, %v", n, err)
	}
	// Out: a newline stays a newline (no ONLCR).
	if n, err := b.UARTWrite("ISU0", []byte("hello\n")); n != 6 || err != nil {
		t.Fatalf("write: %d, %v", n, err)
	}
	if got := readFull(t, m, 6); string(got) != "hello\n" {
		t.Fatalf("the far end read %q", got)
	}
	// In: a carriage return stays one (no ICRNL), ^C is a byte (no ISIG), and bytes arrive
	// without a newline (no ICANON).
	if _, err := m.Write([]byte("a\rb\x03")); err != nil {
		t.Fatal(err)
	}
	if got := uartRead(t, b, "ISU0", 4); string(got) != "a\rb\x03" {
		t.Fatalf("the UART read %q", got)
	}
	// A read takes no more than asked; the rest waits, and the state counts it.
	if _, err := m.Write([]byte("0123456789")); err != nil {
		t.Fatal(err)
	}
	if got := uartRead(t, b, "ISU0", 3); string(got) != "012" {
		t.Fatalf("read %q", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	var st board.State
	for {
		st = b.State()
		if len(st.UARTs) == 1 && st.UARTs[0].Buffered == 7 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if want := (board.UART{ISU: "ISU0", Buffered: 7, TxBytes: 6, RxBytes: 7}); len(st.UARTs) != 1 || st.UARTs[0] != want {
		t.Fatalf("state %+v, want %+v", st.UARTs, want)
	}
	if got := uartRead(t, b, "ISU0", 7); string(got) != "3456789" {
		t.Fatalf("read %q", got)
	}

	if _, err := b.UARTWrite("ISU1", []byte("x")); !errors.Is(err, board.ErrNoPeripheral) {
		t.Fatalf("unknown ISU: %v", err)
	}
	if _, err := b.UARTRead("ISU1", make([]byte, 1)); !errors.Is(err, board.ErrNoPeripheral) {
		t.Fatalf("unknown ISU: %v", err)
	}
}

func TestUARTNotATTY(t *testing.T) {
	dir := writeBoard(t, minimal+`,"Uart":[{"Isu":"ISU0","Device":"/dev/null","Baud":9600}]}`, definitions(serialDefs))
	_, err := Open(board.Options{Dir: dir})
	if err == nil || !errorContains(err, "Uart[0] (ISU0)", "/dev/null", "not a tty") {
		t.Fatalf("opening /dev/null as a UART: %v", err)
	}
	dir = writeBoard(t, minimal+`,"Uart":[{"Isu":"ISU0","Device":"/dev/rampart-no-such-tty","Baud":9600}]}`, definitions(serialDefs))
	if _, err := Open(board.Options{Dir: dir}); !errors.Is(err, os.ErrNotExist) || !errorContains(err, "Uart[0] (ISU0)") {
		t.Fatalf("a missing tty: %v", err)
	}
}
