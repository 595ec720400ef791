package linux

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

// The golden layouts below are the kernel's UAPI structs on a 64-bit little-endian machine
// (amd64, arm64), worked out by hand from the headers: linux/i2c.h (struct i2c_msg: __u16 addr,
// __u16 flags, __u16 len, then __u8 *buf aligned to 8: 16 bytes), linux/i2c-dev.h (struct
// i2c_rdwr_ioctl_data: struct i2c_msg *msgs, __u32 nmsgs, padded to 16 bytes) and
// linux/spi/spidev.h (struct spi_ioc_transfer: __u64 tx_buf, __u64 rx_buf, __u32 len,
// __u32 speed_hz, __u16 delay_usecs, __u8 bits_per_word, cs_change, tx_nbits, rx_nbits,
// word_delay_usecs, pad: 32 bytes). The ioctl numbers are those of the headers' macros with
// asm-generic/ioctl.h's encoding.

func bytesOf[T any](v *T) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(v)), unsafe.Sizeof(*v))
}

func need64LE(t *testing.T) {
	t.Helper()
	if unsafe.Sizeof(uintptr(0)) != 8 || runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" && runtime.GOARCH != "riscv64" {
		t.Skipf("the golden layouts are for 64-bit little-endian machines, not %s", runtime.GOARCH)
	}
}

func TestI2CLayout(t *testing.T) {
	need64LE(t)
	m := i2cMsg{addr: 0x48, flags: i2cMsgRead, len: 0x0102, buf: 0x1122334455667788}
	want := []byte{0x48, 0x00, 0x01, 0x00, 0x02, 0x01, 0, 0, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11}
	if got := bytesOf(&m); !bytes.Equal(got, want) {
		t.Fatalf("i2c_msg\n% x\nwant\n% x", got, want)
	}
	d := i2cRdwrData{msgs: 0x0807060504030201, nmsgs: 2}
	want = []byte{1, 2, 3, 4, 5, 6, 7, 8, 2, 0, 0, 0, 0, 0, 0, 0}
	if got := bytesOf(&d); !bytes.Equal(got, want) {
		t.Fatalf("i2c_rdwr_ioctl_data\n% x\nwant\n% x", got, want)
	}
	if ioctlI2CRDWR != 0x0707 || i2cMsgRead != 1 {
		t.Fatalf("I2C_RDWR %#x, I2C_M_RD %#x", ioctlI2CRDWR, i2cMsgRead)
	}
}

func TestI2CMessages(t *testing.T) {
	w, r := []byte{0x00}, make([]byte, 2)
	ms := i2cMessages(0x48, w, r)
	if len(ms) != 2 || ms[0] != (i2cMsg{addr: 0x48, len: 1, buf: uintptr(unsafe.Pointer(&w[0]))}) ||
		ms[1] != (i2cMsg{addr: 0x48, flags: i2cMsgRead, len: 2, buf: uintptr(unsafe.Pointer(&r[0]))}) {
		t.Fatalf("write then read: %+v", ms)
	}
	if ms := i2cMessages(0x10, nil, r); len(ms) != 1 || ms[0].flags != i2cMsgRead || ms[0].len != 2 {
		t.Fatalf("read only: %+v", ms)
	}
	if ms := i2cMessages(0x10, w, nil); len(ms) != 1 || ms[0].flags != 0 || ms[0].len != 1 {
		t.Fatalf("write only: %+v", ms)
	}
	if ms := i2cMessages(0x10, nil, nil); len(ms) != 1 || ms[0].len != 0 || ms[0].buf != 0 {
		t.Fatalf("probe: %+v", ms)
	}
}

