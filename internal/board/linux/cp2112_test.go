package linux

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rampart-iot/rampart/internal/board"
)

// The CP2112's reports (Silicon Labs AN495) that the kernel's hid-cp2112 driver uses.
const (
	cpGPIOConfig    = 0x02
	cpGPIOGet       = 0x03
	cpGPIOSet       = 0x04
	cpVersion       = 0x05
	cpSMBusConfig   = 0x06
	cpReadRequest   = 0x10
	cpWriteRead     = 0x11
	cpForceSend     = 0x12
	cpReadResponse  = 0x13
	cpWriteRequest  = 0x14
	cpStatusRequest = 0x15
	cpStatus        = 0x16
	cpCancel        = 0x17
)

// cp2112Target is the address of the I2C device behind the emulated bridge.
const cp2112Target = 0x48

// cp2112Descriptor is a HID report descriptor for a vendor-defined device with the bridge's two
// input reports (read data, transfer status) and its output reports, 63 bytes each: hid-core
// hands the driver only input reports its descriptor declares.
var cp2112Descriptor = func() []byte {
	d := []byte{0x06, 0x00, 0xff, 0x09, 0x01, 0xa1, 0x01, 0x15, 0x00, 0x26, 0xff, 0x00, 0x75, 0x08, 0x95, 0x3f}
	for _, id := range []byte{cpReadResponse, cpStatus} {
		d = append(d, 0x85, id, 0x09, 0x01, 0x81, 0x02)
	}
	for _, id := range []byte{cpReadRequest, cpWriteRead, cpForceSend, cpWriteRequest, cpStatusRequest, cpCancel} {
		d = append(d, 0x85, id, 0x09, 0x01, 0x91, 0x02)
	}
	return append(d, 0xc0)
}()

// cp2112 is a Silicon Labs CP2112, a USB HID bridge to I2C with 8 GPIO pins, emulated through
// /dev/uhid: the kernel's own hid-cp2112 driver binds to it and offers a GPIO chip and an I2C
// adapter that does plain I2C (master_xfer, with a repeated start between a write and a read).
// Behind the bridge are the pins, whose input levels the test drives, and one I2C device at
// cp2112Target: 256 registers behind a pointer that a write's first byte sets and that every
// byte read or written after it advances.
type cp2112 struct {
	dev *uhidDevice

	mu      sync.Mutex
	dir     uint8 // 1 = output
	latch   uint8 // the outputs as driven
	levels  uint8 // the inputs as driven from outside
	regs    [256]byte
	ptr     byte
	status  []byte   // the last transfer's status report
	pending []byte   // what the last read got, until the driver fetches it
	kinds   []string // the transfers the bridge was asked for, in order
}

// startCP2112 creates the emulated bridge and waits for hid-cp2112 to bind it; it returns the
// bridge, its GPIO chip's character device and its I2C adapter's i2c-dev.
func startCP2112(t *testing.T) (cp *cp2112, chip, adapter string) {
	t.Helper()
	cp = &cp2112{status: []byte{cpStatus, 0, 0, 0, 0, 0, 0}}
	cp.dev = newUHID(t, "RAMPART_REQUIRE_CP2112", map[string]string{"uhid": "/dev/uhid", "hid-cp2112": "/sys/bus/hid/drivers/cp2112", "i2c-dev": "/sys/class/i2c-dev"},
		"rampart emulated CP2112", 0x10c4, 0xea90, cp2112Descriptor, cp.answer)
	// hid-cp2112 probes it from a work queue: wait for its GPIO chip and I2C adapter.
	cp.dev.waitFor(t, "GPIO chip and I2C adapter from hid-cp2112", func(dir string) bool {
		chips, _ := filepath.Glob(filepath.Join(dir, "gpiochip*"))
		adapters, _ := filepath.Glob(filepath.Join(dir, "i2c-*"))
		if len(chips) != 1 || len(adapters) != 1 {
			return false
		}
		chip, adapter = "/dev/"+filepath.Base(chips[0]), "/dev/"+filepath.Base(adapters[0])
		_, err := os.Stat(adapter)
		return err == nil
	})
	return cp, chip, adapter
}

// answer answers the driver's requests: feature reports read and written, output reports.
func (cp *cp2112) answer(ev []byte) []byte {
	switch binary.LittleEndian.Uint32(ev) {
	case uhidGetReport:
		return cp.getReport(binary.LittleEndian.Uint32(ev[4:]), ev[8])
	case uhidSetReport:
		size := int(binary.LittleEndian.Uint16(ev[10:]))
		return cp.setReport(binary.LittleEndian.Uint32(ev[4:]), ev[8], ev[12:12+min(size, 4096)])
	case uhidOutput:
		size := int(binary.LittleEndian.Uint16(ev[4+4096:]))
		return cp.output(ev[4 : 4+min(size, 4096)])
	}
	return nil
}

