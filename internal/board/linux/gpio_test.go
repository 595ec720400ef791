package linux

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"github.com/rampart-iot/rampart/internal/board"
	"golang.org/x/sys/unix"
)

const gpioSimConfig = "/sys/kernel/config/gpio-sim"

// gpioSim makes a gpio-sim chip of 4 lines through configfs and returns its character device
// and the sysfs directory of its simulated lines, or skips saying why it cannot.
func gpioSim(t *testing.T) (chip, lines string) {
	t.Helper()
	if os.Geteuid() != 0 {
		requireOrSkip(t, "RAMPART_REQUIRE_GPIO_SIM", "gpio-sim needs root")
	}
	if _, err := os.Stat(gpioSimConfig); err != nil {
		if mp, lerr := exec.LookPath("modprobe"); lerr == nil {
			_ = exec.Command(mp, "gpio-sim").Run()
		}
		if _, err = os.Stat(gpioSimConfig); err != nil {
			requireOrSkip(t, "RAMPART_REQUIRE_GPIO_SIM", "gpio-sim is not available (%v): the kernel needs CONFIG_GPIO_SIM and configfs mounted at /sys/kernel/config", err)
		}
	}
	dev := filepath.Join(gpioSimConfig, fmt.Sprintf("rampart-%d", os.Getpid()))
	write := func(name, v string) {
		if err := os.WriteFile(name, []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(dev, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(dev) })
	if err := os.Mkdir(filepath.Join(dev, "bank0"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(filepath.Join(dev, "bank0")) })
	write(filepath.Join(dev, "bank0", "num_lines"), "4")
	write(filepath.Join(dev, "live"), "1")
	t.Cleanup(func() { os.WriteFile(filepath.Join(dev, "live"), []byte("0"), 0o644) })
	name, err := readAttribute(filepath.Join(dev, "bank0", "chip_name"))
	if err != nil {
		t.Fatal(err)
	}
	devName, err := readAttribute(filepath.Join(dev, "dev_name"))
	if err != nil {
		t.Fatal(err)
	}
	return "/dev/" + name, filepath.Join("/sys/devices/platform", devName, name)
}

// TestGPIOOnGPIOSim drives real GPIO lines of the kernel's simulator: an output, an input
// and an active-low input.
func TestGPIOOnGPIOSim(t *testing.T) {
	chip, lines := gpioSim(t)
	doc := minimal + `,"Gpio":[` +
		`{"Gpio":8,"Chip":"` + chip + `","Line":0,"Direction":"output"},` +
		`{"Gpio":12,"Chip":"` + chip + `","Line":1,"Direction":"input"},` +
		`{"Gpio":13,"Chip":"` + chip + `","Line":2,"Direction":"input","ActiveLow":true}]}`
	b, err := Open(board.Options{Dir: writeBoard(t, doc, definitions(
		`{"Name":"LED","Type":"Gpio","AppManifestValue":8}`, `{"Name":"BUTTON","Type":"Gpio","AppManifestValue":12}`,
		`{"Name":"BUTTON_LOW","Type":"Gpio","AppManifestValue":13}`))})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	sim := func(line int, name string) string {
		v, err := readAttribute(filepath.Join(lines, fmt.Sprintf("sim_gpio%d", line), name))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	pull := func(line int, v string) {
		if err := os.WriteFile(filepath.Join(lines, fmt.Sprintf("sim_gpio%d", line), "pull"), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if sim(0, "value") != "0" {
		t.Fatal("the output did not start low")
	}
	if err := b.WriteGPIO(8, true); err != nil {
		t.Fatal(err)
	}
	if sim(0, "value") != "1" {
		t.Fatal("the output is not high")
	}
	for _, c := range []struct {
		pull string
		gpio int
		want bool
	}{{"pull-up", 12, true}, {"pull-down", 12, false}, {"pull-up", 13, false}, {"pull-down", 13, true}} {
		pull(map[int]int{12: 1, 13: 2}[c.gpio], c.pull)
		if v, err := b.ReadGPIO(c.gpio); err != nil || v != c.want {
			t.Errorf("GPIO %d with %s: %v, %v; want %v", c.gpio, c.pull, v, err, c.want)
		}
	}
	if err := b.WriteGPIO(12, true); !errors.Is(err, board.ErrDirection) {
		t.Fatalf("writing an input: %v", err)
	}
	st := b.State()
	if len(st.LEDs) != 1 || st.LEDs[0] != (board.LED{Name: "LED", GPIO: 8, On: true}) || len(st.Buttons) != 2 || !st.Buttons[1].Pressed {
		t.Fatalf("state %+v %+v", st.LEDs, st.Buttons)
	}
}

// TestGPIOMissingChip: a line on a chip this machine lacks fails the board, naming the entry.
func TestGPIOMissingChip(t *testing.T) {
	doc := minimal + `,"Gpio":[{"Gpio":17,"Chip":"/dev/rampart-no-such-gpiochip","Line":17,"Direction":"output"}]}`
	_, err := Open(board.Options{Dir: writeBoard(t, doc, definitions(`{"Name":"LED","Type":"Gpio","AppManifestValue":17}`))})
	if err == nil || !errorContains(err, "Gpio[0] (GPIO 17)", "line 17 of /dev/rampart-no-such-gpiochip") {
		t.Fatalf("%v", err)
	}
}

// TestI2COnStub runs the board's I2C path on i2c-stub's adapter when the kernel has one, else
// skips. i2c-stub is an SMBus-only adapter (no I2C_FUNC_I2C, no master_xfer), as are many PC
// SMBus controllers: the board's I2C_RDWR is refused with EOPNOTSUPP, named, and writes nothing,
// which the test checks by reading the chip's register through SMBus, after showing that an
// SMBus write does reach it. Plain I2C transactions are TestGPIOAndI2COnCP2112's.
func TestI2COnStub(t *testing.T) {
	adapters, err := os.ReadDir("/sys/class/i2c-dev")
	if err != nil {
		if mp, lerr := exec.LookPath("modprobe"); lerr == nil && os.Geteuid() == 0 {
			_ = exec.Command(mp, "i2c-stub", "chip_addr=0x48").Run()
		}
		if adapters, err = os.ReadDir("/sys/class/i2c-dev"); err != nil {
			requireOrSkip(t, "RAMPART_REQUIRE_I2C_STUB", "this kernel has no i2c-dev adapters (%v): it needs CONFIG_I2C, CONFIG_I2C_CHARDEV and i2c-stub (modprobe i2c-stub chip_addr=0x48)", err)
		}
	}
	dev := ""
	for _, a := range adapters {
		if name, err := readAttribute(filepath.Join("/sys/class/i2c-dev", a.Name(), "name")); err == nil && strings.Contains(name, "stub") {
			dev = "/dev/" + a.Name()
		}
	}
	if dev == "" {
		requireOrSkip(t, "RAMPART_REQUIRE_I2C_STUB", "no i2c-stub adapter (modprobe i2c-stub chip_addr=0x48)")
	}
	doc := minimal + `,"I2cMaster":[{"Isu":"ISU1","Device":"` + dev + `"}]}`
	b, err := Open(board.Options{Dir: writeBoard(t, doc, definitions(`{"Name":"I2C","Type":"I2cMaster","AppManifestValue":"ISU1"}`))})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	sm := openSMBus(t, dev, 0x48)
	if sm.funcs()&i2cFuncI2C != 0 {
		t.Fatalf("%s offers I2C_FUNC_I2C; i2c-stub should be SMBus-only", dev)
	}
	err = b.I2CTransfer("ISU1", 0x48, []byte{0x10, 0xab}, nil)
	if !errors.Is(err, unix.EOPNOTSUPP) || !errorContains(err, dev, "0x48") {
		t.Fatalf("I2C_RDWR on an SMBus-only adapter: %v", err)
	}
	if v := sm.readByteData(0x10); v != 0 {
		t.Fatalf("register 0x10 is %#x after a refused write; want it untouched (0)", v)
	}
	sm.writeByteData(0x11, 0x5a)
	if v := sm.readByteData(0x11); v != 0x5a {
		t.Fatalf("register 0x11 is %#x after an SMBus write of 0x5a", v)
	}
	if err := b.I2CTransfer("ISU1", 0x48, []byte{0x11}, make([]byte, 1)); !errors.Is(err, unix.EOPNOTSUPP) {
		t.Fatalf("a write-then-read on an SMBus-only adapter: %v", err)
	}
}

// The i2c-dev SMBus interface (linux/i2c-dev.h, linux/i2c.h), for checking i2c-stub's chip from
// the side.
const (
	ioctlI2CSlave     = 0x0703
	ioctlI2CFuncs     = 0x0705
	ioctlI2CSMBus     = 0x0720
	i2cFuncI2C        = 0x1
	i2cSMBusRead      = 1
	i2cSMBusWrite     = 0
	i2cSMBusByteData  = 2
	i2cSMBusBlockSize = 34
)

// smbusIoctlData is struct i2c_smbus_ioctl_data: __u8 read_write, command; __u32 size; union
// i2c_smbus_data *data.
type smbusIoctlData struct {
	readWrite uint8
	command   uint8
	size      uint32
	data      *[i2cSMBusBlockSize]byte
}

type smbus struct {
	t  *testing.T
	fd int
}

func openSMBus(t *testing.T, dev string, addr int) *smbus {
	t.Helper()
	fd, err := unix.Open(dev, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.IoctlSetInt(fd, ioctlI2CSlave, addr); err != nil {
		t.Fatalf("I2C_SLAVE %#x on %s: %v", addr, dev, err)
	}
	return &smbus{t: t, fd: fd}
}

func (s *smbus) funcs() uint64 {
	var f uint64
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(s.fd), ioctlI2CFuncs, uintptr(unsafe.Pointer(&f))); errno != 0 {
		s.t.Fatalf("I2C_FUNCS: %v", errno)
	}
	return f
}

func (s *smbus) do(rw, cmd uint8, data *[i2cSMBusBlockSize]byte) {
	s.t.Helper()
	req := smbusIoctlData{readWrite: rw, command: cmd, size: i2cSMBusByteData, data: data}
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(s.fd), ioctlI2CSMBus, uintptr(unsafe.Pointer(&req))); errno != 0 {
		s.t.Fatalf("I2C_SMBUS byte data, read %d, command %#x: %v", rw, cmd, errno)
	}
}

func (s *smbus) readByteData(cmd uint8) byte {
	s.t.Helper()
	var data [i2cSMBusBlockSize]byte
	s.do(i2cSMBusRead, cmd, &data)
	return data[0]
}

func (s *smbus) writeByteData(cmd, v uint8) {
	s.t.Helper()
	data := [i2cSMBusBlockSize]byte{v}
	s.do(i2cSMBusWrite, cmd, &data)
}

// TestI2CAndSPIOnOtherDevices: the ioctls reach the kernel, and a device that is not an I2C
// adapter or an spidev answers with an error, not a panic or a silent success.
func TestI2CAndSPIOnOtherDevices(t *testing.T) {
	bus, err := openI2C("/dev/null")
	if err != nil {
		t.Fatal(err)
	}
	defer bus.close()
	if err := bus.transfer(0x48, []byte{0}, make([]byte, 2)); err == nil || !strings.Contains(err.Error(), "inappropriate ioctl") {
		t.Fatalf("I2C_RDWR on /dev/null: %v", err)
	}
	if err := bus.transfer(0x80, nil, make([]byte, 1)); !errors.Is(err, board.ErrInvalid) {
		t.Fatalf("a 10-bit address: %v", err)
	}
	if err := bus.transfer(0x48, make([]byte, MaxI2CTransfer+1), nil); !errors.Is(err, board.ErrInvalid) {
		t.Fatalf("an oversized transfer: %v", err)
	}
	if _, err := openSPI("/dev/null", 0, 1000); err == nil || !errorContains(err, "configuring /dev/null (mode 0, 8 bits, 1000 Hz)", "inappropriate ioctl") {
		t.Fatalf("spidev on /dev/null: %v", err)
	}
	doc := minimal + `,"I2cMaster":[{"Isu":"ISU1","Device":"/dev/null"}]}`
	b, err := Open(board.Options{Dir: writeBoard(t, doc, definitions(`{"Name":"I2C","Type":"I2cMaster","AppManifestValue":"ISU1"}`))})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.I2CTransfer("ISU2", 0x48, nil, make([]byte, 1)); !errors.Is(err, board.ErrNoPeripheral) {
		t.Fatalf("an unmapped ISU: %v", err)
	}
	if err := b.SPITransfer("ISU1", 0, nil, make([]byte, 1)); !errors.Is(err, board.ErrNoPeripheral) {
		t.Fatalf("an I2C ISU as SPI: %v", err)
	}
}