func TestSPILayout(t *testing.T) {
	need64LE(t)
	x := spiTransfer{txBuf: 0x0102030405060708, rxBuf: 0x1112131415161718, len: 0x21222324, speedHz: 0x31323334,
		delayUsecs: 0x4142, bitsPerWord: 0x51, csChange: 0x52, txNbits: 0x53, rxNbits: 0x54, wordDelay: 0x55, pad: 0x56}
	want := []byte{
		0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, // tx_buf
		0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11, // rx_buf
		0x24, 0x23, 0x22, 0x21, // len
		0x34, 0x33, 0x32, 0x31, // speed_hz
		0x42, 0x41, // delay_usecs
		0x51, 0x52, 0x53, 0x54, 0x55, 0x56, // bits_per_word, cs_change, tx_nbits, rx_nbits, word_delay_usecs, pad
	}
	if got := bytesOf(&x); !bytes.Equal(got, want) {
		t.Fatalf("spi_ioc_transfer\n% x\nwant\n% x", got, want)
	}
	if unsafe.Sizeof(x) != spiTransferSize {
		t.Fatalf("size %d", unsafe.Sizeof(x))
	}
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"SPI_IOC_MESSAGE(1)", ioctlSPIMessage(1), 0x40206b00},
		{"SPI_IOC_MESSAGE(2)", ioctlSPIMessage(2), 0x40406b00},
		{"SPI_IOC_WR_MODE", ioctlSPIWrMode, 0x40016b01},
		{"SPI_IOC_WR_BITS_PER_WORD", ioctlSPIWrBits, 0x40016b03},
		{"SPI_IOC_WR_MAX_SPEED_HZ", ioctlSPIWrMaxSpeed, 0x40046b04},
	} {
		if c.got != c.want {
			t.Errorf("%s = %#x, want %#x", c.name, c.got, c.want)
		}
	}
}

func TestSPITransfers(t *testing.T) {
	w, r := []byte{0x03, 0x10}, make([]byte, 4)
	ts := spiTransfers(w, r, 1_000_000)
	if len(ts) != 2 {
		t.Fatalf("%d transfers", len(ts))
	}
	if ts[0] != (spiTransfer{txBuf: uint64(uintptr(unsafe.Pointer(&w[0]))), len: 2, speedHz: 1_000_000, bitsPerWord: 8}) {
		t.Errorf("write %+v", ts[0])
	}
	if ts[1] != (spiTransfer{rxBuf: uint64(uintptr(unsafe.Pointer(&r[0]))), len: 4, speedHz: 1_000_000, bitsPerWord: 8}) {
		t.Errorf("read %+v", ts[1])
	}
	if ts[0].csChange != 0 {
		t.Error("the chip select would drop between the write and the read")
	}
	if ts := spiTransfers(nil, r, 1); len(ts) != 1 || ts[0].txBuf != 0 || ts[0].len != 4 {
		t.Errorf("read only %+v", ts)
	}
	if ts := spiTransfers(nil, nil, 1); len(ts) != 0 {
		t.Errorf("nothing: %+v", ts)
	}
}

// uapiProgram prints the kernel headers' layouts and ioctl numbers, as TestLayoutsMatchHeaders
// compares them with the Go structs.
const uapiProgram = `#include <stdio.h>
#include <stddef.h>
#include <linux/i2c.h>
#include <linux/i2c-dev.h>
#include <linux/spi/spidev.h>
#define F(s, f) printf(#s "." #f " %zu\n", offsetof(struct s, f))
int main(void) {
	printf("i2c_msg %zu\n", sizeof(struct i2c_msg));
	F(i2c_msg, addr); F(i2c_msg, flags); F(i2c_msg, len); F(i2c_msg, buf);
	printf("i2c_rdwr_ioctl_data %zu\n", sizeof(struct i2c_rdwr_ioctl_data));
	F(i2c_rdwr_ioctl_data, msgs); F(i2c_rdwr_ioctl_data, nmsgs);
	printf("spi_ioc_transfer %zu\n", sizeof(struct spi_ioc_transfer));
	F(spi_ioc_transfer, tx_buf); F(spi_ioc_transfer, rx_buf); F(spi_ioc_transfer, len);
	F(spi_ioc_transfer, speed_hz); F(spi_ioc_transfer, delay_usecs); F(spi_ioc_transfer, bits_per_word);
	F(spi_ioc_transfer, cs_change); F(spi_ioc_transfer, tx_nbits); F(spi_ioc_transfer, rx_nbits);
	F(spi_ioc_transfer, word_delay_usecs);
	printf("I2C_RDWR %lu\nI2C_M_RD %lu\n", (unsigned long)I2C_RDWR, (unsigned long)I2C_M_RD);
	printf("SPI_IOC_MESSAGE(1) %lu\nSPI_IOC_MESSAGE(2) %lu\n", (unsigned long)SPI_IOC_MESSAGE(1), (unsigned long)SPI_IOC_MESSAGE(2));
	printf("SPI_IOC_WR_MODE %lu\nSPI_IOC_WR_BITS_PER_WORD %lu\nSPI_IOC_WR_MAX_SPEED_HZ %lu\n",
		(unsigned long)SPI_IOC_WR_MODE, (unsigned long)SPI_IOC_WR_BITS_PER_WORD, (unsigned long)SPI_IOC_WR_MAX_SPEED_HZ);
	return 0;
}
`

