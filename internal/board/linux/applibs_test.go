package linux_test

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	sdk "github.com/rampart-iot/rampart/applibs"
	"github.com/rampart-iot/rampart/internal/applibs"
	"github.com/rampart-iot/rampart/internal/board"
	"github.com/rampart-iot/rampart/internal/board/linux"
	"github.com/rampart-iot/rampart/manifest"
	"golang.org/x/sys/unix"
)

const (
	cid      = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
	otherCID = "3f2504e0-4f89-41d3-9a0c-0305e82c3302"
)

// TestAppUARTOnPTY: an app served by the applibs host on a linux board writes to its UART by
// hardware-definition name, and the bytes come out of the tty (the far end of a pseudo-
// terminal); what the far end sends, the app reads; an app without the grant is refused.
func TestAppUARTOnPTY(t *testing.T) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	defer m.Close()
	var n int
	rc, _ := m.SyscallConn()
	var ierr error
	if err := rc.Control(func(fd uintptr) {
		if ierr = unix.IoctlSetPointerInt(int(fd), unix.TIOCSPTLCK, 0); ierr == nil {
			n, ierr = unix.IoctlGetInt(int(fd), unix.TIOCGPTN)
		}
	}); err != nil || ierr != nil {
		t.Fatal(err, ierr)
	}
	dir := t.TempDir()
	must(t, os.Mkdir(filepath.Join(dir, linux.DefinitionsDir), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, linux.DescriptionFile), []byte(`{"Metadata":{"Type":"Rampart Linux Board","Version":1},"Name":"pty",
		"Uart":[{"Isu":"ISU0","Device":"/dev/pts/`+strconv.Itoa(n)+`","Baud":115200}]}`), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, linux.DefinitionsDir, "pty.json"), []byte(`{"Metadata":{"Type":"Azure Sphere Hardware Definition","Version":1},
		"Peripherals":[{"Name":"SERIAL","Type":"Uart","AppManifestValue":"ISU0"}]}`), 0o644))
	dev, err := board.Open("linux:"+dir, board.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.(*linux.Board).Close()

	sockDir, err := os.MkdirTemp("", "linuxboard-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(sockDir)
	h, err := applibs.NewHost(applibs.HostConfig{Dir: sockDir, Board: dev})
	if err != nil {
		t.Fatal(err)
	}
	open := func(id, caps string) *sdk.Client {
		mf, err := manifest.Parse([]byte(`{"SchemaVersion":1,"Name":"t","ComponentId":"` + id + `","EntryPoint":"/bin/app","CmdArgs":[],"Capabilities":` + caps + `,"ApplicationType":"Default"}`))
		if err != nil {
			t.Fatal(err)
		}
		sock, stop, err := h.Open(applibs.App{ComponentID: id, Manifest: mf, Log: os.Stderr})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(stop)
		return sdk.DialPath(sock)
	}
	c := open(cid, `{"Uart":["$SERIAL"]}`)
	if k, err := c.UART("$SERIAL").Write([]byte("ping\n")); err != nil || k != 5 {
		t.Fatalf("app write: %d, %v", k, err)
	}
	must(t, m.SetReadDeadline(time.Now().Add(5*time.Second)))
	got := make([]byte, 0, 5)
	for len(got) < 5 {
		p := make([]byte, 5-len(got))
		k, err := m.Read(p)
		if err != nil {
			t.Fatalf("the far end read %q: %v", got, err)
		}
		got = append(got, p[:k]...)
	}
	if string(got) != "ping\n" {
		t.Fatalf("the far end read %q", got)
	}
	if _, err := m.Write([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	var in []byte
	for deadline := time.Now().Add(5 * time.Second); len(in) < 4 && time.Now().Before(deadline); {
		p, err := c.UART("ISU0").Read(16)
		if err != nil {
			t.Fatal(err)
		}
		in = append(in, p...)
		if len(p) == 0 {
			time.Sleep(5 * time.Millisecond)
		}
	}
	if string(in) != "pong" {
		t.Fatalf("the app read %q", in)
	}

	// An app without the grant is refused, and nothing reaches the tty.
	other := open(otherCID, `{}`)
	if _, err := other.UART("$SERIAL").Write([]byte("sneak")); !errors.Is(err, sdk.ErrPermission) {
		t.Fatalf("an app without Uart: %v", err)
	}
	if st := dev.State(); len(st.UARTs) != 1 || st.UARTs[0].TxBytes != 5 || st.UARTs[0].RxBytes != 4 {
		t.Fatalf("state %+v", st.UARTs)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