// getReport answers a feature report read; an unknown report is an error (EIO).
func (cp *cp2112) getReport(id uint32, rnum byte) []byte {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	var data []byte
	switch rnum {
	case cpVersion: // part number 0x0C, version 2 (1 has no repeated start)
		data = []byte{cpVersion, 0x0c, 0x02}
	case cpSMBusConfig: // 100 kHz, address 0x02, no auto-send, no timeouts or retry limit
		data = []byte{cpSMBusConfig, 0, 0x01, 0x86, 0xa0, 0x02, 0, 0, 0, 0, 0, 0, 0, 0}
	case cpGPIOConfig:
		data = []byte{cpGPIOConfig, cp.dir, 0xff, 0, 0}
	case cpGPIOGet:
		data = []byte{cpGPIOGet, cp.latch&cp.dir | cp.levels&^cp.dir}
	}
	ev := event(uhidGetReportRply)
	binary.LittleEndian.PutUint32(ev[4:], id)
	if data == nil {
		binary.LittleEndian.PutUint16(ev[8:], 5) // EIO
		return ev
	}
	binary.LittleEndian.PutUint16(ev[10:], uint16(len(data)))
	copy(ev[12:], data)
	return ev
}

// setReport takes a feature report write.
func (cp *cp2112) setReport(id uint32, rnum byte, data []byte) []byte {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	ok := true
	switch {
	case rnum == cpGPIOConfig && len(data) >= 2:
		cp.dir = data[1]
	case rnum == cpGPIOSet && len(data) >= 3:
		cp.latch = cp.latch&^data[2] | data[1]&data[2]
	case rnum == cpSMBusConfig:
	default:
		ok = false
	}
	ev := event(uhidSetReportRply)
	binary.LittleEndian.PutUint32(ev[4:], id)
	if !ok {
		binary.LittleEndian.PutUint16(ev[8:], 5)
	}
	return ev
}

// output takes an output report: a transfer, a status request or a fetch of read data.
func (cp *cp2112) output(r []byte) []byte {
	if len(r) == 0 {
		return nil
	}
	cp.mu.Lock()
	defer cp.mu.Unlock()
	switch r[0] {
	case cpReadRequest:
		if len(r) >= 4 {
			cp.transfer("read", r[1]>>1, nil, int(binary.BigEndian.Uint16(r[2:])))
		}
	case cpWriteRead:
		if len(r) >= 5 && len(r) >= 5+int(r[4]) {
			cp.transfer("write-read", r[1]>>1, r[5:5+int(r[4])], int(binary.BigEndian.Uint16(r[2:])))
		}
	case cpWriteRequest:
		if len(r) >= 3 && len(r) >= 3+int(r[2]) {
			cp.transfer("write", r[1]>>1, r[3:3+int(r[2])], 0)
		}
	case cpStatusRequest:
		return input(cp.status, 64)
	case cpForceSend:
		n := min(len(cp.pending), 61)
		if len(r) >= 3 {
			n = min(n, int(binary.BigEndian.Uint16(r[1:])))
		}
		chunk := cp.pending[:n]
		cp.pending = cp.pending[n:]
		return input(append([]byte{cpReadResponse, 0x05, byte(n)}, chunk...), 64)
	case cpCancel:
	}
	return nil
}

// transfer carries out one transaction on the emulated bus and keeps its status: complete, or
// an error with status1 0 (a NACK, which the driver reports as ETIMEDOUT) for any address but
// cp2112Target.
func (cp *cp2112) transfer(kind string, addr byte, w []byte, n int) {
	cp.kinds = append(cp.kinds, fmt.Sprintf("%s %#x", kind, addr))
	if addr != cp2112Target {
		cp.status, cp.pending = []byte{cpStatus, 0x03, 0x00, 0, 0, 0, 0}, nil
		return
	}
	if len(w) > 0 {
		cp.ptr = w[0]
		for _, b := range w[1:] {
			cp.regs[cp.ptr] = b
			cp.ptr++
		}
	}
	cp.pending = nil
	for i := 0; i < n; i++ {
		cp.pending = append(cp.pending, cp.regs[cp.ptr])
		cp.ptr++
	}
	cp.status = []byte{cpStatus, 0x02, 0x05, 0, 0, byte(n >> 8), byte(n)}
}

// pins returns the outputs as driven and the direction register.
func (cp *cp2112) pins() (latch, dir uint8) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return cp.latch, cp.dir
}

// drive sets the level the outside world puts on pin line.
func (cp *cp2112) drive(line int, high bool) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	cp.levels &^= 1 << line
	if high {
		cp.levels |= 1 << line
	}
}

