package landlockaudit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/landlock-lsm/go-landlock/landlock"
)

// childEnv makes the test binary a child that restricts itself and tries to create a file in
// the directory the variable names.
const childEnv = "LANDLOCKAUDIT_TEST_CHILD"

func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		if err := landlock.V7.Restrict(landlock.RODirs("/")); err != nil {
			fmt.Println("restrict:", err)
			os.Exit(2)
		}
		_, err := os.Create(filepath.Join(dir, "denied"))
		fmt.Println(err)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestReaderReadsARealDenial opens the audit multicast, has a child process denied a file
// creation by Landlock, and reads the denial, attributed to the child.
func TestReaderReadsARealDenial(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: reading the audit multicast takes CAP_AUDIT_READ, turning audit on CAP_AUDIT_CONTROL")
	}
	r, err := Open(Config{EnableAudit: true})
	if errors.Is(err, ErrUnavailable) {
		t.Skipf("this kernel cannot report Landlock denials: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	dir := t.TempDir()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	pid := cmd.Process.Pid

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second) // bounds a hang only
	defer cancel()
	for {
		d, err := r.Next(ctx)
		if err != nil {
			t.Fatalf("no denial of the child (pid %d) read: %v; it printed %s", pid, err, out)
		}
		if d.Pid != pid {
			continue // another process's
		}
		if !slices.Contains(d.Blockers, "fs.make_reg") || d.Path != dir || d.Domain == 0 || d.Exe == "" {
			t.Errorf("denial %+v: want fs.make_reg on %s", d, dir)
		}
		break
	}
}

func TestNextEndsWithItsContextAndClose(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: reading the audit multicast takes CAP_AUDIT_READ")
	}
	r, err := Open(Config{EnableAudit: true})
	if errors.Is(err, ErrUnavailable) {
		t.Skipf("this kernel cannot report Landlock denials: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	if _, err := r.Next(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Next after its context ended: %v, want context.Canceled", err)
	}
	go func() { time.Sleep(50 * time.Millisecond); r.Close() }()
	if _, err := r.Next(t.Context()); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Next after Close: %v, want os.ErrClosed", err)
	}
}

func TestParseNetlink(t *testing.T) {
	msg := []byte{0, 0, 0, 0, 0x8f, 0x05, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	msg = append(msg, "audit(1.000:1): x\x00"...)
	msg[0] = byte(len(msg))
	typ, text, err := parseNetlink(msg)
	if err != nil || typ != TypeAccess || string(text) != "audit(1.000:1): x" {
		t.Fatalf("parseNetlink = %d %q %v", typ, text, err)
	}
	if _, _, err := parseNetlink(msg[:10]); err == nil {
		t.Error("a short message was accepted")
	}
	msg[0] = byte(len(msg) + 1)
	if _, _, err := parseNetlink(msg); err == nil {
		t.Error("a length past the datagram was accepted")
	}
}
