package linux

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The uhid interface (linux/uhid.h): struct uhid_event is a packed __u32 type and a union
// whose largest member, uhid_create2_req, is 4372 bytes.
const (
	uhidEventSize     = 4376
	uhidDestroy       = 1
	uhidOutput        = 6
	uhidGetReport     = 9
	uhidGetReportRply = 10
	uhidCreate2       = 11
	uhidInput2        = 12
	uhidSetReport     = 13
	uhidSetReportRply = 14
	busUSB            = 0x03
)

// uhidDevice is a USB HID device made through /dev/uhid, for a kernel HID driver to bind to:
// a test emulates the device by answering the kernel's events.
//
// The kernel's drivers wait for some answers only briefly (hid-cp2112: 50 ms), so the device is
// served by a goroutine locked to its own thread, blocked in poll(2) on /dev/uhid opened for
// blocking reads: a request wakes that thread directly, not Go's network poller, which another
// thread checks only when it has nothing else to do.
type uhidDevice struct {
	fd      int    // /dev/uhid, blocking
	wake    [2]int // a pipe whose read end ends serve
	match   string // the device's directories: /sys/bus/hid/devices/0003:VVVV:PPPP.*
	uniq    string
	done    chan struct{}
	mu      sync.Mutex
	err     error
	answers func(ev []byte) []byte
}

// newUHID makes the device once the modules the test needs are there (trying modprobe), or
// skips saying which is missing (fails when env is 1). answer gets each event from the kernel
// and returns the event to write back, or nil.
func newUHID(t *testing.T, env string, modules map[string]string, name string, vendor, product uint32, descriptor []byte, answer func(ev []byte) []byte) *uhidDevice {
	t.Helper()
	for module, path := range modules {
		if _, err := os.Stat(path); err != nil {
			if mp, lerr := exec.LookPath("modprobe"); lerr == nil && os.Geteuid() == 0 {
				_ = exec.Command(mp, module).Run()
			}
		}
		if _, err := os.Stat(path); err != nil {
			requireOrSkip(t, env, "no %s (%v): this test needs the modules %v (TestLinuxBoardInVM loads them in a VM)", module, err, modules)
		}
	}
	fd, err := unix.Open("/dev/uhid", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		requireOrSkip(t, env, "opening /dev/uhid: %v", err)
	}
	u := &uhidDevice{fd: fd, done: make(chan struct{}), answers: answer, uniq: fmt.Sprintf("rampart-%d-%s", os.Getpid(), t.Name()),
		match: fmt.Sprintf("/sys/bus/hid/devices/0003:%04X:%04X.*", vendor, product)}
	if err := unix.Pipe2(u.wake[:], unix.O_CLOEXEC); err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	ev := make([]byte, uhidEventSize)
	binary.LittleEndian.PutUint32(ev, uhidCreate2)
	copy(ev[4:4+127], name)
	copy(ev[4+128+64:4+128+64+63], u.uniq)
	binary.LittleEndian.PutUint16(ev[260:], uint16(len(descriptor)))
	binary.LittleEndian.PutUint16(ev[262:], busUSB)
	binary.LittleEndian.PutUint32(ev[264:], vendor)
	binary.LittleEndian.PutUint32(ev[268:], product)
	copy(ev[280:], descriptor)
	if _, err := unix.Write(fd, ev); err != nil {
		unix.Close(fd)
		unix.Close(u.wake[0])
		unix.Close(u.wake[1])
		t.Fatalf("creating the uhid device: %v", err)
	}
	go u.serve()
	t.Cleanup(func() {
		_, _ = unix.Write(fd, event(uhidDestroy))
		_, _ = unix.Write(u.wake[1], []byte{0})
		<-u.done
		unix.Close(fd)
		unix.Close(u.wake[0])
		unix.Close(u.wake[1])
	})
	return u
}

// serve answers the kernel's events until the wake pipe is written to, on a thread of its own.
func (u *uhidDevice) serve() {
	defer close(u.done)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	ev := make([]byte, uhidEventSize)
	for {
		fds := []unix.PollFd{{Fd: int32(u.fd), Events: unix.POLLIN}, {Fd: int32(u.wake[0]), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, -1); err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			u.fail(fmt.Errorf("polling /dev/uhid: %w", err))
			return
		}
		if fds[1].Revents != 0 {
			return
		}
		if fds[0].Revents&unix.POLLIN == 0 {
			u.fail(fmt.Errorf("polling /dev/uhid: events %#x", fds[0].Revents))
			return
		}
		n, err := unix.Read(u.fd, ev)
		if err != nil {
			u.fail(fmt.Errorf("reading /dev/uhid: %w", err))
			return
		}
		if n < 4 {
			u.fail(fmt.Errorf("a uhid event of %d bytes", n))
			return
		}
		if reply := u.answers(ev); reply != nil {
			if _, err := unix.Write(u.fd, reply); err != nil {
				u.fail(fmt.Errorf("answering on /dev/uhid: %w", err))
				return
			}
		}
	}
}

func (u *uhidDevice) fail(err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.err == nil {
		u.err = err
	}
}

func (u *uhidDevice) failed() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.err
}

// waitFor waits up to 10 s for the driver to have bound the device and made what ready finds
// in the device's sysfs directory, which it returns.
func (u *uhidDevice) waitFor(t *testing.T, what string, ready func(dir string) bool) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := u.failed(); err != nil {
			t.Fatal(err)
		}
		dirs, _ := filepath.Glob(u.match)
		for _, d := range dirs {
			// A sysfs file: at most a page.
			if ue, _ := os.ReadFile(filepath.Join(d, "uevent")); strings.Contains(string(ue), "HID_UNIQ="+u.uniq+"\n") && ready(d) {
				return d
			}
		}
		if time.Now().After(deadline) {
			var seen []string
			for _, d := range dirs {
				entries, _ := os.ReadDir(d)
				var names []string
				for _, e := range entries {
					names = append(names, e.Name())
				}
				seen = append(seen, fmt.Sprintf("%s holds %v", d, names))
			}
			t.Fatalf("no %s on the emulated device %s after 10 s (%s)", what, u.uniq, strings.Join(seen, "; "))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func event(typ uint32) []byte {
	ev := make([]byte, uhidEventSize)
	binary.LittleEndian.PutUint32(ev, typ)
	return ev
}

// input is a UHID_INPUT2 event carrying report r, padded to size bytes.
func input(r []byte, size int) []byte {
	ev := event(uhidInput2)
	binary.LittleEndian.PutUint16(ev[4:], uint16(size))
	copy(ev[6:6+size], r)
	return ev
}