// clearTransfers forgets the transfers asked for so far: those of hwmon drivers (lm75 and
// others probe 0x48-0x4f on every new adapter whose class allows it, as hid-cp2112's does).
func (cp *cp2112) clearTransfers() {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	cp.kinds = nil
}

func (cp *cp2112) transfers() []string {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return append([]string(nil), cp.kinds...)
}

func (cp *cp2112) registers(from, n int) []byte {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return append([]byte(nil), cp.regs[from:from+n]...)
}

// TestGPIOAndI2COnCP2112 drives a real kernel GPIO chip and a real I2C adapter that does plain
// I2C: those of the kernel's hid-cp2112 driver, bound to a CP2112 emulated through /dev/uhid.
// GPIO: an output, an input and an active-low input, as the pins see them. I2C: a register
// write, a write-then-read as one combined transaction, a read on its own, and a NACK.
func TestGPIOAndI2COnCP2112(t *testing.T) {
	cp, chip, adapter := startCP2112(t)
	doc := minimal + `,"Gpio":[` +
		`{"Gpio":8,"Chip":"` + chip + `","Line":0,"Direction":"output"},` +
		`{"Gpio":12,"Chip":"` + chip + `","Line":1,"Direction":"input"},` +
		`{"Gpio":13,"Chip":"` + chip + `","Line":2,"Direction":"input","ActiveLow":true}],` +
		`"I2cMaster":[{"Isu":"ISU1","Device":"` + adapter + `"}]}`
	b, err := Open(board.Options{Dir: writeBoard(t, doc, definitions(
		`{"Name":"LED","Type":"Gpio","AppManifestValue":8}`, `{"Name":"BUTTON","Type":"Gpio","AppManifestValue":12}`,
		`{"Name":"BUTTON_LOW","Type":"Gpio","AppManifestValue":13}`, `{"Name":"I2C","Type":"I2cMaster","AppManifestValue":"ISU1"}`))})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	// GPIO.
	if latch, dir := cp.pins(); dir != 0b001 || latch&1 != 0 {
		t.Fatalf("after open: direction %08b, outputs %08b; want line 0 an output, driven low, lines 1 and 2 inputs", dir, latch)
	}
	if err := b.WriteGPIO(8, true); err != nil {
		t.Fatal(err)
	}
	if latch, _ := cp.pins(); latch&1 != 1 {
		t.Fatalf("the output pin is not high: %08b", latch)
	}
	for _, c := range []struct {
		line int
		high bool
		gpio int
		want bool
	}{{1, true, 12, true}, {1, false, 12, false}, {2, true, 13, false}, {2, false, 13, true}} {
		cp.drive(c.line, c.high)
		if v, err := b.ReadGPIO(c.gpio); err != nil || v != c.want {
			t.Errorf("GPIO %d with its pin driven high=%v: %v, %v; want %v", c.gpio, c.high, v, err, c.want)
		}
	}
	if err := b.WriteGPIO(12, true); !errors.Is(err, board.ErrDirection) {
		t.Fatalf("writing an input: %v", err)
	}
	if err := b.WriteGPIO(8, false); err != nil {
		t.Fatal(err)
	}
	if latch, _ := cp.pins(); latch&1 != 0 {
		t.Fatalf("the output pin is not low: %08b", latch)
	}

	// I2C. Only this test's transfers count, not those of drivers that probed the adapter
	// when it appeared.
	cp.clearTransfers()
	if err := b.I2CTransfer("ISU1", cp2112Target, []byte{0x10, 0xab, 0xcd, 0xef}, nil); err != nil {
		t.Fatal(err)
	}
	if got := cp.registers(0x10, 3); string(got) != "\xab\xcd\xef" {
		t.Fatalf("registers 0x10.. after the write: % x", got)
	}
	r := make([]byte, 2)
	if err := b.I2CTransfer("ISU1", cp2112Target, []byte{0x10}, r); err != nil || string(r) != "\xab\xcd" {
		t.Fatalf("write-then-read of registers 0x10..0x11: % x, %v", r, err)
	}
	r1 := make([]byte, 1)
	if err := b.I2CTransfer("ISU1", cp2112Target, nil, r1); err != nil || r1[0] != 0xef {
		t.Fatalf("a read on its own (register 0x12, where the pointer is): % x, %v", r1, err)
	}
	err = b.I2CTransfer("ISU1", 0x49, []byte{0}, r1)
	if err == nil || !errorContains(err, adapter, "0x49") {
		t.Fatalf("nothing at 0x49: %v", err)
	}
	t.Logf("a NACK through hid-cp2112: %v", err)
	want := []string{"write 0x48", "write-read 0x48", "read 0x48", "write-read 0x49"}
	if got := cp.transfers(); strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Fatalf("the bridge was asked for %q, want %q (a write then a read must be one combined transaction)", got, want)
	}
	if err := cp.dev.failed(); err != nil {
		t.Fatal(err)
	}
}
