package qemuvm

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startHelper is set in the process TestStartDiesWithParent runs: it starts sleep with Start
// from a goroutine whose thread then ends, prints sleep's pid, and waits to be killed.
const startHelper = "RAMPART_QEMUVM_START_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(startHelper) == "1" {
		// The main thread never exits (a goroutine locked to it that returns wedges it
		// instead): keep it here, so that the goroutine below runs on another thread.
		runtime.LockOSThread()
		pid := make(chan int)
		go func() {
			runtime.LockOSThread() // never unlocked: this thread ends with the goroutine
			cmd := exec.Command("sleep", "600")
			if _, err := Start(cmd); err != nil {
				fmt.Println("error", err)
				os.Exit(1)
			}
			pid <- cmd.Process.Pid
		}()
		fmt.Println(<-pid)
		select {}
	}
	os.Exit(m.Run())
}

// alive reports whether process pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

// TestStartDiesWithParent: a process started with Start outlives the goroutine (and the thread)
// that called Start, and is killed when the process that started it is killed.
func TestStartDiesWithParent(t *testing.T) {
	if _, err := exec.LookPath("sleep"); err != nil {
		t.Skip("needs sleep")
	}
	helper := exec.Command(os.Args[0], "-test.run=^$")
	helper.Env = append(os.Environ(), startHelper+"=1")
	stdout, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = helper.Process.Kill(); _ = helper.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the helper's output: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("the helper printed %q", line)
	}
	defer func() { _ = syscall.Kill(pid, syscall.SIGKILL) }()
	// The goroutine that called Start has ended and taken its thread with it.
	time.Sleep(200 * time.Millisecond)
	if !alive(pid) {
		t.Fatal("the child died with the thread of the goroutine that started it")
	}
	if err := helper.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = helper.Wait()
	for i := 0; alive(pid); i++ {
		if i == 200 {
			t.Fatalf("process %d still runs 10 s after its parent was killed", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