// TestLayoutsMatchHeaders compiles a C program against this machine's kernel UAPI headers and
// compares every size, offset and ioctl number with the Go side (the golden tests above pin
// the same values without a compiler).
func TestLayoutsMatchHeaders(t *testing.T) {
	cc, err := exec.LookPath("cc")
	if err != nil {
		t.Skip("no C compiler to read the kernel headers with")
	}
	for _, h := range []string{"/usr/include/linux/i2c-dev.h", "/usr/include/linux/spi/spidev.h"} {
		if _, err := os.Stat(h); err != nil {
			t.Skipf("no kernel UAPI headers: %v", err)
		}
	}
	dir := t.TempDir()
	src, bin := filepath.Join(dir, "uapi.c"), filepath.Join(dir, "uapi")
	if err := os.WriteFile(src, []byte(uapiProgram), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(cc, "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("compiling: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	var m i2cMsg
	var d i2cRdwrData
	var s spiTransfer
	want := map[string]uintptr{
		"i2c_msg": unsafe.Sizeof(m), "i2c_msg.addr": unsafe.Offsetof(m.addr), "i2c_msg.flags": unsafe.Offsetof(m.flags),
		"i2c_msg.len": unsafe.Offsetof(m.len), "i2c_msg.buf": unsafe.Offsetof(m.buf),
		"i2c_rdwr_ioctl_data": unsafe.Sizeof(d), "i2c_rdwr_ioctl_data.msgs": unsafe.Offsetof(d.msgs), "i2c_rdwr_ioctl_data.nmsgs": unsafe.Offsetof(d.nmsgs),
		"spi_ioc_transfer": unsafe.Sizeof(s), "spi_ioc_transfer.tx_buf": unsafe.Offsetof(s.txBuf), "spi_ioc_transfer.rx_buf": unsafe.Offsetof(s.rxBuf),
		"spi_ioc_transfer.len": unsafe.Offsetof(s.len), "spi_ioc_transfer.speed_hz": unsafe.Offsetof(s.speedHz),
		"spi_ioc_transfer.delay_usecs": unsafe.Offsetof(s.delayUsecs), "spi_ioc_transfer.bits_per_word": unsafe.Offsetof(s.bitsPerWord),
		"spi_ioc_transfer.cs_change": unsafe.Offsetof(s.csChange), "spi_ioc_transfer.tx_nbits": unsafe.Offsetof(s.txNbits),
		"spi_ioc_transfer.rx_nbits": unsafe.Offsetof(s.rxNbits), "spi_ioc_transfer.word_delay_usecs": unsafe.Offsetof(s.wordDelay),
		"I2C_RDWR": ioctlI2CRDWR, "I2C_M_RD": i2cMsgRead,
		"SPI_IOC_MESSAGE(1)": ioctlSPIMessage(1), "SPI_IOC_MESSAGE(2)": ioctlSPIMessage(2),
		"SPI_IOC_WR_MODE": ioctlSPIWrMode, "SPI_IOC_WR_BITS_PER_WORD": ioctlSPIWrBits, "SPI_IOC_WR_MAX_SPEED_HZ": ioctlSPIWrMaxSpeed,
	}
	seen := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		name, val, _ := strings.Cut(line, " ")
		v, err := strconv.ParseUint(val, 10, 64)
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		w, ok := want[name]
		if !ok {
			t.Fatalf("unexpected %q", line)
		}
		seen++
		if uintptr(v) != w {
			t.Errorf("%s: the headers say %d, the Go side %d", name, v, w)
		}
	}
	if seen != len(want) {
		t.Fatalf("the program printed %d of %d values", seen, len(want))
	}
}
